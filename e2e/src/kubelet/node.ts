/**
 * The API-side half of standing in for a kubelet: a Node object whose status
 * points the API server at the stand-in (InternalIP 127.0.0.1 and
 * `daemonEndpoints.kubeletEndpoint.Port`), pods bound to it with
 * `spec.nodeName` (there is no scheduler), and the pod status a kubelet would
 * post once the containers run (kubectl port-forward refuses pods that are not
 * Running). Everything goes through the real kubectl with the admin kubeconfig.
 */
import { DependencyError } from '@chaperone/shared';
import { uniqueName } from '../environment.ts';
import { kubectl } from '../kubectl.ts';
import { waitFor } from '../process.ts';

export interface StandinNode {
  readonly name: string;
  /** Deletes the Node (without waiting). */
  delete(): void;
}

function must(kubeconfig: string, args: string[], input?: string): string {
  const r = kubectl(kubeconfig, args, input === undefined ? {} : { input });
  if (r.code !== 0)
    throw new DependencyError(`kubectl ${args.slice(0, 4).join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Creates a Node whose kubelet endpoint is 127.0.0.1:`port`, Ready. */
export function registerNode(kubeconfig: string, opts: { port: number; name?: string }): StandinNode {
  const name = opts.name ?? uniqueName('standin-node');
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, 'chaperone.dev/e2e': 'true' } },
  };
  must(kubeconfig, ['create', '-f', '-'], JSON.stringify(node));
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const status = {
    status: {
      addresses: [
        { type: 'InternalIP', address: '127.0.0.1' },
        { type: 'Hostname', address: name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: opts.port } },
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'KubeletReady',
          message: 'a stand-in kubelet (test double) serves this node',
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        },
      ],
      nodeInfo: {
        kubeletVersion: 'v1.20.2',
        operatingSystem: 'linux',
        architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
      },
    },
  };
  try {
    must(kubeconfig, [
      'patch',
      'node',
      name,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify(status),
    ]);
  } catch (err) {
    kubectl(kubeconfig, ['delete', 'node', name, '--wait=false', '--ignore-not-found']);
    throw err;
  }
  return {
    name,
    delete: () => {
      kubectl(kubeconfig, ['delete', 'node', name, '--wait=false', '--ignore-not-found']);
    },
  };
}

export interface PodContainer {
  readonly name: string;
  readonly image?: string;
  readonly stdin?: boolean;
  readonly stdinOnce?: boolean;
  readonly tty?: boolean;
  readonly command?: readonly string[];
  /** As in a pod spec (values taken from Secrets, say). */
  readonly env?: readonly object[];
  readonly envFrom?: readonly object[];
}

export interface BoundPodOptions {
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly containers: readonly PodContainer[];
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  /** Post the Running status a kubelet would (default true). */
  readonly running?: boolean;
  /** Let the ServiceAccount admission plugin mount the service account's token, as it does by default (default false). */
  readonly token?: boolean;
}

/**
 * Creates a pod bound to `node` and, unless told otherwise, marks it Running.
 * Waits first for the namespace's default ServiceAccount (the ServiceAccount
 * admission plugin refuses pods until the controller-manager has made it).
 * Returns the stored pod.
 */
export async function createBoundPod(
  kubeconfig: string,
  opts: BoundPodOptions,
): Promise<Record<string, unknown>> {
  await waitFor(
    async () => kubectl(kubeconfig, ['get', 'serviceaccount', 'default', '-n', opts.namespace]).code === 0,
    { what: `the default ServiceAccount in ${opts.namespace}`, timeoutMs: 30_000, intervalMs: 200 },
  );
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: opts.name,
      namespace: opts.namespace,
      labels: opts.labels ?? {},
      annotations: opts.annotations ?? {},
    },
    spec: {
      nodeName: opts.node,
      automountServiceAccountToken: opts.token ?? false,
      containers: opts.containers.map((c) => ({
        name: c.name,
        image: c.image ?? 'registry.invalid/standin:never-pulled',
        ...(c.command ? { command: c.command } : {}),
        ...(c.env ? { env: c.env } : {}),
        ...(c.envFrom ? { envFrom: c.envFrom } : {}),
        ...(c.stdin ? { stdin: true } : {}),
        ...(c.stdinOnce ? { stdinOnce: true } : {}),
        ...(c.tty ? { tty: true } : {}),
      })),
    },
  };
  must(kubeconfig, ['create', '-f', '-'], JSON.stringify(pod));
  if (opts.running ?? true) markPodRunning(kubeconfig, opts.namespace, opts.name, opts.containers);
  return JSON.parse(
    must(kubeconfig, ['get', 'pod', opts.name, '-n', opts.namespace, '-o', 'json']),
  ) as Record<string, unknown>;
}

/** Posts the status a kubelet posts once every container runs. */
export function markPodRunning(
  kubeconfig: string,
  namespace: string,
  name: string,
  containers: readonly PodContainer[],
): void {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const condition = (type: string) => ({ type, status: 'True', lastTransitionTime: now });
  const status = {
    status: {
      phase: 'Running',
      hostIP: '127.0.0.1',
      podIP: '127.0.0.1',
      podIPs: [{ ip: '127.0.0.1' }],
      startTime: now,
      conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map(condition),
      containerStatuses: containers.map((c) => ({
        name: c.name,
        ready: true,
        started: true,
        restartCount: 0,
        image: c.image ?? 'registry.invalid/standin:never-pulled',
        imageID: '',
        containerID: `standin://${namespace}/${name}/${c.name}`,
        state: { running: { startedAt: now } },
      })),
    },
  };
  must(kubeconfig, [
    'patch',
    'pod',
    name,
    '-n',
    namespace,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify(status),
  ]);
}
