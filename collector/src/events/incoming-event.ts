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
import {
  type AuditEvent,
  type ChainLink,
  canonicalEventForms,
  checkAuditEventSize,
  type EventSource,
  sha256Hex,
  validateAuditEventFields,
} from '@chaperone/shared';
import { type EventFacts, eventFacts } from './event-facts.ts';
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
  /** What the console's rollups count of it (event-facts.ts). */
  readonly facts: EventFacts;
}

/** Serialises and hashes an event received at `receivedUs` (see above). Does not validate it. */
export function prepareEvent(event: AuditEvent, receivedUs: number): IncomingEvent {
  const forms = canonicalEventForms(event);
  const { seq, prevHash, hash: carriedHash, source } = event.chaperone;
  return {
    auditID: event.auditID,
    chaperone: { seq, prevHash, hash: carriedHash },
    source,
    computedHash: sha256Hex(forms.unhashed),
    row: toEventRow(event, receivedUs, forms.withHash(carriedHash)),
    facts: eventFacts(event),
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
