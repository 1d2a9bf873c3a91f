/**
 * GET /v1/events/{auditID}/chain: where an event stands in its sidecar's hash
 * chain, and whether that part of the chain still holds. Re-hashed: the
 * event, its neighbours, and — when a signed checkpoint covers it — every
 * event from it up to the newest checkpoint's seq for the chain (at most
 * MAX_CHECKED), whose hash must be the one the checkpoint signed. The
 * checkpoint's signature is checked with the collector's public key
 * (integrity/checkpoints.ts); without a key no checkpoint is used.
 * Re-hashing and linking is the same `verifyChain`/`hashEvent` that ingest
 * and `audit verify` use.
 */
import { type AuditEvent, type ChainHead, ChaperoneError, hashEvent, verifyChain } from '@chaperone/shared';
import { inScope } from '../auth/query-auth.ts';
import { microsToRfc3339 } from '../events/time.ts';
import { openCheckpoint } from '../integrity/checkpoints.ts';
import type { PublicKey } from '../integrity/checkpoints-key.ts';
import type { AuditStore, ChainRow } from '../store/store.ts';
import { visible } from '../text/visible-text.ts';
import { sendJson } from './json-response.ts';
import type { QueryRoute } from './query-route.ts';
import { decodePathSegment } from './request-target.ts';

export const MAX_CHECKED = 10_000;
const PAGE = 500;

interface SignedHead {
  readonly seq: number;
  readonly hash: string;
  readonly timeUs: number;
  readonly jws: string;
}

/**
 * The newest stored checkpoint that lists the chain, found by chain
 * (store/checkpoint-index.ts); its payload read unverified here, verified by the caller.
 */
async function newestListing(store: AuditStore, sidecarId: string): Promise<SignedHead | undefined> {
  const r = await store.newestCheckpointFor(sidecarId);
  if (!r) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(r.jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      timeUs?: number;
      chains?: { sidecarId?: string; seq?: number; hash?: string }[];
    };
    const entry = payload.chains?.find((c) => c.sidecarId === sidecarId);
    if (entry && typeof entry.seq === 'number' && typeof entry.hash === 'string')
      return { seq: entry.seq, hash: entry.hash, timeUs: Number(payload.timeUs), jws: r.jws };
  } catch {
    // not a checkpoint we can read: the signature check of `audit verify` reports it
  }
  return undefined;
}

function parse(row: ChainRow): AuditEvent | undefined {
  try {
    return JSON.parse(row.json) as AuditEvent;
  } catch {
    return undefined;
  }
}

export interface ChainProof {
  readonly sidecarId: string;
  readonly seq: number;
  readonly hash: string;
  readonly prevHash: string;
  readonly previous: { auditID: string; seq: number; hash: string } | null;
  readonly next: { auditID: string; seq: number; prevHash: string } | null;
  readonly verified: {
    ok: boolean;
    checked: number;
    problems: string[];
    checkpoint: { signedAt: string; seq: number } | null;
  };
}

export async function chainProof(
  store: AuditStore,
  event: AuditEvent,
  key: PublicKey | undefined,
): Promise<ChainProof> {
  const c = event.chaperone;
  const sidecarId = c.source.sidecarId;
  const problems: string[] = [];
  let checked = 0;
  const rehash = (e: AuditEvent, what: string) => {
    checked++;
    let h: string;
    try {
      h = hashEvent(e);
    } catch (err) {
      problems.push(`${what} (seq ${e.chaperone.seq}) cannot be re-hashed: ${(err as Error).message}`);
      return;
    }
    if (h !== e.chaperone.hash)
      problems.push(
        `${what} (seq ${e.chaperone.seq}) does not hash to its stored hash: it was changed after it was chained`,
      );
  };
  const around = await store.chainEventsFrom(sidecarId, Math.max(1, c.seq - 1), 3);
  const at = (seq: number) => around.find((r) => r.seq === seq);
  const prevRow = c.seq > 1 ? at(c.seq - 1) : undefined;
  const nextRow = at(c.seq + 1);
  const prev = prevRow && parse(prevRow);
  const next = nextRow && parse(nextRow);
  rehash(event, 'this event');
  if (prev) {
    rehash(prev, 'the previous event');
    if (c.prevHash !== prev.chaperone.hash)
      problems.push(
        `this event does not link to the previous event's hash: an event was replaced or removed`,
      );
  } else if (c.seq > 1) {
    const chain = await store.chain(sidecarId);
    if (!chain || chain.pruned.seq < c.seq - 1)
      problems.push(`the previous event (seq ${c.seq - 1}) is not stored and retention did not remove it`);
  }
  if (next) {
    rehash(next, 'the next event');
    if (next.chaperone.prevHash !== c.hash)
      problems.push(`the next event does not link to this event's hash: an event was replaced or removed`);
  }
  let checkpoint: ChainProof['verified']['checkpoint'] = null;
  const signed = key ? await newestListing(store, sidecarId) : undefined;
  if (key && signed && signed.seq >= c.seq) {
    const opened = await openCheckpoint(key, signed.jws);
    if (opened.kind !== 'valid')
      problems.push(
        opened.kind === 'invalid'
          ? `the newest checkpoint naming this chain does not verify: ${opened.reason}`
          : `the newest checkpoint naming this chain was signed with another key (${opened.kid})`,
      );
    else {
      checkpoint = { signedAt: microsToRfc3339(signed.timeUs), seq: signed.seq };
      // From this event to the signed head, re-hashed and re-linked (the event and its neighbours were counted above).
      let head: ChainHead = { seq: c.seq - 1, hash: c.prevHash };
      let from = c.seq;
      const last = Math.min(signed.seq, c.seq + MAX_CHECKED - 1);
      let signedHash: string | undefined;
      while (from <= last) {
        const rows = await store.chainEventsFrom(sidecarId, from, Math.min(PAGE, last - from + 1));
        if (rows.length === 0) break;
        const events = rows.map(parse).filter((e): e is AuditEvent => e !== undefined);
        const result = verifyChain(events, head, (e) => {
          try {
            return hashEvent(e);
          } catch {
            return '';
          }
        });
        for (const p of result.problems)
          problems.push(
            p.kind === 'gap'
              ? `events ${p.expectedSeq}..${p.gotSeq - 1} before the signed head are missing`
              : p.kind === 'reorder'
                ? `seq ${p.gotSeq} appears again after seq ${p.expectedSeq - 1}`
                : `event ${p.auditID} (seq ${p.seq}) ${p.kind === 'hash_mismatch' ? 'does not hash to its stored hash' : 'does not link to the event before it'}`,
          );
        for (const e of events) {
          if (e.chaperone.seq > c.seq + 1 || e.chaperone.seq < c.seq - 1) checked++;
          if (e.chaperone.seq === signed.seq) signedHash = e.chaperone.hash;
        }
        head = result.head;
        from = (rows.at(-1)?.seq ?? last) + 1;
      }
      if (signed.seq <= last) {
        if (signedHash === undefined)
          problems.push(
            `the event at the signed seq ${signed.seq} is no longer stored: the chain's tail was deleted`,
          );
        else if (signedHash !== signed.hash)
          problems.push(
            `the event at the signed seq ${signed.seq} has another hash than the one signed: the chain was rewritten`,
          );
      } else
        problems.push(
          `only the ${MAX_CHECKED} events after this one were checked; the signed head (seq ${signed.seq}) is further on: run \`chaperone audit verify\` for the whole chain`,
        );
    }
  }
  return {
    sidecarId,
    seq: c.seq,
    hash: c.hash,
    prevHash: c.prevHash,
    previous: prev ? { auditID: prev.auditID, seq: prev.chaperone.seq, hash: prev.chaperone.hash } : null,
    next: next ? { auditID: next.auditID, seq: next.chaperone.seq, prevHash: next.chaperone.prevHash } : null,
    verified: { ok: problems.length === 0, checked, problems, checkpoint },
  };
}

export function chainRoute(store: AuditStore, key: PublicKey | undefined): QueryRoute {
  return async ({ res, url, who }) => {
    const m = /^\/v1\/events\/([^/]+)\/chain$/.exec(url.pathname);
    if (!m) return false;
    const id = decodePathSegment(m[1] as string, 'auditID');
    const json = await store.getEvent(id);
    let event: AuditEvent | undefined;
    try {
      event = json === undefined ? undefined : (JSON.parse(json) as AuditEvent);
    } catch {
      event = undefined;
    }
    // Out of scope reads as absent: a scoped token learns nothing of other namespaces.
    const ns = event?.chaperone?.source?.namespace;
    if (!event || typeof ns !== 'string' || !inScope(who.namespaces, ns))
      throw new ChaperoneError('not_found', `no event with id ${visible(id)}`);
    sendJson(res, 200, JSON.stringify(await chainProof(store, event, key)));
    return true;
  };
}
