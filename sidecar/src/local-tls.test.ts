import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connect, createServer } from 'node:tls';
import { buildCertificate, caExtensions, name, toPem } from '@chaperone/shared/tls';
import { ensureLocalTls, type LocalTls } from './local-tls.ts';

/** What a client verifying the local CA reads from the sidecar at 127.0.0.1. */
async function served(tls: LocalTls): Promise<string> {
  const server = createServer({ cert: tls.leaf.cert, key: tls.leaf.key }, (s) => s.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    return await new Promise<string>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, ca: tls.ca.cert });
      let got = '';
      s.on('data', (d) => {
        got += d;
      });
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
  } finally {
    server.close();
  }
}

describe('the local TLS material', () => {
  const dir = mkdtempSync(join(tmpdir(), 'local-tls-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves TLS that verifies against the local CA for 127.0.0.1, and keeps the CA across restarts', async () => {
    const tlsDir = join(dir, 'tls');
    const first = ensureLocalTls(tlsDir, 'agent-0');
    assert.ok(first.leafNotAfter.getTime() > Date.now());
    assert.equal(
      new X509Certificate(first.leaf.cert).publicKey.asymmetricKeyDetails?.namedCurve,
      'prime256v1',
    );
    assert.equal(await served(first), 'ok');
    assert.equal(statSync(join(tlsDir, 'ca.key')).mode & 0o777, 0o600);
    const second = ensureLocalTls(tlsDir, 'agent-0');
    assert.equal(second.ca.cert, first.ca.cert);
    assert.notEqual(second.leaf.cert, first.leaf.cert);
  });

  it('keeps issuing from a CA an earlier version left with an RSA key (PKCS#1), so agents keep trusting it', async () => {
    const tlsDir = join(dir, 'rsa');
    ensureLocalTls(tlsDir, 'agent-0');
    const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const subject = name('chaperone local CA for agent-0');
    const caCert = toPem(
      'CERTIFICATE',
      buildCertificate({
        serialNumber: Buffer.of(1),
        issuer: subject,
        subject,
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 3650 * 86_400_000),
        publicKey: keys.publicKey,
        signingKey: keys.privateKey,
        // As the CA was made before: RSA 2048, PKCS#1 key, the same extensions.
        extensions: caExtensions(keys.publicKey),
      }),
    );
    writeFileSync(join(tlsDir, 'ca.crt'), caCert);
    writeFileSync(join(tlsDir, 'ca.key'), keys.privateKey.export({ type: 'pkcs1', format: 'pem' }));
    const tls = ensureLocalTls(tlsDir, 'agent-0');
    assert.equal(tls.ca.cert, caCert);
    assert.equal(readFileSync(join(tlsDir, 'ca.crt'), 'utf8'), caCert);
    assert.equal(await served(tls), 'ok');
  });

  it('refuses to start with a CA on disk whose key is not its own, saying how to make a new one', () => {
    const tlsDir = join(dir, 'mixed');
    ensureLocalTls(tlsDir, 'agent-0');
    const other = ensureLocalTls(join(dir, 'other'), 'agent-0');
    writeFileSync(join(tlsDir, 'ca.key'), other.ca.key);
    assert.throws(
      () => ensureLocalTls(tlsDir, 'agent-0'),
      /the local CA in .*mixed cannot be used \(the CA key does not belong to the CA certificate.*\): remove ca.crt and ca.key there/,
    );
    writeFileSync(join(tlsDir, 'ca.crt'), 'not a certificate');
    assert.throws(() => ensureLocalTls(tlsDir, 'agent-0'), /cannot be used \(not a PEM certificate\)/);
  });
});
