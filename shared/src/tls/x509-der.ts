/**
 * X.509 v3 certificates written in DER (RFC 5280 section 4) and signed with
 * node:crypto, which makes and uses keys natively but cannot build a
 * certificate. Only what Chaperone issues: a name of a common name and
 * organisations, and the extensions below.
 *
 *   Certificate    ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
 *   TBSCertificate ::= SEQUENCE { version [0] EXPLICIT (2 = v3), serialNumber, signature,
 *                                 issuer, validity, subject, subjectPublicKeyInfo,
 *                                 extensions [3] EXPLICIT SEQUENCE OF Extension }
 *   Extension      ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
 */
import { createHash, type KeyObject, sign } from 'node:crypto';
import { isIP } from 'node:net';
import { ChaperoneError } from '../errors.ts';
import {
  bitString,
  boolean,
  children,
  contextTag,
  ia5Bytes,
  namedBits,
  nullValue,
  octetString,
  oid,
  readTlv,
  sequence,
  setOf,
  smallInteger,
  tlv,
  unsignedInteger,
  utf8String,
  x509Time,
} from './der.ts';

export const OID = {
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  ed25519: '1.3.101.112',
} as const;

/** keyUsage bits (RFC 5280 4.2.1.3). */
export const KEY_USAGE = {
  digitalSignature: 0,
  keyEncipherment: 2,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  /** The DER of the extension's value (what extnValue's OCTET STRING holds). */
  readonly value: Buffer;
}

export interface CertificateSpec {
  /** Big-endian magnitude of a positive serial number (at most 20 bytes). */
  readonly serialNumber: Uint8Array;
  /** DER Names (name() below, or the subject read from the issuer's certificate). */
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKey: KeyObject;
  /** The issuer's private key (the subject's own for a self-signed certificate). */
  readonly signingKey: KeyObject;
  readonly extensions: readonly Extension[];
}

/** A Name of one common name, then one RDN per organisation. */
export function name(commonName: string, organizations: readonly string[] = []): Buffer {
  const rdn = (type: string, value: string) => setOf(sequence(oid(type), utf8String(value)));
  return sequence(rdn(OID.commonName, commonName), ...organizations.map((o) => rdn(OID.organizationName, o)));
}

/** The signature algorithm a key signs with, and how to call crypto.sign for it. */
function signatureOf(key: KeyObject): { algorithm: Buffer; digest: string | null } {
  switch (key.asymmetricKeyType) {
    case 'ec':
      if (key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') break;
      // ecdsa-with-SHA256: parameters absent (RFC 5758 3.2).
      return { algorithm: sequence(oid(OID.ecdsaWithSha256)), digest: 'sha256' };
    case 'rsa':
      // sha256WithRSAEncryption: parameters NULL (RFC 4055 5).
      return { algorithm: sequence(oid(OID.sha256WithRsa), nullValue()), digest: 'sha256' };
    case 'ed25519':
      return { algorithm: sequence(oid(OID.ed25519)), digest: null };
  }
  throw new ChaperoneError(
    'tls_failed',
    `cannot sign a certificate with a ${key.asymmetricKeyType} key${key.asymmetricKeyType === 'ec' ? ` on curve ${key.asymmetricKeyDetails?.namedCurve}` : ''}: use EC P-256, RSA or Ed25519`,
  );
}

export function buildCertificate(spec: CertificateSpec): Buffer {
  if (
    spec.serialNumber.length === 0 ||
    spec.serialNumber.length > 20 ||
    spec.serialNumber.every((b) => b === 0)
  )
    throw new RangeError('a serial number is 1 to 20 bytes and not zero (RFC 5280 4.1.2.2)');
  const { algorithm, digest } = signatureOf(spec.signingKey);
  const spki = spec.publicKey.export({ type: 'spki', format: 'der' });
  const extensions = spec.extensions.map((e) =>
    sequence(oid(e.oid), ...(e.critical ? [boolean(true)] : []), octetString(e.value)),
  );
  const tbs = sequence(
    tlv(contextTag(0, true), smallInteger(2)),
    unsignedInteger(spec.serialNumber),
    algorithm,
    spec.issuer,
    sequence(x509Time(spec.notBefore), x509Time(spec.notAfter)),
    spec.subject,
    spki,
    ...(extensions.length > 0 ? [tlv(contextTag(3, true), sequence(...extensions))] : []),
  );
  const signature = sign(digest, tbs, spec.signingKey);
  return sequence(tbs, algorithm, bitString(signature));
}

/** PEM armour: base64 in lines of 64 (RFC 7468). */
export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

// ---------------------------------------------------------------- extensions

export function basicConstraints(ca: boolean): Extension {
  // cA defaults to FALSE, and DER leaves defaults out: a leaf's value is an empty SEQUENCE.
  return { oid: OID.basicConstraints, critical: true, value: ca ? sequence(boolean(true)) : sequence() };
}

export function keyUsage(bits: readonly number[]): Extension {
  return { oid: OID.keyUsage, critical: true, value: namedBits(bits) };
}

export function extKeyUsage(purposes: readonly string[]): Extension {
  return { oid: OID.extKeyUsage, critical: false, value: sequence(...purposes.map((p) => oid(p))) };
}

/** Key identifier (RFC 5280 4.2.1.2, method 1): SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const [, key] = children(readTlv(spki).value);
  if (!key) throw new ChaperoneError('tls_failed', 'malformed DER: a public key without its bits');
  return createHash('sha1').update(key.value.subarray(1)).digest();
}

export function subjectKeyIdentifier(id: Buffer): Extension {
  return { oid: OID.subjectKeyIdentifier, critical: false, value: octetString(id) };
}

/** What a CA certificate carries: cA, certificate and CRL signing, its key identifier. */
export function caExtensions(publicKey: KeyObject): Extension[] {
  return [
    basicConstraints(true),
    keyUsage([KEY_USAGE.digitalSignature, KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign]),
    subjectKeyIdentifier(keyIdentifier(publicKey)),
  ];
}

/** AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING, … } */
export function authorityKeyIdentifier(id: Buffer): Extension {
  return { oid: OID.authorityKeyIdentifier, critical: false, value: sequence(tlv(contextTag(0, false), id)) };
}

/** The 4 or 16 bytes of an IP address (IPv6 with `::` and a dotted IPv4 tail read too). */
export function ipAddressBytes(ip: string): Buffer {
  const family = ip.includes('%') ? 0 : isIP(ip);
  if (family === 4) return Buffer.from(ip.split('.').map(Number));
  if (family !== 6) throw new ChaperoneError('tls_failed', `"${ip}" is not an IP address (for an IP SAN)`);
  let text = ip;
  const tail: number[] = [];
  const v4 = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (v4) {
    const [a, b, c, d] = v4.slice(2).map(Number) as [number, number, number, number];
    tail.push((a << 8) | b, (c << 8) | d);
    const head = v4[1] as string;
    text = head.endsWith('::') ? head : head.slice(0, -1);
  }
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const [before, after] = text.split('::').map(groups) as [number[], number[] | undefined];
  const all = after
    ? [
        ...before,
        ...new Array<number>(8 - before.length - after.length - tail.length).fill(0),
        ...after,
        ...tail,
      ]
    : [...before, ...tail];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => {
    out.writeUInt16BE(g, i * 2);
  });
  return out;
}

/** subjectAltName: dNSName [2] IA5String, iPAddress [7] OCTET STRING. */
export function subjectAltName(dnsNames: readonly string[], ipAddresses: readonly string[]): Extension {
  return {
    oid: OID.subjectAltName,
    critical: false,
    value: sequence(
      ...dnsNames.map((d) => tlv(contextTag(2, false), ia5Bytes(d))),
      ...ipAddresses.map((ip) => tlv(contextTag(7, false), ipAddressBytes(ip))),
    ),
  };
}
