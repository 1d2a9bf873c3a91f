import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
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
