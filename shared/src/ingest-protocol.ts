/**
 * The audit ingest protocol between a sidecar and the collector.
 *
 * Transport: a WebSocket to `<collector>/v1/ingest`, subprotocol
 * `chaperone.ingest.v1`, JSON text messages. The sidecar authenticates with
 * its projected service-account token (audience `chaperone-collector`) in the
 * `Authorization: Bearer` header; the collector takes the pod identity from
 * the verified token's claims and refuses events whose `chaperone.source`
 * names anyone else.
 *
 *   sidecar                                   collector
 *   hello {sidecarId}                   →
 *                                       ←     welcome {head: {seq, hash}}     (last durable event of this chain)
 *   batch {batchId, events[seq > head]} →
 *                                       ←     ack {batchId, upToSeq, stored, duplicates}   (only after commit/fsync)
 *                                       ←     nack {batchId, code, message, retryable}     (nothing of the batch stored)
 *
 * A chain belongs to one pod: its id is `chainIdFor(pod)` —
 * `<namespace>/<pod>/<pod uid>` from the token's claims — and the collector
 * refuses a hello for any other id, so no token can open, claim or block
 * another pod's chain. Every number on the wire is an integer within the
 * bounds below (sequence numbers at most MAX_SEQ); a batch with a value out
 * of range is refused with a nack naming it.
 *
 * Delivery is at-least-once: the sidecar resends unacknowledged batches after
 * a reconnect, starting after `welcome.head.seq`; the collector recognises
 * duplicates by event id and acknowledges them without storing them twice.
 * Events of one sidecar are sent in sequence order. Back-pressure: the sidecar
 * keeps at most `MAX_IN_FLIGHT_BATCHES` unacknowledged batches; the collector
 * stops reading while its write queue is full.
 */
import { type AuditEvent, MAX_SEQ, validateAuditEvent } from './audit-event.ts';
import { ValidationError } from './errors.ts';

export const INGEST_PATH = '/v1/ingest';
export const INGEST_SUBPROTOCOL = 'chaperone.ingest.v1';
export const COLLECTOR_AUDIENCE = 'chaperone-collector';
export const MAX_BATCH_EVENTS = 1000;
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
export const MAX_IN_FLIGHT_BATCHES = 4;

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

export type ClientMessage<E = AuditEvent> = HelloMessage | BatchMessage<E>;

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

export type ServerMessage = WelcomeMessage | AckMessage | NackMessage;

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
    default:
      throw new ValidationError(
        '/type',
        `unknown message type ${JSON.stringify(m.type)}; expected hello or batch`,
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

export function encodeMessage(m: ClientMessage | ServerMessage): string {
  return JSON.stringify(m);
}
