/**
 * Chains an event and serialises it in one pass: the spool record is the
 * event's canonical JSON (with its hash), built from the same encoded members
 * as the text the chain hash is taken over, so the event is not serialised a
 * second time for the spool.
 */
import { type AuditEvent, canonicalEventForms, sha256Hex, type UnchainedEvent } from '@chaperone/shared';

export function chainToText(
  event: UnchainedEvent,
  seq: number,
  prevHash: string,
): { event: AuditEvent; text: string } {
  const chaperone = { ...event.chaperone, seq, prevHash, hash: '' };
  const chained = { ...event, chaperone } as AuditEvent;
  const forms = canonicalEventForms(chained);
  chaperone.hash = sha256Hex(forms.unhashed);
  return { event: chained, text: forms.withHash(chaperone.hash) };
}
