/**
 * A sidecar's WebSocket upgrade, authenticated before it is accepted: the
 * projected service-account token in `Authorization: Bearer`, verified
 * (JWKS or TokenReview) and its pod admitted (pod-admission.ts), or a
 * refusal with the HTTP status and a JSON reason. Used by the approvals
 * socket on the ingest port.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { toChaperoneError } from '@chaperone/shared';
import type { PodAdmission } from './pod-admission.ts';
import { AuthError, type TokenVerifier, type VerifiedSidecar } from './sidecar-identity.ts';

export interface UpgradeRefusal {
  readonly status: 400 | 401 | 403 | 503;
  readonly code: string;
  readonly message: string;
}

/** The verified, admitted identity behind an upgrade; rejects with the refusal to answer. */
export async function authenticateSidecar(
  req: IncomingMessage,
  verifier: TokenVerifier,
  admission: PodAdmission | undefined,
): Promise<VerifiedSidecar> {
  const m = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''));
  if (!m)
    throw new AuthError(
      'unauthenticated',
      'send the projected service-account token (audience chaperone-collector) as Authorization: Bearer',
    );
  const identity = await verifier.verify(m[1] as string);
  await admission?.check(identity);
  return identity;
}

/** What to answer for a failed authentication: 401/403 for the token, 503 when it cannot be checked now. */
export function upgradeRefusal(err: unknown): UpgradeRefusal {
  const e = toChaperoneError(err);
  if (err instanceof AuthError)
    return { status: e.code === 'forbidden' ? 403 : 401, code: e.code, message: e.message };
  return {
    status: 503,
    code: 'unavailable',
    message: `the collector cannot verify the token or its pod right now: ${e.message}`,
  };
}

const REASONS = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 503: 'Service Unavailable' };

/** Answers an upgrade with the refusal and closes the socket. */
export function refuseUpgrade(socket: Duplex, r: UpgradeRefusal): void {
  const body = JSON.stringify({ error: { code: r.code, message: r.message } });
  const headers = [
    `HTTP/1.1 ${r.status} ${REASONS[r.status]}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...(r.status === 401
      ? ['WWW-Authenticate: Bearer realm="chaperone-collector", error="invalid_token"']
      : []),
    ...(r.status === 503 ? ['Retry-After: 5'] : []),
  ];
  if (!socket.destroyed) socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
}
