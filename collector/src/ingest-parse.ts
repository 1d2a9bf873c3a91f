/**
 * Parsing one ingest message, pure: the JSON is parsed once and every event
 * validated, serialised and hashed in the same pass (incoming-event.ts).
 * The result, failures included, is plain data: the parse worker
 * (ingest-parser.ts) sends it back by structured clone.
 */
import { type EventSource, parseClientMessage, ValidationError } from '@chaperone/shared';
import { type EventRow, ROW_KEYS } from './event-row.ts';
import { type IncomingEvent, validateIncoming } from './incoming-event.ts';

export type ParsedMessage =
  | { readonly kind: 'hello'; readonly sidecarId: string; readonly schemaVersion: number }
  | { readonly kind: 'batch'; readonly batchId: number; readonly events: readonly IncomingEvent[] }
  /** Malformed: the ValidationError's path and message. */
  | { readonly kind: 'invalid'; readonly path: string | undefined; readonly message: string }
  /** Parsing itself failed (a bug, or a value too deep to encode). */
  | { readonly kind: 'failed'; readonly message: string };

/** Parses a message received at `receivedUs` (µs since the epoch; the rows' receive time). */
export function parseIngestMessage(text: string, receivedUs: number): ParsedMessage {
  try {
    const msg = parseClientMessage(text, (value) => validateIncoming(value, receivedUs));
    return msg.type === 'hello'
      ? { kind: 'hello', sidecarId: msg.sidecarId, schemaVersion: msg.schemaVersion }
      : { kind: 'batch', batchId: msg.batchId, events: msg.events };
  } catch (err) {
    return err instanceof ValidationError
      ? { kind: 'invalid', path: err.path, message: err.message }
      : { kind: 'failed', message: (err as Error)?.message ?? String(err) };
  }
}

/**
 * A parsed message as the parse worker sends it: a batch's events as one
 * array per field rather than an object per event, which structured clone
 * copies at about half the cost (no key names per event).
 */
export type PackedMessage =
  | Exclude<ParsedMessage, { kind: 'batch' }>
  | { readonly kind: 'batch'; readonly batchId: number; readonly columns: EventColumns };

type EventColumns = { readonly [K in keyof EventRow]: EventRow[K][] } & {
  readonly computedHash: string[];
  /** The claimed source, field by field (`chaperone.source`). */
  readonly srcNamespace: string[];
  readonly srcPod: string[];
  readonly srcPodUID: (string | undefined)[];
  readonly srcServiceAccount: string[];
  readonly srcSidecarId: string[];
};

const SOURCE_KEYS = ['srcNamespace', 'srcPod', 'srcPodUID', 'srcServiceAccount', 'srcSidecarId'] as const;

export function packMessage(m: ParsedMessage): PackedMessage {
  if (m.kind !== 'batch') return m;
  const columns: Record<string, unknown[]> = {};
  for (const k of [...ROW_KEYS, ...SOURCE_KEYS, 'computedHash']) columns[k] = [];
  const c = columns as unknown as EventColumns;
  for (const e of m.events) {
    for (const k of ROW_KEYS) (columns[k] as unknown[]).push(e.row[k]);
    c.computedHash.push(e.computedHash);
    c.srcNamespace.push(e.source.namespace);
    c.srcPod.push(e.source.pod);
    c.srcPodUID.push(e.source.podUID);
    c.srcServiceAccount.push(e.source.serviceAccount);
    c.srcSidecarId.push(e.source.sidecarId);
  }
  return { kind: 'batch', batchId: m.batchId, columns: c };
}

export function unpackMessage(m: PackedMessage): ParsedMessage {
  if (m.kind !== 'batch') return m;
  const c = m.columns;
  const events: IncomingEvent[] = [];
  for (let i = 0; i < c.auditID.length; i++) {
    const row: EventRow = {
      auditID: c.auditID[i] as string,
      sidecarId: c.sidecarId[i] as string,
      seq: c.seq[i] as number,
      hash: c.hash[i] as string,
      prevHash: c.prevHash[i] as string,
      timeUs: c.timeUs[i] as number,
      receivedUs: c.receivedUs[i] as number,
      namespace: c.namespace[i] as string,
      pod: c.pod[i] as string,
      podUID: c.podUID[i] as string | null,
      serviceAccount: c.serviceAccount[i] as string,
      protocol: c.protocol[i] as string,
      verb: c.verb[i] as string,
      resource: c.resource[i] as string | null,
      action: c.action[i] as string,
      rule: c.rule[i] as string,
      sessionId: c.sessionId[i] as string | null,
      username: c.username[i] as string,
      searchText: c.searchText[i] as string,
      json: c.json[i] as string,
    };
    const source: EventSource = {
      namespace: c.srcNamespace[i] as string,
      pod: c.srcPod[i] as string,
      serviceAccount: c.srcServiceAccount[i] as string,
      sidecarId: c.srcSidecarId[i] as string,
    };
    const podUID = c.srcPodUID[i];
    if (podUID !== undefined) source.podUID = podUID;
    events.push({
      auditID: row.auditID,
      chaperone: { seq: row.seq, prevHash: row.prevHash, hash: row.hash },
      source,
      computedHash: c.computedHash[i] as string,
      row,
    });
  }
  return { kind: 'batch', batchId: m.batchId, events };
}
