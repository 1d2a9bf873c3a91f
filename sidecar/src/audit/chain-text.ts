/**
 * Chains an event and serialises it in one pass: the spool record is the
 * event's canonical JSON (with its hash), so the canonical form computed for
 * the hash is not followed by a second serialisation.
 *
 * The chain hash is sha256 of the canonical JSON without `chaperone.hash`
 * (shared's hashEvent). Encoding once with `"hash":""` gives both texts: the
 * hash input is that text without the `"hash":"",` member, the record is that
 * text with the hash filled in. An unescaped `"hash":""` can only be that
 * member — quotes inside string values are escaped. When the member is not
 * where it must be, the caller falls back to shared's chainEvent.
 */
import { hash } from 'node:crypto';
import { type AuditEvent, canonicalJson, type UnchainedEvent } from '@chaperone/shared';

const EMPTY = '"hash":"",';

export function chainToText(
  event: UnchainedEvent,
  seq: number,
  prevHash: string,
): { event: AuditEvent; text: string } | undefined {
  const chaperone = { ...event.chaperone, seq, prevHash, hash: '' };
  const chained = { ...event, chaperone } as AuditEvent;
  const withEmpty = canonicalJson(chained);
  const at = withEmpty.indexOf(EMPTY);
  if (at === -1 || withEmpty.indexOf(EMPTY, at + EMPTY.length) !== -1) return undefined;
  const digest = hash('sha256', withEmpty.slice(0, at) + withEmpty.slice(at + EMPTY.length), 'hex');
  chaperone.hash = digest;
  return {
    event: chained,
    text: `${withEmpty.slice(0, at)}"hash":"${digest}",${withEmpty.slice(at + EMPTY.length)}`,
  };
}
