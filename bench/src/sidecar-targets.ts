/**
 * What the sidecar benchmark measures against the one real kube-apiserver:
 * fixtures in the cluster (a ConfigMap, ~20 Secrets, a ServiceAccount with a
 * bound token), nginx as a tuned TLS reverse proxy, and the chaperone sidecar
 * configured as in a pod (policy + audit spool on). Every process is started
 * with e2e's startProcess, so it dies with this one.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CHAPERONE_BIN,
  type ControlPlane,
  ensurePackages,
  freePort,
  freePorts,
  kubectl,
  kubectlJson,
  loopbackListenerFlags,
  type ManagedProcess,
  startProcess,
  waitFor,
} from '@chaperone/e2e';
import { SIDECAR_NODE_OPTIONS, SIDECAR_RUNTIME_ENV, SIDECAR_V8_FLAGS } from '@chaperone/shared';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { childPids, getOnce } from './sidecar-load.ts';

/**
 * What the injected sidecar runs with (NODE_OPTIONS, the image's V8 flags; its environment: startSidecar),
 * plus an experiment's flags (env BENCH_SIDECAR_NODE_FLAGS).
 */
export const SIDECAR_NODE_FLAGS = [
  ...SIDECAR_NODE_OPTIONS.split(/\s+/),
  ...SIDECAR_V8_FLAGS.split(/\s+/),
  ...(process.env.BENCH_SIDECAR_NODE_FLAGS ?? '').split(/\s+/),
].filter(Boolean);

export const NAMESPACE = 'chaperone-bench';
export const CONFIGMAP = 'bench-config';
export const SECRET_COUNT = 20;
export const SA = 'agent';

export const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: bench }
spec:
  defaultAction: allow
  rules:
    - name: mask-secrets
      match: { resources: [secrets], verbs: [get, list, watch] }
      action: mask
    - name: no-namespace-deletes
      match: { verbs: [delete, deletecollection], resources: [namespaces] }
      action: deny
      message: Agents may not delete namespaces.
    - name: no-deployment-deletes
      match: { verbs: [delete, deletecollection], apiGroups: [apps], resources: [deployments] }
      action: deny
      message: Agents may not delete deployments.
`;

/** Installs the Debian packages of the tools the benchmark runs (binary → package) that are missing. */
export function ensureTools(tools: Record<string, string>, log: (line: string) => void): void {
  const missing = Object.entries(tools)
    .filter(([bin]) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status !== 0)
    .map(([, pkg]) => pkg);
  if (missing.length > 0) ensurePackages(missing, 'the sidecar benchmark', log);
}

export interface Fixtures {
  /** A bound ServiceAccount token (cluster-admin) the proxies and direct clients use upstream. */
  readonly token: string;
  readonly getPath: string;
  readonly listPath: string;
  /** Secret values as stored (base64), to check that masking happened. */
  readonly secretValues: readonly string[];
}

export function createFixtures(cp: ControlPlane): Fixtures {
  const kc = cp.kubeconfigPath;
  const run = (args: string[], input?: string) => {
    const r = kubectl(kc, args, input === undefined ? {} : { input });
    if (r.code !== 0 && !/AlreadyExists/.test(r.stderr))
      throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  };
  run(['create', 'namespace', NAMESPACE]);
  run(['create', 'serviceaccount', SA, '-n', NAMESPACE]);
  run([
    'create',
    'clusterrolebinding',
    `${NAMESPACE}-agent-admin`,
    '--clusterrole=cluster-admin',
    `--serviceaccount=${NAMESPACE}:${SA}`,
  ]);
  const secretValues: string[] = [];
  const items: unknown[] = [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: CONFIGMAP, namespace: NAMESPACE, labels: { app: 'bench' } },
      data: {
        'app.properties': 'mode=fast\nreplicas=3\nregion=eu-west-1\n',
        'feature-flags': 'alpha=true,beta=false',
        owner: 'platform-team',
      },
    },
  ];
  for (let i = 0; i < SECRET_COUNT; i++) {
    const data: Record<string, string> = {};
    for (const key of ['username', 'password', 'api-key']) {
      const v = randomBytes(24).toString('base64');
      data[key] = v;
      secretValues.push(v);
    }
    items.push({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: `bench-secret-${String(i).padStart(2, '0')}`,
        namespace: NAMESPACE,
        labels: { app: 'bench' },
      },
      data,
    });
  }
  run(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  const tr = kubectlJson(
    kc,
    ['create', '--raw', `/api/v1/namespaces/${NAMESPACE}/serviceaccounts/${SA}/token`, '-f', '-'],
    JSON.stringify({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 4 * 3600 },
    }),
  ) as { status: { token: string } };
  return {
    token: tr.status.token,
    getPath: `/api/v1/namespaces/${NAMESPACE}/configmaps/${CONFIGMAP}`,
    listPath: `/api/v1/namespaces/${NAMESPACE}/secrets`,
    secretValues,
  };
}

/** A target the load generators talk to. */
export interface Target {
  readonly name: 'direct' | 'nginx' | 'sidecar' | 'passthrough' | 'passthrough-h1' | 'rawproxy';
  readonly origin: string;
  /** The bearer token clients send to it. */
  readonly token: string;
  /** Processes whose CPU is the proxy's (empty for direct). */
  pids(): number[];
  /** The main process (for RSS), if any. */
  readonly pid: number | undefined;
  readonly metricsUrl?: string;
  stop(): Promise<void>;
}

export function directTarget(cp: ControlPlane, fx: Fixtures): Target {
  return {
    name: 'direct',
    origin: cp.server,
    token: fx.token,
    pids: () => [],
    pid: undefined,
    stop: async () => {},
  };
}

async function waitServing(
  origin: string,
  token: string,
  proc: ManagedProcess,
  what: string,
  intervalMs = 100,
): Promise<void> {
  await waitFor(
    async () => {
      const r = await getOnce(origin, '/version', token);
      return r.status === 200;
    },
    { what, timeoutMs: 30_000, intervalMs, process: proc },
  );
}

/** Workspace for nginx (one self-signed serving certificate, made once). */
export interface NginxBase {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
  readonly upstreamCa: string;
}

export function nginxBase(root: string, cp: ControlPlane): NginxBase {
  const dir = join(root, 'nginx');
  mkdirSync(dir, { recursive: true });
  const ca = createCA({ commonName: 'bench nginx CA' });
  const leaf = issueCertificate({
    ca,
    commonName: 'localhost',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  const base = {
    dir,
    cert: join(dir, 'server.crt'),
    key: join(dir, 'server.key'),
    upstreamCa: join(dir, 'upstream-ca.crt'),
  };
  writeFileSync(base.cert, leaf.cert);
  writeFileSync(base.key, leaf.key, { mode: 0o600 });
  writeFileSync(base.upstreamCa, cp.caCert);
  return base;
}

export async function startNginx(base: NginxBase, cp: ControlPlane, fx: Fixtures): Promise<Target> {
  const port = await freePort();
  const run = mkdtempSync(join(base.dir, 'run-'));
  const upstream = new URL(cp.server);
  const conf = join(run, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process on;
worker_processes 1;
user root;
pid ${run}/nginx.pid;
error_log ${run}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${run}/client_body;
  proxy_temp_path ${run}/proxy;
  fastcgi_temp_path ${run}/fastcgi;
  uwsgi_temp_path ${run}/uwsgi;
  scgi_temp_path ${run}/scgi;
  upstream kube {
    server ${upstream.host};
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${base.cert};
    ssl_certificate_key ${base.key};
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    location / {
      proxy_pass https://kube;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer ${fx.token}";
      proxy_ssl_trusted_certificate ${base.upstreamCa};
      proxy_ssl_verify on;
      proxy_ssl_name kubernetes;
      proxy_ssl_session_reuse on;
      proxy_read_timeout 60s;
    }
  }
}
`,
  );
  const proc = startProcess({
    name: 'nginx',
    command: 'nginx',
    args: ['-c', conf, '-p', run, '-e', join(run, 'error.log')],
    logFile: join(run, 'stdout.log'),
  });
  const origin = `https://127.0.0.1:${port}`;
  try {
    await waitServing(origin, 'unused', proc, `nginx to proxy ${origin}`);
  } catch (err) {
    await proc.stop(2000);
    throw err;
  }
  return {
    name: 'nginx',
    origin,
    token: fx.token,
    pid: proc.pid,
    pids: () => [proc.pid, ...childPids(proc.pid)],
    stop: async () => {
      await proc.stop(5000);
    },
  };
}

/** Files a sidecar needs that do not change between runs (credentials, CA, policy, local TLS). */
export interface SidecarBase {
  readonly dir: string;
  readonly tokenFile: string;
  readonly caFile: string;
  readonly policyFile: string;
  readonly tlsDir: string;
  readonly agentSaDir: string;
}

export function sidecarBase(root: string, cp: ControlPlane, fx: Fixtures): SidecarBase {
  const dir = join(root, 'sidecar');
  mkdirSync(join(dir, 'creds'), { recursive: true });
  mkdirSync(join(dir, 'policy'), { recursive: true });
  const base = {
    dir,
    tokenFile: join(dir, 'creds', 'token'),
    caFile: join(dir, 'creds', 'ca.crt'),
    policyFile: join(dir, 'policy', 'policy.yaml'),
    tlsDir: join(dir, 'tls'),
    agentSaDir: join(dir, 'agent-sa'),
  };
  writeFileSync(base.tokenFile, fx.token, { mode: 0o600 });
  writeFileSync(base.caFile, cp.caCert);
  writeFileSync(base.policyFile, POLICY);
  return base;
}

export interface SidecarStartOptions {
  /** Extra node flags, e.g. --cpu-prof. */
  readonly nodeFlags?: readonly string[];
  /** Extra sidecar arguments, e.g. --databases. */
  readonly args?: readonly string[];
  /** How often to ask whether it serves yet (start-up timing wants a short interval; default 100 ms). */
  readonly readyPollMs?: number;
  /** Extra environment variables, e.g. MALLOC_ARENA_MAX. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Also ask, this often from the spawn on, what the injected pod's startup probe asks (GET /healthz
   * on the metrics port, injector/src/inject/sidecar-container.ts), and note when it first passes.
   */
  readonly probePollMs?: number;
  /** Another build's entry (dist/chaperone.mjs) instead of the current sources' bundle: a code change against its base, in the same rounds. */
  readonly entry?: string;
}

const GiB = 1024 ** 3;

const BUILD = fileURLToPath(new URL('../../scripts/build.ts', import.meta.url));
let bundle: string | undefined;

/**
 * What production runs: the bundle (plain JavaScript, no type stripping), built
 * from the current sources once per benchmark process, into a temp dir (the
 * checkout's dist/ is left alone) removed when the process exits. CPU profiles are read
 * per source file, so a --cpu-prof run (and BENCH_SIDECAR_SOURCES=1) runs the
 * sources instead.
 */
export function sidecarEntry(nodeFlags: readonly string[]): string {
  if (process.env.BENCH_SIDECAR_SOURCES === '1' || nodeFlags.includes('--cpu-prof')) return CHAPERONE_BIN;
  if (!bundle) {
    const dir = mkdtempSync(join(tmpdir(), 'chaperone-bench-bundle-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const r = spawnSync(process.execPath, [BUILD, '--outdir', dir], { encoding: 'utf8' });
    if (r.status !== 0)
      throw new Error(
        `building the sidecar bundle (node scripts/build.ts) failed; is esbuild installed (pnpm install)?\n${r.stderr}`,
      );
    bundle = join(dir, 'chaperone.mjs');
  }
  return bundle;
}

export async function startSidecar(
  base: SidecarBase,
  cp: ControlPlane,
  opts: SidecarStartOptions = {},
): Promise<
  Target & {
    readonly spoolDir: string;
    readonly runDir: string;
    /** performance.now() when the startup probe first passed (with probePollMs). */
    readonly probePassedAt: number | undefined;
  }
> {
  const [kubePort, metricsPort] = (await freePorts(2)) as [number, number];
  const run = mkdtempSync(join(base.dir, 'run-'));
  const spoolDir = join(run, 'spool');
  const args = [
    ...(opts.nodeFlags ?? []),
    opts.entry ?? sidecarEntry(opts.nodeFlags ?? []),
    'sidecar',
    '--pod-name',
    'agent-0',
    '--pod-namespace',
    NAMESPACE,
    '--pod-uid',
    'uid-agent-0',
    '--service-account',
    SA,
    '--api-server',
    cp.server,
    '--token-file',
    base.tokenFile,
    '--ca-file',
    base.caFile,
    '--agent-sa-dir',
    base.agentSaDir,
    '--tls-dir',
    base.tlsDir,
    '--spool-dir',
    spoolDir,
    '--spool-max-bytes',
    String(2 * GiB),
    '--policy-file',
    base.policyFile,
    ...loopbackListenerFlags(kubePort, metricsPort),
    ...(opts.args ?? []),
  ];
  const proc = startProcess({
    name: 'chaperone sidecar',
    command: process.execPath,
    args,
    logFile: join(run, 'sidecar.log'),
    // The environment the injected container gives it (MALLOC_ARENA_MAX), then an experiment's.
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      ...SIDECAR_RUNTIME_ENV,
      ...opts.env,
    },
    // Anything node writes to its working directory (V8 logs with --perf-basic-prof, reports) stays in the temp dir.
    cwd: run,
  });
  const origin = `https://127.0.0.1:${kubePort}`;
  let probePassedAt: number | undefined;
  let probing = opts.probePollMs !== undefined;
  const probe = (async () => {
    while (probing) {
      if (await healthz(metricsPort)) {
        probePassedAt = performance.now();
        return;
      }
      await new Promise((r) => setTimeout(r, opts.probePollMs));
    }
  })();
  try {
    await waitServing(origin, 'placeholder', proc, `the sidecar to serve ${origin}`, opts.readyPollMs);
    // The probe passes when the metrics port listens, which comes last in the sidecar's start.
    await Promise.race([probe, new Promise((r) => setTimeout(r, 10_000))]);
  } catch (err) {
    await proc.stop(2000);
    throw err;
  } finally {
    probing = false;
  }
  return {
    probePassedAt,
    name: 'sidecar',
    origin,
    token: 'placeholder-token-the-agent-holds',
    pid: proc.pid,
    pids: () => [proc.pid],
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    spoolDir,
    runDir: run,
    stop: async () => {
      await proc.stop(10_000);
      rmSync(spoolDir, { recursive: true, force: true });
    },
  };
}

/** Whether GET /healthz on a local port answers 200 (within 1 s, as the injected probes' timeout). */
function healthz(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/healthz', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** A fresh temp root for one benchmark run. */
export function benchRoot(): string {
  return mkdtempSync(join(tmpdir(), 'chaperone-bench-sidecar-'));
}

const PASSTHROUGH = fileURLToPath(new URL('./sidecar-passthrough.ts', import.meta.url));
const RAWPROXY = fileURLToPath(new URL('./sidecar-rawproxy.ts', import.meta.url));

/** Diagnostic: a minimal node:https + undici pass-through (no policy, no audit), on nginx's certificate. */
export async function startPassthrough(
  base: NginxBase,
  cp: ControlPlane,
  fx: Fixtures,
  protocol: 'h1' | 'h2' | 'raw' = 'h2',
  nodeFlags: readonly string[] = [],
  /** The raw pass-through's script as plain JavaScript (memory figures without Node's type stripping). */
  rawEntry: string = RAWPROXY,
): Promise<Target> {
  const port = await freePort();
  const run = mkdtempSync(join(base.dir, 'passthrough-'));
  const proc = startProcess({
    name: 'node pass-through',
    command: process.execPath,
    args: [
      ...nodeFlags,
      ...(protocol === 'raw'
        ? [rawEntry, String(port), base.cert, base.key, cp.server, base.upstreamCa, fx.token]
        : [PASSTHROUGH, String(port), base.cert, base.key, cp.server, base.upstreamCa, fx.token, protocol]),
    ],
    logFile: join(run, 'passthrough.log'),
    // Anything node writes to its working directory (V8 logs with --perf-basic-prof) stays in the temp dir.
    cwd: run,
  });
  const origin = `https://127.0.0.1:${port}`;
  try {
    await waitServing(origin, 'unused', proc, `the pass-through to serve ${origin}`);
  } catch (err) {
    await proc.stop(2000);
    throw err;
  }
  return {
    name: protocol === 'raw' ? 'rawproxy' : protocol === 'h1' ? 'passthrough-h1' : 'passthrough',
    origin,
    token: fx.token,
    pid: proc.pid,
    pids: () => [proc.pid],
    stop: async () => {
      await proc.stop(5000);
    },
  };
}
