/**
 * Self-managed webhook TLS, decided as a pure function of what is stored and
 * the time: a CA and a short-lived serving certificate, kept in one Secret so
 * every replica serves the same certificate and the caBundle names one CA
 * set (the Vault injector's approach).
 *
 * - The serving certificate is renewed in the last `renewBeforeMs` of its life
 *   (by default the last 10 %), or at once if it is missing, broken, not
 *   signed by the current CA, or lacks a required name.
 * - The CA is rotated before it gets close to expiry: the new CA is added to
 *   the bundle first and the serving certificate is switched to it only after
 *   `propagationDelayMs`, so the API server trusts the new CA before any
 *   replica presents a certificate signed by it. Expired CAs leave the bundle.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createCA, issueCertificate, splitPemBundle } from '@chaperone/shared/tls';

export interface CertificateSet {
  /** Trusted CAs, newest first (PEM bundle): the webhook's caBundle. */
  readonly caBundle: string;
  /** Key of the newest CA. */
  readonly caKey: string;
  /** Serving certificate and key. */
  readonly cert: string;
  readonly key: string;
  /** When the newest CA was added to the bundle (ms). */
  readonly caPublishedAt: number;
}

export interface CertificatePlanSettings {
  readonly commonName: string;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly leafValidityMs: number;
  /** Renew when less than this remains; default 10 % of the validity. */
  readonly renewBeforeMs?: number;
  readonly caValidityMs: number;
  readonly propagationDelayMs: number;
}

export interface CertificatePlan {
  readonly next: CertificateSet;
  readonly issued: readonly ('ca' | 'serving')[];
  readonly reason: string;
}

function parse(pem: string | undefined): X509Certificate | undefined {
  if (!pem) return undefined;
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function keyMatches(cert: X509Certificate, keyPem: string | undefined): boolean {
  if (!keyPem) return false;
  try {
    return cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

function sans(cert: X509Certificate): { dns: Set<string>; ips: Set<string> } {
  const dns = new Set<string>();
  const ips = new Set<string>();
  for (const part of (cert.subjectAltName ?? '').split(', ')) {
    if (part.startsWith('DNS:')) dns.add(part.slice(4));
    else if (part.startsWith('IP Address:')) ips.add(part.slice(11));
  }
  return { dns, ips };
}

/** One canonical text per set of certificates, so comparing bundles is comparing strings. */
export function normalizeBundle(...pems: string[]): string {
  return pems.flatMap((p) => splitPemBundle(p)).join('');
}

const expiry = (c: X509Certificate) => new Date(c.validTo).getTime();
const start = (c: X509Certificate) => new Date(c.validFrom).getTime();

/** Why the serving certificate must be (re)issued now, or undefined when it is fine. */
export function servingProblem(
  set: Pick<CertificateSet, 'cert' | 'key'>,
  ca: X509Certificate,
  s: CertificatePlanSettings,
  now: number,
): string | undefined {
  const leaf = parse(set.cert);
  if (!leaf) return 'no serving certificate';
  if (!keyMatches(leaf, set.key)) return 'the serving key does not match the certificate';
  if (!leaf.verify(ca.publicKey)) return 'the serving certificate is not signed by the current CA';
  const { dns, ips } = sans(leaf);
  const missing = [...s.dnsNames.filter((d) => !dns.has(d)), ...s.ipAddresses.filter((i) => !ips.has(i))];
  if (missing.length > 0) return `the serving certificate lacks ${missing.join(', ')}`;
  const total = expiry(leaf) - start(leaf);
  const renewBefore = s.renewBeforeMs ?? total * 0.1;
  if (expiry(leaf) - now <= renewBefore) return 'the serving certificate is due for renewal';
  return undefined;
}

function issueServing(
  caCert: string,
  caKey: string,
  s: CertificatePlanSettings,
  now: number,
  caNotAfter: number,
) {
  const notAfter = Math.min(now + s.leafValidityMs, caNotAfter);
  return issueCertificate({
    ca: { cert: caCert, key: caKey },
    commonName: s.commonName,
    dnsNames: s.dnsNames,
    ipAddresses: s.ipAddresses,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(notAfter),
  });
}

/** What to store next, or undefined when what is stored is fine. */
export function planCertificates(
  current: Partial<CertificateSet> | undefined,
  s: CertificatePlanSettings,
  now: number,
): CertificatePlan | undefined {
  const bundle = splitPemBundle(current?.caBundle ?? '');
  const storedBundle = current?.caBundle ?? '';
  const ca = parse(bundle[0]);
  const caUsable = ca !== undefined && keyMatches(ca, current?.caKey) && expiry(ca) > now;
  const liveOldCas = bundle.slice(1).filter((pem) => {
    const c = parse(pem);
    return c !== undefined && expiry(c) > now;
  });

  const newCa = () =>
    createCA({
      commonName: `${s.commonName}-ca`,
      validForMs: s.caValidityMs,
      notBefore: new Date(now - 60_000),
    });

  if (!caUsable || !ca || !current?.caKey) {
    const fresh = newCa();
    const leaf = issueServing(fresh.cert, fresh.key, s, now, fresh.notAfter.getTime());
    return {
      next: {
        caBundle: normalizeBundle(fresh.cert),
        caKey: fresh.key,
        cert: leaf.cert,
        key: leaf.key,
        caPublishedAt: now,
      },
      issued: ['ca', 'serving'],
      reason: current?.caBundle
        ? 'the stored CA is unusable (expired, broken or without its key)'
        : 'no certificates yet',
    };
  }

  const caTotal = expiry(ca) - start(ca);
  const caRotateAt = expiry(ca) - Math.max(caTotal / 5, 2 * s.leafValidityMs);
  if (now >= caRotateAt) {
    const fresh = newCa();
    const keepOld = [bundle[0] as string, ...liveOldCas];
    const problem = servingProblem({ cert: current.cert ?? '', key: current.key ?? '' }, ca, s, now);
    const expired = !parse(current.cert) || expiry(parse(current.cert) as X509Certificate) <= now;
    // The serving certificate moves to the new CA after the propagation delay, unless it is unusable now.
    const leaf =
      problem && expired ? issueServing(fresh.cert, fresh.key, s, now, fresh.notAfter.getTime()) : undefined;
    return {
      next: {
        caBundle: normalizeBundle(fresh.cert, ...keepOld),
        caKey: fresh.key,
        cert: leaf?.cert ?? current.cert ?? '',
        key: leaf?.key ?? current.key ?? '',
        caPublishedAt: now,
      },
      issued: leaf ? ['ca', 'serving'] : ['ca'],
      reason: 'the CA is close to expiry: a new CA joins the bundle',
    };
  }

  const problem = servingProblem({ cert: current.cert ?? '', key: current.key ?? '' }, ca, s, now);
  const prunedBundle = normalizeBundle(bundle[0] as string, ...liveOldCas);
  if (problem) {
    const leaf0 = parse(current.cert);
    const stillValid = leaf0 !== undefined && keyMatches(leaf0, current.key) && expiry(leaf0) > now;
    const published = current.caPublishedAt ?? 0;
    // A certificate from a CA the API server may not trust yet would fail every call: wait, if we can.
    if (
      stillValid &&
      now - published < s.propagationDelayMs &&
      problem.includes('not signed by the current CA')
    ) {
      return prunedBundle !== storedBundle
        ? {
            next: { ...(current as CertificateSet), caBundle: prunedBundle },
            issued: [],
            reason: 'expired CAs left the bundle',
          }
        : undefined;
    }
    const leaf = issueServing(bundle[0] as string, current.caKey, s, now, expiry(ca));
    return {
      next: {
        caBundle: prunedBundle,
        caKey: current.caKey,
        cert: leaf.cert,
        key: leaf.key,
        caPublishedAt: published,
      },
      issued: ['serving'],
      reason: problem,
    };
  }
  if (prunedBundle !== storedBundle) {
    return {
      next: {
        ...(current as CertificateSet),
        caBundle: prunedBundle,
        caPublishedAt: current.caPublishedAt ?? now,
      },
      issued: [],
      reason: 'expired CAs left the bundle',
    };
  }
  return undefined;
}
