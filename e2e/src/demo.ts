/**
 * `chaperone demo`: the whole product, locally, in one command. Starts a real
 * control plane, the collector (embedded storage) and the injector (registered
 * as the cluster's webhook), opts a namespace in with a sample policy, creates
 * an agent pod through the real API server and shows its injection, runs that
 * pod's sidecar as a local process with the configuration the injection
 * produced, plays an agent session through it — the Kubernetes API and
 * `kubectl exec` with real kubectl (exec reaches a stand-in kubelet: there is
 * no kubelet here), a declared PostgreSQL database with real psql — and prints
 * what the collector recorded.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ApprovalView, ChaperoneError, UsageError } from '@chaperone/shared';
import { CHAPERONE_BIN, childEnv, startCollectorProcess } from './collector-process.ts';
import { type ControlPlane, startControlPlane } from './control-plane.ts';
import { runPodSidecar, type StoredPod } from './demo-sidecar.ts';
import { optInNamespace, startInjector, waitUntilInjecting } from './injector-harness.ts';
import { kubectl, kubectlAsync, kubectlJson } from './kubectl.ts';
import { markPodRunning, registerNode } from './kubelet/node.ts';
import { startKubeletStandin } from './kubelet-standin.ts';
import { startLocalPrometheus } from './observability.ts';
import { freePort } from './ports.ts';
import { startPostgres } from './postgres.ts';
import { waitFor } from './process.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const SAMPLE_POLICY = join(REPO, 'deploy', 'examples', 'guardrail-policy.yaml');
/** The passwords in the demo database's `users` table: the agent sees them masked. */
const USER_PASSWORD = `hunter2-${randomBytes(4).toString('hex')}`;
/** The declared database (`chaperone.dev/databases`): its name for the agent, its Secret. */
const DATABASE = 'shop';

export interface DemoOptions {
  keep: boolean;
  /** Write the summary as JSON here (for scripts and tests). */
  summaryFile?: string;
  out?: (line: string) => void;
  /** Use this control plane instead of starting one (tests). */
  controlPlane?: ControlPlane;
}

export interface DemoSummary {
  namespace: string;
  pod: string;
  /** The collector's query API (its ingest port does not serve queries). */
  collectorUrl: string;
  queryToken: string;
  metricsUrl: string;
  sidecarMetricsUrl: string;
  events: number;
  decisions: Record<string, number>;
  /** Decisions by protocol (kubernetes, exec, postgres). */
  protocols: Record<string, Record<string, number>>;
  rules: Record<string, { action: string; count: number }>;
  /** The exec sessions' ids, for `chaperone replay`. */
  execSessions: string[];
  /** What the console shows the approver (its token, its RBAC): the namespaces it reads and the overview's totals. */
  console: { namespaces: string[] | '*'; blocked: number; masked: number; approved: number };
}

interface Step {
  readonly title: string;
  readonly fix: string;
}

class StepFailed extends ChaperoneError {
  constructor(step: Step, cause: unknown) {
    super('unavailable', `${step.title} failed: ${(cause as Error).message}\n  what to do: ${step.fix}`, {
      cause,
    });
    this.name = 'StepFailed';
  }
}

/** The console's view for a reader: who the token is (`/v1/whoami`) and the overview's totals of the last day. */
async function consoleView(queryUrl: string, token: string): Promise<DemoSummary['console']> {
  const get = async (path: string) => {
    const res = await fetch(`${queryUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
    return res.json();
  };
  const who = (await get('/v1/whoami')) as { namespaces: string[] | '*' };
  const overview = (await get('/v1/overview?since=24h')) as {
    byNamespace: { blocked: number; masked: number; approved: number }[];
  };
  const sum = (k: 'blocked' | 'masked' | 'approved') => overview.byNamespace.reduce((n, r) => n + r[k], 0);
  return {
    namespaces: who.namespaces,
    blocked: sum('blocked'),
    masked: sum('masked'),
    approved: sum('approved'),
  };
}

export async function runDemo(opts: DemoOptions): Promise<DemoSummary> {
  const out = opts.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const cleanups: (() => Promise<void> | void)[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-demo-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

  async function step<T>(s: Step, fn: () => Promise<T>, outcome: (t: T) => string): Promise<T> {
    const t0 = Date.now();
    try {
      const v = await fn();
      out(`✔ ${s.title}: ${outcome(v)} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
      return v;
    } catch (err) {
      out(`✖ ${s.title} (after ${((Date.now() - t0) / 1000).toFixed(1)}s)`);
      throw new StepFailed(s, err);
    }
  }

  try {
    const cp =
      opts.controlPlane ??
      (await step<ControlPlane>(
        {
          title: 'control plane',
          fix: 'run as root on Debian with network access to the Debian archive (first run builds kube-apiserver), or see the README',
        },
        () =>
          startControlPlane({
            log: (line) => {
              if (/no cached|one-time build|building|step \d/.test(line))
                out(`  … ${line.replace(/^control plane: /, '')}`);
            },
          }).then((c) => {
            cleanups.push(() => c.stop());
            return c;
          }),
        (c) => `kube-apiserver ${c.version.gitVersion} at ${c.server}`,
      ));
    const cluster = { kubeconfigPath: cp.kubeconfigPath, server: cp.server, caCert: cp.caCert };
    const admin = (args: string[], input?: string) => {
      const r = kubectl(cp.kubeconfigPath, args, input === undefined ? {} : { input });
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
      return r.stdout;
    };

    const queryToken = randomBytes(24).toString('hex');
    writeFileSync(join(dir, 'query-token'), queryToken, { mode: 0o600 });
    const collectorMetricsPort = await freePort();
    const collector = await step(
      { title: 'collector', fix: 'check the collector log printed above; the port may be taken' },
      async () => {
        const c = await startCollectorProcess({
          name: 'collector',
          port: await freePort(),
          metricsPort: collectorMetricsPort,
          args: [
            '--data-dir',
            join(dir, 'collector-data'),
            '--kubeconfig',
            cp.kubeconfigPath,
            '--query-token-file',
            join(dir, 'query-token'),
            '--log-level',
            'warn',
          ],
          logDir: dir,
        });
        cleanups.push(() => c.stop());
        return c;
      },
      (c) => `embedded storage, ingest at ${c.url}, query API at ${c.queryUrl}`,
    );

    const postgres = await step(
      {
        title: 'PostgreSQL',
        fix: "run as root on Debian with network access to the Debian archive (the first run installs Debian's postgresql)",
      },
      async () => {
        const p = await startPostgres({ log: (line) => out(`  … ${line}`) });
        cleanups.push(() => p.stop());
        // The application's table, made by its owner (the agent gets no DDL).
        const r = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', p.url], {
          encoding: 'utf8',
          input: `CREATE TABLE users (id int PRIMARY KEY, name text, email text, password text);
INSERT INTO users VALUES (1, 'ada', 'ada@example.com', '${USER_PASSWORD}-1'),
  (2, 'grace', 'grace@example.com', '${USER_PASSWORD}-2'), (3, 'linus', 'linus@example.com', '${USER_PASSWORD}-3');`,
        });
        if (r.status !== 0) throw new Error(`psql: ${r.stderr.trim()}`);
        return p;
      },
      (p) =>
        `${p.version} at ${p.host}:${p.port}, database ${p.database} with a users table (declared to the agent as ${DATABASE})`,
    );

    const kubelet = await step(
      { title: 'kubelet stand-in', fix: 'see the kubectl error above' },
      async () => {
        const standin = await startKubeletStandin({ lifetimeMs: opts.keep ? 24 * 3600_000 : 10 * 60_000 });
        cleanups.push(() => standin.stop());
        const node = registerNode(cp.kubeconfigPath, { port: standin.port });
        cleanups.push(() => node.delete());
        return { standin, node };
      },
      (k) =>
        `Node ${k.node.name} → ${k.standin.url}: a stand-in kubelet: there is no kubelet here; it runs exec'd commands on this machine`,
    );

    const injector = await step(
      {
        title: 'injector',
        fix: 'check that the control plane accepts webhook configurations (MutatingAdmissionWebhook)',
      },
      async () => {
        const i = await startInjector(cluster, {
          args: ['--collector-url', collector.url, '--log-level=info'],
        });
        cleanups.push(() => i.cleanup());
        return i;
      },
      (i) => `webhook registered (${i.instance}) at ${i.url}`,
    );

    const ns = await step(
      { title: 'namespace', fix: 'see the kubectl error above' },
      async () => {
        const name = optInNamespace(cluster, injector, 'agents');
        cleanups.push(() => {
          kubectl(cp.kubeconfigPath, ['delete', 'namespace', name, '--wait=false', '--ignore-not-found']);
        });
        admin([
          'create',
          'configmap',
          'chaperone-policy',
          '-n',
          name,
          `--from-file=policy.yaml=${SAMPLE_POLICY}`,
        ]);
        admin([
          'create',
          'secret',
          'generic',
          'db-credentials',
          '-n',
          name,
          `--from-literal=host=${postgres.host}`,
          `--from-literal=port=${postgres.port}`,
          `--from-literal=dbname=${postgres.database}`,
          `--from-literal=user=${postgres.user}`,
          `--from-literal=password=${postgres.password}`,
        ]);
        // Agents usually get an over-privileged token; this one is cluster-admin, so
        // everything below that is refused is refused by the guard, not by RBAC.
        admin(['create', 'serviceaccount', 'agent', '-n', name]);
        admin([
          'create',
          'clusterrolebinding',
          `${name}-agent`,
          '--clusterrole=cluster-admin',
          `--serviceaccount=${name}:agent`,
        ]);
        cleanups.push(() => {
          kubectl(cp.kubeconfigPath, ['delete', 'clusterrolebinding', `${name}-agent`, '--ignore-not-found']);
        });
        await waitUntilInjecting(cluster, name);
        return name;
      },
      (name) =>
        `${name} labelled chaperone.dev/inject=enabled, policy ConfigMap chaperone-policy (${SAMPLE_POLICY.slice(REPO.length)}), Secret db-credentials (the database's password), ServiceAccount agent (cluster-admin)`,
    );

    const pod = await step(
      {
        title: 'agent pod',
        fix: 'the injector refused or skipped the pod: run chaperone check-inject -f <pod.yaml>',
      },
      async () => {
        const manifest = {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: 'agent',
            labels: { app: 'agent' },
            annotations: { 'chaperone.dev/databases': `${DATABASE}=db-credentials` },
          },
          spec: {
            // No scheduler here: bound to the stand-in's Node, as a scheduler would bind it.
            nodeName: kubelet.node.name,
            serviceAccountName: 'agent',
            containers: [{ name: 'agent', image: 'python:3.12-slim', command: ['python', '-m', 'agent'] }],
          },
        };
        admin(['create', '-n', ns, '-f', '-'], JSON.stringify(manifest));
        const stored = kubectlJson(cp.kubeconfigPath, [
          'get',
          'pod',
          'agent',
          '-n',
          ns,
          '-o',
          'json',
        ]) as StoredPod;
        if (stored.metadata.labels?.['chaperone.dev/injected'] !== 'true')
          throw new Error('the pod was admitted without injection');
        markPodRunning(cp.kubeconfigPath, ns, 'agent', stored.spec.containers);
        return stored;
      },
      (p) => {
        const names = [...(p.spec.initContainers ?? []), ...p.spec.containers].map((c) => c.name).join(', ');
        return `injected; containers: ${names}`;
      },
    );
    const agentContainer = pod.spec.containers.find((c) => c.name === 'agent');
    const saMount = agentContainer?.volumeMounts?.find(
      (m) => m.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount',
    );
    out(
      `    agent container mounts ${saMount ? `"${saMount.name}" (the sidecar's CA and a placeholder token)` : 'nothing'} at the service-account path; no real token (automountServiceAccountToken: ${pod.spec.automountServiceAccountToken})`,
    );
    const policies = await waitFor(
      async () => {
        const l = kubectlJson(cp.kubeconfigPath, ['get', 'networkpolicies', '-n', ns, '-o', 'json']) as {
          items: { metadata: { name: string } }[];
        };
        return l.items.length > 0 ? l.items.map((i) => i.metadata.name) : undefined;
      },
      { what: 'the NetworkPolicy', timeoutMs: 30_000, intervalMs: 200 },
    );
    out(`    NetworkPolicy: ${policies.join(', ')} (egress only to DNS, the API server and the collector)`);
    const agentEnv = Object.fromEntries((agentContainer?.env ?? []).map((e) => [e.name, e.value ?? '']));
    out(
      `    agent container env for database ${DATABASE}: PGHOST=${agentEnv.PGHOST} PGPORT=${agentEnv.PGPORT} PGUSER=${agentEnv.PGUSER} PGDATABASE=${agentEnv.PGDATABASE} (no password)`,
    );

    const sidecar = await step(
      { title: 'sidecar', fix: 'see the sidecar log in the demo directory' },
      async () => {
        const s = await runPodSidecar({
          kubeconfig: cp.kubeconfigPath,
          server: cp.server,
          pod,
          dir: join(dir, 'pod'),
        });
        cleanups.push(() => s.stop());
        return s;
      },
      (s) =>
        `\`${s.command.join(' ')}\` from the pod spec, running locally (no kubelet here); agents reach it at ${s.url}`,
    );

    await step(
      { title: 'agent session', fix: 'see the kubectl and psql output above' },
      async () => {
        const agent = (args: string[], input?: string) =>
          kubectl(sidecar.agentKubeconfig, [...args, '--cache-dir', join(dir, 'kube-cache')], {
            ...(input === undefined ? {} : { input }),
          });
        const show = (cmd: string, r: { code: number; stdout: string; stderr: string }, what: string) => {
          const text = (r.code === 0 ? r.stdout : r.stderr).trim().split('\n')[0] ?? '';
          out(`    $ kubectl ${cmd}\n      ${text}\n      → ${what}`);
        };
        const refused = (r: { code: number }) => (r.code === 0 ? 'ALLOWED (unexpected)' : 'denied');
        const pods = agent(['get', 'pods']);
        show('get pods', pods, pods.code === 0 ? 'allowed' : 'FAILED');
        const secret = agent(['get', 'secret', 'db-credentials', '-o', 'jsonpath={.data.password}']);
        const decoded = Buffer.from(secret.stdout.trim(), 'base64').toString('utf8');
        show(
          'get secret db-credentials -o jsonpath={.data.password}',
          secret,
          `masked (decodes to "${decoded}")`,
        );
        const delNs = agent(['delete', 'namespace', ns]);
        show(`delete namespace ${ns}`, delNs, refused(delNs));
        const patch = agent([
          'patch',
          'configmap',
          'chaperone-policy',
          '--type=merge',
          '-p',
          '{"data":{"policy.yaml":"spec: {defaultAction: allow}"}}',
        ]);
        show('patch configmap chaperone-policy …', patch, refused(patch));
        const create = agent(['create', 'secret', 'generic', 'exfil', '--from-literal=x=y']);
        show('create secret generic exfil …', create, refused(create));
        // Ways around the guard: each is refused by a built-in rule or by the request reader.
        const token = agent(['create', 'token', 'agent']);
        show('create token agent', token, refused(token));
        // kubectl normalises the path it is given; an agent with curl does not.
        const encodedPath = `/api/v1/namespaces/${ns}/secrets%2Fdb-credentials`;
        const encoded = await rawGet(sidecar.url, sidecar.agentSaDir, encodedPath);
        out(
          `    $ curl --cacert $SA/ca.crt -H "Authorization: Bearer $(cat $SA/token)" ${sidecar.url}${encodedPath}\n      ${encoded.stderr || encoded.stdout.slice(0, 120)}\n      → ${refused(encoded)}`,
        );
        const job = agent(
          ['apply', '-f', '-'],
          JSON.stringify({
            apiVersion: 'batch/v1',
            kind: 'Job',
            metadata: { name: 'escape', namespace: ns },
            spec: {
              template: {
                spec: {
                  hostNetwork: true,
                  restartPolicy: 'Never',
                  containers: [{ name: 'x', image: 'busybox', command: ['true'] }],
                },
              },
            },
          }),
        );
        show('apply -f job-with-hostNetwork.yaml', job, refused(job));

        // kubectl exec through the sidecar and the real API server, to the stand-in kubelet.
        const exec = (args: string[]) =>
          kubectlAsync(sidecar.agentKubeconfig, [...args, '--cache-dir', join(dir, 'kube-cache')], {
            timeoutMs: 60_000,
          });
        const execOk = await exec([
          'exec',
          'agent',
          '-c',
          'agent',
          '--',
          'sh',
          '-c',
          'echo hello from $0',
          'agent',
        ]);
        show(
          "exec agent -c agent -- sh -c 'echo hello from $0' agent",
          execOk,
          execOk.code === 0 ? 'allowed' : 'FAILED',
        );
        // Relative path: the stand-in runs commands on this machine.
        const execRm = await exec(['exec', 'agent', '-c', 'agent', '--', 'rm', '-rf', './data']);
        show('exec agent -c agent -- rm -rf ./data', execRm, refused(execRm));

        // psql as the agent: the environment the injection gave the agent container, the
        // listener's port mapped to the local one; no password anywhere. One session.
        const psqlEnv = {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: dir,
          PGHOST: agentEnv.PGHOST ?? '',
          PGPORT: String(sidecar.databasePorts[DATABASE]),
          PGUSER: agentEnv.PGUSER ?? '',
          PGDATABASE: agentEnv.PGDATABASE ?? '',
          PGSSLMODE: agentEnv.PGSSLMODE ?? '',
        };
        const statements = [
          'SELECT name, email FROM users ORDER BY id;',
          'SELECT name, password FROM users ORDER BY id;',
          'DROP TABLE users;',
          'SELECT count(*) AS users FROM users;',
        ];
        const psql = spawnSync('psql', ['-X', '-w', '-A', '-t', '-a', '-F', ' | '], {
          encoding: 'utf8',
          env: psqlEnv,
          input: `${statements.join('\n')}\n`,
          timeout: 30_000,
        });
        // -a echoes each statement before its answer: split the answers on the echoes.
        const answers = statements.map((st, i) => {
          const from = psql.stdout.indexOf(st);
          const to = i + 1 < statements.length ? psql.stdout.indexOf(statements[i + 1] as string) : undefined;
          return from < 0 ? '' : psql.stdout.slice(from + st.length, to).trim();
        });
        const sqlError = (psql.stderr.split('\n').find((l) => l.startsWith('ERROR')) ?? '').trim();
        out(
          `    $ psql   # as the agent, one session (PGHOST=${psqlEnv.PGHOST} PGPORT=${psqlEnv.PGPORT} PGUSER=${psqlEnv.PGUSER}, no password)`,
        );
        const sqlShow = (i: number, text: string, what: string) =>
          out(
            `      ${DATABASE}=> ${statements[i]}\n        ${text.replaceAll('\n', '\n        ')}\n        → ${what}`,
          );
        const [names = '', masked = '', dropped = '', count = ''] = answers;
        sqlShow(0, names, names.includes('ada@example.com') ? 'allowed' : 'FAILED');
        sqlShow(
          1,
          masked,
          masked.includes('**masked**') ? 'masked by rule "mask-password-columns"' : 'NOT MASKED',
        );
        sqlShow(2, sqlError, sqlError ? 'denied; the session goes on' : 'ALLOWED (unexpected)');
        sqlShow(3, count, count === '3' ? 'allowed: same session, table intact' : 'FAILED');
        if (
          execOk.code !== 0 ||
          execOk.stdout.trim() !== 'hello from agent' ||
          execRm.code === 0 ||
          !names.includes('ada@example.com') ||
          !masked.includes('**masked**') ||
          masked.includes(USER_PASSWORD) ||
          dropped !== '' ||
          !sqlError.includes('agents may not drop') ||
          count !== '3'
        ) {
          throw new Error(
            `the exec or SQL session did not go as the policy says:\n${psql.stdout}\n${psql.stderr}`,
          );
        }
        if (
          pods.code !== 0 ||
          secret.code !== 0 ||
          decoded !== '**masked**' ||
          [delNs, patch, create, token, encoded, job].some((r) => r.code === 0) ||
          (secret.stdout + encoded.stdout).includes(postgres.password)
        ) {
          throw new Error('the session did not go as the policy says');
        }
        return undefined;
      },
      () => 'done',
    );

    const approvals = await step(
      { title: 'approvals', fix: 'see the collector and sidecar logs in the demo directory' },
      async () => {
        // An approver: a ServiceAccount with an ordinary Role (verb approve on
        // approvals.chaperone.dev in the agents' namespace, and the audit reader's
        // get/list there, so the console shows it this namespace), using its own token.
        admin(
          ['apply', '-f', '-'],
          JSON.stringify({
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'Role',
            metadata: { name: 'chaperone-approver', namespace: ns },
            rules: [
              { apiGroups: ['chaperone.dev'], resources: ['approvals'], verbs: ['approve'] },
              {
                apiGroups: ['chaperone.dev'],
                resources: ['events', 'sessions', 'recordings', 'alerts', 'chains'],
                verbs: ['get', 'list'],
              },
            ],
          }),
        );
        admin(['create', 'serviceaccount', 'approver', '-n', ns]);
        admin([
          'create',
          'rolebinding',
          'approver',
          '-n',
          ns,
          '--role=chaperone-approver',
          `--serviceaccount=${ns}:approver`,
        ]);
        const tokenFile = join(dir, 'approver-token');
        writeFileSync(tokenFile, admin(['create', 'token', 'approver', '-n', ns]).trim(), { mode: 0o600 });
        admin(['create', 'deployment', 'web', '-n', ns, '--image=nginx', '--replicas=1']);
        const cli = (args: string[]) => {
          const r = spawnSync(
            process.execPath,
            [CHAPERONE_BIN, ...args, '--collector-url', collector.queryUrl, '--token-file', tokenFile],
            { encoding: 'utf8', env: childEnv(), timeout: 60_000 },
          );
          if (r.status !== 0) throw new Error(`chaperone ${args.join(' ')}: ${r.stderr.trim()}`);
          return r.stdout.trim();
        };
        const agentAsync = (args: string[]) =>
          kubectlAsync(sidecar.agentKubeconfig, [...args, '--cache-dir', join(dir, 'kube-cache')], {
            timeoutMs: 120_000,
          });
        const held = (replicas: number) =>
          waitFor(
            async () =>
              (JSON.parse(cli(['approvals', 'list', '-o', 'json'])) as ApprovalView[]).find(
                (a) => a.rule === 'scale-needs-approval' && a.summary.includes('web'),
              ),
            {
              what: `the held kubectl scale --replicas=${replicas} to reach the collector`,
              timeoutMs: 30_000,
              intervalMs: 200,
            },
          );
        const decide = async (replicas: number, verb: 'approve' | 'deny', reason: string) => {
          const agentRun = agentAsync(['scale', 'deployment', 'web', `--replicas=${replicas}`]);
          const request = await held(replicas);
          out(
            `    $ kubectl scale deployment web --replicas=${replicas}   # as the agent: held, kubectl waits`,
          );
          out(
            `    $ chaperone approvals list   # as the approver (ServiceAccount approver, Role chaperone-approver)`,
          );
          for (const line of cli(['approvals', 'list']).split('\n')) out(`      ${line}`);
          out(`    $ chaperone approvals ${verb} ${request.id} --reason '${reason}'`);
          out(`      ${cli(['approvals', verb, request.id, '--reason', reason])}`);
          const r = await agentRun;
          const text = (r.code === 0 ? r.stdout : r.stderr).trim().split('\n')[0] ?? '';
          out(`      kubectl: ${text}`);
          return { request, result: r, text };
        };
        const up = await decide(3, 'approve', 'traffic peak expected');
        out(`      → ${up.result.code === 0 ? 'approved: applied as if allowed' : 'FAILED'}`);
        const down = await decide(0, 'deny', 'not while customers are online');
        out(
          `      → ${down.result.code !== 0 ? 'denied: the agent reads who and why' : 'APPLIED (unexpected)'}`,
        );
        const replicas = admin([
          'get',
          'deployment',
          'web',
          '-n',
          ns,
          '-o',
          'jsonpath={.spec.replicas}',
        ]).trim();
        out(`    deployment web has ${replicas} replicas (as the approver decided)`);
        if (
          up.result.code !== 0 ||
          down.result.code === 0 ||
          !down.text.includes('not while customers') ||
          replicas !== '3'
        )
          throw new Error('the held actions did not end as the approver decided');
        return { approved: up.request.id, denied: down.request.id, tokenFile };
      },
      (a) => `one held kubectl scale approved (${a.approved}), one denied (${a.denied})`,
    );

    const summary = await step(
      {
        title: 'audit',
        fix: 'check that the sidecar can reach the collector (its log is in the demo directory)',
      },
      async () => {
        await waitFor(
          async () => {
            const m = await (await fetch(sidecar.metricsUrl)).text();
            return (
              /chaperone_spool_events\{[^}]*\} 0$/m.test(m) &&
              /chaperone_sidecar_collector_connected\{[^}]*\} 1$/m.test(m)
            );
          },
          {
            what: 'the sidecar to deliver its audit events to the collector',
            timeoutMs: 30_000,
            intervalMs: 200,
          },
        );
        return summarise(collector.queryUrl, queryToken, ns, pod.metadata.name, sidecar.metricsUrl);
      },
      (s) => `${s.events} events stored by the collector`,
    );
    summary.console = await step(
      { title: 'console', fix: 'see the collector log in the demo directory' },
      () => consoleView(collector.queryUrl, readFileSync(approvals.tokenFile, 'utf8').trim()),
      (c) =>
        `the approver's token reads ${c.namespaces === '*' ? 'every namespace' : `namespace ${c.namespaces.join(', ')}`} (RBAC): blocked ${c.blocked}, masked ${c.masked}, approved ${c.approved} in the overview`,
    );

    out('');
    out(`Summary for ${ns}/${pod.metadata.name} (from the collector's query API):`);
    const counts = (d: Record<string, number>) =>
      `allowed ${d.allow ?? 0}, denied ${d.deny ?? 0}, masked ${d.mask ?? 0}, held for approval ${d.review ?? 0}`;
    out(`  ${counts(summary.decisions)}`);
    for (const [protocol, d] of Object.entries(summary.protocols)) out(`    ${protocol}: ${counts(d)}`);
    for (const [rule, r] of Object.entries(summary.rules)) out(`  rule ${rule}: ${r.action} × ${r.count}`);
    // With --keep, Prometheus scrapes the stack with the alert rules loaded, as deploy/observability expects.
    const prometheus = opts.keep
      ? await step(
          { title: 'Prometheus', fix: "install Debian's prometheus package (apt-get install prometheus)" },
          async () => {
            const p = await startLocalPrometheus({
              dir: join(dir, 'prometheus'),
              sidecars: [sidecar.metricsUrl],
              collector: `http://127.0.0.1:${collectorMetricsPort}/metrics`,
              injector: `http://127.0.0.1:${injector.metricsPort}/metrics`,
            });
            cleanups.push(() => p.stop());
            return p;
          },
          (p) =>
            `${p.url}, scraping the sidecar, the collector and the injector every second, alert rules loaded`,
        )
      : undefined;

    out('');
    out(
      opts.keep
        ? 'Explore (everything is still running):'
        : 'To explore, run `./chaperone demo --keep`, then for example:',
    );
    out(
      `  chaperone audit query --collector-url ${collector.queryUrl} --token-file ${join(dir, 'query-token')} --namespace ${ns} --decision deny`,
    );
    out(
      `  curl -s -H "Authorization: Bearer $(cat ${join(dir, 'query-token')})" '${collector.queryUrl}/v1/events?namespace=${ns}&decision=deny'`,
    );
    for (const session of summary.execSessions)
      out(
        `  chaperone replay ${session} --collector-url ${collector.queryUrl} --token-file ${join(dir, 'query-token')}   # an exec session`,
      );
    out(
      `  chaperone approvals list --state all --collector-url ${collector.queryUrl} --token-file ${approvals.tokenFile}`,
    );
    out(
      `  open ${collector.queryUrl}/console/ and sign in with the approver's token (${approvals.tokenFile})   # the console: overview, events, sessions, approvals, access review`,
    );
    out(`  curl -s ${sidecar.metricsUrl} | grep chaperone_blocked_total`);
    if (prometheus) {
      const blocked = 'sum by (namespace, protocol, rule) (chaperone_blocked_total)';
      out(
        `  ${prometheus.url}/graph?g0.expr=${encodeURIComponent(blocked)}   # blocked commands by rule, in Prometheus`,
      );
      out(`  curl -s '${prometheus.url}/api/v1/query' --data-urlencode 'query=${blocked}'`);
      out(
        '  Grafana: import deploy/observability/chaperone-dashboard.json with this Prometheus as its datasource',
      );
    }
    out(
      `  KUBECONFIG=${sidecar.agentKubeconfig} kubectl get secrets -o yaml   # as the agent, through the sidecar`,
    );
    out(`  KUBECONFIG=${cp.kubeconfigPath} kubectl get pod agent -n ${ns} -o yaml   # as cluster admin`);
    if (opts.summaryFile) writeFileSync(opts.summaryFile, JSON.stringify(summary, null, 2), { mode: 0o600 });

    if (opts.keep) {
      out('');
      out('Everything keeps running; press Ctrl-C to stop it all.');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
    return summary;
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // keep stopping the rest
      }
    }
    if (opts.keep) out('stopped everything the demo started');
  }
}

async function summarise(
  collectorUrl: string,
  token: string,
  namespace: string,
  pod: string,
  sidecarMetricsUrl: string,
): Promise<DemoSummary> {
  const items: {
    chaperone: { protocol: string; sessionId?: string; decision: { action: string; rule: string } };
  }[] = [];
  let cursor: string | undefined;
  do {
    const u = new URL('/v1/events', collectorUrl);
    u.searchParams.set('namespace', namespace);
    u.searchParams.set('pod', pod);
    u.searchParams.set('limit', '500');
    if (cursor) u.searchParams.set('cursor', cursor);
    const res = await fetch(u, { headers: { authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`the collector's query API answered ${res.status}: ${await res.text()}`);
    const page = (await res.json()) as { items: typeof items; nextCursor?: string | null };
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  const decisions: Record<string, number> = {};
  const protocols: DemoSummary['protocols'] = {};
  const rules: DemoSummary['rules'] = {};
  const execSessions = new Set<string>();
  for (const e of items) {
    const d = e.chaperone.decision;
    decisions[d.action] = (decisions[d.action] ?? 0) + 1;
    const p = protocols[e.chaperone.protocol] ?? {};
    p[d.action] = (p[d.action] ?? 0) + 1;
    protocols[e.chaperone.protocol] = p;
    if (e.chaperone.protocol === 'exec' && e.chaperone.sessionId) execSessions.add(e.chaperone.sessionId);
    if (d.action !== 'allow') {
      const r = rules[d.rule] ?? { action: d.action, count: 0 };
      r.count++;
      rules[d.rule] = r;
    }
  }
  return {
    namespace,
    pod,
    collectorUrl,
    queryToken: token,
    metricsUrl: `${collectorUrl}`,
    sidecarMetricsUrl,
    events: items.length,
    decisions,
    protocols,
    rules,
    execSessions: [...execSessions],
    console: { namespaces: [], blocked: 0, masked: 0, approved: 0 },
  };
}

/** For --kubeconfig: what the demo would install on a real cluster, without installing it. */
export function demoPlan(kubeconfig: string): string {
  if (!existsSync(kubeconfig)) throw new UsageError(`--kubeconfig ${kubeconfig} does not exist`);
  const render = (path: string) => {
    const r = kubectl(kubeconfig, ['kustomize', join(REPO, path)]);
    if (r.code !== 0)
      throw new ChaperoneError('dependency_missing', `kubectl kustomize ${path}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const kinds = (yaml: string) =>
    [...yaml.matchAll(/^kind: (\S+)\n(?:.*\n)*?^ {2}name: (\S+)/gm)].map((m) => `${m[1]}/${m[2]}`).join(', ');
  return [
    `This is a real cluster (${kubeconfig}); chaperone demo installs nothing on it. To install Chaperone yourself:`,
    '',
    `  # first the Secrets chaperone-collector-tls and chaperone-collector-query (${join(REPO, 'deploy/README.md')})`,
    `  kubectl apply -k ${join(REPO, 'deploy/overlays/dev')}   # ${kinds(render('deploy/overlays/dev'))}`,
    '  kubectl label namespace <agents> chaperone.dev/inject=enabled',
    '  kubectl -n <agents> create rolebinding chaperone-sidecar --clusterrole=chaperone-sidecar --serviceaccount=<agents>:<service account>',
    `  kubectl -n <agents> create configmap chaperone-policy --from-file=policy.yaml=${SAMPLE_POLICY}`,
    '',
    'New pods in that namespace are then injected; see them with: chaperone check-inject <agents>/<pod>',
  ].join('\n');
}

export function readSummary(path: string): DemoSummary {
  return JSON.parse(readFileSync(path, 'utf8')) as DemoSummary;
}

/** A GET with the agent's files, the path sent exactly as written (as curl would). */
async function rawGet(
  base: string,
  agentSaDir: string,
  path: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        ca: readFileSync(join(agentSaDir, 'ca.crt')),
        headers: { authorization: `Bearer ${readFileSync(join(agentSaDir, 'token'), 'utf8').trim()}` },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => {
          const ok = (res.statusCode ?? 0) < 300;
          const message = ok
            ? ''
            : `${res.statusCode} ${(JSON.parse(body) as { message?: string }).message ?? body}`;
          resolve({ code: ok ? 0 : 1, stdout: ok ? body : '', stderr: message });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}
