/**
 * The audit ingest protocol between a sidecar and the collector.
 *
 * Transport: a WebSocket to `<collector>/v1/ingest`, subprotocol
 * `chaperone.ingest.v2` (events and exec recordings; `chaperone.ingest.v1`,
 * events only, is still accepted from older sidecars), JSON text messages.
 * The sidecar authenticates with its projected service-account token
 * (audience `chaperone-collector`) in the `Authorization: Bearer` header; the
 * collector takes the pod identity from the verified token's claims and
 * refuses events whose `chaperone.source` names anyone else.
 *
 *   sidecar                                   collector
 *   hello {sidecarId}                   →
 *                                       ←     welcome {head: {seq, hash}}     (last durable event of this chain)
 *   batch {batchId, events[seq > head]} →
 *                                       ←     ack {batchId, upToSeq, stored, duplicates}   (only after commit/fsync)
 *   recording {batchId, sessionId,      →
 *              offset, data}            ←     recorded {batchId, size, duplicate}          (only after commit/fsync)
 *                                       ←     nack {batchId, code, message, retryable}     (nothing of the message stored)
 *
 * A chain belongs to one pod: its id is `chainIdFor(pod)` —
 * `<namespace>/<pod>/<pod uid>` from the token's claims — and the collector
 * refuses a hello for any other id, so no token can open, claim or block
 * another pod's chain. Every number on the wire is an integer within the
 * bounds below (sequence numbers at most MAX_SEQ); a batch with a value out
 * of range is refused with a nack naming it.
 *
 * Recordings (v2): an exec or attach session's asciicast v2 text, sent in
 * chunks of whole lines while the session runs. `offset` is the chunk's
 * position in the recording in UTF-8 bytes; the collector appends a chunk at
 * the recording's end, recognises a resent one (same bytes at the same
 * offset: `recorded` with `duplicate`) and refuses one that would leave a hole
 * (`out_of_order`) or differs from what it holds (`recording_conflict`). A
 * recording belongs to the chain whose events name its session
 * (`chaperone.sessionId`): the collector refuses a first chunk for a session
 * no event of this connection's chain names (`identity_mismatch`), and later
 * chunks from any other chain. Messages of both kinds share the `batchId`
 * numbering, so a nack names either.
 *
 * Delivery is at-least-once: the sidecar resends unacknowledged messages
 * after a reconnect, events starting after `welcome.head.seq`; the collector
 * recognises duplicate events by id and duplicate recording chunks by offset,
 * and acknowledges them without storing them twice. A sidecar sends its
 * spool in order (events in sequence order; a session's open event before its
 * recording). Back-pressure: the sidecar keeps at most
 * `MAX_IN_FLIGHT_BATCHES` unacknowledged messages; the collector stops
 * reading while its write queue is full.
 *
 * Versions: a collector that knows only `chaperone.ingest.v1` answers a
 * sidecar offering v2 alone with HTTP 400 naming v1, before any event is
 * sent: upgrade collectors before sidecars.
 */
import { type AuditEvent, MAX_SEQ, validateAuditEvent } from './audit-event.ts';
import { ValidationError } from './errors.ts';

export const INGEST_PATH = '/v1/ingest';
/** What sidecars offer: events and recordings. */
export const INGEST_SUBPROTOCOL = 'chaperone.ingest.v2';
/** Events only (sidecars without exec recordings); collectors still accept it. */
export const INGEST_SUBPROTOCOL_V1 = 'chaperone.ingest.v1';
/** What a collector accepts, in the order it prefers them. */
export const INGEST_SUBPROTOCOLS = [INGEST_SUBPROTOCOL, INGEST_SUBPROTOCOL_V1] as const;
export const COLLECTOR_AUDIENCE = 'chaperone-collector';
export const MAX_BATCH_EVENTS = 1000;
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
export const MAX_IN_FLIGHT_BATCHES = 4;
/** Largest recording the collector keeps for one session (UTF-8 bytes of asciicast text). */
export const MAX_RECORDING_BYTES = 64 * 1024 * 1024;
/** Largest chunk of a recording one message may carry. */
export const MAX_RECORDING_CHUNK_BYTES = 256 * 1024;
/** Session ids a recording may be filed under (the sidecar's are UUIDs). */
export const RECORDING_SESSION_ID = /^[A-Za-z0-9._:-]{1,256}$/;

/** Schema versions a hello may name (the collector then says which one it reads). */
export const MAX_SCHEMA_VERSION = 1000;
const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The one chain a pod's sidecar writes: namespace, pod name and pod uid, all
 * from the verified token. The uid makes a re-created pod of the same name a
 * new chain, and makes the id impossible to take before its pod exists.
 */
export function chainIdFor(pod: { namespace: string; pod: string; podUID: string }): string {
  return `${pod.namespace}/${pod.pod}/${pod.podUID}`;
}

/** WebSocket close codes used by the collector (4000–4999 are application codes). */
export const CLOSE_CODES = {
  protocolError: 4400,
  unauthenticated: 4401,
  forbidden: 4403,
  tooLarge: 4413,
  /** The collector's stored state cannot be offered (e.g. a chain head out of range); try again later. */
  internalError: 1011,
  overloaded: 1013,
  shuttingDown: 1001,
} as const;

export const NACK_CODES = [
  'malformed',
  'too_large',
  'schema_version',
  'invalid_event',
  'identity_mismatch',
  'out_of_order',
  'unavailable',
  'invalid_recording',
  'recording_conflict',
] as const;
export type NackCode = (typeof NACK_CODES)[number];

export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

export interface HelloMessage {
  readonly type: 'hello';
  readonly sidecarId: string;
  /** Schema version of the events this sidecar writes. */
  readonly schemaVersion: number;
}

/** `E`: what the receiver's event validator makes of each event (by default, the AuditEvent itself). */
export interface BatchMessage<E = AuditEvent> {
  readonly type: 'batch';
  readonly batchId: number;
  readonly events: readonly E[];
}

/** A chunk of a session's asciicast v2 recording: whole lines, at `offset` bytes into it. */
export interface RecordingMessage {
  readonly type: 'recording';
  /** Numbered with the batches: a nack names it. */
  readonly batchId: number;
  readonly sessionId: string;
  /** UTF-8 bytes of the recording before `data`. */
  readonly offset: number;
  /** asciicast v2 lines, each ending in "\n"; the header line is the first of the chunk at offset 0. */
  readonly data: string;
}

export type ClientMessage<E = AuditEvent> = HelloMessage | BatchMessage<E> | RecordingMessage;

export interface WelcomeMessage {
  readonly type: 'welcome';
  readonly head: ChainHead;
}

export interface AckMessage {
  readonly type: 'ack';
  readonly batchId: number;
  /** Every event of this sidecar up to this sequence number is durable. */
  readonly upToSeq: number;
  readonly stored: number;
  readonly duplicates: number;
}

export interface NackMessage {
  readonly type: 'nack';
  readonly batchId: number;
  readonly code: NackCode;
  readonly message: string;
  /** False when sending the same batch again cannot succeed. */
  readonly retryable: boolean;
}

export interface RecordedMessage {
  readonly type: 'recorded';
  readonly batchId: number;
  /** The session's recording is durable up to this many bytes. */
  readonly size: number;
  /** The chunk was there already (a resend). */
  readonly duplicate: boolean;
}

export type ServerMessage = WelcomeMessage | AckMessage | RecordedMessage | NackMessage;

function parseJson(text: string, what: string): Record<string, unknown> {
  if (text.length > MAX_MESSAGE_BYTES) {
    throw new ValidationError('', `${what} is ${text.length} bytes; the limit is ${MAX_MESSAGE_BYTES}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new ValidationError('', `${what} is not JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new ValidationError('', `${what} must be an object`);
  return v as Record<string, unknown>;
}

/**
 * Parses a message from a sidecar. Throws ValidationError for anything
 * malformed; a batch whose events fail validation throws with the index of the
 * first bad event (the collector turns that into a nack). `validateEvent` is
 * called once per event, in order: the collector passes one that validates
 * and, in the same pass, works out what it stores and hashes.
 */
export function parseClientMessage(text: string): ClientMessage;
export function parseClientMessage<E>(
  text: string,
  validateEvent: (value: unknown, index: number) => E,
): ClientMessage<E>;
export function parseClientMessage(
  text: string,
  validateEvent: (value: unknown, index: number) => unknown = validateAuditEvent,
): ClientMessage<unknown> {
  const m = parseJson(text, 'message');
  switch (m.type) {
    case 'hello':
      if (typeof m.sidecarId !== 'string' || m.sidecarId.length === 0 || m.sidecarId.length > 256) {
        throw new ValidationError('/sidecarId', 'must be a non-empty string of at most 256 characters');
      }
      if (
        typeof m.schemaVersion !== 'number' ||
        !Number.isInteger(m.schemaVersion) ||
        m.schemaVersion < 1 ||
        m.schemaVersion > MAX_SCHEMA_VERSION
      )
        throw new ValidationError('/schemaVersion', `must be an integer from 1 to ${MAX_SCHEMA_VERSION}`);
      return { type: 'hello', sidecarId: m.sidecarId, schemaVersion: m.schemaVersion };
    case 'batch': {
      if (typeof m.batchId !== 'number' || !Number.isSafeInteger(m.batchId) || m.batchId < 0) {
        throw new ValidationError('/batchId', 'must be a non-negative integer');
      }
      if (!Array.isArray(m.events) || m.events.length === 0) {
        throw new ValidationError('/events', 'must be a non-empty array');
      }
      if (m.events.length > MAX_BATCH_EVENTS) {
        throw new ValidationError(
          '/events',
          `has ${m.events.length} events; the limit is ${MAX_BATCH_EVENTS}`,
        );
      }
      const events = m.events.map((e, i) => {
        try {
          return validateEvent(e, i);
        } catch (err) {
          throw new ValidationError(
            `/events/${i}${(err as ValidationError).path ?? ''}`,
            (err as Error).message,
            {
              cause: err,
            },
          );
        }
      });
      return { type: 'batch', batchId: m.batchId, events };
    }
    case 'recording': {
      const batchId = bounded(m.batchId, '/batchId', 0, Number.MAX_SAFE_INTEGER);
      if (typeof m.sessionId !== 'string' || !RECORDING_SESSION_ID.test(m.sessionId))
        throw new ValidationError(
          '/sessionId',
          'must be 1 to 256 characters of letters, digits and . _ : - (the session id of the events)',
        );
      const offset = bounded(m.offset, '/offset', 0, MAX_RECORDING_BYTES);
      if (typeof m.data !== 'string') throw new ValidationError('/data', 'must be a string');
      checkAsciicastChunk(m.data, offset);
      return { type: 'recording', batchId, sessionId: m.sessionId, offset, data: m.data };
    }
    default:
      throw new ValidationError(
        '/type',
        `unknown message type ${JSON.stringify(m.type)}; expected hello, batch or recording`,
      );
  }
}

/** Parses a message from the collector (the sidecar side). */
export function parseServerMessage(text: string): ServerMessage {
  const m = parseJson(text, 'message');
  switch (m.type) {
    case 'welcome': {
      const head = m.head as Record<string, unknown> | undefined;
      if (!head || typeof head !== 'object' || typeof head.hash !== 'string' || !HEX64.test(head.hash)) {
        throw new ValidationError('/head', 'must be {seq, hash} with a sha256 hex hash');
      }
      return { type: 'welcome', head: { seq: bounded(head.seq, '/head/seq', 0, MAX_SEQ), hash: head.hash } };
    }
    case 'ack':
      return {
        type: 'ack',
        batchId: bounded(m.batchId, '/batchId', 0, Number.MAX_SAFE_INTEGER),
        upToSeq: bounded(m.upToSeq, '/upToSeq', 0, MAX_SEQ),
        stored: m.stored === undefined ? 0 : bounded(m.stored, '/stored', 0, MAX_BATCH_EVENTS),
        duplicates:
          m.duplicates === undefined ? 0 : bounded(m.duplicates, '/duplicates', 0, MAX_BATCH_EVENTS),
      };
    case 'recorded':
      return {
        type: 'recorded',
        batchId: bounded(m.batchId, '/batchId', 0, Number.MAX_SAFE_INTEGER),
        size: bounded(m.size, '/size', 0, MAX_RECORDING_BYTES),
        duplicate: m.duplicate === true,
      };
    case 'nack':
      if (typeof m.code !== 'string') {
        throw new ValidationError('/code', 'nack needs a code');
      }
      return {
        type: 'nack',
        batchId: bounded(m.batchId, '/batchId', 0, Number.MAX_SAFE_INTEGER),
        code: (NACK_CODES as readonly string[]).includes(m.code) ? (m.code as NackCode) : 'malformed',
        message: typeof m.message === 'string' ? m.message : '',
        retryable: m.retryable === true,
      };
    default:
      throw new ValidationError('/type', `unknown message type ${JSON.stringify(m.type)}`);
  }
}

/** An integer in [min, max], or a ValidationError naming the member and the range. */
function bounded(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new ValidationError(
      path,
      `must be an integer from ${min} to ${max}, got ${JSON.stringify(v) ?? 'nothing'}`,
    );
  return v;
}

/**
 * Checks a recording chunk is asciicast v2 text that `asciinema play` (2.2,
 * which reads v1 and v2 only) can read once appended at `offset`: whole
 * lines, each one JSON value; at offset 0 the first is the header
 * (`{"version": 2, "width", "height", …}`), every other line an event
 * `[time, code, data]`. Python reads the file with universal newlines, so a
 * raw CR (legal JSON whitespace) would split a line there: refused. Throws a
 * ValidationError under `/data`.
 */
export function checkAsciicastChunk(data: string, offset: number): void {
  const bytes = Buffer.byteLength(data, 'utf8');
  if (bytes === 0) throw new ValidationError('/data', 'must not be empty');
  if (bytes > MAX_RECORDING_CHUNK_BYTES)
    throw new ValidationError('/data', `is ${bytes} bytes; the limit is ${MAX_RECORDING_CHUNK_BYTES}`);
  if (offset + bytes > MAX_RECORDING_BYTES)
    throw new ValidationError(
      '/data',
      `would make the recording ${offset + bytes} bytes; the limit is ${MAX_RECORDING_BYTES}`,
    );
  if (!data.endsWith('\n')) throw new ValidationError('/data', 'must be whole lines, each ending in "\\n"');
  if (!data.isWellFormed() || data.includes('\u0000') || data.includes('\r'))
    throw new ValidationError('/data', 'is not asciicast text (unpaired surrogate, NUL or a raw CR)');
  let start = 0;
  for (let line = 0; start < data.length; line++) {
    const end = data.indexOf('\n', start);
    const text = data.slice(start, end);
    start = end + 1;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new ValidationError(`/data`, `line ${line + 1} is not JSON`);
    }
    if (offset === 0 && line === 0) {
      const h = v as { version?: unknown; width?: unknown; height?: unknown; timestamp?: unknown };
      if (
        typeof v !== 'object' ||
        v === null ||
        Array.isArray(v) ||
        h.version !== 2 ||
        !isDimension(h.width) ||
        !isDimension(h.height) ||
        (h.timestamp !== undefined && (typeof h.timestamp !== 'number' || !Number.isFinite(h.timestamp)))
      )
        throw new ValidationError(
          '/data',
          'a recording starts with an asciicast v2 header: {"version": 2, "width": W, "height": H}',
        );
      continue;
    }
    if (
      !Array.isArray(v) ||
      v.length !== 3 ||
      typeof v[0] !== 'number' ||
      !Number.isFinite(v[0]) ||
      v[0] < 0 ||
      typeof v[1] !== 'string' ||
      v[1].length === 0 ||
      typeof v[2] !== 'string'
    )
      throw new ValidationError(`/data`, `line ${line + 1} is not an asciicast v2 event [time, code, data]`);
  }
}

function isDimension(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 10_000;
}

export function encodeMessage(m: ClientMessage | ServerMessage): string {
  return JSON.stringify(m);
}
