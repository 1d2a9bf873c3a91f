/**
 * Certificates: a CA, leaves with IP and DNS SANs, PEM in and out. Keys are
 * EC P-256, made natively by node:crypto (about a millisecond); certificates
 * are written by tls/x509-der.ts and signed with crypto.sign. Used for the
 * sidecar's per-pod CA, the injector's webhook serving certificate and test
 * servers. A CA made before with an RSA key (PKCS#1 or PKCS#8) still issues.
 */
import {
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  X509Certificate,
} from 'node:crypto';
import { ChaperoneError } from './errors.ts';
import {
  authorityKeyIdentifier,
  basicConstraints,
  buildCertificate,
  caExtensions,
  type Extension,
  extKeyUsage,
  KEY_USAGE,
  keyIdentifier,
  keyUsage,
  name,
  OID,
  subjectAltName,
  subjectKeyIdentifier,
  toPem,
} from './tls/x509-der.ts';
import { commonNameOf, readCertificate, readKeyIdentifier, readSubjectAltName } from './tls/x509-read.ts';

/** The certificate builder itself, for certificates of other shapes (a CA with an RSA key in tests). */
export { buildCertificate, caExtensions, name, toPem } from './tls/x509-der.ts';

export interface KeyPairPem {
  /** PEM certificate. */
  readonly cert: string;
  /** PEM private key (PKCS#8). Never log it. */
  readonly key: string;
}

export interface CertificateAuthority extends KeyPairPem {
  readonly notAfter: Date;
}

export interface CertificateInfo {
  readonly subjectCommonName: string;
  readonly issuerCommonName: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly isCA: boolean;
  /** Lower-case hex. */
  readonly serialNumber: string;
}

export interface CreateCAOptions {
  commonName: string;
  /** Validity; default 365 days. */
  validForMs?: number;
  notBefore?: Date;
}

export interface IssueOptions {
  ca: KeyPairPem;
  commonName: string;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  /** Validity; default 30 days. Ignored when `notAfter` is given. */
  validForMs?: number;
  notBefore?: Date;
  notAfter?: Date;
  /** serverAuth (default true) and clientAuth (default false) extended key usages. */
  server?: boolean;
  client?: boolean;
  /** Subject organisations, e.g. `system:masters` for a Kubernetes client cert. */
  organizations?: readonly string[];
}

const DAY = 86_400_000;
/** Allow for clock skew between machines: certificates are valid from one minute ago. */
const BACKDATE_MS = 60_000;

/** 16 random bytes, top bits 01: positive, never zero, never padded. */
function serial(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x3f) | 0x40;
  return bytes;
}

function generateKeys(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

function keyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

export function createCA(opts: CreateCAOptions): CertificateAuthority {
  const keys = generateKeys();
  const subject = name(opts.commonName);
  const notBefore = opts.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  const notAfter = new Date(notBefore.getTime() + BACKDATE_MS + (opts.validForMs ?? 365 * DAY));
  const der = buildCertificate({
    serialNumber: serial(),
    issuer: subject,
    subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    extensions: caExtensions(keys.publicKey),
  });
  return { cert: toPem('CERTIFICATE', der), key: keyPem(keys.privateKey), notAfter: wholeSeconds(notAfter) };
}

/** Certificates hold whole seconds. */
function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

function readCA(ca: KeyPairPem): { cert: X509Certificate; key: KeyObject } {
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(ca.cert);
    key = createPrivateKey(ca.key);
  } catch (err) {
    throw new ChaperoneError('tls_failed', 'the CA certificate or key is not valid PEM', { cause: err });
  }
  if (!cert.checkPrivateKey(key))
    throw new ChaperoneError(
      'tls_failed',
      'the CA key does not belong to the CA certificate: give the key the certificate was made with',
    );
  return { cert, key };
}

export function issueCertificate(opts: IssueOptions): KeyPairPem & { readonly notAfter: Date } {
  const ca = readCA(opts.ca);
  const caParts = readCertificate(ca.cert.raw);
  const dnsNames = opts.dnsNames ?? [];
  const ips = opts.ipAddresses ?? [];
  const keys = generateKeys();
  const notBefore = opts.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  const notAfter =
    opts.notAfter ?? new Date(notBefore.getTime() + BACKDATE_MS + (opts.validForMs ?? 30 * DAY));
  const purposes = [
    ...((opts.server ?? true) ? [OID.serverAuth] : []),
    ...(opts.client ? [OID.clientAuth] : []),
  ];
  const caKeyId = caParts.extensions.get(OID.subjectKeyIdentifier);
  const extensions: Extension[] = [
    basicConstraints(false),
    // An EC key signs (ECDHE); it never encrypts a key, so no keyEncipherment.
    keyUsage([KEY_USAGE.digitalSignature]),
    ...(purposes.length > 0 ? [extKeyUsage(purposes)] : []),
    subjectKeyIdentifier(keyIdentifier(keys.publicKey)),
    authorityKeyIdentifier(caKeyId ? readKeyIdentifier(caKeyId) : keyIdentifier(ca.cert.publicKey)),
    ...(dnsNames.length + ips.length > 0 ? [subjectAltName(dnsNames, ips)] : []),
  ];
  const der = buildCertificate({
    serialNumber: serial(),
    issuer: caParts.subject,
    subject: name(opts.commonName, opts.organizations),
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions,
  });
  return { cert: toPem('CERTIFICATE', der), key: keyPem(keys.privateKey), notAfter: wholeSeconds(notAfter) };
}

/** Reads the facts of the first certificate in a PEM bundle. */
export function inspectCertificate(pem: string): CertificateInfo {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(splitPemBundle(pem)[0] ?? pem);
  } catch (err) {
    throw new ChaperoneError('tls_failed', 'not a PEM certificate', { cause: err });
  }
  const parts = readCertificate(cert.raw);
  const san = parts.extensions.get(OID.subjectAltName);
  const { dnsNames, ipAddresses } = san ? readSubjectAltName(san) : { dnsNames: [], ipAddresses: [] };
  return {
    subjectCommonName: commonNameOf(parts.subject),
    issuerCommonName: commonNameOf(parts.issuer),
    notBefore: cert.validFromDate,
    notAfter: cert.validToDate,
    dnsNames,
    ipAddresses,
    isCA: cert.ca,
    serialNumber: cert.serialNumber.toLowerCase(),
  };
}

/** Splits a PEM bundle into its certificates. */
export function splitPemBundle(pem: string): string[] {
  return (
    pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((c) => `${c}\n`) ?? []
  );
}

/** True when the certificate's remaining life is below `fraction` of its total life (renewal point). */
export function needsRenewal(pem: string, now = new Date(), fraction = 0.1): boolean {
  const { notBefore, notAfter } = inspectCertificate(pem);
  const total = notAfter.getTime() - notBefore.getTime();
  return notAfter.getTime() - now.getTime() <= total * fraction;
}
