/**
 * `chaperone audit verify`: re-checks the whole store offline, per sidecar.
 *
 * For each chain, every stored event is re-read in commit order, re-hashed
 * and re-linked with `verifyChain`, starting from the retention watermark.
 * Problems that were already recorded as integrity alerts when the events
 * arrived are reported as such (the sidecar sent them that way); anything
 * else — an event edited, deleted or inserted in the database, a query
 * column that no longer matches its event, a head that does not match the
 * last event, an ingest alert that can no longer be reproduced — means the
 * store was changed after ingest.
 */
import { type AuditEvent, type ChainHead, hashEvent, verifyChain } from '@chaperone/shared';
import { comparableColumns, toEventRow } from '../events/event-row.ts';
import type { AlertKind, AuditStore, ChainInfo, Identity } from '../store/store.ts';
import type { CheckpointCheck, CheckpointProblemKind } from './checkpoints-verify.ts';

export type VerifyProblemKind =
  | 'hash_mismatch'
  | 'gap'
  | 'reorder'
  | 'broken_link'
  | 'unparseable'
  | 'unverifiable'
  | 'row_mismatch'
  | 'head_mismatch'
  | 'alert_not_reproduced'
  | CheckpointProblemKind;

export interface VerifyProblem {
  readonly kind: VerifyProblemKind;
  readonly seq?: number;
  readonly message: string;
  /** True when the collector recorded this as an integrity alert on arrival. */
  readonly recordedAtIngest: boolean;
}

export interface ChainReport {
  readonly sidecarId: string;
  readonly owner: Identity;
  readonly events: number;
  readonly head: ChainHead;
  readonly verifiedHead: ChainHead;
  readonly problems: readonly VerifyProblem[];
  /** ok: intact; alerts: intact, with problems the sidecar sent and ingest recorded; tampered: changed after ingest. */
  readonly status: 'ok' | 'alerts' | 'tampered';
}

const CHAIN_PROBLEM_KINDS: readonly AlertKind[] = ['hash_mismatch', 'gap', 'reorder', 'broken_link'];
const PAGE = 1000;
const MAX_ALERTS_PER_CHAIN = 100_000;

export async function verifyStoredChain(store: AuditStore, chain: ChainInfo): Promise<ChainReport> {
  const alerts = await store.listAlerts({ sidecarId: chain.sidecarId }, MAX_ALERTS_PER_CHAIN);
  const recorded = new Map<string, number>();
  for (const a of alerts) {
    if (!CHAIN_PROBLEM_KINDS.includes(a.kind) || a.seq === undefined) continue;
    const key = `${a.kind}:${a.seq}`;
    recorded.set(key, (recorded.get(key) ?? 0) + 1);
  }
  const problems: VerifyProblem[] = [];
  const reproduced = new Map<string, number>();
  let head: ChainHead = chain.pruned;
  let events = 0;
  let afterId = 0;
  for (;;) {
    const rows = await store.chainRows(chain.sidecarId, afterId, PAGE);
    for (const row of rows) {
      afterId = row.id;
      events++;
      let event: AuditEvent;
      try {
        event = JSON.parse(row.json) as AuditEvent;
        const c = event?.chaperone;
        if (typeof c?.hash !== 'string') throw new Error('no chaperone.hash');
        if (!Number.isSafeInteger(c.seq) || typeof c.prevHash !== 'string')
          throw new Error('no chaperone.seq or chaperone.prevHash');
      } catch (err) {
        problems.push({
          kind: 'unparseable',
          seq: row.seq,
          message: `row ${row.id} (seq ${row.seq}) no longer holds an audit event: ${(err as Error).message}`,
          recordedAtIngest: false,
        });
        continue;
      }
      let expected: Record<string, string | number | null>;
      try {
        expected = comparableColumns(toEventRow(event, 0, row.json));
      } catch {
        expected = {};
      }
      const differing = Object.keys(row.columns).filter((c) => row.columns[c] !== expected[c]);
      if (differing.length > 0) {
        problems.push({
          kind: 'row_mismatch',
          seq: row.seq,
          message: `row ${row.id} (seq ${row.seq}): stored ${differing.join(', ')} ${differing.length === 1 ? 'does' : 'do'} not match the event`,
          recordedAtIngest: false,
        });
      }
      // One event that cannot be re-hashed (nested past the encoder's limit, say) is reported and
      // linked by the hash it carries; it never stops the rest of the chain or the store.
      let hashed: string;
      try {
        hashed = hashEvent(event);
      } catch (err) {
        problems.push({
          kind: 'unverifiable',
          seq: row.seq,
          message: `row ${row.id} (seq ${row.seq}) cannot be re-hashed, so it was not checked: ${(err as Error).message}`,
          recordedAtIngest: false,
        });
        hashed = event.chaperone.hash;
      }
      const checked = verifyChain([event], head, () => hashed);
      for (const p of checked.problems) {
        const seq = p.kind === 'gap' || p.kind === 'reorder' ? p.gotSeq : p.seq;
        const key = `${p.kind}:${seq}`;
        const seen = reproduced.get(key) ?? 0;
        reproduced.set(key, seen + 1);
        const atIngest = seen < (recorded.get(key) ?? 0);
        problems.push({
          kind: p.kind,
          seq,
          message: describe(p),
          recordedAtIngest: atIngest,
        });
      }
      head = checked.head;
    }
    if (rows.length < PAGE) break;
  }
  if (head.seq !== chain.head.seq || head.hash !== chain.head.hash) {
    problems.push({
      kind: 'head_mismatch',
      seq: chain.head.seq,
      message: `the stored head is seq ${chain.head.seq} but the stored events end at seq ${head.seq}: events were removed or the head was changed`,
      recordedAtIngest: false,
    });
  }
  if (chain.pruned.seq === 0) {
    for (const [key, count] of recorded) {
      const missing = count - (reproduced.get(key) ?? 0);
      if (missing > 0) {
        const [kind, seq] = key.split(':');
        problems.push({
          kind: 'alert_not_reproduced',
          seq: Number(seq),
          message: `an integrity alert (${kind} at seq ${seq}) was recorded on arrival but the stored events no longer show it: they were changed`,
          recordedAtIngest: false,
        });
      }
    }
  }
  const tampered = problems.some((p) => !p.recordedAtIngest);
  return {
    sidecarId: chain.sidecarId,
    owner: chain.owner,
    events,
    head: chain.head,
    verifiedHead: head,
    problems,
    status: tampered ? 'tampered' : problems.length > 0 ? 'alerts' : 'ok',
  };
}

function describe(p: ReturnType<typeof verifyChain>['problems'][number]): string {
  switch (p.kind) {
    case 'hash_mismatch':
      return `event ${p.auditID} (seq ${p.seq}) does not hash to its stored hash`;
    case 'broken_link':
      return `event ${p.auditID} (seq ${p.seq}) does not link to the event before it`;
    case 'gap':
      return `events ${p.expectedSeq}..${p.gotSeq - 1} are missing`;
    case 'reorder':
      return `seq ${p.gotSeq} appears again after seq ${p.expectedSeq - 1}`;
  }
}

/**
 * Verifies every chain in the store, one at a time (bounded memory); with
 * signed checkpoints, also against them (checkpoints-verify.ts), and reports
 * the chains they signed that the store no longer has.
 */
export async function* verifyStore(
  store: AuditStore,
  checkpoints?: CheckpointCheck,
): AsyncGenerator<ChainReport> {
  const present = new Set<string>();
  for (const chain of await store.listChains()) {
    present.add(chain.sidecarId);
    const report = await verifyStoredChain(store, chain);
    yield checkpoints ? await checkpoints.check(store, chain, report) : report;
  }
  if (checkpoints) yield* checkpoints.missing(present);
}
