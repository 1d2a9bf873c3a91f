/**
 * `chaperone local` end to end: the real CLI guarding a kubeconfig context of
 * the local control plane, with real kubectl as the agent's command. A
 * workload delete is refused, a Secret comes back masked, the printed summary
 * agrees with what the embedded collector stored, the agent's environment
 * holds none of the user's credentials, a kubeconfig whose user is an exec
 * credential plugin gets a new credential from it when the old one expires,
 * and --hide-kubeconfig hides the user's kubeconfig from the command.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SqliteStore } from '@chaperone/collector';
import { TestIssuer } from '@chaperone/collector/testing';
import type { AuditEvent } from '@chaperone/shared';
import YAML from 'yaml';
import { CHAPERONE_BIN, startCollectorProcess } from './collector-process.ts';
import { createDatabase, createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { kubectl, kubectlPath } from './kubectl.ts';
import { createBoundPod, registerNode } from './kubelet/node.ts';
import { startKubeletStandin } from './kubelet-standin.ts';
import { freePort } from './ports.ts';

interface LocalSummary {
  events: number;
  allowed: number;
  denied: number;
  masked: number;
  held: number;
  execSessions: string[];
}

interface LocalRun {
  readonly code: number;
  readonly stderr: string;
  readonly summary: {
    sidecarId: string;
    exitCode: number;
    summary: LocalSummary;
  };
}

/** Runs `chaperone local` as a user would, with `env` as the user's whole environment. */
function runLocal(
  args: readonly string[],
  env: Record<string, string>,
  dir: string,
  input?: string,
): Promise<LocalRun> {
  const summaryFile = join(dir, `summary-${Date.now()}.json`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHAPERONE_BIN, 'local', '--summary-file', summaryFile, ...args], {
      env,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (input !== undefined) child.stdin?.end(input);
    let stderr = '';
    child.stdout?.resume();
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (!existsSync(summaryFile)) {
        reject(new Error(`chaperone local wrote no summary (exit ${code}):\n${stderr}`));
        return;
      }
      resolve({ code: code ?? -1, stderr, summary: JSON.parse(readFileSync(summaryFile, 'utf8')) });
    });
  });
}

/** The user's environment: PATH and HOME, plus what the test adds. */
function userEnv(home: string, extra: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...extra };
}

/** The events of one chain as the embedded collector stored them, read from its store directly. */
async function storedEvents(stateDir: string, sidecarId: string): Promise<AuditEvent[]> {
  const store = new SqliteStore({ dataDir: join(stateDir, 'collector', 'data'), mustExist: true });
  try {
    const page = await store.queryEvents({ sidecarId: [sidecarId] }, { limit: 10_000 });
    return page.events.map((e) => JSON.parse(e) as AuditEvent);
  } finally {
    await store.close();
  }
}

function admin(args: string[], input?: string): string {
  const r = kubectl(kubeInfo().kubeconfigPath, args, input === undefined ? {} : { input });
  assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The admin kubeconfig's bearer token (the control plane's static token). */
function adminToken(): string {
  const doc = YAML.parse(readFileSync(kubeInfo().kubeconfigPath, 'utf8')) as {
    users: { user: { token: string } }[];
  };
  return doc.users[0]?.user.token as string;
}

describe('chaperone local', { timeout: 600_000 }, () => {
  let ns: TestNamespace;
  let dir: string;
  before(async () => {
    kubectlPath();
    ns = await createNamespace('local-mode');
    dir = mkdtempSync(join(tmpdir(), 'chaperone-local-e2e-'));
  });
  after(async () => {
    await ns?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A kubeconfig of the control plane whose user is `user`, in the test's namespace. */
  function userKubeconfig(path: string, user: Record<string, unknown>): string {
    const k = kubeInfo();
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(
      path,
      YAML.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'dev',
            cluster: {
              server: k.server,
              'certificate-authority-data': Buffer.from(k.caCert).toString('base64'),
            },
          },
        ],
        users: [{ name: 'me', user }],
        contexts: [{ name: 'dev', context: { cluster: 'dev', user: 'me', namespace: ns.name } }],
        'current-context': 'dev',
      }),
      { mode: 0o600 },
    );
    return path;
  }

  /**
   * A test exec credential plugin: each run issues a token of the next of six service accounts
   * `<prefix>-<n>` (view rights in the namespace), said to expire in `lifetimeSec`; `runs` counts them.
   */
  function tokenPlugin(prefix: string, lifetimeSec: number): { plugin: string; runs: string } {
    for (const n of [1, 2, 3, 4, 5, 6]) {
      admin(['-n', ns.name, 'create', 'serviceaccount', `${prefix}-${n}`]);
      admin([
        ...['-n', ns.name, 'create', 'rolebinding', `${prefix}-${n}`, '--clusterrole=view'],
        `--serviceaccount=${ns.name}:${prefix}-${n}`,
      ]);
    }
    const plugin = join(dir, `${prefix}.sh`);
    const runs = join(dir, `${prefix}.runs`);
    writeFileSync(
      plugin,
      `#!/bin/sh
set -e
n=$(( $(cat "${runs}" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "${runs}"
token=$(KUBECONFIG="${kubeInfo().kubeconfigPath}" kubectl -n ${ns.name} create token ${prefix}-$n --duration=10m)
expires=$(date -u -d "@$(( $(date +%s) + ${lifetimeSec} ))" +%Y-%m-%dT%H:%M:%SZ)
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"%s"}}\\n' "$token" "$expires"
`,
    );
    chmodSync(plugin, 0o755);
    return { plugin, runs };
  }

  /** A kubeconfig user whose credentials come from the exec plugin `plugin`. */
  const pluginUser = (plugin: string) => ({
    exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, interactiveMode: 'Never' },
  });

  it('refuses a workload delete, masks a Secret, hands the agent no credential, and sums up what the store holds', async () => {
    const value = `s3cret-${Date.now()}`;
    admin(['-n', ns.name, 'create', 'secret', 'generic', 'db', `--from-literal=password=${value}`]);
    admin(['-n', ns.name, 'create', 'deployment', 'web', '--image=registry.invalid/web:1']);
    const home = join(dir, 'home-1');
    const token = adminToken();
    const kubeconfig = userKubeconfig(join(home, '.kube', 'config'), { token });
    const out = join(dir, 'out-1');
    mkdirSync(out);
    const stateDir = join(dir, 'state-1');
    const script = [
      `env > ${out}/env`,
      `cp "$KUBECONFIG" ${out}/kubeconfig`,
      `kubectl get secret db -o jsonpath='{.data.password}' > ${out}/secret`,
      `kubectl delete deployment web > ${out}/delete.out 2> ${out}/delete.err; echo $? > ${out}/delete.rc`,
      `"${process.execPath}" "${CHAPERONE_BIN}" local status --state-dir ${stateDir} -o json > ${out}/status.json`,
      'exit 7',
    ].join('\n');
    const r = await runLocal(
      ['--state-dir', stateDir, '--', 'sh', '-c', script],
      userEnv(home, {
        KUBECONFIG: kubeconfig,
        AWS_SECRET_ACCESS_KEY: 'aws-secret-value-0123456789',
        MY_CLUSTER_TOKEN: token,
      }),
      dir,
    );
    assert.equal(r.code, 7, r.stderr);
    assert.equal(r.summary.exitCode, 7);

    // The delete was refused by the workstation policy, and the deployment is still there.
    assert.equal(readFileSync(join(out, 'delete.rc'), 'utf8').trim(), '1');
    assert.match(readFileSync(join(out, 'delete.err'), 'utf8'), /denied by rule "no-workload-deletes"/);
    assert.match(admin(['-n', ns.name, 'get', 'deployment', 'web', '-o', 'name']), /deployment.apps\/web/);

    // The Secret's value never reached the agent.
    const seen = Buffer.from(readFileSync(join(out, 'secret'), 'utf8'), 'base64').toString('utf8');
    assert.ok(seen.length > 0, 'the agent read the Secret');
    assert.ok(!seen.includes(value), `the agent saw the Secret's value: ${seen}`);

    // The agent's environment and kubeconfig hold none of the user's credentials.
    const env = readFileSync(join(out, 'env'), 'utf8');
    assert.ok(!env.includes(token), "the user's token is in the agent's environment");
    assert.ok(!env.includes('aws-secret-value'), 'a cloud credential is in the agent environment');
    assert.ok(!env.includes(kubeconfig), "the user's kubeconfig path is in the agent's environment");
    assert.match(env, new RegExp(`^KUBECONFIG=${stateDir}/session/kubeconfig$`, 'm'));
    const agentKubeconfig = readFileSync(join(out, 'kubeconfig'), 'utf8');
    assert.ok(!agentKubeconfig.includes(token), "the user's token is in the agent's kubeconfig");
    const parsed = YAML.parse(agentKubeconfig) as {
      clusters: { cluster: { server: string } }[];
      contexts: { context: { namespace: string } }[];
    };
    assert.match(parsed.clusters[0]?.cluster.server ?? '', /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(parsed.contexts[0]?.context.namespace, ns.name);
    // While it ran, chaperone local status saw the session and what its guard had decided.
    const status = JSON.parse(readFileSync(join(out, 'status.json'), 'utf8')) as {
      session: { sidecarId: string; context: string; namespace: string };
      summary: LocalSummary;
    };
    assert.equal(status.session.sidecarId, r.summary.sidecarId);
    assert.equal(status.session.namespace, ns.name);
    assert.equal(status.summary.denied, 1);
    assert.match(r.stderr, /removed from the agent's environment: .*AWS_SECRET_ACCESS_KEY/);
    assert.match(r.stderr, /removed from the agent's environment: .*MY_CLUSTER_TOKEN/);

    // The summary printed and written agrees with the events the collector stored.
    const events = await storedEvents(stateDir, r.summary.sidecarId);
    const count = (action: string) => events.filter((e) => e.chaperone.decision.action === action).length;
    const s = r.summary.summary;
    assert.ok(events.length > 0);
    assert.deepEqual(
      { events: s.events, allowed: s.allowed, denied: s.denied, masked: s.masked, held: s.held },
      {
        events: events.length,
        allowed: count('allow'),
        denied: count('deny'),
        masked: count('mask'),
        held: count('review'),
      },
    );
    assert.equal(s.denied, 1);
    const denied = events.find((e) => e.chaperone.decision.action === 'deny');
    assert.equal(denied?.chaperone.decision.rule, 'no-workload-deletes');
    assert.equal(denied?.objectRef?.name, 'web');
    assert.ok(events.some((e) => e.chaperone.decision.action === 'mask' && e.objectRef?.name === 'db'));
    assert.ok(!JSON.stringify(events).includes(value), "the stored events hold the Secret's value");
    // Every event was stored, so the session's spool is gone.
    const uid = r.summary.sidecarId.split('/').pop() as string;
    assert.ok(!existsSync(join(stateDir, 'spool', uid)), 'the spool of a delivered session is left behind');
    assert.match(
      r.stderr,
      new RegExp(
        `${s.events} request\\(s\\) through the guard: ${s.allowed} allowed, 1 denied, ${s.masked} masked`,
      ),
    );
  });

  it('gets a new credential from an exec plugin when the old one expires', async () => {
    // Each run of the plugin issues a token of its own service account, valid (for the guard) 32 s:
    // the API server's audit log then tells which run's token each request carried.
    const { plugin, runs } = tokenPlugin('plugin-user', 32);
    const home = join(dir, 'home-2');
    const kubeconfig = userKubeconfig(join(home, '.kube', 'config'), pluginUser(plugin));
    const out = join(dir, 'out-2');
    mkdirSync(out);
    const stateDir = join(dir, 'state-2');
    const script = [
      `kubectl get serviceaccounts -o name > ${out}/first`,
      // Past the first token's expiry less the 30 s margin, and past the guard's next look at it.
      'sleep 13',
      `kubectl get serviceaccounts -o name > ${out}/second`,
    ].join('\n');
    const r = await runLocal(
      ['--state-dir', stateDir, '--', 'sh', '-c', script],
      userEnv(home, { KUBECONFIG: kubeconfig }),
      dir,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(join(out, 'first'), 'utf8'), /serviceaccount\/plugin-user-1/);
    assert.match(readFileSync(join(out, 'second'), 'utf8'), /serviceaccount\/plugin-user-1/);
    const ran = Number(readFileSync(runs, 'utf8').trim());
    assert.ok(ran >= 2, `the plugin ran ${ran} time(s)`);

    // Which token each list carried, from the API server's own audit log (matched by Audit-ID).
    const events = await storedEvents(stateDir, r.summary.sidecarId);
    const lists = events
      .filter((e) => e.verb === 'list' && e.objectRef?.resource === 'serviceaccounts')
      .sort((a, b) => a.chaperone.seq - b.chaperone.seq);
    assert.equal(lists.length, 2);
    const auditLog = kubeInfo().auditLogPath;
    assert.ok(auditLog, 'the control plane keeps an audit log');
    const users = new Map<string, string>();
    for (const line of readFileSync(auditLog, 'utf8').split('\n')) {
      if (!line) continue;
      const e = JSON.parse(line) as { auditID: string; user: { username: string } };
      users.set(e.auditID, e.user.username);
    }
    const first = users.get(lists[0]?.auditID as string);
    const second = users.get(lists[1]?.auditID as string);
    assert.ok(first?.startsWith(`system:serviceaccount:${ns.name}:plugin-user-`), String(first));
    assert.ok(second?.startsWith(`system:serviceaccount:${ns.name}:plugin-user-`), String(second));
    assert.notEqual(second, first, 'the second request carried the expired token');
  });

  it('asks the exec plugin again after the API server refuses its credential', async () => {
    const { plugin, runs } = tokenPlugin('revoked-user', 3600);
    const home = join(dir, 'home-revoked');
    const kubeconfig = userKubeconfig(join(home, '.kube', 'config'), pluginUser(plugin));
    const out = join(dir, 'out-revoked');
    mkdirSync(out);
    const adminKubeconfig = kubeInfo().kubeconfigPath;
    const script = [
      `kubectl get serviceaccounts -o name > ${out}/first`,
      // An administrator revokes every token the plugin has issued so far (their service accounts go).
      `for i in $(seq 1 $(cat ${runs})); do KUBECONFIG=${adminKubeconfig} kubectl -n ${ns.name} delete serviceaccount revoked-user-$i > /dev/null; done`,
      // The API server remembers a token it accepted for 10 s.
      'sleep 11',
      `kubectl get serviceaccounts -o name > ${out}/refused 2>&1; echo $? > ${out}/refused.rc`,
      'sleep 3',
      `kubectl get serviceaccounts -o name > ${out}/after 2>&1; echo $? > ${out}/after.rc`,
    ].join('\n');
    const ran = () => (existsSync(runs) ? Number(readFileSync(runs, 'utf8').trim()) : 0);
    const r = await runLocal(
      ['--state-dir', join(dir, 'state-revoked'), '--', 'sh', '-c', script],
      userEnv(home, { KUBECONFIG: kubeconfig }),
      dir,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(join(out, 'first'), 'utf8'), /serviceaccount\/default/);
    // The request that met the revoked token fails (the API server's 401 passes to the agent) …
    assert.notEqual(readFileSync(join(out, 'refused.rc'), 'utf8').trim(), '0');
    assert.match(readFileSync(join(out, 'refused'), 'utf8'), /Unauthorized|logged in/);
    // … and the guard has asked the plugin for a new credential, which the next request carries.
    assert.equal(
      readFileSync(join(out, 'after.rc'), 'utf8').trim(),
      '0',
      readFileSync(join(out, 'after'), 'utf8'),
    );
    assert.match(readFileSync(join(out, 'after'), 'utf8'), /serviceaccount\/default/);
    assert.ok(ran() >= 2, `the plugin ran ${ran()} time(s)`);
  });

  it('guards a database given with --database for psql, under a policy given with --policy', async () => {
    const db = await createDatabase('local_mode');
    try {
      const password = `pw-${Date.now()}`;
      const setup = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', db.url], {
        encoding: 'utf8',
        input: `CREATE TABLE users (id int, name text, password text); INSERT INTO users VALUES (1, 'ada', '${password}');`,
      });
      assert.equal(setup.status, 0, setup.stderr);
      const policy = join(dir, 'policy.yaml');
      writeFileSync(
        policy,
        YAML.stringify({
          apiVersion: 'chaperone.dev/v1alpha1',
          kind: 'GuardrailPolicy',
          metadata: { name: 'laptop' },
          spec: {
            defaultAction: 'allow',
            rules: [
              {
                name: 'no-drops',
                match: { sql: { statements: ['drop'] } },
                action: 'deny',
                message: 'no drops here',
              },
              {
                name: 'mask-passwords',
                match: { sql: { tables: ['users'], columns: ['password'] } },
                action: 'mask',
              },
            ],
          },
        }),
      );
      const home = join(dir, 'home-db');
      const kubeconfig = userKubeconfig(join(home, '.kube', 'config'), { token: adminToken() });
      const out = join(dir, 'out-db');
      mkdirSync(out);
      const script = [
        `env > ${out}/env`,
        `psql -X -At -c 'SELECT name, password FROM users' > ${out}/select 2>&1`,
        `psql -X -At -c 'DROP TABLE users' > ${out}/drop 2>&1; echo $? > ${out}/drop.rc`,
      ].join('\n');
      const r = await runLocal(
        [
          '--state-dir',
          join(dir, 'state-db'),
          '--policy',
          policy,
          '--database',
          `shop=${db.url}`,
          '--',
          'sh',
          '-c',
          script,
        ],
        userEnv(home, { KUBECONFIG: kubeconfig, PGPASSWORD: 'the-users-own-password' }),
        dir,
      );
      assert.equal(r.code, 0, r.stderr);
      const selected = readFileSync(join(out, 'select'), 'utf8');
      assert.match(selected, /^ada\|/m);
      assert.ok(!selected.includes(password), `the agent saw the password: ${selected}`);
      assert.notEqual(readFileSync(join(out, 'drop.rc'), 'utf8').trim(), '0');
      assert.match(readFileSync(join(out, 'drop'), 'utf8'), /no drops here/);
      const env = readFileSync(join(out, 'env'), 'utf8');
      assert.ok(
        !env.includes(db.url.split('@')[0] as string),
        "the database's credentials are in the agent's environment",
      );
      assert.ok(!env.includes('the-users-own-password'));
      assert.match(env, /^PGHOST=127\.0\.0\.1$/m);
      const events = await storedEvents(join(dir, 'state-db'), r.summary.sidecarId);
      const sql = events.filter((e) => e.chaperone.protocol === 'postgres');
      assert.ok(
        sql.some((e) => e.chaperone.decision.rule === 'no-drops' && e.chaperone.decision.action === 'deny'),
      );
      assert.ok(sql.some((e) => e.chaperone.decision.action === 'mask' || e.chaperone.maskedFields > 0));
      assert.equal(
        r.summary.summary.denied,
        events.filter((e) => e.chaperone.decision.action === 'deny').length,
      );
      const still = spawnSync('psql', ['-X', '-At', '-c', 'SELECT count(*) FROM users', db.url], {
        encoding: 'utf8',
      });
      assert.equal(still.stdout.trim(), '1');
    } finally {
      await db.drop();
    }
  });

  it('ships to a team collector with --collector-url, filed under the pod its token names', async () => {
    // The team's collector checks tokens against an issuer's keys; here a test issuer's, served on loopback.
    const issuer = await TestIssuer.create();
    const jwks = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [issuer.jwk] }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    const queryToken = `query-${randomUUID()}`;
    writeFileSync(join(dir, 'team-query-token'), queryToken, { mode: 0o600 });
    const collector = await startCollectorProcess({
      name: 'team-collector',
      port: await freePort(),
      args: [
        ...['--data-dir', join(dir, 'team-collector')],
        ...['--jwks-url', `http://127.0.0.1:${(jwks.address() as { port: number }).port}/`],
        ...['--token-issuer', 'https://kubernetes.default.svc.cluster.local'],
        ...['--query-token-file', join(dir, 'team-query-token'), '--log-level', 'warn'],
      ],
      logDir: dir,
    });
    try {
      const podUID = randomUUID();
      const tokenFile = join(dir, 'team-token');
      writeFileSync(
        tokenFile,
        await issuer.token({ namespace: ns.name, pod: 'laptop-jane', podUID, serviceAccount: 'jane' }),
        { mode: 0o600 },
      );
      const home = join(dir, 'home-team');
      const kubeconfig = userKubeconfig(join(home, '.kube', 'config'), { token: adminToken() });
      const r = await runLocal(
        [
          ...['--state-dir', join(dir, 'state-team')],
          ...['--collector-url', collector.url, '--collector-token-file', tokenFile],
          ...['--', 'sh', '-c', 'kubectl get pods; kubectl delete deployment web; true'],
        ],
        userEnv(home, { KUBECONFIG: kubeconfig }),
        dir,
      );
      assert.equal(r.code, 0, r.stderr);
      const sidecarId = `${ns.name}/laptop-jane/${podUID}`;
      assert.equal(r.summary.sidecarId, sidecarId);
      assert.match(r.stderr, new RegExp(`the audit events of ${sidecarId} went to ${collector.url}`));
      const res = await fetch(`${collector.queryUrl}/v1/events?sidecarId=${encodeURIComponent(sidecarId)}`, {
        headers: { authorization: `Bearer ${queryToken}` },
      });
      assert.equal(res.status, 200);
      const { items } = (await res.json()) as { items: AuditEvent[] };
      assert.ok(items.some((e) => e.verb === 'list' && e.objectRef?.resource === 'pods'));
      assert.ok(
        items.some((e) => e.chaperone.decision.rule === 'no-workload-deletes' && e.objectRef?.name === 'web'),
      );
    } finally {
      await collector.stop();
      await new Promise((r) => jwks.close(r));
    }
  });

  it('records an exec session, replayable from the embedded collector', async () => {
    // There is no kubelet here: a stand-in (a test double) runs exec'd commands on this machine.
    const standin = await startKubeletStandin({ lifetimeMs: 10 * 60_000 });
    const node = registerNode(kubeInfo().kubeconfigPath, { port: standin.port });
    try {
      await createBoundPod(kubeInfo().kubeconfigPath, {
        namespace: ns.name,
        name: 'target',
        node: node.name,
        containers: [{ name: 'main' }],
      });
      const home = join(dir, 'home-exec');
      const kubeconfig = userKubeconfig(join(home, '.kube', 'config'), { token: adminToken() });
      const out = join(dir, 'out-exec');
      mkdirSync(out);
      const stateDir = join(dir, 'state-exec');
      const r = await runLocal(
        [
          '--state-dir',
          stateDir,
          '--',
          'sh',
          '-c',
          `kubectl exec target -c main -- echo hello-from-the-pod > ${out}/exec 2>&1`,
        ],
        userEnv(home, { KUBECONFIG: kubeconfig }),
        dir,
      );
      assert.equal(r.code, 0, `${r.stderr}\n${readFileSync(join(out, 'exec'), 'utf8')}`);
      assert.match(readFileSync(join(out, 'exec'), 'utf8'), /hello-from-the-pod/);
      const [session] = r.summary.summary.execSessions;
      assert.ok(session, 'the summary names the exec session');
      const store = new SqliteStore({ dataDir: join(stateDir, 'collector', 'data'), mustExist: true });
      try {
        const recording = await store.getRecording(session);
        assert.ok(recording, 'the exec session was recorded');
        assert.equal(recording.sidecarId, r.summary.sidecarId);
        assert.match(recording.content, /hello-from-the-pod/);
      } finally {
        await store.close();
      }
      assert.match(r.stderr, new RegExp(`exec sessions recorded: ${session}`));
      // After the session: its events and its recording, from the state directory's store.
      const local = (args: string[]) =>
        spawnSync(process.execPath, [CHAPERONE_BIN, 'local', ...args, '--state-dir', stateDir], {
          encoding: 'utf8',
          env: userEnv(home, {}),
          timeout: 120_000,
        });
      const audit = local(['audit']);
      assert.equal(audit.status, 0, audit.stderr);
      assert.match(audit.stdout, /allow\s+default\s+101\s+exec echo hello-from-the-pod/);
      const replay = local(['replay', session, '--cat']);
      assert.equal(replay.status, 0, replay.stderr);
      assert.match(replay.stdout, /hello-from-the-pod/);
    } finally {
      node.delete();
      await standin.stop();
    }
  });

  it('runs the command as another user with --run-as, who cannot read the kubeconfig', async (t) => {
    if (process.getuid?.() !== 0) {
      // Not root: the session must refuse to start rather than run the command as the same user.
      const r = await runLocal(['--run-as', 'nobody', '--', 'true'], userEnv(dir, {}), dir).catch(
        (e: Error) => e,
      );
      assert.match(String(r instanceof Error ? r.message : r.stderr), /must run as root/);
      t.diagnostic('not root: only the refusal was checked');
      return;
    }
    const home = join(dir, 'home-run-as');
    const kubeconfig = userKubeconfig(join(home, '.kube', 'config'), { token: adminToken() });
    const out = join(dir, 'out-run-as');
    mkdirSync(out);
    // The other user may pass through the test's directory and write its answers; the kubeconfig stays 0600.
    chmodSync(dir, 0o711);
    chmodSync(out, 0o777);
    const script = [
      `id -u > ${out}/uid`,
      `cat ${kubeconfig} > ${out}/read 2>&1; echo $? > ${out}/read.rc`,
      `kubectl get serviceaccounts -o name > ${out}/through-guard 2> ${out}/through-guard.err`,
    ].join('\n');
    const r = await runLocal(
      ['--state-dir', join(dir, 'state-run-as'), '--run-as', 'nobody', '--', 'sh', '-c', script],
      userEnv(home, { KUBECONFIG: kubeconfig }),
      dir,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(out, 'uid'), 'utf8').trim(), '65534');
    assert.notEqual(readFileSync(join(out, 'read.rc'), 'utf8').trim(), '0');
    assert.ok(!readFileSync(join(out, 'read'), 'utf8').includes('current-context'));
    assert.match(
      readFileSync(join(out, 'through-guard'), 'utf8'),
      /serviceaccount\/default/,
      readFileSync(join(out, 'through-guard.err'), 'utf8'),
    );
    assert.match(r.stderr, /the agent runs as nobody \(uid 65534\)/);
  });

  it('starts a guarded shell when no command is given', async () => {
    const home = join(dir, 'home-shell');
    const kubeconfig = userKubeconfig(join(home, '.kube', 'config'), { token: adminToken() });
    const out = join(dir, 'out-shell');
    mkdirSync(out);
    // The user's $SHELL reads what the user types: here, lines on its stdin.
    const r = await runLocal(
      ['--state-dir', join(dir, 'state-shell')],
      userEnv(home, { KUBECONFIG: kubeconfig, SHELL: '/bin/sh' }),
      dir,
      `echo "$KUBECONFIG" > ${out}/kubeconfig\nkubectl delete deployment web 2> ${out}/delete.err\nexit 0\n`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /a guarded shell: exit it to end the session/);
    assert.match(readFileSync(join(out, 'kubeconfig'), 'utf8'), /state-shell\/session\/kubeconfig/);
    assert.match(readFileSync(join(out, 'delete.err'), 'utf8'), /denied by rule "no-workload-deletes"/);
    assert.equal(r.summary.summary.denied, 1);
  });

  it('hides the kubeconfig from the command with --hide-kubeconfig', async () => {
    const home = join(dir, 'home-3');
    const kubeconfig = userKubeconfig(join(home, '.kube', 'config'), { token: adminToken() });
    const out = join(dir, 'out-3');
    mkdirSync(out);
    const script = [
      `ls -A ${home}/.kube > ${out}/listing`,
      `cat ${kubeconfig} > ${out}/read 2>&1; echo $? > ${out}/read.rc`,
      `kubectl get serviceaccounts -o name > ${out}/through-guard`,
    ].join('\n');
    const r = await runLocal(
      ['--state-dir', join(dir, 'state-3'), '--hide-kubeconfig', '--', 'sh', '-c', script],
      userEnv(home, { KUBECONFIG: kubeconfig }),
      dir,
    );
    const unshareWorks =
      spawnSync('unshare', ['--mount', '--propagation', 'private', '--', 'true']).status === 0;
    if (!unshareWorks) {
      // Where no private mount namespace can be made, the session must not start unguarded.
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /--hide-kubeconfig needs a private mount namespace/);
      return;
    }
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(out, 'listing'), 'utf8'), '', "the kubeconfig's directory is not empty");
    assert.notEqual(readFileSync(join(out, 'read.rc'), 'utf8').trim(), '0');
    assert.match(readFileSync(join(out, 'through-guard'), 'utf8'), /serviceaccount\/default/);
    assert.match(r.stderr, new RegExp(`hidden from the agent: ${home}/.kube`));
    // Outside the session the file is where it was.
    assert.ok(readFileSync(kubeconfig, 'utf8').includes('current-context'));
  });
});
