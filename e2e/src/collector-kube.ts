/**
 * Pods and bound service-account tokens for the collector's end-to-end
 * tests: a Pod (Pending: there is no kubelet, which is all a bound token
 * needs) and a TokenRequest bound to it, exactly what the kubelet would
 * project into the sidecar.
 *
 * The collector accepts only pods Chaperone injected in opted-in namespaces,
 * so by default the pod carries `chaperone.dev/injected=true` (as the
 * injector labels it) and its namespace is labelled
 * `chaperone.dev/inject=enabled` — after the pod exists, so no admission
 * webhook of a concurrently running test sees it (theirs also require their
 * own revision label).
 */
import { DependencyError } from '@chaperone/shared';
import { SERVICE_ACCOUNT_ISSUER } from './control-plane.ts';
import { kubeInfo } from './environment.ts';
import { kubectl, kubectlJson } from './kubectl.ts';

export interface AgentPod {
  readonly namespace: string;
  readonly pod: string;
  readonly uid: string;
  readonly serviceAccount: string;
}

/** The issuer the collector verifies bound tokens against (the control plane's, or the in-cluster default). */
export function tokenIssuer(): string {
  return kubeInfo().serviceAccountIssuer ?? SERVICE_ACCOUNT_ISSUER;
}

/** Flags of a collector that admits this cluster's sidecars: its data, the API server, the bound tokens' issuer. */
export function clusterCollectorArgs(dataDir: string): string[] {
  return ['--data-dir', dataDir, '--kubeconfig', kubeInfo().kubeconfigPath, '--token-issuer', tokenIssuer()];
}

export interface AgentPodOptions {
  /** Label the pod chaperone.dev/injected=true (default true). */
  readonly injected?: boolean;
  /** Label the namespace chaperone.dev/inject=enabled (default true). */
  readonly optIn?: boolean;
}

export function createAgentPod(
  namespace: string,
  name: string,
  serviceAccount?: string,
  opts: AgentPodOptions = {},
): AgentPod {
  const kube = kubeInfo();
  const manifest = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      labels: { app: 'agent', ...(opts.injected === false ? {} : { 'chaperone.dev/injected': 'true' }) },
    },
    spec: {
      ...(serviceAccount ? { serviceAccountName: serviceAccount } : {}),
      containers: [{ name: 'agent', image: 'busybox:1.36', command: ['sleep', '3600'] }],
    },
  };
  const pod = kubectlJson(
    kube.kubeconfigPath,
    ['create', '-f', '-', '-o', 'json'],
    JSON.stringify(manifest),
  ) as {
    metadata: { uid: string; name: string };
    spec: { serviceAccountName?: string };
  };
  if (opts.optIn !== false) {
    const r = kubectl(kube.kubeconfigPath, [
      'label',
      'namespace',
      namespace,
      'chaperone.dev/inject=enabled',
      '--overwrite',
    ]);
    if (r.code !== 0) throw new DependencyError(`labelling namespace ${namespace} failed: ${r.stderr}`);
  }
  return {
    namespace,
    pod: name,
    uid: pod.metadata.uid,
    serviceAccount: pod.spec.serviceAccountName ?? 'default',
  };
}

/** A TokenRequest for the pod's service account, bound to the pod. */
export function boundToken(p: AgentPod, audience = 'chaperone-collector', expirationSeconds = 3600): string {
  const kube = kubeInfo();
  const request = {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: {
      audiences: [audience],
      expirationSeconds,
      boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: p.pod, uid: p.uid },
    },
  };
  const tr = kubectlJson(
    kube.kubeconfigPath,
    [
      'create',
      '--raw',
      `/api/v1/namespaces/${p.namespace}/serviceaccounts/${p.serviceAccount}/token`,
      '-f',
      '-',
    ],
    JSON.stringify(request),
  ) as { status?: { token?: string } };
  if (!tr.status?.token) throw new DependencyError('the TokenRequest returned no token');
  return tr.status.token;
}

export function deletePod(p: AgentPod): void {
  const kube = kubeInfo();
  const r = kubectl(kube.kubeconfigPath, [
    'delete',
    'pod',
    p.pod,
    '-n',
    p.namespace,
    '--wait=true',
    '--grace-period=0',
    '--force',
  ]);
  if (r.code !== 0) throw new DependencyError(`deleting pod ${p.pod} failed: ${r.stderr}`);
}
