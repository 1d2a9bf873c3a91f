/**
 * Ships spooled audit events and session recordings to the collector over the
 * ingest protocol (`@chaperone/shared` ingest-protocol, `chaperone.ingest.v2`):
 * hello → welcome (the collector's durable head of this chain) → the spool's
 * records in order — runs of events as batches (→ ack), each recording chunk
 * as a recording message (→ recorded). The spool is the source of truth: a
 * record leaves it only after the collector has acknowledged it, so nothing
 * is lost when the collector is down, slow or restarts, or when this sidecar
 * restarts; after a reconnect every unacknowledged record is sent again (the
 * collector recognises events by id and chunks by offset). A recording chunk
 * the collector refuses for good (a nack that is not retryable: it can never
 * be stored) is dropped from the spool with an error in the log, so one bad
 * chunk cannot hold back the audit trail behind it. Reconnects with
 * exponential back-off and jitter.
 *
 * What the collector says about the chain is checked against the spool, never
 * taken on trust: a `welcome` head beyond the spool's own head, or at a
 * sequence number whose hash differs from the spool's, or an `ack` beyond
 * the batch it answers, releases nothing — the conflict is reported
 * (`onConflict`: log and metric) and the events stay in the spool, to be sent
 * again.
 */
import type { IncomingMessage } from 'node:http';
import {
  type AckMessage,
  encodeMessage,
  INGEST_PATH,
  INGEST_SUBPROTOCOL,
  type Logger,
  MAX_BATCH_EVENTS,
  MAX_IN_FLIGHT_BATCHES,
  MAX_MESSAGE_BYTES,
  type NackMessage,
  parseServerMessage,
  type RecordedMessage,
} from '@chaperone/shared';
import WebSocket from 'ws';
import { type CollectorEndpoint, openCollectorSocket, readRefusal } from '../collector-socket.ts';
import type { RecordingChunk, Spool } from './spool.ts';

export interface ShipperOptions extends CollectorEndpoint {
  readonly sidecarId: string;
  readonly spool: Spool;
  readonly log: Logger;
  /** Wait this long to gather a batch after an append (default 20 ms). */
  readonly flushDelayMs?: number;
  readonly onAck?: (ack: AckMessage) => void;
  readonly onRecorded?: (recorded: RecordedMessage) => void;
  readonly onNack?: (nack: NackMessage) => void;
  readonly onConnectionChange?: (connected: boolean) => void;
  /** The collector claimed events of this chain that the spool never gave it. */
  readonly onConflict?: (kind: ChainConflict) => void;
}

export type ChainConflict =
  | 'welcome_ahead'
  | 'welcome_hash'
  | 'welcome_behind'
  | 'ack_ahead'
  | 'ack_unknown'
  | 'recorded_short';

/** What a message in flight carried: a run of events (its last seq), or one recording chunk. */
type InFlight =
  | { readonly kind: 'events'; readonly lastSeq: number }
  | { readonly kind: 'recording'; readonly pos: number; readonly chunk: RecordingChunk };

type Conn = {
  ws: WebSocket;
  ready: boolean;
  /** Spool position of the last record sent on this connection. */
  lastSent: number;
  inFlight: Map<number, InFlight>;
  alive: boolean;
};

export class Shipper {
  readonly #opts: ShipperOptions;
  #conn: Conn | undefined;
  #stopped = false;
  #backoffMs = 250;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #batchId = 0;
  #unsubscribe: () => void = () => {};
  /** Since when no collector connection has been ready (ms since epoch); undefined while one is. */
  #disconnectedSince: number | undefined = Date.now();
  #drainWaiters = new Set<() => void>();

  constructor(opts: ShipperOptions) {
    this.#opts = opts;
  }

  get connected(): boolean {
    return this.#conn?.ready === true;
  }

  /**
   * Since when the collector has been out of reach or has held spooled events
   * unacknowledged (ms since epoch), whichever is longer; undefined while it
   * is connected and has acknowledged everything.
   */
  behindSince(): number | undefined {
    const oldest = this.#opts.spool.oldestUnackedAt;
    const down = this.#disconnectedSince;
    if (oldest === undefined) return down;
    if (down === undefined) return oldest;
    return Math.min(oldest, down);
  }

  /**
   * Sends what is in the spool and waits until the collector has acknowledged
   * all of it, or `timeoutMs` has passed. True when the spool is empty. Records
   * appended meanwhile are included. Whatever is not acknowledged stays in the
   * spool for the next start.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    const { spool } = this.#opts;
    if (spool.pending === 0) return true;
    if (this.#stopped) return false;
    // Don't sit out a long back-off: try the collector now.
    if (this.#reconnectTimer && !this.#conn) {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = undefined;
      this.#backoffMs = 250;
      this.#connect();
    } else if (this.#conn) {
      this.#pump(this.#conn);
    }
    let done: () => void = () => {};
    const drained = new Promise<void>((resolve) => {
      done = resolve;
    });
    this.#drainWaiters.add(done);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    this.#drainWaiters.delete(done);
    return spool.pending === 0;
  }

  start(): void {
    this.#unsubscribe = this.#opts.spool.onAppend(() => this.#scheduleFlush());
    this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const w of this.#drainWaiters) w();
    this.#unsubscribe();
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#flushTimer);
    clearInterval(this.#pingTimer);
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn && conn.ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        conn.ws.once('close', () => resolve());
        conn.ws.close(1001, 'sidecar shutting down');
        setTimeout(() => {
          conn.ws.terminate();
          resolve();
        }, 2000).unref();
      });
    }
  }

  #connect(): void {
    if (this.#stopped) return;
    const { log } = this.#opts;
    let ws: WebSocket;
    try {
      ws = openCollectorSocket(this.#opts, INGEST_PATH, INGEST_SUBPROTOCOL, {
        maxPayload: MAX_MESSAGE_BYTES,
        handshakeTimeoutMs: 10_000,
      });
    } catch (err) {
      log.error({ err, tokenFile: this.#opts.tokenFile }, 'cannot read the collector token; retrying');
      this.#scheduleReconnect();
      return;
    }
    const conn: Conn = { ws, ready: false, lastSent: 0, inFlight: new Map(), alive: true };
    this.#conn = conn;
    ws.on('open', () => {
      ws.send(encodeMessage({ type: 'hello', sidecarId: this.#opts.sidecarId, schemaVersion: 1 }));
      clearInterval(this.#pingTimer);
      this.#pingTimer = setInterval(() => {
        if (!conn.alive) {
          log.warn('collector stopped answering pings; reconnecting');
          ws.terminate();
          return;
        }
        conn.alive = false;
        ws.ping();
      }, 15_000);
      this.#pingTimer.unref();
    });
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('unexpected-response', (_req, res) => this.#refused(ws, res));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      conn.alive = true;
      try {
        this.#onMessage(conn, data.toString());
      } catch (err) {
        log.error({ err }, 'unreadable message from the collector; reconnecting');
        ws.terminate();
      }
    });
    ws.on('error', (err) => {
      log.warn({ err: { message: err.message } }, 'collector connection error');
    });
    ws.on('close', (code, reason) => {
      clearInterval(this.#pingTimer);
      if (this.#conn === conn) this.#conn = undefined;
      if (conn.ready) {
        this.#disconnectedSince = Date.now();
        this.#opts.onConnectionChange?.(false);
      }
      if (!this.#stopped) {
        log.info({ code, reason: reason.toString() }, 'collector connection closed; will reconnect');
        this.#scheduleReconnect();
      }
    });
  }

  /** The collector answered the upgrade with an error: log what it said (its JSON reason), then reconnect later. */
  #refused(ws: WebSocket, res: IncomingMessage): void {
    readRefusal(res, (reason) => {
      const old = res.statusCode === 400 && /chaperone\.ingest\.v1/.test(reason);
      this.#opts.log.error(
        { status: res.statusCode, reason },
        old
          ? `the collector speaks only chaperone.ingest.v1, and this sidecar sends ${INGEST_SUBPROTOCOL} (events and exec session recordings): upgrade the collector; the events wait in the spool`
          : 'the collector refused the ingest connection',
      );
      ws.terminate();
    });
  }

  #onMessage(conn: Conn, text: string): void {
    const msg = parseServerMessage(text);
    const { spool, log } = this.#opts;
    switch (msg.type) {
      case 'welcome': {
        const conflict = this.#checkWelcome(msg.head);
        if (conflict) {
          // Trust the spool: release nothing, send every unacknowledged event again.
          this.#conflict(conflict, { collectorHead: msg.head, spoolHead: spool.head, acked: spool.ackedSeq });
        } else {
          spool.ack(msg.head.seq);
        }
        // Every record not acknowledged is sent again, from the first (events up to the head were just released).
        conn.lastSent = 0;
        conn.ready = true;
        this.#disconnectedSince = undefined;
        this.#backoffMs = 250;
        this.#opts.onConnectionChange?.(true);
        this.#pump(conn);
        this.#settled();
        return;
      }
      case 'ack': {
        const sent = conn.inFlight.get(msg.batchId);
        if (sent?.kind !== 'events') {
          this.#conflict('ack_unknown', { batchId: msg.batchId, upToSeq: msg.upToSeq });
          return;
        }
        conn.inFlight.delete(msg.batchId);
        const last = sent.lastSeq;
        if (msg.upToSeq > last) {
          this.#conflict('ack_ahead', { batchId: msg.batchId, upToSeq: msg.upToSeq, batchLastSeq: last });
        }
        // Only what this batch (and those before it) carried can have been stored.
        spool.ack(Math.min(msg.upToSeq, last));
        this.#opts.onAck?.(msg);
        this.#pump(conn);
        this.#settled();
        return;
      }
      case 'recorded': {
        const sent = conn.inFlight.get(msg.batchId);
        if (sent?.kind !== 'recording') {
          this.#conflict('ack_unknown', { batchId: msg.batchId, size: msg.size });
          return;
        }
        conn.inFlight.delete(msg.batchId);
        const end = sent.chunk.offset + Buffer.byteLength(sent.chunk.data, 'utf8');
        if (msg.size < end) {
          // It cannot hold this chunk: keep it, to be sent again on the next connection.
          this.#conflict('recorded_short', {
            batchId: msg.batchId,
            sessionId: sent.chunk.sessionId,
            size: msg.size,
            chunkEnd: end,
          });
        } else {
          spool.ackRecording(sent.pos);
          this.#opts.onRecorded?.(msg);
        }
        this.#pump(conn);
        this.#settled();
        return;
      }
      case 'nack': {
        this.#opts.onNack?.(msg);
        const sent = conn.inFlight.get(msg.batchId);
        if (sent?.kind === 'recording' && !msg.retryable) {
          // The collector can never store this chunk: holding it would hold back everything behind it.
          conn.inFlight.delete(msg.batchId);
          spool.ackRecording(sent.pos);
          log.error(
            {
              code: msg.code,
              batchId: msg.batchId,
              sessionId: sent.chunk.sessionId,
              offset: sent.chunk.offset,
              reason: msg.message,
            },
            'the collector refused a chunk of a session recording for good; it is dropped from the spool, and the replay of that session will lack it',
          );
          this.#pump(conn);
          this.#settled();
          return;
        }
        log.error(
          { code: msg.code, batchId: msg.batchId, retryable: msg.retryable, reason: msg.message },
          sent?.kind === 'recording'
            ? 'the collector could not store a chunk of a session recording now; it stays in the spool'
            : 'the collector rejected an audit batch; the events stay in the spool',
        );
        if (!msg.retryable) this.#backoffMs = 30_000;
        conn.ws.close(1000, 'batch rejected');
        return;
      }
    }
  }

  /** What is wrong with the collector's view of the chain, judged by the spool; undefined when nothing. */
  #checkWelcome(head: { readonly seq: number; readonly hash: string }): ChainConflict | undefined {
    const { spool } = this.#opts;
    if (!Number.isSafeInteger(head.seq) || head.seq < 0 || head.seq > spool.head.seq) return 'welcome_ahead';
    if (head.seq > spool.ackedSeq) {
      // Still held: the collector must have exactly this event there.
      const [held] = spool.read(head.seq - 1, 1);
      if (held?.chaperone.seq !== head.seq || held.chaperone.hash !== head.hash) return 'welcome_hash';
    } else if (head.seq === spool.head.seq && head.hash !== spool.head.hash) {
      return 'welcome_hash';
    } else if (head.seq < spool.ackedSeq) {
      // Events it acknowledged are gone from the collector; they are gone from here too. Say so, carry on.
      this.#conflict('welcome_behind', { collectorHead: head, acked: spool.ackedSeq });
    }
    return undefined;
  }

  #conflict(kind: ChainConflict, details: Record<string, unknown>): void {
    this.#opts.onConflict?.(kind);
    this.#opts.log.error(
      { conflict: kind, ...details },
      kind === 'welcome_behind'
        ? 'the collector has lost events of this chain it had acknowledged; raise it with the collector operator'
        : 'the collector claims events of this chain that this sidecar never sent it; the events stay in the spool and are sent again. Check the collector (its store may have been altered)',
    );
  }

  #settled(): void {
    if (this.#opts.spool.pending > 0) return;
    for (const w of this.#drainWaiters) w();
  }

  #scheduleFlush(): void {
    if (this.#flushTimer || !this.#conn?.ready) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      if (this.#conn) this.#pump(this.#conn);
    }, this.#opts.flushDelayMs ?? 20);
  }

  #pump(conn: Conn): void {
    if (!conn.ready || conn.ws.readyState !== WebSocket.OPEN) return;
    const { spool } = this.#opts;
    while (conn.inFlight.size < MAX_IN_FLIGHT_BATCHES && conn.lastSent < spool.lastPos) {
      const run = spool.readRun(conn.lastSent, MAX_BATCH_EVENTS, MAX_MESSAGE_BYTES / 2);
      const first = run[0];
      if (!first) {
        // Everything after it is acknowledged already.
        conn.lastSent = spool.lastPos;
        break;
      }
      const batchId = ++this.#batchId;
      if (first.kind === 'recording') {
        const { sessionId, offset, data } = first.chunk;
        conn.ws.send(encodeMessage({ type: 'recording', batchId, sessionId, offset, data }));
        conn.inFlight.set(batchId, { kind: 'recording', pos: first.pos, chunk: first.chunk });
        conn.lastSent = first.pos;
        continue;
      }
      const events = run.flatMap((r) => (r.kind === 'event' ? [r.event] : []));
      const last = run.at(-1) as (typeof run)[number];
      conn.ws.send(encodeMessage({ type: 'batch', batchId, events }));
      conn.inFlight.set(batchId, { kind: 'events', lastSeq: events.at(-1)?.chaperone.seq ?? 0 });
      conn.lastSent = last.pos;
    }
  }

  #scheduleReconnect(): void {
    if (this.#stopped || this.#reconnectTimer) return;
    const delay = Math.min(this.#backoffMs, 15_000) * (0.75 + Math.random() * 0.5);
    this.#backoffMs = Math.min(this.#backoffMs * 2, 15_000);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#connect();
    }, delay);
  }
}
