/**
 * How far a Kubernetes request reaches beyond the namespace and name it
 * carries. The API server's request info names a namespace and a name only
 * when the path (or, for list and watch, a `metadata.name` fieldSelector) gives
 * them, yet a list, watch or deletecollection without them serves or deletes
 * every object they leave open: `GET /api/v1/configmaps` returns the
 * ConfigMaps of every namespace, `DELETE …/namespaces/a/configmaps` deletes
 * each one in `a`. Restrictive rules (deny, review, mask) read such a request
 * as naming every value it leaves open (evaluate.ts). Pure.
 */
import { globMatcher } from './glob.ts';
import type { Action, RuleMatch } from './types.ts';

/** The verbs whose request, without a name, is about a whole collection. */
const COLLECTION_VERBS: ReadonlySet<string> = new Set(['list', 'watch', 'deletecollection']);

/**
 * Built-in cluster-scoped resources (Kubernetes 1.16 to 1.33) by API group,
 * the core group as ''. Their objects have no namespace, so a request for them
 * without one leaves no namespace open. Every resource not listed here
 * (namespaced built-ins, custom resources, aggregated APIs) is taken to have
 * namespaced objects: a cluster-scoped custom resource is then read as
 * spanning namespaces, which can only make a restrictive rule match more.
 * Create-only review resources (TokenReview, SubjectAccessReview, …) are not
 * listed: they have no collection to span. e2e/src/policy-scope.test.ts checks
 * this list against the discovery document of a real API server.
 */
export const CLUSTER_SCOPED_RESOURCES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  '': ['componentstatuses', 'namespaces', 'nodes', 'persistentvolumes'],
  'admissionregistration.k8s.io': [
    'mutatingadmissionpolicies',
    'mutatingadmissionpolicybindings',
    'mutatingwebhookconfigurations',
    'validatingadmissionpolicies',
    'validatingadmissionpolicybindings',
    'validatingwebhookconfigurations',
  ],
  'apiextensions.k8s.io': ['customresourcedefinitions'],
  'apiregistration.k8s.io': ['apiservices'],
  'certificates.k8s.io': ['certificatesigningrequests', 'clustertrustbundles'],
  'flowcontrol.apiserver.k8s.io': ['flowschemas', 'prioritylevelconfigurations'],
  'internal.apiserver.k8s.io': ['storageversions'],
  'networking.k8s.io': ['ingressclasses', 'ipaddresses', 'servicecidrs'],
  'node.k8s.io': ['runtimeclasses'],
  policy: ['podsecuritypolicies'],
  'rbac.authorization.k8s.io': ['clusterrolebindings', 'clusterroles'],
  'resource.k8s.io': ['deviceclasses', 'resourceslices'],
  'scheduling.k8s.io': ['priorityclasses'],
  'storage.k8s.io': [
    'csidrivers',
    'csinodes',
    'storageclasses',
    'volumeattachments',
    'volumeattributesclasses',
  ],
  'storagemigration.k8s.io': ['storageversionmigrations'],
});

const CLUSTER_SCOPED: ReadonlySet<string> = new Set(
  Object.entries(CLUSTER_SCOPED_RESOURCES).flatMap(([group, resources]) =>
    resources.map((r) => `${group}/${r}`),
  ),
);

/** Whether `resource` of `group` is a built-in resource whose objects have no namespace. */
export function isClusterScopedResource(group: string | undefined, resource: string): boolean {
  return CLUSTER_SCOPED.has(`${group ?? ''}/${resource}`);
}

function isCollectionRequest(a: Action): boolean {
  return a.resource !== undefined && a.subresource === undefined && COLLECTION_VERBS.has(a.verb);
}

/** A Namespace object's own namespace, in the API server's request info, is its name. */
function isNamespaceObjects(a: Action): boolean {
  return a.resource === 'namespaces' && (a.apiGroup ?? '') === '';
}

/**
 * The namespace a restrictive rule reads the request as naming: the one it
 * carries; for a collection request on Namespace objects that names one
 * (`watch namespaces?fieldSelector=metadata.name=a`), that name.
 */
export function coveredNamespace(a: Action): string | undefined {
  if (a.namespace !== undefined) return a.namespace;
  return isCollectionRequest(a) && isNamespaceObjects(a) ? a.name : undefined;
}

/**
 * Whether the request serves or deletes objects of every namespace: a list,
 * watch or deletecollection without a namespace, on a resource whose objects
 * have one (Namespace objects count: each is in its own namespace).
 */
export function spansNamespaces(a: Action): boolean {
  if (coveredNamespace(a) !== undefined || !isCollectionRequest(a)) return false;
  return isNamespaceObjects(a) || !isClusterScopedResource(a.apiGroup, a.resource as string);
}

/** Whether the request serves or deletes objects of every name: a list, watch or deletecollection without one. */
export function spansNames(a: Action): boolean {
  return a.name === undefined && isCollectionRequest(a);
}

const quoteList = (values: readonly string[]): string => values.map((v) => `"${v}"`).join(', ');

/**
 * Says why a restrictive rule whose conditions `match` holds matched a request
 * that does not name what the rule names (the request reaches it), or
 * undefined when the rule names what the request names. Shown with the
 * decision so that the agent and the operator see why, and, for deny and
 * review, what to ask for instead.
 */
export function compileReachNote(
  match: RuleMatch,
  action: 'deny' | 'review' | 'mask',
): (a: Action) => string | undefined {
  const namespaces = match.namespaces;
  const inNamespaces = namespaces ? globMatcher(namespaces) : undefined;
  const names = match.names;
  const inNames = names ? globMatcher(names) : undefined;
  const resources = match.resources ?? [];
  const plain = globMatcher(resources.filter((r) => !r.includes('/')));
  const pairs = resources.filter((r) => r.includes('/')).map((r) => r.split('/') as [string, string]);
  const urls = match.nonResourceURLs;
  const inUrls = urls ? globMatcher(urls) : undefined;
  const instead = (what: string) => (action === 'mask' ? '' : `; ${what} instead`);
  return (a) => {
    const notes: string[] = [];
    if (namespaces && inNamespaces && spansNamespaces(a) && !inNamespaces(coveredNamespace(a))) {
      notes.push(
        `this ${a.verb} names no namespace, so it reaches namespace ${quoteList(namespaces)} too${instead(`${a.verb} within a namespace the rule does not name`)}`,
      );
    }
    if (names && inNames && spansNames(a) && !inNames(a.name)) {
      notes.push(
        `this ${a.verb} names no object, so it reaches ${a.resource} ${quoteList(names)} too${instead('name one object the rule does not name')}`,
      );
    }
    const { resource, subresource } = a;
    if (
      resource !== undefined &&
      subresource !== undefined &&
      !match.subresources &&
      !resources.includes('*') &&
      plain(resource) &&
      !pairs.some(([r, s]) => (r === '*' || r === resource) && (s === '*' || s === subresource))
    ) {
      notes.push(`${resource}/${subresource} is part of ${resource}, which the rule names`);
    }
    const url = a.nonResourceURL;
    if (urls && inUrls && url !== undefined && !inUrls(url)) {
      notes.push(`${url} lies under ${quoteList(urls)}, which the rule names`);
    }
    return notes.length > 0 ? notes.join('; ') : undefined;
  };
}
