/**
 * What node:crypto's X509Certificate does not give of a certificate, read
 * from its DER (layout in x509-der.ts): the subject Name as encoded (an
 * issued certificate's issuer must match it byte for byte), the common
 * names, the subject key identifier and the subject alternative names.
 */
import { ChaperoneError } from '../errors.ts';
import { children, contextTag, readOid, readTlv, TAG, type Tlv } from './der.ts';
import { OID } from './x509-der.ts';

export interface CertificateParts {
  readonly issuer: Buffer;
  readonly subject: Buffer;
  /** extnID → extnValue's content (the extension's own DER). */
  readonly extensions: ReadonlyMap<string, Buffer>;
}

function malformed(what: string): ChaperoneError {
  return new ChaperoneError('tls_failed', `not an X.509 certificate: ${what}`);
}

export function readCertificate(der: Buffer): CertificateParts {
  const [tbs] = children(readTlv(der).value);
  if (tbs?.tag !== TAG.SEQUENCE) throw malformed('no TBSCertificate');
  const fields = children(tbs.value);
  // version [0] is absent in v1 certificates.
  const at = fields[0]?.tag === contextTag(0, true) ? 1 : 0;
  const issuer = fields[at + 2];
  const subject = fields[at + 4];
  if (issuer?.tag !== TAG.SEQUENCE || subject?.tag !== TAG.SEQUENCE) throw malformed('no issuer or subject');
  const extensions = new Map<string, Buffer>();
  const wrapped = fields.find((f) => f.tag === contextTag(3, true));
  for (const ext of wrapped ? children(readTlv(wrapped.value).value) : []) {
    const parts = children(ext.value);
    const id = parts[0];
    const value = parts[parts.length - 1];
    if (id?.tag !== TAG.OID || value?.tag !== TAG.OCTET_STRING) throw malformed('an unreadable extension');
    extensions.set(readOid(id.value), value.value);
  }
  return { issuer: issuer.raw, subject: subject.raw, extensions };
}

function text(t: Tlv): string {
  return t.value.toString(t.tag === TAG.UTF8_STRING ? 'utf8' : 'latin1');
}

/** The first common name in a DER Name, or ''. */
export function commonNameOf(nameDer: Buffer): string {
  for (const rdn of children(readTlv(nameDer).value)) {
    for (const atv of children(rdn.value)) {
      const [type, value] = children(atv.value);
      if (type && value && readOid(type.value) === OID.commonName) return text(value);
    }
  }
  return '';
}

/** The key identifier in a subjectKeyIdentifier extension's value. */
export function readKeyIdentifier(value: Buffer): Buffer {
  const t = readTlv(value);
  if (t.tag !== TAG.OCTET_STRING) throw malformed('an unreadable subject key identifier');
  return t.value;
}

/** IPv4 dotted, IPv6 in its shortest form (RFC 5952, as the WHATWG URL parser writes it). */
function ipText(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  const groups: string[] = [];
  for (let i = 0; i + 1 < bytes.length; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

export function readSubjectAltName(value: Buffer): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const g of children(readTlv(value).value)) {
    if (g.tag === contextTag(2, false)) dnsNames.push(g.value.toString('latin1'));
    else if (g.tag === contextTag(7, false)) ipAddresses.push(ipText(g.value));
  }
  return { dnsNames, ipAddresses };
}
