/**
 * Kubernetes request paths → the parts of an Action, the way the API server's
 * own RequestInfoFactory reads them for authorization:
 *
 *   /api/v1/namespaces/{ns}/{resource}/{name}/{subresource}
 *   /apis/{group}/{version}/namespaces/{ns}/{resource}/{name}/{subresource}
 *   /api/v1/{clusterResource}/{name}/{subresource}
 *
 * GET/HEAD → get (list without a name, watch with ?watch=true or the
 * deprecated /watch/ prefix), POST → create, PUT → update, PATCH → patch,
 * DELETE → delete (deletecollection without a name). Everything else (/version,
 * /healthz, /openapi/v2, discovery documents like /api and /apis/apps/v1) is a
 * non-resource request. Pure.
 */
import type { Action, ExecTarget } from '@chaperone/shared';

export interface RequestInfo {
  readonly isResourceRequest: boolean;
  readonly verb: string;
  readonly apiGroup: string;
  readonly apiVersion: string;
  readonly namespace?: string;
  readonly resource?: string;
  readonly subresource?: string;
  readonly name?: string;
  /** Set for non-resource requests. */
  readonly path?: string;
  /** exec / attach / portforward details, from the query. */
  readonly exec?: ExecTarget;
}

/** Subresources of a namespace object itself (`/api/v1/namespaces/{name}/status`). */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);
const CONNECT_SUBRESOURCES = new Set(['exec', 'attach', 'portforward']);

function truthy(v: string | null): boolean {
  return v === 'true' || v === '1';
}

function methodVerb(method: string): string {
  switch (method) {
    case 'GET':
    case 'HEAD':
      return 'get';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return 'delete';
    default:
      return method.toLowerCase();
  }
}

function nonResource(method: string, path: string): RequestInfo {
  return { isResourceRequest: false, verb: methodVerb(method), apiGroup: '', apiVersion: '', path };
}

function safeDecode(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** `fieldSelector=metadata.name=foo` names one object, as the API server's authorizer sees it. */
function nameFromFieldSelector(selector: string | null): string | undefined {
  if (!selector) return undefined;
  for (const term of selector.split(',')) {
    const m = /^metadata\.name(==?)(.*)$/.exec(term.trim());
    if (m) return m[2];
  }
  return undefined;
}

function execTarget(subresource: string, query: URLSearchParams): ExecTarget {
  const kind = subresource as ExecTarget['kind'];
  const container = query.get('container') ?? undefined;
  const base: ExecTarget = {
    kind,
    argv: kind === 'exec' ? query.getAll('command') : [],
    ...(container !== undefined ? { container } : {}),
  };
  if (kind !== 'portforward') return base;
  const ports = query
    .getAll('ports')
    .flatMap((p) => p.split(','))
    .map(Number)
    .filter((n) => Number.isInteger(n));
  return { ...base, ports };
}

export function parseRequestInfo(method: string, rawPath: string, query: URLSearchParams): RequestInfo {
  const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, '') : rawPath;
  const parts = path
    .split('/')
    .filter((p) => p.length > 0)
    .map(safeDecode);
  let rest: string[];
  let apiGroup: string;
  let apiVersion: string;
  if (parts[0] === 'api') {
    if (parts.length < 3) return nonResource(method, path);
    apiGroup = '';
    apiVersion = parts[1] as string;
    rest = parts.slice(2);
  } else if (parts[0] === 'apis') {
    if (parts.length < 4) return nonResource(method, path);
    apiGroup = parts[1] as string;
    apiVersion = parts[2] as string;
    rest = parts.slice(3);
  } else {
    return nonResource(method, path);
  }

  let verb = methodVerb(method);
  if (rest[0] === 'watch') {
    verb = 'watch';
    rest = rest.slice(1);
    if (rest.length === 0) return nonResource(method, path);
  }

  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length > 1) {
    namespace = rest[1];
    if (rest.length > 2 && !NAMESPACE_SUBRESOURCES.has(rest[2] as string)) rest = rest.slice(2);
  }
  const resource = rest[0];
  let name = rest[1];
  const subresource = rest[2];

  if (name === undefined) {
    if (verb === 'get') verb = 'list';
    else if (verb === 'delete') verb = 'deletecollection';
  }
  if ((verb === 'list' || verb === 'get') && truthy(query.get('watch'))) verb = 'watch';
  if (name === undefined && (verb === 'list' || verb === 'watch' || verb === 'deletecollection')) {
    name = nameFromFieldSelector(query.get('fieldSelector'));
  }

  // Built member by member (no spreads): this runs for every request.
  const info: { -readonly [K in keyof RequestInfo]: RequestInfo[K] } = {
    isResourceRequest: true,
    verb,
    apiGroup,
    apiVersion,
  };
  if (namespace !== undefined) info.namespace = namespace;
  if (resource !== undefined) info.resource = resource;
  if (subresource !== undefined) info.subresource = subresource;
  if (name !== undefined) info.name = name;
  if (resource === 'pods' && subresource !== undefined && CONNECT_SUBRESOURCES.has(subresource)) {
    return { ...info, exec: execTarget(subresource, query) };
  }
  return info;
}

/** Impersonation headers, by their canonical names, that are present on a request. */
export function impersonationHeaders(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): string[] {
  const found: string[] = [];
  for (const key of Object.keys(headers)) {
    const k = key.toLowerCase();
    if (
      k === 'impersonate-user' ||
      k === 'impersonate-group' ||
      k === 'impersonate-uid' ||
      k.startsWith('impersonate-extra-')
    ) {
      found.push(key);
    }
  }
  return found;
}

/** The Action the policy decides on. Exec-style sessions are normalised to the `exec` protocol, verb `create`. */
export function toAction(
  info: RequestInfo,
  extra: { user?: string; impersonation?: readonly string[] },
): Action {
  const common = {
    ...(extra.user ? { user: extra.user } : {}),
    ...(extra.impersonation && extra.impersonation.length > 0 ? { impersonation: extra.impersonation } : {}),
  };
  if (!info.isResourceRequest) {
    return { protocol: 'kubernetes', verb: info.verb, nonResourceURL: info.path ?? '/', ...common };
  }
  const base = {
    apiGroup: info.apiGroup,
    apiVersion: info.apiVersion,
    ...(info.namespace !== undefined ? { namespace: info.namespace } : {}),
    ...(info.resource !== undefined ? { resource: info.resource } : {}),
    ...(info.subresource !== undefined ? { subresource: info.subresource } : {}),
    ...(info.name !== undefined ? { name: info.name } : {}),
    ...common,
  };
  if (info.exec) return { protocol: 'exec', verb: 'create', exec: info.exec, ...base };
  return { protocol: 'kubernetes', verb: info.verb, ...base };
}
