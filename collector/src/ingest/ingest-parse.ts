/**
 * Parsing one ingest message, pure: the JSON is parsed once and every event
 * validated, serialised and hashed in the same pass (incoming-event.ts).
 * The result, failures included, is plain data: the parse worker
 * (ingest-parser.ts) sends it back by structured clone.
 */
import { type EventSource, MAX_MESSAGE_BYTES, parseClientMessage, ValidationError } from '@chaperone/shared';
import type { EventFacts } from '../events/event-facts.ts';
import { type EventRow, ROW_KEYS } from '../events/event-row.ts';
import { type IncomingEvent, validateIncoming } from '../events/incoming-event.ts';
import { checkMessageDepth } from './json-depth.ts';

export type ParsedMessage =
  | { readonly kind: 'hello'; readonly sidecarId: string; readonly schemaVersion: number }
  | { readonly kind: 'batch'; readonly batchId: number; readonly events: readonly IncomingEvent[] }
  /** A recording chunk, its asciicast text checked (shared checkAsciicastChunk). */
  | {
      readonly kind: 'recording';
      readonly batchId: number;
      readonly sessionId: string;
      readonly offset: number;
      readonly data: string;
    }
  /** Malformed: the ValidationError's path and message, and the batch it was, if that can be read. */
  | {
      readonly kind: 'invalid';
      readonly path: string | undefined;
      readonly message: string;
      readonly batchId?: number;
    }
  /** Parsing itself failed (a bug, or a value too deep to encode). */
  | { readonly kind: 'failed'; readonly message: string };

/** Parses a message received at `receivedUs` (µs since the epoch; the rows' receive time). */
export function parseIngestMessage(text: string, receivedUs: number): ParsedMessage {
  try {
    // Before the parser or anything recursive sees it: a deep message costs one scan of its text.
    checkMessageDepth(text);
    const msg = parseClientMessage(text, (value) => validateIncoming(value, receivedUs));
    switch (msg.type) {
      case 'hello':
        return { kind: 'hello', sidecarId: msg.sidecarId, schemaVersion: msg.schemaVersion };
      case 'batch':
        return { kind: 'batch', batchId: msg.batchId, events: msg.events };
      case 'recording': {
        const { batchId, sessionId, offset, data } = msg;
        return { kind: 'recording', batchId, sessionId, offset, data };
      }
    }
  } catch (err) {
    if (!(err instanceof ValidationError))
      return { kind: 'failed', message: (err as Error)?.message ?? String(err) };
    const batchId = batchIdOf(text);
    return {
      kind: 'invalid',
      path: err.path,
      message: err.message,
      ...(batchId === undefined ? {} : { batchId }),
    };
  }
}

/**
 * The batchId of a refused batch or recording message, so the refusal can name it (worked out
 * here, on the parse worker, only for refused messages): the top-level
 * members read without parsing the rest, so a message refused for its
 * nesting is not parsed after all.
 */
function batchIdOf(text: string): number | undefined {
  if (text.length > MAX_MESSAGE_BYTES) return undefined;
  const top = topLevelScalars(text);
  const id = top.batchId;
  return (top.type === 'batch' || top.type === 'recording') &&
    typeof id === 'number' &&
    Number.isSafeInteger(id) &&
    id >= 0
    ? id
    : undefined;
}

/** The string and number members of a JSON object's top level (later members of the same name win). */
function topLevelScalars(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const colon = /\s*:\s*/y;
  const number = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x22) {
      const end = stringEnd(text, i);
      colon.lastIndex = end;
      if (depth === 1 && colon.test(text)) {
        const at = colon.lastIndex;
        let valueEnd = at;
        if (text.charCodeAt(at) === 0x22) valueEnd = stringEnd(text, at);
        else {
          number.lastIndex = at;
          if (number.test(text)) valueEnd = number.lastIndex;
        }
        if (valueEnd > at) {
          try {
            out[JSON.parse(text.slice(i, end)) as string] = JSON.parse(text.slice(at, valueEnd));
          } catch {
            // not a readable member
          }
        }
        i = Math.max(valueEnd, at) - 1;
      } else i = end - 1;
    }
  }
  return out;
}

/** Index just past the string starting at `start` (its opening quote). */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) i++;
    else if (c === 0x22) return i + 1;
  }
  return text.length;
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
  readonly facts: EventFacts[];
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
  for (const k of [...ROW_KEYS, ...SOURCE_KEYS, 'computedHash', 'facts']) columns[k] = [];
  const c = columns as unknown as EventColumns;
  for (const e of m.events) {
    for (const k of ROW_KEYS) (columns[k] as unknown[]).push(e.row[k]);
    c.computedHash.push(e.computedHash);
    c.facts.push(e.facts);
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
      facts: c.facts[i] as EventFacts,
    });
  }
  return { kind: 'batch', batchId: m.batchId, events };
}
