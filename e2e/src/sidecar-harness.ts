/**
 * Runs a real `chaperone sidecar` process for a test, the way the injector
 * would configure it in a pod (there is no kubelet here, so the test plays its
 * part): a ServiceAccount with a bound token from the real API server, the
 * cluster CA, a policy file, a spool and an agent service-account directory
 * laid out at the standard path under a temp root.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DependencyError, SIDECAR_V8_FLAGS } from '@chaperone/shared';
import { Agent, request } from 'undici';
import { type KubeInfo, kubeInfo } from './environment.ts';
import { kubectl, kubectlJson } from './kubectl.ts';
import { freePorts } from './ports.ts';
import { type ManagedProcess, startProcess, waitFor } from './process.ts';
import { loopbackListenerFlags, writeAgentKubeconfig } from './sidecar-local.ts';

const BIN = fileURLToPath(new URL('../../bin/chaperone.ts', import.meta.url));

/** A policy that allows everything: what is under test is what only the built-in rules stop. */
export const ALLOW_ALL = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: allow-everything }
spec:
  defaultAction: allow
  rules:
    - { name: everything, match: {}, action: allow }
`;
export const SA_PATH = 'var/run/secrets/kubernetes.io/serviceaccount';

export interface SidecarUnderTest {
  readonly namespace: string;
  readonly pod: string;
  readonly serviceAccount: string;
  readonly dir: string;
  readonly kubePort: number;
  readonly metricsUrl: string;
  readonly url: string;
  /** Root under which `var/run/secrets/kubernetes.io/serviceaccount` holds what the agent sees. */
  readonly agentRoot: string;
  /** PEM of the sidecar's local CA (the agent's ca.crt). */
  readonly agentCa: string;
  /** The placeholder token agents hold. */
  readonly agentToken: string;
  /** A kubeconfig an agent would use: the sidecar, its local CA, the placeholder token. */
  readonly agentKubeconfig: string;
  readonly spoolDir: string;
  readonly policyFile: string;
  readonly logFile: string;
  readonly process: ManagedProcess;
  /** The real bound token the sidecar holds (tests check it never leaks). */
  readonly realToken: string;
  stop(): Promise<void>;
}

export interface StartSidecarOptions {
  namespace: string;
  policy: string;
  pod?: string;
  /** Bind cluster-admin to the agent's ServiceAccount (agents are usually over-privileged: that is the point). */
  clusterAdmin?: boolean;
  extraArgs?: readonly string[];
  extraEnv?: Record<string, string>;
  /** The chaperone entry to run (default: the sources' bin/chaperone.ts; the bundle's test passes dist's). */
  entry?: string;
}

function requestToken(kube: KubeInfo, namespace: string, sa: string): string {
  const req = {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds: 3600 },
  };
  const tr = kubectlJson(
    kube.kubeconfigPath,
    ['create', '--raw', `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}/token`, '-f', '-'],
    JSON.stringify(req),
  ) as { status: { token: string } };
  return tr.status.token;
}

/**
 * One HTTPS request through the sidecar as the agent (its placeholder token), on `dispatcher` (one
 * that trusts sc.agentCa); a body that is not a string is sent as JSON.
 */
export async function requestAsAgent(
  sc: SidecarUnderTest,
  dispatcher: Agent,
  method: string,
  path: string,
  body?: unknown,
  type = 'application/json',
): Promise<{ status: number; text: string }> {
  const r = await request(`${sc.url}${path}`, {
    method: method as 'GET',
    dispatcher,
    headers: {
      authorization: `Bearer ${sc.agentToken}`,
      accept: 'application/json',
      ...(body !== undefined ? { 'content-type': type } : {}),
    },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  return { status: r.statusCode, text: await r.body.text() };
}

export async function startSidecar(opts: StartSidecarOptions): Promise<SidecarUnderTest> {
  const kube = kubeInfo();
  const pod = opts.pod ?? 'agent-0';
  const sa = 'agent';
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-sidecar-'));
  const cleanupRbac: string[] = [];
  const run = (args: string[]) => {
    const r = kubectl(kube.kubeconfigPath, args);
    if (r.code !== 0 && !/AlreadyExists|already exists/.test(r.stderr))
      throw new DependencyError(`kubectl ${args.join(' ')}: ${r.stderr}`);
  };
  run(['create', 'serviceaccount', sa, '-n', opts.namespace]);
  if (opts.clusterAdmin !== false) {
    const binding = `${opts.namespace}-agent-admin`;
    run([
      'create',
      'clusterrolebinding',
      binding,
      '--clusterrole=cluster-admin',
      `--serviceaccount=${opts.namespace}:${sa}`,
    ]);
    cleanupRbac.push(binding);
  }
  const realToken = requestToken(kube, opts.namespace, sa);
  const creds = join(dir, 'serviceaccount');
  mkdirSync(creds);
  writeFileSync(join(creds, 'token'), realToken, { mode: 0o600 });
  writeFileSync(join(creds, 'ca.crt'), kube.caCert);
  const policyFile = join(dir, 'policy', 'policy.yaml');
  mkdirSync(join(dir, 'policy'));
  writeFileSync(policyFile, opts.policy);
  const agentRoot = join(dir, 'agent-root');
  const agentSaDir = join(agentRoot, SA_PATH);
  const spoolDir = join(dir, 'spool');
  const [kubePort, metricsPort] = (await freePorts(2)) as [number, number];
  const logFile = join(dir, 'sidecar.log');
  const args = [
    // As the image runs it (its V8 flags; the tests do not set its NODE_OPTIONS, which only size memory).
    ...SIDECAR_V8_FLAGS.split(/\s+/),
    opts.entry ?? BIN,
    'sidecar',
    '--pod-name',
    pod,
    '--pod-namespace',
    opts.namespace,
    '--pod-uid',
    `uid-${pod}-${opts.namespace}`,
    '--service-account',
    sa,
    '--api-server',
    kube.server,
    '--token-file',
    join(creds, 'token'),
    '--ca-file',
    join(creds, 'ca.crt'),
    '--agent-sa-dir',
    agentSaDir,
    '--tls-dir',
    join(dir, 'tls'),
    '--spool-dir',
    spoolDir,
    '--policy-file',
    policyFile,
    '--policy-poll-interval',
    '200ms',
    ...loopbackListenerFlags(kubePort, metricsPort),
    '--log-level',
    'debug',
    ...(opts.extraArgs ?? []),
  ];
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    ...(opts.extraEnv ?? {}),
  };
  const proc = startProcess({ name: 'chaperone sidecar', command: process.execPath, args, logFile, env });
  const url = `https://127.0.0.1:${kubePort}`;
  const stop = async () => {
    const crashed = !proc.running();
    await proc.stop(5000);
    if (crashed)
      process.stderr.write(
        `the sidecar exited before the test stopped it; its log ends:\n${proc.logTail(40)}\n`,
      );
    for (const b of cleanupRbac)
      kubectl(kube.kubeconfigPath, ['delete', 'clusterrolebinding', b, '--ignore-not-found']);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const agentCa = await waitFor(
      async () => {
        const ca = readFileSync(join(agentSaDir, 'ca.crt'), 'utf8');
        const dispatcher = new Agent({ connect: { ca } });
        try {
          const r = await request(`${url}/version`, { dispatcher });
          await r.body.dump();
          return r.statusCode === 200 ? ca : undefined;
        } finally {
          await dispatcher.close();
        }
      },
      { what: `the sidecar to serve ${url}`, timeoutMs: 20_000, intervalMs: 100, process: proc },
    );
    const agentToken = readFileSync(join(agentSaDir, 'token'), 'utf8');
    const agentKubeconfig = join(dir, 'agent.kubeconfig');
    writeAgentKubeconfig(agentKubeconfig, url, agentSaDir, opts.namespace);
    return {
      namespace: opts.namespace,
      pod,
      serviceAccount: sa,
      dir,
      kubePort,
      metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
      url,
      agentRoot,
      agentCa,
      agentToken,
      agentKubeconfig,
      spoolDir,
      policyFile,
      logFile,
      process: proc,
      realToken,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
