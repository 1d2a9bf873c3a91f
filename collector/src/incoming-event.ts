/**
 * An event as the collector handles it after arrival: serialised once, on
 * arrival, into the two canonical forms it needs —
 *
 *  - the canonical JSON of the whole event, which the store keeps and
 *    queries return (the same value as received, keys sorted), and
 *  - the canonical JSON without `chaperone.hash`, whose sha256 is the hash
 *    the event must carry (hashEvent in shared/src/audit-event.ts).
 *
 * Both are built from the same encoded members, so the event is encoded
 * once, not once to hash and again to store. The chain check inside the
 * store's transaction then only compares strings.
 */
import { hash } from 'node:crypto';
import {
  type AuditEvent,
  type ChainLink,
  canonicalJson,
  checkAuditEventSize,
  type EventSource,
  validateAuditEventFields,
} from '@chaperone/shared';
import { type EventRow, toEventRow } from './event-row.ts';

/**
 * What the rest of the collector needs of an arrived event: its chain links,
 * the source it claims (checked against the connection's token), the hash
 * it should carry, and its row (query columns and canonical JSON). Plain
 * data, so it can come from the parse worker by structured clone.
 */
export interface IncomingEvent extends ChainLink {
  readonly source: EventSource;
  /** sha256 of the event's canonical JSON without `chaperone.hash`: what `chaperone.hash` must say. */
  readonly computedHash: string;
  /** The row the store writes; `row.json` is the canonical JSON of the whole event, carried hash included. */
  readonly row: EventRow;
}

/** `"key":` for the keys events repeat (bounded: a key from the wire is only kept if short). */
const keyPrefixes = new Map<string, string>();

function keyPrefix(k: string): string {
  let p = keyPrefixes.get(k);
  if (p === undefined) {
    p = `${JSON.stringify(k)}:`;
    if (k.length <= 64 && keyPrefixes.size < 1024) keyPrefixes.set(k, p);
  }
  return p;
}

/**
 * The canonical members of `obj` (`"key":value`, keys sorted by UTF-16 code
 * units as canonicalJson sorts them, undefined members left out) without
 * `skip`, split into those sorting before and after it.
 */
function membersAround(obj: Record<string, unknown>, skip: string): { before: string; after: string } {
  const keys = Object.keys(obj).sort();
  let before = '';
  let after = '';
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined || k === skip) continue;
    const m = keyPrefix(k) + canonicalJson(v);
    if (k < skip) before = before ? `${before},${m}` : m;
    else after = after ? `${after},${m}` : m;
  }
  return { before, after };
}

function object(...parts: string[]): string {
  let out = '';
  for (const p of parts) if (p) out = out ? `${out},${p}` : p;
  return `{${out}}`;
}

/** Serialises and hashes an event received at `receivedUs` (see above). Does not validate it. */
export function prepareEvent(event: AuditEvent, receivedUs: number): IncomingEvent {
  const chaperone = event.chaperone as unknown as Record<string, unknown>;
  const c = membersAround(chaperone, 'hash');
  const top = membersAround(event as unknown as Record<string, unknown>, 'chaperone');
  const carried = chaperone.hash === undefined ? '' : `"hash":${canonicalJson(chaperone.hash)}`;
  const unhashed = object(top.before, `"chaperone":${object(c.before, c.after)}`, top.after);
  const json = object(top.before, `"chaperone":${object(c.before, carried, c.after)}`, top.after);
  const { seq, prevHash, hash: carriedHash, source } = event.chaperone;
  return {
    auditID: event.auditID,
    chaperone: { seq, prevHash, hash: carriedHash },
    source,
    // One-shot hash: the same sha256 hex as hashEvent's sha256Hex, without a Hash object per event.
    computedHash: hash('sha256', unhashed, 'hex'),
    row: toEventRow(event, receivedUs, json),
  };
}

/**
 * Validates an untrusted value from a batch and prepares it: every check of
 * validateAuditEvent, the size measured on the canonical text (the same
 * length as the plain JSON validateAuditEvent measures).
 */
export function validateIncoming(value: unknown, receivedUs: number): IncomingEvent {
  const prepared = prepareEvent(validateAuditEventFields(value), receivedUs);
  checkAuditEventSize(Buffer.byteLength(prepared.row.json));
  return prepared;
}
