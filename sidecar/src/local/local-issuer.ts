/**
 * The token a local guard ships its audit events to the embedded collector
 * with. The collector authenticates sidecars by service-account-shaped JWTs
 * checked against an issuer's key set (collector/src/auth/jwks-verifier.ts);
 * outside a cluster there is no service-account issuer, so local mode is its
 * own: a key pair made for the session, its public half served as a JWKS on
 * loopback, and one token naming the session's chain. The private key never
 * leaves this process.
 */
import { createSign, generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';

export const LOCAL_ISSUER = 'chaperone-local';
const AUDIENCE = 'chaperone-collector';

/** Who the local guard is to the collector: the claims a bound token carries. */
export interface LocalSubject {
  readonly namespace: string;
  readonly pod: string;
  readonly podUID: string;
  readonly serviceAccount: string;
}

export interface LocalIssuer {
  /** The public key set (RFC 7517), as served at the JWKS URL. */
  readonly jwks: { keys: Record<string, unknown>[] };
  /** A token for `subject`, valid for `validForSec`. */
  token(subject: LocalSubject, validForSec: number): string;
}

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

export function createLocalIssuer(now: () => number = Date.now): LocalIssuer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = randomUUID();
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' };
  return {
    jwks: { keys: [jwk] },
    token: (subject, validForSec) => sign(privateKey, kid, subject, validForSec, now),
  };
}

function sign(key: KeyObject, kid: string, s: LocalSubject, validForSec: number, now: () => number): string {
  const iat = Math.floor(now() / 1000);
  const header = { alg: 'ES256', typ: 'JWT', kid };
  const payload = {
    iss: LOCAL_ISSUER,
    aud: [AUDIENCE],
    sub: `system:serviceaccount:${s.namespace}:${s.serviceAccount}`,
    iat,
    nbf: iat,
    exp: iat + validForSec,
    'kubernetes.io': {
      namespace: s.namespace,
      pod: { name: s.pod, uid: s.podUID },
      serviceaccount: { name: s.serviceAccount, uid: s.podUID },
    },
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  // JWS ES256 wants the raw r||s signature (RFC 7518 §3.4), not DER.
  const signature = createSign('SHA256').update(input).sign({ key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64url(signature)}`;
}
