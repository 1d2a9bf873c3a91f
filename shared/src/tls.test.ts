import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { createCA, inspectCertificate, issueCertificate, needsRenewal, splitPemBundle } from './tls.ts';

type Handshake = { ok: true; peerCN: string } | { ok: false; code: string };

async function handshake(
  server: { cert: string; key: string },
  client: { ca: string; servername?: string; host?: string },
): Promise<Handshake> {
  const srv = tls.createServer({ cert: server.cert, key: server.key }, (s) => s.end('hello'));
  srv.on('tlsClientError', () => {});
  srv.listen(0, client.host ?? '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  try {
    return await new Promise<Handshake>((resolve) => {
      const sock = tls.connect({
        host: client.host ?? '127.0.0.1',
        port,
        ca: client.ca,
        ...(client.servername ? { servername: client.servername } : {}),
      });
      sock.once('secureConnect', () => {
        const cn = String(sock.getPeerCertificate().subject?.CN ?? '');
        sock.destroy();
        resolve({ ok: true, peerCN: cn });
      });
      sock.once('error', (err: NodeJS.ErrnoException) =>
        resolve({ ok: false, code: err.code ?? err.message }),
      );
    });
  } finally {
    srv.close();
  }
}

describe('tls helpers', () => {
  let ca: ReturnType<typeof createCA>;
  before(() => {
    ca = createCA({ commonName: 'chaperone test CA' });
  });

  it('creates a CA that reads back as a CA', () => {
    const info = inspectCertificate(ca.cert);
    assert.equal(info.isCA, true);
    assert.equal(info.subjectCommonName, 'chaperone test CA');
    assert.equal(info.issuerCommonName, 'chaperone test CA');
    assert.ok(info.notAfter.getTime() > Date.now() + 300 * 86_400_000);
  });

  it('issues a leaf with DNS and IP SANs that a real TLS client accepts by IP and by name', async () => {
    const leaf = issueCertificate({
      ca,
      commonName: 'sidecar',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
    });
    const info = inspectCertificate(leaf.cert);
    assert.deepEqual(info.dnsNames, ['localhost']);
    assert.deepEqual(info.ipAddresses, ['127.0.0.1', '::1']);
    assert.equal(info.isCA, false);
    assert.equal(info.issuerCommonName, 'chaperone test CA');

    assert.deepEqual(await handshake(leaf, { ca: ca.cert }), { ok: true, peerCN: 'sidecar' });
    assert.deepEqual(await handshake(leaf, { ca: ca.cert, servername: 'localhost' }), {
      ok: true,
      peerCN: 'sidecar',
    });
    assert.deepEqual(await handshake(leaf, { ca: ca.cert, host: '::1' }), { ok: true, peerCN: 'sidecar' });
  });

  it('issues EC P-256 certificates that OpenSSL verifies strictly against the CA, for servers or clients', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tls-openssl-'));
    try {
      const caFile = join(dir, 'ca.pem');
      writeFileSync(caFile, ca.cert);
      const verify = (pem: string, purpose: string) => {
        const file = join(dir, 'leaf.pem');
        writeFileSync(file, pem);
        const r = spawnSync(
          'openssl',
          ['verify', '-x509_strict', '-purpose', purpose, '-CAfile', caFile, file],
          {
            encoding: 'utf8',
          },
        );
        if (r.error) throw new Error(`openssl is needed for this test: ${r.error.message}`);
        return `${r.stdout}${r.stderr}`;
      };
      const server = issueCertificate({ ca, commonName: 'sidecar', ipAddresses: ['127.0.0.1'] });
      assert.match(verify(server.cert, 'sslserver'), /: OK/);
      assert.doesNotMatch(verify(server.cert, 'sslclient'), /: OK/);
      const client = issueCertificate({
        ca,
        commonName: 'admin',
        organizations: ['system:masters'],
        server: false,
        client: true,
      });
      assert.match(verify(client.cert, 'sslclient'), /: OK/);
      const x = new X509Certificate(client.cert);
      assert.equal(x.subject, 'CN=admin\nO=system:masters');
      assert.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      assert.ok(x.checkIssued(new X509Certificate(ca.cert)));
      assert.match(client.key, /^-----BEGIN PRIVATE KEY-----\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a CA key that is not the CA certificate's", () => {
    const other = createCA({ commonName: 'someone else' });
    assert.throws(
      () => issueCertificate({ ca: { cert: ca.cert, key: other.key }, commonName: 'x' }),
      /the CA key does not belong to the CA certificate/,
    );
  });

  it('a wrong host name is rejected', async () => {
    const leaf = issueCertificate({
      ca,
      commonName: 'sidecar',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
    });
    const res = await handshake(leaf, { ca: ca.cert, servername: 'api.example.com' });
    assert.deepEqual(res, { ok: false, code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('an expired leaf is rejected', async () => {
    const notBefore = new Date(Date.now() - 3 * 86_400_000);
    const leaf = issueCertificate({
      ca,
      commonName: 'old',
      ipAddresses: ['127.0.0.1'],
      notBefore,
      notAfter: new Date(Date.now() - 86_400_000),
    });
    assert.equal(needsRenewal(leaf.cert), true);
    assert.deepEqual(await handshake(leaf, { ca: ca.cert }), { ok: false, code: 'CERT_HAS_EXPIRED' });
  });

  it('a leaf from another CA is rejected', async () => {
    const other = createCA({ commonName: 'someone else' });
    const leaf = issueCertificate({ ca: other, commonName: 'x', ipAddresses: ['127.0.0.1'] });
    const res = await handshake(leaf, { ca: ca.cert });
    assert.equal(res.ok, false);
    assert.match((res as { code: string }).code, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED/);
  });

  it('renewal is due only near the end of life', () => {
    const leaf = issueCertificate({ ca, commonName: 'x', validForMs: 10 * 86_400_000 });
    assert.equal(needsRenewal(leaf.cert), false);
    assert.equal(needsRenewal(leaf.cert, new Date(Date.now() + 9.5 * 86_400_000)), true);
  });

  it('splits bundles and refuses bad input with a clear error', () => {
    assert.equal(splitPemBundle(ca.cert + ca.cert).length, 2);
    assert.throws(() => inspectCertificate('nope'), /not a PEM certificate/);
    assert.throws(() => issueCertificate({ ca: { cert: 'x', key: 'y' }, commonName: 'x' }), /not valid PEM/);
    assert.throws(
      () => issueCertificate({ ca, commonName: 'x', ipAddresses: ['localhost'] }),
      /not an IP address/,
    );
  });
});

after(() => {});
