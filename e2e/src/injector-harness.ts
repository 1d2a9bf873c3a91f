/**
 * Runs the real `chaperone injector` (the CLI, as a child process) against a
 * control plane for the end-to-end tests, the way it runs in a cluster:
 * under its own ServiceAccount with exactly the RBAC of deploy/base/injector
 * (rendered with kubectl kustomize), self-managed TLS, leader election, the
 * webhook reached by URL on 127.0.0.1.
 *
 * Each instance gets a unique revision, so its webhook configuration selects
 * only namespaces labelled chaperone.dev/revision=<revision>: tests running in
 * parallel (and an injector a test stops on purpose) never affect each other.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DependencyError } from '@chaperone/shared';
import YAML from 'yaml';
import { kubectl, kubectlJson } from './kubectl.ts';
import { freePorts } from './ports.ts';
import { type ManagedProcess, startProcess, waitFor } from './process.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHAPERONE = join(REPO_ROOT, 'bin', 'chaperone.ts');

/** The cluster an injector runs against. */
export interface Cluster {
  readonly kubeconfigPath: string;
  readonly server: string;
  readonly caCert: string;
}

export interface InjectorOptions {
  /** Extra `chaperone injector` flags. */
  readonly args?: readonly string[];
  /** Reuse another instance's identity (second replica: same revision, namespace, ServiceAccount). */
  readonly replicaOf?: Injector;
  /** Run with the admin kubeconfig instead of the deploy/ RBAC. */
  readonly admin?: boolean;
}

export interface Injector {
  readonly revision: string;
  /** The injector's own namespace. */
  readonly namespace: string;
  /** Name of its webhook configuration, Lease and (with -tls) Secret. */
  readonly instance: string;
  readonly port: number;
  readonly metricsPort: number;
  readonly url: string;
  readonly kubeconfig: string;
  readonly cluster: Cluster;
  process: ManagedProcess;
  /** Extra flags it was started with. */
  readonly args: readonly string[];
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** SIGKILL and wait (no clean-up on its side). */
  kill(): Promise<void>;
  /** Starts the process again with the same settings and waits until it listens. */
  restart(): Promise<void>;
  metrics(): Promise<string>;
  /** Value of one sample, e.g. `chaperone_injector_leader` or `…{result="injected"}`. */
  metric(selector: string): Promise<number | undefined>;
  logs(): string;
  /** Stops it and deletes its webhook configuration, RBAC and namespace. */
  cleanup(): Promise<void>;
}

function must(cluster: Cluster, args: readonly string[], input?: string): string {
  const r = kubectl(cluster.kubeconfigPath, args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new DependencyError(`kubectl ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

interface K8sObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  roleRef?: { name: string };
  subjects?: { namespace?: string }[];
  rules?: { resourceNames?: string[] }[];
}

/** deploy/base/injector's ServiceAccount and RBAC, moved to `namespace` and renamed for `instance`. */
export function injectorRbac(namespace: string, instance: string): K8sObject[] {
  const rendered = kubectl('', ['kustomize', join(REPO_ROOT, 'deploy', 'base', 'injector')]);
  if (rendered.code !== 0)
    throw new DependencyError(`kubectl kustomize deploy/base/injector failed: ${rendered.stderr}`);
  const wanted = new Set(['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding']);
  const rename = (n: string) =>
    n === 'chaperone-injector' ? instance : n === 'chaperone-injector-tls' ? `${instance}-tls` : n;
  return YAML.parseAllDocuments(rendered.stdout)
    .map((d) => d.toJS() as K8sObject)
    .filter((o) => wanted.has(o.kind))
    .map((o) => {
      const clusterScoped = o.kind.startsWith('Cluster');
      const out: K8sObject = { ...o, metadata: { ...o.metadata } };
      if (clusterScoped) out.metadata.name = instance;
      else out.metadata.namespace = namespace;
      if (o.kind === 'ClusterRoleBinding' && o.roleRef) out.roleRef = { ...o.roleRef, name: instance };
      if (o.subjects) out.subjects = o.subjects.map((s) => ({ ...s, namespace }));
      if (o.rules) {
        out.rules = o.rules.map((r) =>
          r.resourceNames ? { ...r, resourceNames: r.resourceNames.map(rename) } : r,
        );
      }
      return out;
    });
}

function serviceAccountKubeconfig(cluster: Cluster, namespace: string, dir: string): string {
  const tr = kubectlJson(
    cluster.kubeconfigPath,
    [
      'create',
      '--raw',
      `/api/v1/namespaces/${namespace}/serviceaccounts/chaperone-injector/token`,
      '-f',
      '-',
    ],
    JSON.stringify({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 3600 },
    }),
  ) as { status: { token: string } };
  const path = join(dir, 'injector.kubeconfig');
  writeFileSync(
    path,
    YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'c',
          cluster: {
            server: cluster.server,
            'certificate-authority-data': Buffer.from(cluster.caCert).toString('base64'),
          },
        },
      ],
      users: [{ name: 'injector', user: { token: tr.status.token } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'injector', namespace } }],
      'current-context': 'c',
    }),
    { mode: 0o600 },
  );
  return path;
}

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith('CHAPERONE_') || k.startsWith('KUBERNETES_') || k === 'KUBECONFIG')
      continue;
    env[k] = v;
  }
  return env;
}

/** The API server's host:port as a NetworkPolicy endpoint. */
function apiEndpoint(server: string): string {
  const u = new URL(server);
  return `${u.hostname}/32:${u.port || 443}`;
}

export async function startInjector(cluster: Cluster, opts: InjectorOptions = {}): Promise<Injector> {
  const base = opts.replicaOf;
  const revision = base?.revision ?? `r${randomBytes(4).toString('hex')}`;
  const instance = base?.instance ?? `chaperone-injector-${revision}`;
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-injector-'));
  let namespace: string;
  let kubeconfig: string;
  if (base) {
    namespace = base.namespace;
    kubeconfig = base.kubeconfig;
  } else {
    namespace = `chi-${revision}`;
    must(cluster, ['create', 'namespace', namespace]);
    must(cluster, ['label', 'namespace', namespace, 'chaperone.dev/e2e=true']);
    if (opts.admin) kubeconfig = cluster.kubeconfigPath;
    else {
      must(
        cluster,
        ['apply', '-f', '-'],
        JSON.stringify({ apiVersion: 'v1', kind: 'List', items: injectorRbac(namespace, instance) }),
      );
      kubeconfig = serviceAccountKubeconfig(cluster, namespace, dir);
    }
  }
  const [port, metricsPort] = (await freePorts(2)) as [number, number];
  const url = `https://127.0.0.1:${port}/mutate`;
  const args = [
    CHAPERONE,
    'injector',
    `--kubeconfig=${kubeconfig}`,
    `--namespace=${namespace}`,
    `--revision=${revision}`,
    '--listen-address=127.0.0.1',
    `--port=${port}`,
    '--metrics-address=127.0.0.1',
    `--metrics-port=${metricsPort}`,
    `--webhook-url=${url}`,
    `--api-server-endpoints=${apiEndpoint(cluster.server)}`,
    '--shutdown-delay=0s',
    '--lease-duration=4s',
    '--lease-renew-interval=500ms',
    '--lease-renew-deadline=3s',
    '--log-level=debug',
    ...(opts.args ?? []),
  ];
  let seq = 0;
  const spawn = () =>
    startProcess({
      name: `injector-${revision}`,
      command: process.execPath,
      args,
      env: cleanEnv(),
      logFile: join(dir, `injector-${seq++}.log`),
    });
  const waitListening = async (p: ManagedProcess) => {
    await waitFor(async () => p.logTail(200).includes('"msg":"webhook listening"'), {
      what: `injector ${revision} to listen on ${url}`,
      timeoutMs: 60_000,
      intervalMs: 100,
      process: p,
    });
  };
  const proc = spawn();
  const inj: Injector = {
    revision,
    namespace,
    instance,
    port,
    metricsPort,
    url,
    kubeconfig,
    cluster,
    process: proc,
    args: opts.args ?? [],
    async stop() {
      await inj.process.stop(15_000);
    },
    async kill() {
      if (!inj.process.running()) return;
      process.kill(inj.process.pid, 'SIGKILL');
      await inj.process.exited;
    },
    async restart() {
      inj.process = spawn();
      await waitListening(inj.process);
    },
    metrics() {
      // A fresh connection each time: a kept-alive one may be closed by the server as it is reused.
      return new Promise<string>((resolve, reject) => {
        httpGet({ host: '127.0.0.1', port: metricsPort, path: '/metrics', agent: false }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            text += d;
          });
          res.on('end', () => resolve(text));
          res.on('error', reject);
        }).on('error', reject);
      });
    },
    async metric(selector) {
      const text = await inj.metrics();
      const [name, labels] = selector.includes('{')
        ? [selector.slice(0, selector.indexOf('{')), selector.slice(selector.indexOf('{') + 1, -1).split(',')]
        : [selector, []];
      let sum: number | undefined;
      for (const line of text.split('\n')) {
        if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
        if (!labels.every((l) => line.includes(l))) continue;
        sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return sum;
    },
    logs() {
      return inj.process.logTail(400);
    },
    async cleanup() {
      await inj.stop().catch(() => {});
      if (base) {
        rmSync(dir, { recursive: true, force: true });
        return;
      }
      kubectl(cluster.kubeconfigPath, [
        'delete',
        'mutatingwebhookconfiguration,validatingwebhookconfiguration',
        instance,
        '--ignore-not-found',
      ]);
      kubectl(cluster.kubeconfigPath, [
        'delete',
        'clusterrole,clusterrolebinding',
        instance,
        '--ignore-not-found',
      ]);
      kubectl(cluster.kubeconfigPath, [
        'delete',
        'namespace',
        namespace,
        '--wait=false',
        '--ignore-not-found',
      ]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitListening(proc);
  } catch (err) {
    await inj.cleanup();
    throw err;
  }
  return inj;
}

/** A namespace opted in to `inj` (inject=enabled plus its revision label). */
export function optInNamespace(cluster: Cluster, inj: Injector, prefix: string): string {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  must(
    cluster,
    ['create', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name,
        labels: {
          'chaperone.dev/e2e': 'true',
          'chaperone.dev/inject': 'enabled',
          'chaperone.dev/revision': inj.revision,
        },
      },
    }),
  );
  return name;
}

export function plainNamespace(cluster: Cluster, prefix: string): string {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  must(cluster, ['create', 'namespace', name]);
  must(cluster, ['label', 'namespace', name, 'chaperone.dev/e2e=true']);
  return name;
}

export function deleteNamespace(cluster: Cluster, name: string): void {
  kubectl(cluster.kubeconfigPath, ['delete', 'namespace', name, '--wait=false', '--ignore-not-found']);
}

/** Waits for the namespace's default ServiceAccount (pods cannot be created before it exists). */
export async function waitForServiceAccount(cluster: Cluster, namespace: string): Promise<void> {
  await waitFor(
    async () =>
      kubectl(cluster.kubeconfigPath, ['get', 'serviceaccount', 'default', '-n', namespace]).code === 0,
    { what: `the default ServiceAccount in ${namespace}`, timeoutMs: 30_000, intervalMs: 200 },
  );
}

export function podManifest(
  name: string,
  opts: { labels?: Record<string, string>; annotations?: Record<string, string>; image?: string } = {},
): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      ...(opts.labels ? { labels: opts.labels } : {}),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    },
    spec: {
      containers: [{ name: 'agent', image: opts.image ?? 'busybox:1.36', command: ['sleep', '3600'] }],
    },
  });
}

/**
 * Waits until the API server calls the validating webhook for `namespace`: an
 * opt-out pod (dry run, as the admin) is either refused by
 * validate.chaperone.dev or admitted with its warning (when the admin is exempt).
 */
export async function waitUntilValidating(cluster: Cluster, namespace: string): Promise<void> {
  await waitForServiceAccount(cluster, namespace);
  await waitFor(
    async () => {
      const r = kubectl(
        cluster.kubeconfigPath,
        ['create', '--dry-run=server', '-o', 'name', '-n', namespace, '-f', '-'],
        { input: podManifest('probe-validation', { labels: { 'chaperone.dev/inject': 'false' } }) },
      );
      return r.code === 0
        ? /Warning: chaperone: admitted because/.test(r.stderr)
        : /admission webhook "validate\.chaperone\.dev" denied the request/.test(r.stderr);
    },
    {
      what: `the API server to call the injector's validating webhook for namespace ${namespace}`,
      timeoutMs: 30_000,
      intervalMs: 250,
    },
  );
}

/**
 * Waits until the API server calls the webhooks for `namespace`: a webhook
 * configuration reaches the API server's admission chain through a watch, a
 * moment after it is written. Probed with server-side dry runs (no pod is created).
 */
export async function waitUntilInjecting(cluster: Cluster, namespace: string): Promise<void> {
  await waitUntilValidating(cluster, namespace);
  await waitFor(
    async () => {
      const r = kubectl(
        cluster.kubeconfigPath,
        ['create', '--dry-run=server', '-o', 'json', '-n', namespace, '-f', '-'],
        { input: podManifest('probe') },
      );
      if (r.code !== 0) return false;
      const pod = JSON.parse(r.stdout) as { metadata?: { labels?: Record<string, string> } };
      return pod.metadata?.labels?.['chaperone.dev/injected'] === 'true';
    },
    {
      what: `the API server to call the injector for namespace ${namespace}`,
      timeoutMs: 30_000,
      intervalMs: 250,
    },
  );
}

/** A short-lived token of the ServiceAccount `namespace/name` (TokenRequest), for kubectl --token. */
export function serviceAccountToken(cluster: Cluster, namespace: string, name: string): string {
  const tr = kubectlJson(
    cluster.kubeconfigPath,
    ['create', '--raw', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, '-f', '-'],
    JSON.stringify({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 600 },
    }),
  ) as { status: { token: string } };
  return tr.status.token;
}

/** The certificate the injector presents: serial number and PEM. */
export function servedCertificate(port: number): Promise<{ serial: string; pem: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, agent: false },
      (res) => {
        const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
        res.resume();
        const b64 = cert.raw.toString('base64').replace(/.{64}/g, '$&\n');
        resolve({
          serial: cert.serialNumber,
          pem: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`,
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** POSTs raw bytes to the injector's webhook path, trusting `ca`. */
export function postToWebhook(
  url: string,
  ca: string,
  body: string,
  contentType = 'application/json',
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', ca, agent: false, headers: { 'content-type': contentType } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The webhook's caBundle (PEM) as the API server sees it. */
export function webhookCaBundle(cluster: Cluster, inj: Injector): string {
  const cfg = kubectlJson(cluster.kubeconfigPath, [
    'get',
    'mutatingwebhookconfiguration',
    inj.instance,
    '-o',
    'json',
  ]) as {
    webhooks: { clientConfig: { caBundle?: string } }[];
  };
  return Buffer.from(cfg.webhooks[0]?.clientConfig.caBundle ?? '', 'base64').toString('utf8');
}

/** Runs the real `chaperone` CLI (e.g. check-inject) with KUBECONFIG set. */
export function chaperoneCli(
  kubeconfig: string,
  args: readonly string[],
): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CHAPERONE, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...cleanEnv(), KUBECONFIG: kubeconfig },
  });
  if (r.error) throw new DependencyError(`chaperone ${args.join(' ')} could not run: ${r.error.message}`);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
