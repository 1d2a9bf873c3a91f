/**
 * Signed checkpoints of the chain heads: what the collector had stored at a
 * moment, signed with a key the database does not hold. Each checkpoint is a
 * compact JWS (EdDSA, Ed25519) over
 *   {typ, kid, timeUs, retentionMs, chains: [{sidecarId, owner, seq, hash, prunedSeq, prunedHash, prevSeq, prevUs}]}
 * A checkpoint lists the chains whose head or retention watermark changed
 * since the previous one this process signed (all chains the first time),
 * at most MAX_CHAINS_PER_CHECKPOINT each, so its size follows the ingest
 * activity, not the number of chains ever seen. `audit verify` folds all of
 * them: the newest entry per chain is what the store must still show.
 */
import { CompactSign, compactVerify } from 'jose';
import type { PublicKey, SigningKey } from './checkpoints-key.ts';

export const CHECKPOINT_TYPE = 'chaperone.checkpoint.v1';
export const MAX_CHAINS_PER_CHECKPOINT = 1000;

export interface CheckpointHead {
  readonly sidecarId: string;
  readonly namespace: string;
  readonly pod: string;
  readonly podUID?: string;
  readonly serviceAccount: string;
  readonly seq: number;
  readonly hash: string;
  /** Retention watermark: events up to and including this seq were removed. */
  readonly prunedSeq: number;
  readonly prunedHash: string;
  /**
   * At `prevUs` (the signer's previous pass) the chain's head was still
   * `prevSeq` (0: the chain did not exist): every event after it arrived
   * later. Absent when the signer has no previous pass to vouch for.
   */
  readonly prevSeq?: number;
  readonly prevUs?: number;
}

export interface CheckpointPayload {
  readonly typ: typeof CHECKPOINT_TYPE;
  readonly kid: string;
  /** When the heads were read, µs since the epoch. */
  readonly timeUs: number;
  /** The retention period in force (0: events are kept forever). */
  readonly retentionMs: number;
  readonly chains: readonly CheckpointHead[];
}

/** A checkpoint as both the store and the append-only log keep it. */
export interface StoredCheckpoint {
  readonly createdUs: number;
  readonly kid: string;
  readonly jws: string;
}

export async function signCheckpoint(key: SigningKey, payload: CheckpointPayload): Promise<StoredCheckpoint> {
  const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: CHECKPOINT_TYPE })
    .sign(key.privateKey);
  return { createdUs: payload.timeUs, kid: key.kid, jws };
}

export type OpenedCheckpoint =
  | { readonly kind: 'valid'; readonly payload: CheckpointPayload }
  /** Signed by another key (e.g. before a rotation): neither trusted nor a sign of tampering. */
  | { readonly kind: 'other_key'; readonly kid: string }
  | { readonly kind: 'invalid'; readonly reason: string };

const isInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isStr = (v: unknown): v is string => typeof v === 'string';

function headProblem(h: unknown): string | undefined {
  if (typeof h !== 'object' || h === null) return 'a chain entry is not an object';
  const c = h as Record<string, unknown>;
  for (const k of ['sidecarId', 'namespace', 'pod', 'serviceAccount', 'hash', 'prunedHash'])
    if (!isStr(c[k])) return `a chain entry has no ${k}`;
  if (c.podUID !== undefined && !isStr(c.podUID)) return 'a chain entry has a bad podUID';
  if (!isInt(c.seq) || !isInt(c.prunedSeq)) return 'a chain entry has a bad seq';
  if ((c.prevSeq === undefined) !== (c.prevUs === undefined)) return 'a chain entry has half a previous head';
  if (c.prevSeq !== undefined && (!isInt(c.prevSeq) || !isInt(c.prevUs)))
    return 'a chain entry has a bad previous head';
  return undefined;
}

/** Verifies a checkpoint's signature with `key` and checks its shape. */
export async function openCheckpoint(key: PublicKey, jws: string): Promise<OpenedCheckpoint> {
  let header: { kid?: unknown; typ?: unknown };
  try {
    const [h] = jws.split('.');
    header = JSON.parse(Buffer.from(h ?? '', 'base64url').toString('utf8')) as typeof header;
  } catch {
    return { kind: 'invalid', reason: 'not a compact JWS' };
  }
  if (isStr(header.kid) && header.kid !== key.kid) return { kind: 'other_key', kid: header.kid };
  let payload: unknown;
  try {
    const r = await compactVerify(jws, key.publicKey, { algorithms: ['EdDSA'] });
    if (r.protectedHeader.typ !== CHECKPOINT_TYPE) return { kind: 'invalid', reason: 'not a checkpoint' };
    payload = JSON.parse(new TextDecoder().decode(r.payload));
  } catch (err) {
    return { kind: 'invalid', reason: `signature does not verify (${(err as Error).message})` };
  }
  const p = payload as Record<string, unknown>;
  if (typeof p !== 'object' || p === null || p.typ !== CHECKPOINT_TYPE || p.kid !== key.kid)
    return { kind: 'invalid', reason: 'signed payload is not a checkpoint of this key' };
  if (!isInt(p.timeUs) || !isInt(p.retentionMs) || !Array.isArray(p.chains))
    return { kind: 'invalid', reason: 'signed payload lacks timeUs, retentionMs or chains' };
  for (const h of p.chains) {
    const problem = headProblem(h);
    if (problem) return { kind: 'invalid', reason: problem };
  }
  return { kind: 'valid', payload: p as unknown as CheckpointPayload };
}

/** A compact JWS in the flattened JSON serialisation (RFC 7515 §7.2.2), and back. */
export interface FlattenedJws {
  readonly protected: string;
  readonly payload: string;
  readonly signature: string;
}

export function flattenedJws(compact: string): FlattenedJws {
  const [p = '', payload = '', signature = ''] = compact.split('.');
  return { protected: p, payload, signature };
}

export function compactJws(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const f = v as Partial<Record<keyof FlattenedJws, unknown>>;
  if (typeof f.protected !== 'string' || typeof f.payload !== 'string' || typeof f.signature !== 'string')
    return undefined;
  return `${f.protected}.${f.payload}.${f.signature}`;
}
