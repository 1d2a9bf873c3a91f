/**
 * The server side of the ingest protocol (shared/src/ingest-protocol.ts):
 * WebSocket upgrades at /v1/ingest, authenticated before the upgrade, then
 * hello → welcome, batch → ack/nack, recording → recorded/nack per
 * connection (recordings only on `chaperone.ingest.v2`; a `v1` connection,
 * from an older sidecar, carries events alone).
 *
 * - Authentication happens before the upgrade: no subprotocol → 400, no or
 *   bad token → 401, a token not bound to a pod → 403, a pod Chaperone did
 *   not inject or a namespace not opted in → 403 (pod-admission.ts), issuer
 *   keys, TokenReview or the pod lookup unreachable → 503; each with the
 *   reason in a JSON body.
 * - The token's pod is the identity: a connection may open only its pod's
 *   own chain, `<namespace>/<pod>/<uid>` from the token (else close 4403 and
 *   an integrity alert), so no token can open, claim or block another pod's
 *   chain; every event's `chaperone.source` must name the pod (else nack
 *   `identity_mismatch` + an integrity alert).
 * - Numbers are bounded: each event's by its validation, a batch's seqs
 *   must increase and its timestamps be plausible (batch-bounds.ts), else
 *   nack `invalid_event`; `welcome` offers only a stored head within range.
 * - An ack is sent only after the write queue resolved the batch as
 *   committed; nacks say why and whether a resend can succeed.
 * - A recording chunk goes through the same write queue, on its chain, so it
 *   commits after the events sent before it (its session's open event among
 *   them); the store files it under the connection's pod and chain and keeps
 *   it only for a session that chain's events name (recording-append.ts).
 * - Back-pressure: while the write queue is full, or a connection has too
 *   many batches outstanding, its socket is not read (TCP pushes back).
 * - A connection is closed (4401) when its token expires, so a long-lived
 *   connection never outlives its credential.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  AUDIT_SCHEMA_VERSION,
  CLOSE_CODES,
  encodeMessage,
  GENESIS_HASH,
  INGEST_SUBPROTOCOL,
  INGEST_SUBPROTOCOLS,
  type Logger,
  MAX_IN_FLIGHT_BATCHES,
  MAX_MESSAGE_BYTES,
  MAX_SEQ,
  type NackCode,
  type ServerMessage,
  toChaperoneError,
} from '@chaperone/shared';
import { type WebSocket, WebSocketServer } from 'ws';
import type { PodAdmission } from '../auth/pod-admission.ts';
import {
  chainRefusal,
  sourceMismatch,
  type TokenVerifier,
  type VerifiedSidecar,
} from '../auth/sidecar-identity.ts';
import {
  authenticateSidecar,
  refuseUpgrade,
  type UpgradeRefusal,
  upgradeRefusal,
} from '../auth/sidecar-upgrade.ts';
import type { CollectorMetrics } from '../collector-metrics.ts';
import type { IncomingEvent } from '../events/incoming-event.ts';
import { microsToRfc3339, nowMicros } from '../events/time.ts';
import { describeIdentity, ownerMismatchMessage, sameOwner } from '../store/ingest-plan.ts';
import type {
  AuditStore,
  BatchOutcome,
  IncomingRecording,
  IncomingWrite,
  IntegrityAlert,
  OutcomeOf,
  RecordingOutcome,
} from '../store/store.ts';
import { batchBoundsProblem } from './batch-bounds.ts';
import type { ParsedMessage } from './ingest-parse.ts';
import { createMessageParser, type MessageParser } from './ingest-parser.ts';
import type { QueuedBatch, WriteQueue } from './write-queue.ts';

/** Batches a connection may have waiting for commit before we stop reading it. */
const MAX_OUTSTANDING = MAX_IN_FLIGHT_BATCHES * 2;
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface IngestServerOptions {
  verifier: TokenVerifier;
  /**
   * Whether a verified pod may ship events (injected, namespace opted in).
   * Absent only when the collector has no Kubernetes API access: then every
   * verified pod-bound token is accepted.
   */
  admission?: PodAdmission;
  store: AuditStore;
  queue: WriteQueue;
  logger: Logger;
  metrics: CollectorMetrics;
  helloTimeoutMs?: number;
  /** Where messages are parsed (default: a worker thread the server owns, see ingest-parser.ts). */
  parser?: MessageParser;
}

type ConnectionOptions = IngestServerOptions & { readonly parser: MessageParser };

export class IngestServer {
  readonly #opts: ConnectionOptions;
  readonly #ownParser: boolean;
  readonly #wss: WebSocketServer;
  readonly #connections = new Set<IngestConnection>();

  constructor(opts: IngestServerOptions) {
    this.#ownParser = opts.parser === undefined;
    const parser =
      opts.parser ??
      createMessageParser(() =>
        opts.logger.warn(
          'the ingest parse worker file was not found beside the collector; parsing on the main thread',
        ),
      );
    this.#opts = { ...opts, parser };
    this.#wss = new WebSocketServer({
      noServer: true,
      // Room to read an oversized batch far enough to answer it with a nack.
      maxPayload: 2 * MAX_MESSAGE_BYTES,
      perMessageDeflate: false,
      handleProtocols: (protocols) => INGEST_SUBPROTOCOLS.find((p) => protocols.has(p)) ?? false,
    });
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Handles an HTTP upgrade for the ingest path. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim());
    if (!INGEST_SUBPROTOCOLS.some((p) => offered.includes(p))) {
      this.#refuse(socket, {
        status: 400,
        code: 'protocol',
        message: `use the WebSocket subprotocol ${INGEST_SUBPROTOCOLS.join(' or ')}`,
      });
      return;
    }
    authenticateSidecar(req, this.#opts.verifier, this.#opts.admission)
      .then(
        (identity) => {
          if (socket.destroyed) return;
          this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, identity, req));
        },
        (err: unknown) => {
          const refusal = upgradeRefusal(err);
          if (refusal.status === 503)
            this.#opts.logger.warn(
              { err: toChaperoneError(err) },
              'cannot verify a sidecar token or its pod',
            );
          this.#refuse(socket, refusal);
        },
      )
      .catch((err: unknown) => {
        this.#opts.logger.error({ err }, 'accepting an ingest connection failed');
        socket.destroy();
      });
  }

  #refuse(socket: Duplex, refusal: UpgradeRefusal): void {
    this.#opts.metrics.authFailures.inc({ surface: 'ingest', code: refusal.code });
    this.#opts.logger.info(
      { status: refusal.status, code: refusal.code, reason: refusal.message },
      'ingest connection refused',
    );
    refuseUpgrade(socket, refusal);
  }

  #accept(ws: WebSocket, identity: VerifiedSidecar, req: IncomingMessage): void {
    const conn = new IngestConnection(ws, identity, this.#opts, req.socket.remoteAddress ?? '');
    this.#connections.add(conn);
    this.#opts.metrics.connections.set(this.#connections.size);
    ws.once('close', () => {
      this.#connections.delete(conn);
      this.#opts.metrics.connections.set(this.#connections.size);
    });
  }

  /** Closes every connection (sidecars reconnect elsewhere) and stops accepting. */
  async close(code: number = CLOSE_CODES.shuttingDown, reason = 'collector shutting down'): Promise<void> {
    const closed = [...this.#connections].map(
      (c) => new Promise<void>((resolve) => c.close(code, reason, resolve)),
    );
    await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, 2000).unref())]);
    for (const c of this.#connections) c.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    if (this.#ownParser) await this.#opts.parser.close();
  }
}

class IngestConnection {
  readonly #ws: WebSocket;
  readonly #identity: VerifiedSidecar;
  readonly #opts: ConnectionOptions;
  #log: Logger;
  #sidecarId: string | undefined;
  #helloPending = false;
  /** An earlier batch was not stored and will be resent: refuse gaps until it is. */
  #lostBatch = false;
  /** An earlier recording chunk was not stored and will be resent (after the sidecar reconnects). */
  #lostChunk = false;
  /** The connection speaks chaperone.ingest.v2: it may send recordings. */
  readonly #recordings: boolean;
  #outstanding = 0;
  /** Messages received and still being parsed: they count against the limit too. */
  #parsing = 0;
  #paused = false;
  #serial: Promise<void> = Promise.resolve();
  readonly #timers: NodeJS.Timeout[] = [];
  #stopDrainListener: (() => void) | undefined;

  constructor(ws: WebSocket, identity: VerifiedSidecar, opts: ConnectionOptions, remote: string) {
    this.#ws = ws;
    this.#identity = identity;
    this.#opts = opts;
    this.#recordings = ws.protocol === INGEST_SUBPROTOCOL;
    this.#log = opts.logger.child({ namespace: identity.namespace, pod: identity.pod, remote });
    this.#log.debug('sidecar connected');
    this.#timers.push(
      setTimeout(() => {
        if (!this.#sidecarId) this.close(CLOSE_CODES.protocolError, 'no hello within the time limit');
      }, opts.helloTimeoutMs ?? 10_000),
    );
    if (identity.expiresAtMs !== undefined) {
      const ms = Math.max(0, Math.min(MAX_TIMER_MS, identity.expiresAtMs - Date.now()));
      this.#timers.push(
        setTimeout(
          () => this.close(CLOSE_CODES.unauthenticated, 'token expired; reconnect with a fresh token'),
          ms,
        ),
      );
    }
    ws.on('message', (data, isBinary) => {
      const arrived = { at: performance.now(), us: nowMicros() };
      let handle: () => Promise<void>;
      if (isBinary) {
        handle = async () => this.close(CLOSE_CODES.protocolError, 'send JSON text messages, not binary');
      } else {
        const bytes = (data as Buffer).length;
        // Parsing starts now (on the parse worker); results are handled in arrival order.
        const parsed = opts.parser.parse((data as Buffer).toString('utf8'), arrived.us, this);
        parsed.catch(() => {}); // handled below, in order
        this.#parsing++;
        this.#maybePause();
        handle = async () => {
          try {
            await this.#onMessage(await parsed, bytes, arrived);
          } finally {
            this.#parsing--;
            this.#maybeResume();
          }
        };
      }
      // Commits are awaited separately, so batches pipeline.
      this.#serial = this.#serial.then(handle).catch((err: unknown) => {
        this.#log.error({ err }, 'ingest message handling failed');
        this.close(CLOSE_CODES.protocolError, 'internal error');
      });
    });
    ws.on('error', (err) => this.#log.info({ err }, 'ingest connection error'));
    ws.once('close', (code, reason) => {
      for (const t of this.#timers) clearTimeout(t);
      this.#stopDrainListener?.();
      if (this.#paused) opts.metrics.pausedConnections.dec();
      this.#log.debug({ code, reason: reason.toString() }, 'sidecar disconnected');
    });
  }

  close(code: number, reason: string, done?: () => void): void {
    if (done) this.#ws.once('close', done);
    if (this.#ws.readyState === this.#ws.CLOSED) {
      done?.();
      return;
    }
    this.#ws.close(code, reason);
  }

  terminate(): void {
    this.#ws.terminate();
  }

  #send(m: ServerMessage): void {
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.send(encodeMessage(m));
  }

  async #onMessage(msg: ParsedMessage, bytes: number, arrived: { at: number; us: number }): Promise<void> {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    switch (msg.kind) {
      case 'invalid':
        this.#badMessage(msg);
        return;
      case 'failed':
        throw new Error(`parsing a message failed: ${msg.message}`);
      case 'hello':
        await this.#hello(msg.sidecarId, msg.schemaVersion);
        return;
      case 'batch':
        this.#batch(msg.batchId, msg.events, bytes, arrived);
        return;
      case 'recording':
        this.#recording(msg, bytes, arrived.us);
    }
  }

  async #hello(sidecarId: string, schemaVersion: number): Promise<void> {
    if (this.#sidecarId || this.#helloPending) {
      this.close(CLOSE_CODES.protocolError, 'hello was already sent on this connection');
      return;
    }
    if (schemaVersion !== AUDIT_SCHEMA_VERSION) {
      this.close(
        CLOSE_CODES.protocolError,
        `schema version ${schemaVersion} unsupported; this collector reads ${AUDIT_SCHEMA_VERSION}`,
      );
      return;
    }
    this.#helloPending = true;
    const refusal = chainRefusal(sidecarId, this.#identity);
    if (refusal) {
      await this.#alert({ kind: 'chain_owner_mismatch', sidecarId, message: refusal });
      this.#log.warn({ sidecarId }, refusal);
      this.close(CLOSE_CODES.forbidden, 'this token opens only its own pod’s chain');
      return;
    }
    const chain = await this.#opts.store.chain(sidecarId);
    if (chain && !sameOwner(chain.owner, this.#identity)) {
      const message = ownerMismatchMessage(sidecarId, chain.owner, this.#identity);
      await this.#alert({ kind: 'chain_owner_mismatch', sidecarId, message });
      this.#log.warn({ sidecarId }, message);
      this.close(CLOSE_CODES.forbidden, 'this sidecarId belongs to another pod');
      return;
    }
    const head = chain?.head ?? { seq: 0, hash: GENESIS_HASH };
    if (
      !Number.isSafeInteger(head.seq) ||
      head.seq < 0 ||
      head.seq > MAX_SEQ ||
      !/^[0-9a-f]{64}$/.test(head.hash)
    ) {
      // Never offer a head the sidecar would act on (it drops what the collector claims to hold).
      this.#log.error({ sidecarId, head }, 'the stored head of this chain is out of range; not offering it');
      this.close(CLOSE_CODES.internalError, 'the collector cannot offer this chain’s head; try again later');
      return;
    }
    this.#sidecarId = sidecarId;
    this.#log = this.#log.child({ sidecarId });
    this.#send({ type: 'welcome', head: { seq: head.seq, hash: head.hash } });
  }

  #batch(
    batchId: number,
    events: readonly IncomingEvent[],
    bytes: number,
    arrived: { at: number; us: number },
  ): void {
    const sidecarId = this.#sidecarId;
    if (!sidecarId) {
      this.close(CLOSE_CODES.protocolError, 'send hello before batches');
      return;
    }
    const receivedAt = arrived.at;
    const receivedUs = arrived.us;
    const out = batchBoundsProblem(events, receivedUs);
    if (out) {
      const message = `${out.path}: ${out.message}`;
      this.#log.info({ batchId, reason: message }, 'batch refused');
      this.#nack(batchId, 'invalid_event', message, false);
      return;
    }
    for (const e of events) {
      const diff = sourceMismatch(e.source, this.#identity, sidecarId);
      if (diff) {
        const message = `event ${e.auditID} names ${diff}, but this connection is ${describeIdentity(this.#identity)} writing chain ${sidecarId}: a sidecar may only record its own pod`;
        void this.#alert({
          kind: 'identity_mismatch',
          sidecarId,
          seq: e.chaperone.seq,
          auditID: e.auditID,
          message,
        });
        this.#log.warn({ batchId }, message);
        this.#nack(batchId, 'identity_mismatch', message, false);
        return;
      }
    }
    this.#queue(
      batchId,
      'batch',
      {
        chain: sidecarId,
        events: events.length,
        bytes,
        build: () => ({
          sidecarId,
          identity: this.#identity,
          events,
          receivedUs,
          rejectLeadingGap: this.#lostBatch,
        }),
      },
      (o) => this.#answer(batchId, o, receivedAt),
      () => {
        this.#lostBatch = true;
      },
    );
  }

  /**
   * Queues a write for group commit and answers it when the store has: `answer` with the
   * outcome, or a retryable nack when the store failed (after `lost`). The connection is not
   * read while too many are waiting.
   */
  #queue<W extends IncomingWrite>(
    batchId: number,
    what: string,
    item: QueuedBatch<W>,
    answer: (o: OutcomeOf<W>) => void,
    lost: () => void,
  ): void {
    this.#outstanding++;
    this.#maybePause();
    this.#opts.queue
      .submit(item)
      .then(answer, (err: unknown) => {
        lost();
        this.#log.error({ err, batchId }, `storing a ${what} failed`);
        this.#nack(batchId, 'unavailable', `the audit store is unavailable: ${(err as Error).message}`, true);
      })
      .finally(() => {
        this.#outstanding--;
        this.#maybeResume();
      })
      .catch((err: unknown) => this.#log.error({ err, batchId }, `answering a ${what} failed`));
  }

  #recording(
    m: {
      readonly batchId: number;
      readonly sessionId: string;
      readonly offset: number;
      readonly data: string;
    },
    bytes: number,
    receivedUs: number,
  ): void {
    const sidecarId = this.#sidecarId;
    if (!sidecarId) {
      this.close(CLOSE_CODES.protocolError, 'send hello before batches');
      return;
    }
    if (!this.#recordings) {
      this.close(CLOSE_CODES.protocolError, `recording messages need the subprotocol ${INGEST_SUBPROTOCOL}`);
      return;
    }
    const { batchId, sessionId, offset, data } = m;
    this.#queue(
      batchId,
      'recording chunk',
      {
        chain: sidecarId,
        events: 1,
        bytes,
        build: (): IncomingRecording => ({
          kind: 'recording',
          sidecarId,
          identity: this.#identity,
          sessionId,
          offset,
          data,
          receivedUs,
          afterLoss: this.#lostChunk || this.#lostBatch,
        }),
      },
      (o) => this.#recorded(batchId, sidecarId, sessionId, o),
      () => {
        this.#lostChunk = true;
      },
    );
  }

  #recorded(batchId: number, sidecarId: string, sessionId: string, o: RecordingOutcome): void {
    if (o.kind === 'recorded') {
      this.#opts.metrics.batches.inc({ outcome: 'recorded' });
      this.#send({ type: 'recorded', batchId, size: o.size, duplicate: o.duplicate });
      return;
    }
    if (o.retryable) this.#lostChunk = true;
    this.#log.info({ batchId, sessionId, code: o.code, reason: o.message }, 'recording chunk refused');
    if (o.code === 'identity_mismatch' && !o.retryable)
      void this.#alert({
        kind: 'identity_mismatch',
        sidecarId,
        message: `${describeIdentity(this.#identity)} on chain ${sidecarId}: ${o.message}`,
      });
    this.#nack(batchId, o.code, o.message, o.retryable);
  }

  #answer(batchId: number, o: BatchOutcome, receivedAt: number): void {
    const m = this.#opts.metrics;
    for (const a of o.alerts) m.integrityAlerts.inc({ kind: a.kind });
    if (o.alerts.length)
      this.#log.warn({ batchId, alerts: o.alerts.map((a) => a.message) }, 'integrity alerts');
    if (o.kind === 'rejected') {
      if (o.retryable) this.#lostBatch = true;
      this.#nack(batchId, o.code, o.message, o.retryable);
      return;
    }
    this.#lostBatch = false;
    m.countStored(o.events);
    if (o.duplicates) m.duplicates.inc(o.duplicates);
    m.batches.inc({ outcome: 'ack' });
    m.ingestLatency.observe((performance.now() - receivedAt) / 1000);
    this.#send({
      type: 'ack',
      batchId,
      upToSeq: o.head.seq,
      stored: o.events.length,
      duplicates: o.duplicates,
    });
  }

  #nack(batchId: number, code: NackCode, message: string, retryable: boolean): void {
    this.#opts.metrics.batches.inc({ outcome: code });
    this.#send({ type: 'nack', batchId, code, message, retryable });
  }

  /** Answers a message that failed to parse: a nack when it names a batch, else close. */
  #badMessage(err: {
    readonly path: string | undefined;
    readonly message: string;
    readonly batchId?: number;
  }): void {
    const path = err.path ?? '';
    // Read on the parse worker (ingest-parse.ts): the main thread never parses a batch again.
    const batchId = err.batchId;
    if (batchId === undefined) {
      this.#log.info({ reason: err.message }, 'malformed message');
      this.close(CLOSE_CODES.protocolError, truncate(err.message, 120));
      return;
    }
    if (!this.#sidecarId) {
      this.close(CLOSE_CODES.protocolError, 'send hello before batches');
      return;
    }
    const recording = path === '/data' || path === '/sessionId' || path === '/offset';
    const code: NackCode =
      (path === '' || path === '/events' || recording) && /the limit is/.test(err.message)
        ? 'too_large'
        : recording
          ? 'invalid_recording'
          : /\/chaperone\/schemaVersion$/.test(path)
            ? 'schema_version'
            : path.startsWith('/events/')
              ? 'invalid_event'
              : 'malformed';
    this.#log.info({ batchId, code, reason: err.message }, 'batch refused');
    this.#nack(batchId, code, err.message, false);
  }

  async #alert(a: Omit<IntegrityAlert, 'namespace' | 'pod' | 'detectedAt'>): Promise<void> {
    this.#opts.metrics.integrityAlerts.inc({ kind: a.kind });
    try {
      await this.#opts.store.recordAlerts([
        {
          ...a,
          namespace: this.#identity.namespace,
          pod: this.#identity.pod,
          detectedAt: microsToRfc3339(nowMicros()),
        },
      ]);
    } catch (err) {
      this.#log.error({ err, alert: a.message }, 'could not store an integrity alert');
    }
  }

  #maybePause(): void {
    if (this.#paused) return;
    if (this.#outstanding + this.#parsing >= MAX_OUTSTANDING || this.#opts.queue.full) {
      this.#paused = true;
      this.#ws.pause();
      this.#opts.metrics.pausedConnections.inc();
      this.#stopDrainListener ??= this.#opts.queue.onDrained(() => this.#maybeResume());
    }
  }

  #maybeResume(): void {
    if (!this.#paused || this.#outstanding + this.#parsing >= MAX_OUTSTANDING || this.#opts.queue.full)
      return;
    this.#paused = false;
    this.#stopDrainListener?.();
    this.#stopDrainListener = undefined;
    this.#opts.metrics.pausedConnections.dec();
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.resume();
  }
}

function truncate(s: string, max: number): string {
  return Buffer.byteLength(s) <= max ? s : `${s.slice(0, max - 3)}...`;
}
