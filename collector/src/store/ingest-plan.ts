/**
 * What to do with one batch, decided purely from the chain's stored head and
 * the events already stored under the batch's ids. Both backends run this
 * inside their write transaction, with the head locked, so the decision and
 * the write are one atomic step.
 *
 * - An event whose id is stored with the same hash is a duplicate (an
 *   at-least-once resend): acknowledged, not stored again.
 * - An id stored with other content, or by another sidecar, is an
 *   `id_conflict` alert; the event is not stored (the id is taken).
 * - Every other event is stored. The chain is checked with `verifyChain`
 *   over exactly the stored events, in order, so `audit verify` re-finds
 *   the same problems later; each problem becomes an integrity alert.
 * - A gap before the batch's first new event is refused (`out_of_order`,
 *   retryable) when the connection has lost an earlier batch, because the
 *   resend will fill it; otherwise the events are evidence and are stored,
 *   with a `gap` alert.
 */
import { type ChainHead, type ChainProblem, verifyChain } from '@chaperone/shared';
import type { IncomingEvent } from '../events/incoming-event.ts';
import type { BatchOutcome, Identity, IncomingBatch, IntegrityAlert } from './store.ts';

export interface ExistingEvent {
  readonly sidecarId: string;
  readonly hash: string;
}

/** Whether two identities name the same pod (pod UIDs compared when both are known). */
export function sameOwner(a: Identity, b: Identity): boolean {
  if (a.namespace !== b.namespace || a.pod !== b.pod || a.serviceAccount !== b.serviceAccount) return false;
  return a.podUID === undefined || b.podUID === undefined || a.podUID === b.podUID;
}

export function describeIdentity(i: Identity): string {
  return `${i.namespace}/${i.pod}${i.podUID ? ` (uid ${i.podUID})` : ''} as ${i.serviceAccount}`;
}

/** Why `writer` may not extend the chain `sidecarId` that `owner` created. */
export function ownerMismatchMessage(sidecarId: string, owner: Identity, writer: Identity): string {
  return `chain ${sidecarId} belongs to ${describeIdentity(owner)}; ${describeIdentity(writer)} may not write to it`;
}

function problemAlert(p: ChainProblem, base: AlertBase): IntegrityAlert {
  switch (p.kind) {
    case 'hash_mismatch':
      return {
        ...base,
        kind: p.kind,
        seq: p.seq,
        auditID: p.auditID,
        message: `event ${p.auditID} (seq ${p.seq}) does not hash to the hash it carries: it was changed after it was chained`,
      };
    case 'broken_link':
      return {
        ...base,
        kind: p.kind,
        seq: p.seq,
        auditID: p.auditID,
        message: `event ${p.auditID} (seq ${p.seq}) does not link to the previous event's hash: an event was replaced or removed`,
      };
    case 'gap':
      return {
        ...base,
        kind: p.kind,
        seq: p.gotSeq,
        expectedSeq: p.expectedSeq,
        message: `expected seq ${p.expectedSeq}, received ${p.gotSeq}: events ${p.expectedSeq}..${p.gotSeq - 1} are missing`,
      };
    case 'reorder':
      return {
        ...base,
        kind: p.kind,
        seq: p.gotSeq,
        expectedSeq: p.expectedSeq,
        message: `received seq ${p.gotSeq} with a new id after the chain reached ${p.expectedSeq - 1}: a sequence number was reused or sent out of order`,
      };
  }
}

interface AlertBase {
  readonly sidecarId: string;
  readonly namespace: string;
  readonly pod: string;
  readonly detectedAt: string;
}

export function planBatch(
  batch: IncomingBatch,
  stored: { head: ChainHead; owner: Identity | undefined },
  existing: ReadonlyMap<string, ExistingEvent>,
  detectedAt: string,
): BatchOutcome {
  const base: AlertBase = {
    sidecarId: batch.sidecarId,
    namespace: batch.identity.namespace,
    pod: batch.identity.pod,
    detectedAt,
  };
  if (stored.owner && !sameOwner(stored.owner, batch.identity)) {
    const message = ownerMismatchMessage(batch.sidecarId, stored.owner, batch.identity);
    return {
      kind: 'rejected',
      code: 'identity_mismatch',
      message,
      retryable: false,
      alerts: [{ ...base, kind: 'chain_owner_mismatch', message }],
    };
  }
  const seen = new Map(existing);
  const fresh: IncomingEvent[] = [];
  const alerts: IntegrityAlert[] = [];
  let duplicates = 0;
  for (const e of batch.events) {
    const prior = seen.get(e.auditID);
    if (prior) {
      if (prior.sidecarId === batch.sidecarId && prior.hash === e.chaperone.hash) duplicates++;
      else
        alerts.push({
          ...base,
          kind: 'id_conflict',
          seq: e.chaperone.seq,
          auditID: e.auditID,
          message:
            prior.sidecarId === batch.sidecarId
              ? `event id ${e.auditID} (seq ${e.chaperone.seq}) was already stored with different content; the new version was not stored`
              : `event id ${e.auditID} (seq ${e.chaperone.seq}) is already stored for another sidecar; it was not stored`,
        });
      continue;
    }
    seen.set(e.auditID, { sidecarId: batch.sidecarId, hash: e.chaperone.hash });
    fresh.push(e);
  }
  const first = fresh[0];
  if (batch.rejectLeadingGap && first && first.chaperone.seq > stored.head.seq + 1) {
    return {
      kind: 'rejected',
      code: 'out_of_order',
      message: `expected seq ${stored.head.seq + 1} next, this batch starts at ${first.chaperone.seq}: an earlier batch was not stored; resend from seq ${stored.head.seq + 1}`,
      retryable: true,
      alerts: [],
    };
  }
  // The hashes were computed on arrival from the canonical form (incoming-event.ts).
  const checked = verifyChain(fresh, stored.head, (e) => e.computedHash);
  for (const p of checked.problems) alerts.push(problemAlert(p, base));
  return { kind: 'stored', events: fresh, duplicates, head: checked.head, alerts };
}
