import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createServer, type TLSSocket } from 'node:tls';
import { createLogger } from '@chaperone/shared';
import type { CredentialSource, KubeCredentials } from '@chaperone/shared/kube';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { derivedAuditID, Upstream } from './upstream.ts';

describe('upstream credentials', () => {
  const dir = mkdtempSync(join(tmpdir(), 'upstream-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('re-reads a rotated token, and never takes one that could break the request head', async () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'first.token-value\n');
    const up = new Upstream({
      url: 'https://127.0.0.1:1',
      ca: '',
      tokenFile: file,
      log: createLogger({ name: 't', level: 'silent' }),
    });
    try {
      assert.equal(up.authorization, 'Bearer first.token-value');
      writeFileSync(file, 'second.token-value');
      up.refreshToken();
      assert.equal(up.authorization, 'Bearer second.token-value');
      writeFileSync(file, 'evil\r\nimpersonate-user: admin');
      up.refreshToken();
      assert.equal(up.authorization, 'Bearer second.token-value');
    } finally {
      await up.close();
    }
  });
});

describe('upstream credentials from a kubeconfig context', () => {
  const log = createLogger({ name: 't', level: 'silent' });

  /** A source whose credentials the test sets, counting what the upstream asked. */
  function source(first: KubeCredentials) {
    let now = first;
    const calls = { current: 0, refused: 0 };
    const s: CredentialSource & { set(c: KubeCredentials): void; calls: typeof calls } = {
      calls,
      set: (c) => {
        now = c;
      },
      current: async () => {
        calls.current += 1;
        return now;
      },
      refused: () => {
        calls.refused += 1;
      },
    };
    return s;
  }

  it('uses the source’s token, asks again after a 401, and takes what it gives then', async () => {
    const creds = source({ token: 'first.token' });
    const up = new Upstream({
      url: 'https://127.0.0.1:1',
      credentials: creds,
      log,
      tokenRefreshMs: 3_600_000,
    });
    try {
      await up.ready();
      assert.equal(up.authorization, 'Bearer first.token');
      creds.set({ token: 'second.token' });
      up.refreshToken();
      assert.equal(creds.calls.refused, 1);
      await new Promise((r) => setImmediate(r));
      assert.equal(up.authorization, 'Bearer second.token');
      creds.set({ token: 'evil\r\nimpersonate-user: admin' });
      up.refreshToken();
      await new Promise((r) => setImmediate(r));
      assert.equal(up.authorization, 'Bearer second.token');
    } finally {
      await up.close();
    }
  });

  it('looks at the source periodically, so a plugin’s credential is replaced before it expires', async () => {
    const creds = source({ token: 'first.token' });
    const up = new Upstream({ url: 'https://127.0.0.1:1', credentials: creds, log, tokenRefreshMs: 20 });
    try {
      await up.ready();
      creds.set({ token: 'renewed.token' });
      const deadline = Date.now() + 5000;
      while (up.authorization !== 'Bearer renewed.token' && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      assert.equal(up.authorization, 'Bearer renewed.token');
      assert.equal(creds.calls.refused, 0);
    } finally {
      await up.close();
    }
  });

  it('says at start when no credentials could be had', async () => {
    const failing: CredentialSource = {
      current: () => Promise.reject(new Error('the plugin failed')),
    };
    const up = new Upstream({ url: 'https://127.0.0.1:1', credentials: failing, log });
    try {
      await assert.rejects(up.ready(), /the plugin failed/);
    } finally {
      await up.close();
    }
  });

  it('presents the source’s client certificate to the API server', async () => {
    const ca = createCA({ commonName: 'test CA', validForMs: 3_600_000 });
    const server = issueCertificate({
      ca,
      commonName: 'server',
      ipAddresses: ['127.0.0.1'],
      validForMs: 3_600_000,
    });
    const client = issueCertificate({
      ca,
      commonName: 'jane',
      server: false,
      client: true,
      validForMs: 3_600_000,
    });
    const seen: string[] = [];
    const tls = createServer(
      { cert: server.cert, key: server.key, ca: ca.cert, requestCert: true },
      (s: TLSSocket) => {
        seen.push(String(s.getPeerCertificate().subject?.CN));
        s.end();
      },
    );
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    const port = (tls.address() as { port: number }).port;
    const up = new Upstream({
      url: `https://127.0.0.1:${port}`,
      ca: ca.cert,
      credentials: source({ clientCert: client.cert, clientKey: client.key }),
      log,
    });
    try {
      await up.ready();
      assert.equal(up.authorization, '');
      const socket = up.pool.openSocket();
      // The server ends the connection once it has seen the client's certificate (or refused it).
      await new Promise<void>((resolve, reject) => {
        socket.on('data', () => {});
        socket.once('end', () => resolve());
        socket.once('close', () => resolve());
        socket.once('error', reject);
      });
      socket.destroy();
      assert.deepEqual(seen, ['jane']);
    } finally {
      await up.close();
      await new Promise((r) => tls.close(r));
    }
  });
});

describe('derived Audit-IDs', () => {
  it('names the guard’s own calls after the request, within what the API server adopts', () => {
    const id = '0b9c1d6e-7f1a-4c2b-9d3e-5f6a7b8c9d0e';
    assert.equal(derivedAuditID(id, 1), `${id}-check-1`);
    assert.throws(() => derivedAuditID('evil\r\nimpersonate-user: admin', 1));
    assert.throws(() => derivedAuditID('a'.repeat(250), 1));
  });
});
