/**
 * A reference client of the ingest protocol, for tests, the fault test's
 * sidecar-like processes and the ingest benchmark. It behaves as the
 * protocol asks of a sidecar: hello → welcome, resume after `welcome.head`,
 * at most MAX_IN_FLIGHT_BATCHES unacknowledged batches, and after any
 * disconnect or retryable nack it reconnects and resends everything not yet
 * acknowledged. (The sidecar has its own, spool-backed client.)
 */
import {
  type AckMessage,
  type AuditEvent,
  type ChainHead,
  ChaperoneError,
  encodeMessage,
  INGEST_PATH,
  INGEST_SUBPROTOCOL,
  MAX_IN_FLIGHT_BATCHES,
  type NackMessage,
  parseServerMessage,
  type ServerMessage,
} from '@chaperone/shared';
import WebSocket from 'ws';

export interface ConnectOptions {
  /** Base URL of the collector: http(s)://host:port or ws(s)://host:port. */
  url: string;
  token?: string;
  ca?: string;
  subprotocol?: string;
  /** ws's masking-key generator for the frames this client sends (a load generator may fix it). */
  generateMask?: (mask: Buffer) => void;
}

export type Connection =
  | { readonly ok: true; readonly ws: WebSocket; readonly messages: MessageQueue }
  | { readonly ok: false; readonly status: number; readonly body: string };

export function ingestUrl(base: string): string {
  return `${base.replace(/^http/, 'ws').replace(/\/+$/, '')}${INGEST_PATH}`;
}

/** Buffers server messages so callers can await the next one. */
export class MessageQueue {
  readonly #items: ServerMessage[] = [];
  readonly #waiters: { resolve: (m: ServerMessage) => void; reject: (e: Error) => void }[] = [];
  #closed: { code: number; reason: string } | undefined;

  push(m: ServerMessage): void {
    const w = this.#waiters.shift();
    if (w) w.resolve(m);
    else this.#items.push(m);
  }

  close(code: number, reason: string): void {
    this.#closed = { code, reason };
    for (const w of this.#waiters.splice(0)) w.reject(new ClosedError(code, reason));
  }

  get closed(): { code: number; reason: string } | undefined {
    return this.#closed;
  }

  next(timeoutMs = 30_000): Promise<ServerMessage> {
    const m = this.#items.shift();
    if (m) return Promise.resolve(m);
    if (this.#closed) return Promise.reject(new ClosedError(this.#closed.code, this.#closed.reason));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no message from the collector within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#waiters.push({
        resolve: (x) => {
          clearTimeout(timer);
          resolve(x);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }
}

export class ClosedError extends Error {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string) {
    super(`the collector closed the connection: ${code} ${reason}`);
    this.code = code;
    this.reason = reason;
  }
}

/** Opens an ingest connection; an HTTP refusal (401, 403, …) is returned, not thrown. */
export function connectIngest(opts: ConnectOptions): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(ingestUrl(opts.url), opts.subprotocol ?? INGEST_SUBPROTOCOL, {
      headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
      ...(opts.ca ? { ca: opts.ca } : {}),
      ...(opts.generateMask ? { generateMask: opts.generateMask } : {}),
      maxPayload: 16 * 1024 * 1024,
      handshakeTimeout: 10_000,
    });
    const messages = new MessageQueue();
    ws.on('message', (data) => messages.push(parseServerMessage((data as Buffer).toString('utf8'))));
    ws.on('close', (code, reason) => messages.close(code, reason.toString()));
    ws.once('open', () => resolve({ ok: true, ws, messages }));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ ok: false, status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
      );
      res.on('error', () => resolve({ ok: false, status: res.statusCode ?? 0, body: '' }));
    });
    ws.once('error', (err) => {
      if (ws.readyState !== WebSocket.OPEN) reject(err);
    });
  });
}

export interface StreamOptions {
  /** The collector; a function is asked again on every reconnect (e.g. to alternate replicas). */
  url: string | (() => string);
  /** Called for every connection attempt (projected tokens rotate). */
  token: () => string;
  sidecarId: string;
  /** The spool: events with consecutive seq numbers. */
  events: readonly AuditEvent[];
  batchSize?: number;
  maxInFlight?: number;
  ca?: string;
  reconnectDelayMs?: number;
  signal?: AbortSignal;
  /** Give up (with the last refusal) after this long without finishing. */
  deadlineMs?: number;
  onAck?: (ack: AckMessage) => void;
  /**
   * A batch message encoded ahead of time, if there is one for this batch id
   * and slice of `events` (a load generator encodes before it measures).
   */
  encoded?: (batchId: number, from: number, count: number) => Buffer | string | undefined;
  generateMask?: (mask: Buffer) => void;
}

export interface StreamResult {
  readonly head: ChainHead;
  readonly connections: number;
  readonly retryableNacks: number;
}

/** Streams the spool until every event is acknowledged, reconnecting as often as needed. */
export async function streamEvents(opts: StreamOptions): Promise<StreamResult> {
  const events = opts.events;
  if (events.length === 0) throw new ChaperoneError('usage', 'nothing to stream');
  const firstSeq = (events[0] as AuditEvent).chaperone.seq;
  const lastSeq = firstSeq + events.length - 1;
  const batchSize = opts.batchSize ?? 500;
  const maxInFlight = Math.min(opts.maxInFlight ?? MAX_IN_FLIGHT_BATCHES, MAX_IN_FLIGHT_BATCHES);
  let acked = firstSeq - 1;
  let head: ChainHead = { seq: 0, hash: '' };
  let connections = 0;
  let retryableNacks = 0;
  let batchId = 0;
  let lastProblem = '';
  const deadline = Date.now() + (opts.deadlineMs ?? Number.POSITIVE_INFINITY);
  while (acked < lastSeq) {
    if (opts.signal?.aborted || Date.now() > deadline)
      throw new ChaperoneError(
        'timeout',
        `stopped with ${lastSeq - acked} events unacknowledged${lastProblem ? `; last problem: ${lastProblem}` : ''}`,
      );
    let conn: Connection;
    try {
      const url = typeof opts.url === 'function' ? opts.url() : opts.url;
      conn = await connectIngest({
        url,
        token: opts.token(),
        ...(opts.ca ? { ca: opts.ca } : {}),
        ...(opts.generateMask ? { generateMask: opts.generateMask } : {}),
      });
    } catch (err) {
      lastProblem = (err as Error).message;
      await delay(opts.reconnectDelayMs ?? 100);
      continue;
    }
    if (!conn.ok) {
      if (conn.status === 503) {
        lastProblem = `HTTP 503 ${conn.body}`;
        await delay(opts.reconnectDelayMs ?? 100);
        continue;
      }
      throw new ChaperoneError(
        'unauthenticated',
        `the collector refused the connection: HTTP ${conn.status} ${conn.body}`,
      );
    }
    connections++;
    const { ws, messages } = conn;
    try {
      ws.send(encodeMessage({ type: 'hello', sidecarId: opts.sidecarId, schemaVersion: 1 }));
      const welcome = await messages.next();
      if (welcome.type !== 'welcome') throw new Error(`expected welcome, got ${welcome.type}`);
      acked = Math.max(acked, welcome.head.seq);
      head = welcome.head;
      let next = welcome.head.seq + 1;
      const inflight = new Map<number, number>();
      const pump = () => {
        while (inflight.size < maxInFlight && next <= lastSeq) {
          const from = next - firstSeq;
          const count = Math.min(batchSize, events.length - from);
          const id = batchId++;
          ws.send(
            opts.encoded?.(id, from, count) ??
              encodeMessage({ type: 'batch', batchId: id, events: events.slice(from, from + count) }),
            { binary: false }, // a text message, also when it was encoded ahead into a Buffer
          );
          next += count;
          inflight.set(id, next - 1);
        }
      };
      pump();
      while (acked < lastSeq) {
        const m = await messages.next();
        if (m.type === 'ack') {
          inflight.delete(m.batchId);
          if (m.upToSeq > acked) {
            acked = m.upToSeq;
            head = {
              seq: m.upToSeq,
              hash: (events[m.upToSeq - firstSeq] as AuditEvent | undefined)?.chaperone.hash ?? '',
            };
          }
          opts.onAck?.(m);
          pump();
        } else if (m.type === 'nack') {
          if (!m.retryable) throw new NackError(m);
          retryableNacks++;
          break; // reconnect and resume from the collector's head
        }
      }
    } catch (err) {
      if (err instanceof NackError) {
        ws.terminate();
        throw err;
      }
      lastProblem = (err as Error).message; // connection lost or closed: reconnect
    }
    ws.close();
    if (acked < lastSeq) await delay(opts.reconnectDelayMs ?? 100);
  }
  return { head, connections, retryableNacks };
}

export class NackError extends ChaperoneError {
  readonly nack: NackMessage;
  constructor(nack: NackMessage) {
    super('validation_failed', `the collector refused batch ${nack.batchId}: ${nack.code}: ${nack.message}`);
    this.nack = nack;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
