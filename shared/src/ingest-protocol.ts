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
 * Delivery is at-least-once: the sidecar resends unacknowledged batches after
 * a reconnect, starting after `welcome.head.seq`; the collector recognises
 * duplicates by event id and acknowledges them without storing them twice.
 * Events of one sidecar are sent in sequence order. Back-pressure: the sidecar
 * keeps at most `MAX_IN_FLIGHT_BATCHES` unacknowledged batches; the collector
 * stops reading while its write queue is full.
 */
import { type AuditEvent, validateAuditEvent } from './audit-event.ts';
import { ValidationError } from './errors.ts';

export const INGEST_PATH = '/v1/ingest';
export const INGEST_SUBPROTOCOL = 'chaperone.ingest.v1';
export const COLLECTOR_AUDIENCE = 'chaperone-collector';
export const MAX_BATCH_EVENTS = 1000;
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
export const MAX_IN_FLIGHT_BATCHES = 4;

/** WebSocket close codes used by the collector (4000–4999 are application codes). */
export const CLOSE_CODES = {
  protocolError: 4400,
  unauthenticated: 4401,
  forbidden: 4403,
  tooLarge: 4413,
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
      if (typeof m.schemaVersion !== 'number')
        throw new ValidationError('/schemaVersion', 'must be a number');
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
      if (!head || typeof head.seq !== 'number' || typeof head.hash !== 'string') {
        throw new ValidationError('/head', 'must be {seq, hash}');
      }
      return { type: 'welcome', head: { seq: head.seq, hash: head.hash } };
    }
    case 'ack':
      if (typeof m.batchId !== 'number' || typeof m.upToSeq !== 'number') {
        throw new ValidationError('', 'ack needs batchId and upToSeq');
      }
      return {
        type: 'ack',
        batchId: m.batchId,
        upToSeq: m.upToSeq,
        stored: typeof m.stored === 'number' ? m.stored : 0,
        duplicates: typeof m.duplicates === 'number' ? m.duplicates : 0,
      };
    case 'nack':
      if (typeof m.batchId !== 'number' || typeof m.code !== 'string') {
        throw new ValidationError('', 'nack needs batchId and code');
      }
      return {
        type: 'nack',
        batchId: m.batchId,
        code: (NACK_CODES as readonly string[]).includes(m.code) ? (m.code as NackCode) : 'malformed',
        message: typeof m.message === 'string' ? m.message : '',
        retryable: m.retryable === true,
      };
    default:
      throw new ValidationError('/type', `unknown message type ${JSON.stringify(m.type)}`);
  }
}

export function encodeMessage(m: ClientMessage | ServerMessage): string {
  return JSON.stringify(m);
}
