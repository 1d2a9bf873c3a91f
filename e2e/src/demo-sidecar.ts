/**
 * Runs an injected pod's sidecar as a local process, with exactly the
 * configuration the injection produced: the sidecar container's command and
 * environment from the pod as the API server stored it (downward-API values
 * resolved from the pod), and its volumes laid out in a local directory the
 * way the kubelet would (there is no kubelet here): a pod-bound token from the
 * real API server, the cluster CA, the policy ConfigMap, the collector's CA
 * ConfigMap (when mounted), declared databases' Secrets, the agent view, the spool. Only the paths and ports are mapped to local ones.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DependencyError } from '@chaperone/shared';
import { kubectlJson } from './kubectl.ts';
import { freePorts } from './ports.ts';
import { type ManagedProcess, startProcess, waitFor } from './process.ts';
import { loopbackListenerFlags, writeAgentKubeconfig } from './sidecar-local.ts';

const BIN = fileURLToPath(new URL('../../bin/chaperone.ts', import.meta.url));

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Container {
  name: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: { name: string; mountPath: string }[];
}
export interface StoredPod {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: {
    serviceAccountName?: string;
    automountServiceAccountToken?: boolean;
    containers: Container[];
    initContainers?: Container[];
    volumes?: {
      name: string;
      projected?: unknown;
      secret?: unknown;
      emptyDir?: unknown;
      configMap?: unknown;
    }[];
  };
}

export const SIDECAR_CONTAINER = 'chaperone-sidecar';

export function sidecarContainer(pod: StoredPod): Container {
  const c = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find(
    (x) => x.name === SIDECAR_CONTAINER,
  );
  if (!c)
    throw new DependencyError(
      `pod ${pod.metadata.name} has no ${SIDECAR_CONTAINER} container: it was not injected`,
    );
  return c;
}

/** The sidecar's environment with downward-API references resolved against the stored pod. */
export function resolvedEnv(pod: StoredPod, c: Container): Record<string, string> {
  const fields: Record<string, string> = {
    'metadata.name': pod.metadata.name,
    'metadata.namespace': pod.metadata.namespace,
    'metadata.uid': pod.metadata.uid,
    'spec.serviceAccountName': pod.spec.serviceAccountName ?? 'default',
  };
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef) {
      const v = fields[e.valueFrom.fieldRef.fieldPath];
      if (v === undefined)
        throw new DependencyError(`cannot resolve ${e.valueFrom.fieldRef.fieldPath} for ${e.name}`);
      env[e.name] = v;
    }
  }
  return env;
}

function boundToken(kubeconfig: string, pod: StoredPod, audience?: string): string {
  const sa = pod.spec.serviceAccountName ?? 'default';
  const req = {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: {
      ...(audience ? { audiences: [audience] } : {}),
      expirationSeconds: 3600,
      boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid },
    },
  };
  const tr = kubectlJson(
    kubeconfig,
    [
      'create',
      '--raw',
      `/api/v1/namespaces/${pod.metadata.namespace}/serviceaccounts/${sa}/token`,
      '-f',
      '-',
    ],
    JSON.stringify(req),
  ) as { status: { token: string } };
  return tr.status.token;
}

export interface LocalSidecar {
  readonly url: string;
  readonly kubePort: number;
  readonly metricsUrl: string;
  readonly agentSaDir: string;
  readonly agentKubeconfig: string;
  /** Each declared database's local listener port (the pod's port mapped). */
  readonly databasePorts: Readonly<Record<string, number>>;
  readonly command: string[];
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

export async function runPodSidecar(opts: {
  kubeconfig: string;
  server: string;
  pod: StoredPod;
  dir: string;
}): Promise<LocalSidecar> {
  const { pod, dir } = opts;
  const c = sidecarContainer(pod);
  const env = resolvedEnv(pod, c);
  const ns = pod.metadata.namespace;
  // The volumes, as the kubelet would fill them.
  const creds = join(dir, 'serviceaccount');
  mkdirSync(creds, { recursive: true });
  writeFileSync(join(creds, 'token'), boundToken(opts.kubeconfig, pod), { mode: 0o600 });
  writeFileSync(join(creds, 'collector-token'), boundToken(opts.kubeconfig, pod, 'chaperone-collector'), {
    mode: 0o600,
  });
  const rootCa = kubectlJson(opts.kubeconfig, [
    'get',
    'configmap',
    'kube-root-ca.crt',
    '-n',
    ns,
    '-o',
    'json',
  ]) as {
    data: { 'ca.crt': string };
  };
  writeFileSync(join(creds, 'ca.crt'), rootCa.data['ca.crt']);
  writeFileSync(join(creds, 'namespace'), ns);
  const policyDir = join(dir, 'policy');
  mkdirSync(policyDir, { recursive: true });
  const policyCm = kubectlJson(opts.kubeconfig, [
    'get',
    'configmap',
    'chaperone-policy',
    '-n',
    ns,
    '-o',
    'json',
  ]) as {
    data?: Record<string, string>;
  };
  for (const [k, v] of Object.entries(policyCm.data ?? {})) writeFileSync(join(policyDir, k), v);
  // The collector's CA, when the injection mounts one: the ConfigMap behind the volume the
  // path is on, its keys as files.
  const collectorCa: string[] = [];
  const caFile = env.CHAPERONE_COLLECTOR_CA_FILE;
  if (caFile) {
    const mount = c.volumeMounts?.find((m) => caFile.startsWith(`${m.mountPath}/`));
    const volume = pod.spec.volumes?.find((v) => v.name === mount?.name);
    const cmName = (volume?.configMap as { name?: string } | undefined)?.name;
    if (!mount || !cmName)
      throw new DependencyError(
        `${caFile} (CHAPERONE_COLLECTOR_CA_FILE) is on no ConfigMap volume of the sidecar`,
      );
    const cm = kubectlJson(opts.kubeconfig, ['get', 'configmap', cmName, '-n', ns, '-o', 'json']) as {
      data?: Record<string, string>;
    };
    const caDir = join(dir, 'collector-ca');
    mkdirSync(caDir, { recursive: true });
    for (const [k, v] of Object.entries(cm.data ?? {})) writeFileSync(join(caDir, k), v);
    collectorCa.push('--collector-ca-file', join(caDir, caFile.slice(mount.mountPath.length + 1)));
  }
  // Declared databases: each one's Secret volume with its keys as files, its listener on a
  // free local port instead of the pod's.
  const databases: string[] = [];
  const databasePorts: Record<string, number> = {};
  const declared = (env.CHAPERONE_DATABASES ?? '').split(',').filter(Boolean);
  if (declared.length > 0) {
    const dbDir = join(dir, 'databases');
    const ports = await freePorts(declared.length);
    for (const [i, entry] of declared.entries()) {
      const name = entry.split('=')[0] as string;
      const mount = c.volumeMounts?.find((m) => m.mountPath.endsWith(`/${name}`));
      const volume = pod.spec.volumes?.find((v) => v.name === mount?.name);
      const secretName = (volume?.secret as { secretName?: string } | undefined)?.secretName;
      if (!secretName) throw new DependencyError(`database "${name}" has no Secret volume on the sidecar`);
      const secret = kubectlJson(opts.kubeconfig, ['get', 'secret', secretName, '-n', ns, '-o', 'json']) as {
        data?: Record<string, string>;
      };
      mkdirSync(join(dbDir, name), { recursive: true });
      for (const [k, v] of Object.entries(secret.data ?? {}))
        writeFileSync(join(dbDir, name, k), Buffer.from(v, 'base64'), { mode: 0o600 });
      databasePorts[name] = ports[i] as number;
    }
    databases.push(
      '--databases',
      Object.entries(databasePorts)
        .map(([n, p]) => `${n}=${p}`)
        .join(','),
      '--databases-dir',
      dbDir,
    );
  }
  const agentSaDir = join(dir, 'agent-sa');
  const [kubePort, metricsPort] = (await freePorts(2)) as [number, number];
  const command = [...(c.command ?? ['chaperone', 'sidecar']), ...(c.args ?? [])];
  // Paths and ports are the only differences from the pod.
  const local = [
    '--api-server',
    opts.server,
    '--token-file',
    join(creds, 'token'),
    '--ca-file',
    join(creds, 'ca.crt'),
    '--collector-token-file',
    join(creds, 'collector-token'),
    '--agent-sa-dir',
    agentSaDir,
    '--tls-dir',
    join(dir, 'spool', 'tls'),
    '--spool-dir',
    join(dir, 'spool', 'events'),
    '--policy-file',
    join(policyDir, 'policy.yaml'),
    ...collectorCa,
    ...databases,
    ...loopbackListenerFlags(kubePort, metricsPort),
  ];
  if (command[0] !== 'chaperone' || command[1] !== 'sidecar') {
    throw new DependencyError(`unexpected sidecar command ${JSON.stringify(command)}`);
  }
  const proc = startProcess({
    name: 'sidecar',
    command: process.execPath,
    args: [BIN, ...command.slice(1), ...local],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...env },
    logFile: join(dir, 'sidecar.log'),
  });
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  await waitFor(async () => (await fetch(metricsUrl.replace('/metrics', '/healthz'))).ok, {
    what: 'the sidecar to be ready',
    timeoutMs: 30_000,
    intervalMs: 100,
    process: proc,
  });
  const url = `https://127.0.0.1:${kubePort}`;
  const agentKubeconfig = join(dir, 'agent.kubeconfig');
  writeAgentKubeconfig(agentKubeconfig, url, agentSaDir, ns);
  return {
    url,
    kubePort,
    metricsUrl,
    agentSaDir,
    agentKubeconfig,
    databasePorts,
    command,
    process: proc,
    stop: async () => {
      await proc.stop(5000);
    },
  };
}
