/**
 * The digest of a held action (approval-protocol.ts HeldAction `digest`): an
 * HMAC-SHA256 of the exact bytes the action is made of, under a key this
 * sidecar makes at its start and never shows. The approver reads masked
 * text; the digest, part of the fingerprint, pins the raw bytes behind it, so
 * an approval or a grant covers exactly that action and nothing that merely
 * reads the same once masked. Without the key nobody can test a guess of a
 * masked value against it.
 */
import { createHmac, randomBytes } from 'node:crypto';

/** Hex HMAC of the parts, each length-prefixed (so that no two lists of parts give the same bytes). */
export type ActionDigest = (parts: readonly (string | Uint8Array)[]) => string;

export function actionDigest(key: Uint8Array = randomBytes(32)): ActionDigest {
  return (parts) => {
    const h = createHmac('sha256', key);
    for (const p of parts) {
      const bytes = typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
      const len = Buffer.alloc(8);
      len.writeBigUInt64BE(BigInt(bytes.length));
      h.update(len);
      h.update(bytes);
    }
    return h.digest('hex');
  };
}
