/**
 * A real Kubernetes control plane for tests and the demo: Debian's etcd, and
 * kube-apiserver + kube-controller-manager built from Debian's Kubernetes
 * source package, on free 127.0.0.1 ports with a temp dir. RBAC on, the
 * ServiceAccount and admission-webhook plugins on, service-account signing
 * keys and issuer discovery, an admin kubeconfig, an audit log. The controller-manager gives
 * namespaces their `default` ServiceAccount and turns Deployments into Pods.
 * There is no kubelet: Pods stay Pending.
 *
 * Existing-cluster mode: when CHAPERONE_E2E_KUBECONFIG names a kubeconfig,
 * nothing is started and the same API is backed by that cluster.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DependencyError } from '@chaperone/shared';
import {
  fixedCredentials,
  KubeClient,
  type KubeConnection,
  kubeconfigConnection,
} from '@chaperone/shared/kube';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import YAML from 'yaml';
import { kubeBinaries } from './kube-binaries.ts';
import { freePorts } from './ports.ts';
import { type ManagedProcess, startProcess, waitFor } from './process.ts';
import { ensurePackages } from './system-packages.ts';

export interface ControlPlaneOptions {
  /**
   * Legacy Secret-based service-account token volumes instead of projected
   * `kube-api-access-*` volumes (BoundServiceAccountTokenVolume off).
   */
  legacyTokenVolumes?: boolean;
  /** Progress lines (build, start-up). */
  log?: (line: string) => void;
  /** Use this kubeconfig instead of starting a control plane (default: CHAPERONE_E2E_KUBECONFIG). */
  kubeconfig?: string;
}

export interface ServerVersion {
  readonly major: number;
  readonly minor: number;
  readonly gitVersion: string;
}

export interface ControlPlane {
  readonly mode: 'local' | 'existing';
  /** Admin kubeconfig (cluster-admin). */
  readonly kubeconfigPath: string;
  /** `https://127.0.0.1:<port>` (local) or the kubeconfig's server. */
  readonly server: string;
  /** PEM of the cluster CA that signed the API server's certificate. */
  readonly caCert: string;
  readonly version: ServerVersion;
  /** Service-account token issuer (local mode). */
  readonly serviceAccountIssuer: string | undefined;
  /** Where its files and logs live (local mode). */
  readonly dir: string | undefined;
  /**
   * The API server's audit log (local mode): JSON lines, every stage of every
   * request at Metadata level (Request level for ConfigMaps, so the names in
   * create bodies show).
   */
  readonly auditLogPath?: string | undefined;
  /** Cluster CA key (local mode only): tests use it to make client or kubelet certificates. */
  readonly caKey: string | undefined;
  readonly processes: readonly ManagedProcess[];
  stop(): Promise<void>;
}

export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

function writeKubeconfig(path: string, server: string, caPem: string, user: Record<string, string>): void {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'chaperone-local',
        cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') },
      },
    ],
    users: [{ name: 'admin', user }],
    contexts: [{ name: 'chaperone-local', context: { cluster: 'chaperone-local', user: 'admin' } }],
    'current-context': 'chaperone-local',
  };
  writeFileSync(path, YAML.stringify(config), { mode: 0o600 });
}

function parseVersion(body: unknown): ServerVersion {
  const v = (body ?? {}) as { major?: string; minor?: string; gitVersion?: string };
  return {
    major: Number.parseInt(v.major ?? '0', 10),
    minor: Number.parseInt(v.minor ?? '0', 10),
    gitVersion: v.gitVersion ?? 'unknown',
  };
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const existing = opts.kubeconfig ?? process.env.CHAPERONE_E2E_KUBECONFIG;
  if (existing) return useExistingCluster(existing);
  return startLocal(opts);
}

async function useExistingCluster(kubeconfigPath: string): Promise<ControlPlane> {
  if (!existsSync(kubeconfigPath)) {
    throw new DependencyError(`CHAPERONE_E2E_KUBECONFIG=${kubeconfigPath} does not exist`);
  }
  let cluster: KubeConnection;
  try {
    cluster = kubeconfigConnection(kubeconfigPath, { env: process.env });
  } catch (err) {
    throw new DependencyError(`CHAPERONE_E2E_KUBECONFIG=${kubeconfigPath}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const { kubectlJson } = await import('./kubectl.ts');
  const version = parseVersion(
    (kubectlJson(kubeconfigPath, ['version', '-o', 'json']) as { serverVersion: unknown }).serverVersion,
  );
  return {
    mode: 'existing',
    kubeconfigPath,
    server: cluster.server,
    caCert: cluster.ca ?? '',
    version,
    serviceAccountIssuer: undefined,
    dir: undefined,
    caKey: undefined,
    processes: [],
    stop: async () => {},
  };
}

async function startLocal(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const log = opts.log ?? (() => {});
  ensurePackages(['etcd-server'], 'etcd for the local control plane', log);
  const bins = await kubeBinaries(log);
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-kube-'));
  const pki = join(dir, 'pki');
  mkdirSync(pki);
  const [etcdClient, etcdPeer, apiPort] = (await freePorts(3)) as [number, number, number];
  const server = `https://127.0.0.1:${apiPort}`;

  // Certificates and keys.
  const ca = createCA({ commonName: 'chaperone-local-ca' });
  const serving = issueCertificate({
    ca,
    commonName: 'kube-apiserver',
    dnsNames: [
      'localhost',
      'kubernetes',
      'kubernetes.default',
      'kubernetes.default.svc',
      'kubernetes.default.svc.cluster.local',
    ],
    ipAddresses: ['127.0.0.1', '10.0.0.1'],
  });
  const sa = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const files = {
    ca: join(pki, 'ca.crt'),
    servingCert: join(pki, 'apiserver.crt'),
    servingKey: join(pki, 'apiserver.key'),
    saPub: join(pki, 'sa.pub'),
    saKey: join(pki, 'sa.key'),
    tokens: join(pki, 'tokens.csv'),
  };
  writeFileSync(files.ca, ca.cert);
  writeFileSync(files.servingCert, serving.cert);
  writeFileSync(files.servingKey, serving.key, { mode: 0o600 });
  writeFileSync(files.saPub, sa.publicKey);
  writeFileSync(files.saKey, sa.privateKey, { mode: 0o600 });
  const adminToken = randomBytes(24).toString('hex');
  const cmToken = randomBytes(24).toString('hex');
  writeFileSync(
    files.tokens,
    `${adminToken},admin,admin-uid,"system:masters"\n${cmToken},system:kube-controller-manager,kcm-uid\n`,
    { mode: 0o600 },
  );
  const kubeconfigPath = join(dir, 'admin.kubeconfig');
  const cmKubeconfig = join(dir, 'controller-manager.kubeconfig');
  writeKubeconfig(kubeconfigPath, server, ca.cert, { token: adminToken });
  writeKubeconfig(cmKubeconfig, server, ca.cert, { token: cmToken });

  const auditPolicy = join(dir, 'audit-policy.yaml');
  const auditLogPath = join(dir, 'audit.log');
  writeFileSync(
    auditPolicy,
    YAML.stringify({
      apiVersion: 'audit.k8s.io/v1',
      kind: 'Policy',
      rules: [
        { level: 'Request', resources: [{ group: '', resources: ['configmaps'] }] },
        { level: 'Metadata' },
      ],
    }),
  );

  const featureGates = `BoundServiceAccountTokenVolume=${opts.legacyTokenVolumes ? 'false' : 'true'}`;
  const processes: ManagedProcess[] = [];
  const stop = async () => {
    // Reverse start order: controller-manager, apiserver, etcd.
    for (const p of [...processes].reverse()) await p.stop(10_000);
    rmSync(dir, { recursive: true, force: true });
  };
  // The admin's client, for the readiness checks below (the tests use kubectl and their own clients).
  const admin = new KubeClient(
    {
      server,
      ca: ca.cert,
      credentials: fixedCredentials({ token: adminToken }),
      source: 'local control plane',
    },
    { userAgent: 'chaperone-e2e', timeoutMs: 5000 },
  );

  try {
    const etcd = startProcess({
      name: 'etcd',
      command: bins.etcd,
      args: [
        '--name=default',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
        '--logger=zap',
      ],
      logFile: join(dir, 'etcd.log'),
    });
    processes.push(etcd);
    await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${etcdClient}/health`);
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      },
      { what: `etcd on 127.0.0.1:${etcdClient}`, timeoutMs: 30_000, process: etcd },
    );

    const apiserver = startProcess({
      name: 'kube-apiserver',
      command: bins.apiserver,
      args: [
        `--etcd-servers=http://127.0.0.1:${etcdClient}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        `--cert-dir=${join(dir, 'apiserver-certs')}`,
        `--tls-cert-file=${files.servingCert}`,
        `--tls-private-key-file=${files.servingKey}`,
        `--client-ca-file=${files.ca}`,
        `--token-auth-file=${files.tokens}`,
        '--authorization-mode=Node,RBAC',
        `--service-account-key-file=${files.saPub}`,
        `--service-account-signing-key-file=${files.saKey}`,
        `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
        `--api-audiences=${SERVICE_ACCOUNT_ISSUER}`,
        '--service-cluster-ip-range=10.0.0.0/24',
        '--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultTolerationSeconds,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota,Priority',
        `--feature-gates=${featureGates}`,
        '--allow-privileged=true',
        '--kubelet-preferred-address-types=InternalIP',
        '--endpoint-reconciler-type=none',
        `--audit-policy-file=${auditPolicy}`,
        `--audit-log-path=${auditLogPath}`,
        '--audit-log-format=json',
        '--v=1',
      ],
      logFile: join(dir, 'kube-apiserver.log'),
    });
    processes.push(apiserver);
    const version = await waitFor(
      async () => {
        const ready = await admin.request('GET', '/readyz');
        if (ready.status !== 200) return undefined;
        return parseVersion((await admin.request('GET', '/version')).body);
      },
      {
        what: `kube-apiserver to be ready at ${server}`,
        timeoutMs: 90_000,
        intervalMs: 200,
        process: apiserver,
      },
    );

    const controllerManager = startProcess({
      name: 'kube-controller-manager',
      command: bins.controllerManager,
      args: [
        `--kubeconfig=${cmKubeconfig}`,
        '--controllers=*,-nodeipam,-nodelifecycle,-attachdetach,-persistentvolume-binder,-persistentvolume-expander,-ttl,-route,-service,-cloud-node-lifecycle',
        `--service-account-private-key-file=${files.saKey}`,
        `--root-ca-file=${files.ca}`,
        '--use-service-account-credentials=true',
        '--leader-elect=false',
        '--port=0',
        '--secure-port=0',
        // Keeps it from creating /usr/libexec/kubernetes/kubelet-plugins on the host.
        `--flex-volume-plugin-dir=${join(dir, 'flexvolume')}`,
        `--feature-gates=${featureGates}`,
        '--v=1',
      ],
      logFile: join(dir, 'kube-controller-manager.log'),
    });
    processes.push(controllerManager);
    // Ready when it has created the default ServiceAccount in `default`.
    await waitFor(
      async () => (await admin.get('/api/v1/namespaces/default/serviceaccounts/default')) !== undefined,
      {
        what: 'kube-controller-manager to create the default ServiceAccount',
        timeoutMs: 60_000,
        intervalMs: 200,
        process: controllerManager,
      },
    );

    return {
      mode: 'local',
      kubeconfigPath,
      server,
      caCert: ca.cert,
      version,
      serviceAccountIssuer: SERVICE_ACCOUNT_ISSUER,
      dir,
      auditLogPath,
      caKey: ca.key,
      processes,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  } finally {
    await admin.close();
  }
}
