// Exec credential plugins are real shell scripts here; the API server is a
// local HTTPS test server (no cloud provider's plugin can run in a test).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KubeClient } from './client.ts';
import { type ExecConfig, execCredentials, runExecCredential } from './exec-credential.ts';
import { sendJson, startTestApiServer, type TestApiServer } from './test-server.ts';

const dir = mkdtempSync(join(tmpdir(), 'exec-credential-'));
const env = { PATH: process.env.PATH };
const V1 = 'client.authentication.k8s.io/v1';
const V1BETA1 = 'client.authentication.k8s.io/v1beta1';

/**
 * A plugin script that counts its runs in `<name>.runs`, records the
 * KUBERNETES_EXEC_INFO it saw in `<name>.info`, and prints the credential
 * `status(run)` builds (run is 1, 2, …).
 */
function plugin(name: string, apiVersion: string, status: (run: number) => Record<string, unknown>): string {
  const path = join(dir, `${name}.sh`);
  const outputs = [1, 2, 3, 4].map((n) => {
    const file = join(dir, `${name}.out${n}`);
    writeFileSync(file, JSON.stringify({ apiVersion, kind: 'ExecCredential', status: status(n) }));
    return `${n}) cat '${file}' ;;`;
  });
  writeFileSync(
    path,
    [
      '#!/bin/sh',
      `runs=$(( $(cat '${dir}/${name}.runs' 2>/dev/null || echo 0) + 1 ))`,
      `echo $runs > '${dir}/${name}.runs'`,
      `printf '%s' "$KUBERNETES_EXEC_INFO" > '${dir}/${name}.info'`,
      'case $runs in',
      ...outputs,
      '*) exit 9 ;;',
      'esac',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return path;
}

const runs = (name: string) => Number(readFileSync(join(dir, `${name}.runs`), 'utf8'));
const info = (name: string) => JSON.parse(readFileSync(join(dir, `${name}.info`), 'utf8'));

describe('exec credential plugins', () => {
  it('runs the plugin with its env and KUBERNETES_EXEC_INFO, relative to the kubeconfig', async () => {
    const script = join(dir, 'envy.sh');
    writeFileSync(
      script,
      `#!/bin/sh\necho "{\\"apiVersion\\":\\"${V1}\\",\\"kind\\":\\"ExecCredential\\",\\"status\\":{\\"token\\":\\"t-$TOKEN_PREFIX\\"}}"\n`,
      { mode: 0o755 },
    );
    const cfg: ExecConfig = {
      apiVersion: V1,
      command: './envy.sh',
      env: [{ name: 'TOKEN_PREFIX', value: 'abc' }],
      interactiveMode: 'Never',
    };
    assert.deepEqual(await runExecCredential(cfg, { baseDir: dir, env }), { token: 't-abc' });

    plugin('info', V1BETA1, () => ({ token: 'x' }));
    await runExecCredential(
      { apiVersion: V1BETA1, command: './info.sh', provideClusterInfo: true },
      { baseDir: dir, env, cluster: { server: 'https://k:6443', 'certificate-authority-data': 'Q0E=' } },
    );
    assert.deepEqual(info('info'), {
      apiVersion: V1BETA1,
      kind: 'ExecCredential',
      spec: {
        interactive: false,
        cluster: { server: 'https://k:6443', 'certificate-authority-data': 'Q0E=' },
      },
    });
  });

  it('caches the credential until shortly before expirationTimestamp, and runs once for concurrent callers', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    plugin('expiring', V1, (n) => ({ token: `token-${n}`, expirationTimestamp: '2030-01-01T00:10:00Z' }));
    const source = execCredentials(
      { apiVersion: V1, command: './expiring.sh' },
      { baseDir: dir, env, now: () => now },
    );
    const first = await Promise.all([source.current(), source.current(), source.current()]);
    assert.deepEqual(
      first.map((c) => c.token),
      ['token-1', 'token-1', 'token-1'],
    );
    assert.equal(runs('expiring'), 1, 'concurrent callers share one run');
    now += 9 * 60_000;
    assert.equal((await source.current()).token, 'token-1', 'still valid: no new run');
    assert.equal(runs('expiring'), 1);
    now += 40_000; // 20 s before expiry
    assert.equal((await source.current()).token, 'token-2', 'renewed ahead of expiry');
    source.refused?.();
    assert.equal((await source.current()).token, 'token-3', 'a refused credential is fetched anew');
  });

  it('explains plugins that are missing, fail or print something else', async () => {
    await assert.rejects(
      runExecCredential({ command: 'no-such-plugin', installHint: 'install it\n' }, { baseDir: dir, env }),
      /credential plugin "no-such-plugin" could not run: .*\(install it\)/,
    );
    writeFileSync(join(dir, 'fails.sh'), '#!/bin/sh\necho "token expired, log in again" >&2\nexit 4\n', {
      mode: 0o755,
    });
    await assert.rejects(
      runExecCredential({ command: './fails.sh' }, { baseDir: dir, env }),
      /"\.\/fails\.sh" failed \(4\): token expired, log in again/,
    );
    writeFileSync(join(dir, 'chatty.sh'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
    await assert.rejects(
      runExecCredential({ command: './chatty.sh' }, { baseDir: dir, env }),
      /did not print an ExecCredential/,
    );
    plugin('other-version', V1BETA1, () => ({ token: 'x' }));
    await assert.rejects(
      runExecCredential({ apiVersion: V1, command: './other-version.sh' }, { baseDir: dir, env }),
      /answered client\.authentication\.k8s\.io\/v1beta1; the kubeconfig asks for client\.authentication\.k8s\.io\/v1/,
    );
    plugin('empty', V1, () => ({}));
    await assert.rejects(
      runExecCredential({ apiVersion: V1, command: './empty.sh' }, { baseDir: dir, env }),
      /neither a token nor a client certificate/,
    );
    plugin('half', V1, () => ({ clientCertificateData: 'CERT' }));
    await assert.rejects(
      runExecCredential({ apiVersion: V1, command: './half.sh' }, { baseDir: dir, env }),
      /client certificate without its key/,
    );
    await assert.rejects(
      runExecCredential(
        { apiVersion: 'client.authentication.k8s.io/v1alpha1', command: 'x' },
        { baseDir: dir, env },
      ),
      /asks for client\.authentication\.k8s\.io\/v1alpha1/,
    );
    await assert.rejects(
      runExecCredential({ apiVersion: V1, command: 'x', interactiveMode: 'Always' }, { baseDir: dir, env }),
      /needs a terminal/,
    );
  });
});

describe('KubeClient with an exec plugin', () => {
  const servers: TestApiServer[] = [];
  const clients: KubeClient[] = [];
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(servers.map((s) => s.close()));
  });

  /** A client of `s` whose credentials come from the plugin `name` (made with `plugin`). */
  function execClient(s: TestApiServer, name: string, apiVersion: string): KubeClient {
    servers.push(s);
    const credentials = execCredentials({ apiVersion, command: `./${name}.sh` }, { baseDir: dir, env });
    const c = new KubeClient({ server: s.url, ca: s.ca, credentials, source: 'test' });
    clients.push(c);
    return c;
  }

  it("sends the plugin's token, and runs the plugin again after a 401", async () => {
    const s = await startTestApiServer((r, res) =>
      r.authorization === 'Bearer token-1'
        ? sendJson(res, 401, { kind: 'Status', reason: 'Unauthorized', code: 401 })
        : sendJson(res, 200, { auth: r.authorization }),
    );
    plugin('rotating', V1, (n) => ({ token: `token-${n}` })); // no expiry: cached until refused
    const c = execClient(s, 'rotating', V1);
    assert.equal((await c.request('GET', '/version')).status, 401);
    assert.deepEqual(await c.get('/version'), { auth: 'Bearer token-2' });
    assert.deepEqual(await c.get('/version'), { auth: 'Bearer token-2' });
    assert.equal(runs('rotating'), 2);
  });

  it("presents the plugin's client certificate, and the renewed one after expiry", async () => {
    const s = await startTestApiServer((r, res) => sendJson(res, 200, { user: r.clientName }), {
      clientAuth: true,
    });
    const certs = [s.clientCertificate('exec-user-1'), s.clientCertificate('exec-user-2')];
    // Expired at once: every call runs the plugin again.
    plugin('certs', V1BETA1, (n) => {
      const kp = certs[Math.min(n, 2) - 1];
      return {
        clientCertificateData: kp?.cert,
        clientKeyData: kp?.key,
        expirationTimestamp: '2000-01-01T00:00:00Z',
      };
    });
    const c = execClient(s, 'certs', V1BETA1);
    assert.deepEqual(await c.get('/whoami'), { user: 'exec-user-1' });
    assert.deepEqual(await c.get('/whoami'), { user: 'exec-user-2' });
  });
});
