import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  authorityKeyIdentifier,
  basicConstraints,
  buildCertificate,
  type CertificateSpec,
  caExtensions,
  extKeyUsage,
  ipAddressBytes,
  KEY_USAGE,
  keyIdentifier,
  keyUsage,
  name,
  OID,
  subjectAltName,
  subjectKeyIdentifier,
  toPem,
} from './x509-der.ts';
import { commonNameOf, readCertificate, readSubjectAltName } from './x509-read.ts';

const dir = mkdtempSync(join(tmpdir(), 'x509-der-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** OpenSSL, the reference reader: the test fails (not skips) without it. */
function openssl(args: readonly string[]): { code: number; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error)
    throw new Error(`openssl is needed to check certificates (apt-get install openssl): ${r.error.message}`);
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function write(file: string, text: string): string {
  const path = join(dir, file);
  writeFileSync(path, text);
  return path;
}

const day = 86_400_000;
const now = new Date(Math.floor(Date.now() / 1000) * 1000);

function ca(keys: { publicKey: KeyObject; privateKey: KeyObject }, cn = 'test CA') {
  const subject = name(cn);
  const spec: CertificateSpec = {
    serialNumber: Buffer.of(0x01, 0x02),
    issuer: subject,
    subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 10 * day),
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    extensions: caExtensions(keys.publicKey),
  };
  return { spec, x509: new X509Certificate(buildCertificate(spec)) };
}

function leaf(issuer: ReturnType<typeof ca>, signingKey: KeyObject, over: Partial<CertificateSpec> = {}) {
  const keys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spec: CertificateSpec = {
    serialNumber: Buffer.from('00ff00112233445566778899aabbccdd', 'hex'),
    issuer: issuer.spec.subject,
    subject: name('sidecar', ['system:masters', 'team a']),
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 5 * day),
    publicKey: keys.publicKey,
    signingKey,
    extensions: [
      basicConstraints(false),
      keyUsage([KEY_USAGE.digitalSignature]),
      extKeyUsage([OID.serverAuth, OID.clientAuth]),
      subjectKeyIdentifier(keyIdentifier(keys.publicKey)),
      authorityKeyIdentifier(keyIdentifier(issuer.spec.publicKey)),
      subjectAltName(
        ['localhost', 'kubernetes.default.svc'],
        ['127.0.0.1', '::1', '2001:db8::8:800:200c:417a'],
      ),
    ],
    ...over,
  };
  return { spec, x509: new X509Certificate(buildCertificate(spec)), keys };
}

describe('X.509 certificates written in DER', () => {
  const ecKeys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ecCa = ca(ecKeys);
  const ecLeaf = leaf(ecCa, ecKeys.privateKey);

  it('node:crypto reads them: issuer, signature, names, validity, serial, key usages', () => {
    assert.equal(ecCa.x509.ca, true);
    assert.ok(ecCa.x509.checkIssued(ecCa.x509));
    assert.ok(ecCa.x509.verify(ecKeys.publicKey));
    const x = ecLeaf.x509;
    assert.equal(x.ca, false);
    assert.ok(x.checkIssued(ecCa.x509));
    assert.ok(x.verify(ecKeys.publicKey));
    assert.ok(!x.verify(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey));
    assert.ok(x.checkPrivateKey(ecLeaf.keys.privateKey));
    assert.equal(x.subject, 'CN=sidecar\nO=system:masters\nO=team a');
    assert.equal(x.issuer, 'CN=test CA');
    assert.equal(
      x.subjectAltName,
      'DNS:localhost, DNS:kubernetes.default.svc, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:2001:DB8:0:0:8:800:200C:417A',
    );
    assert.equal(x.checkHost('localhost'), 'localhost');
    assert.equal(x.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(x.checkIP('::1'), '::1');
    assert.equal(x.checkHost('example.com'), undefined);
    assert.equal(x.validFromDate.getTime(), now.getTime() - 60_000);
    assert.equal(x.validToDate.getTime(), now.getTime() + 5 * day);
    assert.equal(x.serialNumber, 'FF00112233445566778899AABBCCDD');
    assert.deepEqual(x.keyUsage, [OID.serverAuth, OID.clientAuth]);
  });

  it('OpenSSL reads them as written and verifies the chain for a TLS server by IP and by name', () => {
    const caFile = write('ca.pem', ecCa.x509.toString());
    const leafFile = write('leaf.pem', ecLeaf.x509.toString());
    const text = openssl(['x509', '-in', leafFile, '-noout', '-text']);
    assert.equal(text.code, 0, text.out);
    for (const line of [
      'Version: 3 (0x2)',
      'Signature Algorithm: ecdsa-with-SHA256',
      'Public Key Algorithm: id-ecPublicKey',
      'NIST CURVE: P-256',
      'X509v3 Basic Constraints: critical\n                CA:FALSE',
      'X509v3 Key Usage: critical\n                Digital Signature\n',
      'TLS Web Server Authentication, TLS Web Client Authentication',
      'DNS:localhost, DNS:kubernetes.default.svc, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:2001:DB8:0:0:8:800:200C:417A',
    ])
      assert.ok(text.out.includes(line), `openssl x509 -text shows ${JSON.stringify(line)}:\n${text.out}`);
    const caText = openssl(['x509', '-in', caFile, '-noout', '-text']).out;
    assert.match(caText, /Basic Constraints: critical\n\s+CA:TRUE/);
    assert.match(caText, /Key Usage: critical\n\s+Digital Signature, Certificate Sign, CRL Sign/);
    for (const check of [
      ['-verify_ip', '127.0.0.1'],
      ['-verify_ip', '::1'],
      ['-verify_hostname', 'localhost'],
    ]) {
      const v = openssl([
        'verify',
        '-x509_strict',
        '-purpose',
        'sslserver',
        '-CAfile',
        caFile,
        ...check,
        leafFile,
      ]);
      assert.equal(v.code, 0, v.out);
      assert.match(v.out, /: OK/);
    }
    const wrong = openssl(['verify', '-CAfile', caFile, '-verify_hostname', 'example.com', leafFile]);
    assert.notEqual(wrong.code, 0, wrong.out);
  });

  it('signs with RSA and Ed25519 keys too, and refuses curves it has no algorithm for', () => {
    for (const keys of [
      generateKeyPairSync('rsa', { modulusLength: 2048 }),
      generateKeyPairSync('ed25519'),
    ]) {
      const root = ca(keys, `${keys.privateKey.asymmetricKeyType} CA`);
      const issued = leaf(root, keys.privateKey);
      assert.ok(root.x509.verify(keys.publicKey));
      assert.ok(issued.x509.verify(keys.publicKey));
      const v = openssl([
        'verify',
        '-x509_strict',
        '-CAfile',
        write('ca2.pem', root.x509.toString()),
        write('leaf2.pem', issued.x509.toString()),
      ]);
      assert.equal(v.code, 0, `${keys.privateKey.asymmetricKeyType}: ${v.out}`);
    }
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    assert.throws(() => ca(p384), /cannot sign a certificate with a ec key on curve secp384r1/);
  });

  it('writes times from 2050 on as GeneralizedTime, and long values with long-form lengths', () => {
    const names = Array.from({ length: 40 }, (_, i) => `host-${i}.agents.example.com`);
    const late = leaf(ecCa, ecKeys.privateKey, {
      notAfter: new Date(Date.UTC(2071, 5, 30, 12, 0, 1)),
      extensions: [subjectAltName(names, [])],
    });
    assert.equal(late.x509.validToDate.toISOString(), '2071-06-30T12:00:01.000Z');
    assert.match(
      openssl(['x509', '-in', write('late.pem', late.x509.toString()), '-noout', '-enddate']).out,
      /Jun 30 12:00:01 2071 GMT/,
    );
    const parts = readCertificate(late.x509.raw);
    assert.deepEqual(readSubjectAltName(parts.extensions.get(OID.subjectAltName) as Buffer).dnsNames, names);
    assert.equal(commonNameOf(parts.issuer), 'test CA');
    assert.ok(late.x509.verify(ecKeys.publicKey));
  });

  it('refuses serial numbers RFC 5280 does not allow', () => {
    for (const serialNumber of [Buffer.alloc(0), Buffer.alloc(3), Buffer.alloc(21, 1)])
      assert.throws(() => leaf(ecCa, ecKeys.privateKey, { serialNumber }), /serial number/);
  });

  it('reads an IP address to its bytes, any IPv6 spelling included', () => {
    const v6 = fc
      .array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
      .chain((groups) =>
        fc.tuple(
          fc.constant(groups),
          fc.integer({ min: 0, max: 7 }),
          fc.integer({ min: 0, max: 8 }),
          fc.boolean(),
        ),
      )
      .map(([groups, from, len, dotted]) => {
        // Zero a run and spell it `::`, optionally with the last 32 bits dotted.
        const g = groups.map((v, i) => (i >= from && i < from + len ? 0 : v));
        const parts = g.map((v) => v.toString(16));
        const [g6 = 0, g7 = 0] = g.slice(6);
        const tail = dotted ? [`${g6 >> 8}.${g6 & 0xff}.${g7 >> 8}.${g7 & 0xff}`] : [];
        const head = dotted ? parts.slice(0, 6) : parts;
        const text =
          len > 1 && from + len <= head.length
            ? `${head.slice(0, from).join(':')}::${[...head.slice(from + len), ...tail].join(':')}`
            : [...head, ...tail].join(':');
        return { g, text };
      });
    fc.assert(
      fc.property(v6, ({ g, text }) => {
        const bytes = ipAddressBytes(text);
        assert.deepEqual(
          [...Array(8).keys()].map((i) => bytes.readUInt16BE(i * 2)),
          g,
          text,
        );
      }),
    );
    assert.deepEqual([...ipAddressBytes('10.0.0.1')], [10, 0, 0, 1]);
    assert.deepEqual(ipAddressBytes('::ffff:1.2.3.4').toString('hex'), '00000000000000000000ffff01020304');
    assert.deepEqual(ipAddressBytes('::').toString('hex'), '0'.repeat(32));
    for (const bad of ['localhost', '1.2.3', 'fe80::1%eth0', ''])
      assert.throws(() => ipAddressBytes(bad), /not an IP address/);
  });
});

describe('PEM', () => {
  it('armours DER in lines of 64', () => {
    const pem = toPem('CERTIFICATE', Buffer.alloc(100, 7));
    const lines = pem.trimEnd().split('\n');
    assert.equal(lines[0], '-----BEGIN CERTIFICATE-----');
    assert.equal(lines.at(-1), '-----END CERTIFICATE-----');
    assert.deepEqual(
      lines.slice(1, -1).map((l) => l.length),
      [64, 64, 8],
    );
    assert.equal(Buffer.from(lines.slice(1, -1).join(''), 'base64').toString('hex'), '07'.repeat(100));
  });
});
