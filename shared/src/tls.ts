/**
 * Certificates with node-forge: a CA, leaves with IP and DNS SANs, PEM in and
 * out. Keys are RSA 2048 (forge delegates generation to Node's native crypto,
 * so it is fast). Used for the sidecar's per-pod CA, the injector's webhook
 * serving certificate and test servers.
 */
import { isIP } from 'node:net';
import forge from 'node-forge';
import { ChaperoneError } from './errors.ts';

export interface KeyPairPem {
  /** PEM certificate. */
  readonly cert: string;
  /** PEM private key (PKCS#1 RSA). Never log it. */
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
  readonly serialNumber: string;
}

export interface CreateCAOptions {
  commonName: string;
  /** Validity; default 365 days. */
  validForMs?: number;
  notBefore?: Date;
  keyBits?: number;
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
  keyBits?: number;
}

const DAY = 86_400_000;
/** Allow for clock skew between machines: certificates are valid from one minute ago. */
const BACKDATE_MS = 60_000;

function serial(): string {
  // Positive, 16 random bytes: leading nibble kept below 8 so the DER integer is positive.
  const hex = forge.util.bytesToHex(forge.random.getBytesSync(16));
  return (Number.parseInt(hex[0] ?? '0', 16) & 0x7).toString(16) + hex.slice(1);
}

function generateKeys(bits: number): forge.pki.rsa.KeyPair {
  return forge.pki.rsa.generateKeyPair({ bits, e: 0x10001 });
}

export function createCA(opts: CreateCAOptions): CertificateAuthority {
  const keys = generateKeys(opts.keyBits ?? 2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  const notBefore = opts.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = new Date(notBefore.getTime() + BACKDATE_MS + (opts.validForMs ?? 365 * DAY));
  const subject = [{ name: 'commonName', value: opts.commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return {
    cert: forge.pki.certificateToPem(cert),
    key: forge.pki.privateKeyToPem(keys.privateKey),
    notAfter: cert.validity.notAfter,
  };
}

export function issueCertificate(opts: IssueOptions): KeyPairPem & { readonly notAfter: Date } {
  let caCert: forge.pki.Certificate;
  let caKey: forge.pki.rsa.PrivateKey;
  try {
    caCert = forge.pki.certificateFromPem(opts.ca.cert);
    caKey = forge.pki.privateKeyFromPem(opts.ca.key) as forge.pki.rsa.PrivateKey;
  } catch (err) {
    throw new ChaperoneError('tls_failed', 'the CA certificate or key is not valid PEM (RSA expected)', {
      cause: err,
    });
  }
  const dnsNames = opts.dnsNames ?? [];
  const ips = opts.ipAddresses ?? [];
  for (const ip of ips) {
    if (isIP(ip) === 0)
      throw new ChaperoneError('tls_failed', `"${ip}" is not an IP address (for an IP SAN)`);
  }
  const keys = generateKeys(opts.keyBits ?? 2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  const notBefore = opts.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter =
    opts.notAfter ?? new Date(notBefore.getTime() + BACKDATE_MS + (opts.validForMs ?? 30 * DAY));
  const subject: forge.pki.CertificateField[] = [{ name: 'commonName', value: opts.commonName }];
  for (const o of opts.organizations ?? []) subject.push({ name: 'organizationName', value: o });
  cert.setSubject(subject);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = [...dnsNames.map((value) => ({ type: 2, value })), ...ips.map((ip) => ({ type: 7, ip }))];
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: opts.server ?? true, clientAuth: opts.client ?? false },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ];
  if (altNames.length > 0) extensions.push({ name: 'subjectAltName', altNames });
  cert.setExtensions(extensions);
  cert.sign(caKey, forge.md.sha256.create());
  return {
    cert: forge.pki.certificateToPem(cert),
    key: forge.pki.privateKeyToPem(keys.privateKey),
    notAfter: cert.validity.notAfter,
  };
}

/** Reads the facts of the first certificate in a PEM bundle. */
export function inspectCertificate(pem: string): CertificateInfo {
  let cert: forge.pki.Certificate;
  try {
    cert = forge.pki.certificateFromPem(pem);
  } catch (err) {
    throw new ChaperoneError('tls_failed', 'not a PEM certificate', { cause: err });
  }
  const cn = (attrs: forge.pki.Certificate['subject']) => String(attrs.getField('CN')?.value ?? '');
  const san = cert.getExtension('subjectAltName') as {
    altNames?: { type: number; value?: string; ip?: string }[];
  } | null;
  const bc = cert.getExtension('basicConstraints') as { cA?: boolean } | null;
  return {
    subjectCommonName: cn(cert.subject),
    issuerCommonName: cn(cert.issuer),
    notBefore: cert.validity.notBefore,
    notAfter: cert.validity.notAfter,
    dnsNames: (san?.altNames ?? []).filter((a) => a.type === 2).map((a) => a.value ?? ''),
    ipAddresses: (san?.altNames ?? []).filter((a) => a.type === 7).map((a) => a.ip ?? ''),
    isCA: bc?.cA === true,
    serialNumber: cert.serialNumber,
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
