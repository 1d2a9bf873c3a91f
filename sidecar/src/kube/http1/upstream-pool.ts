/**
 * Keep-alive HTTP/1.1 connections to the API server over TLS, one request at
 * a time per connection. The request head is written by the caller (already
 * serialised, with the sidecar's credentials); responses are framed by
 * ResponseDecoder and handed to a sink part by part, with back-pressure: a
 * sink that cannot take more pauses the connection until it drains.
 *
 * A request sent on a reused connection that the server had already closed
 * (reset before any response byte) is retried once on a new connection when
 * it is safe to repeat (GET, HEAD, OPTIONS), as Go's and undici's clients do.
 */
import { connect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { HttpParseError } from './http-parse-error.ts';
import { ResponseDecoder, type ResponseHead } from './response-decoder.ts';

export type UpstreamErrorKind = 'unreachable' | 'headers-timeout' | 'body-timeout' | 'protocol' | 'reset';

export class UpstreamError extends Error {
  readonly kind: UpstreamErrorKind;
  /** The socket error code behind it, if any (ECONNREFUSED, ECONNRESET, …). */
  readonly code: string;
  constructor(kind: UpstreamErrorKind, code: string, message: string) {
    super(message);
    this.name = 'UpstreamError';
    this.kind = kind;
    this.code = code;
  }
}

export interface ResponseSink {
  onHead(head: ResponseHead): void;
  /** Returns false when the sink is full: the connection is paused until `resume()` is called. */
  onData(data: Buffer): boolean;
  onEnd(): void;
  onError(err: UpstreamError): void;
}

export interface UpstreamRequest {
  readonly method: string;
  /** Request line and header fields, ending with the empty line. */
  readonly head: string;
  readonly body?: Buffer | undefined;
  /** 0 = none. */
  readonly headersTimeoutMs: number;
  /** Longest silence while reading the body; 0 = none (watches). */
  readonly bodyTimeoutMs: number;
}

export interface Exchange {
  /** Abandon the exchange (the agent went away): the connection is closed, not reused. */
  abort(): void;
  /** Resume a connection paused by a full sink. */
  resume(): void;
}

export interface UpstreamPoolOptions {
  readonly host: string;
  readonly port: number;
  /** PEM CA bundle to trust; the system's roots when absent. */
  readonly ca?: string | undefined;
  readonly servername?: string | undefined;
  /** Skip verifying the server's certificate (a kubeconfig's insecure-skip-tls-verify). */
  readonly insecureSkipTlsVerify?: boolean;
  /** The client certificate for TLS client authentication, asked for at every new connection. */
  readonly clientCertificate?: () => { readonly cert: string; readonly key: string } | undefined;
  /** Idle connections are closed after this long (below the server's own idle timeout). */
  readonly idleTimeoutMs?: number;
  /** At most this many idle connections are kept. */
  readonly maxIdle?: number;
}

const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS']);
/** How often deadlines are checked: timeouts fire up to this late. */
const SWEEP_MS = 100;
/** Idle connections are closed after this long unless the options say otherwise. */
const IDLE_TIMEOUT_MS = 30_000;

class Connection {
  readonly socket: TLSSocket;
  readonly decoder = new ResponseDecoder();
  /** Requests completed on it (0 = fresh). */
  served = 0;
  /** False once the server said the connection ends with this response. */
  reusable = true;
  closed = false;
  /** Date.now() when it went idle (0 = busy). */
  idleSince = 0;
  current: Pending | undefined;

  constructor(socket: TLSSocket) {
    this.socket = socket;
  }
}

class Pending implements Exchange {
  readonly pool: UpstreamPool;
  readonly req: UpstreamRequest;
  readonly sink: ResponseSink;
  conn: Connection | undefined;
  gotBytes = false;
  headSeen = false;
  done = false;
  retried = false;
  /** Date.now() after which the exchange fails (0 = no deadline). */
  deadline = 0;
  timeoutMs = 0;
  timeoutKind: UpstreamErrorKind = 'headers-timeout';

  constructor(pool: UpstreamPool, req: UpstreamRequest, sink: ResponseSink) {
    this.pool = pool;
    this.req = req;
    this.sink = sink;
  }

  abort(): void {
    if (!this.done) this.#finish();
  }

  /** Ends the exchange; its connection, if it has one, is closed (never reused mid-response). */
  #finish(): void {
    this.done = true;
    this.clearTimer();
    const conn = this.conn;
    this.conn = undefined;
    if (conn) this.pool.discard(conn);
  }

  resume(): void {
    this.conn?.socket.resume();
  }

  /** Sets (or, with 0, clears) the deadline the pool's sweep checks. */
  armTimer(ms: number, kind: UpstreamErrorKind): void {
    this.deadline = ms > 0 ? Date.now() + ms : 0;
    this.timeoutMs = ms;
    this.timeoutKind = kind;
    if (this.deadline !== 0) this.pool.watchDeadlines();
  }

  clearTimer(): void {
    this.deadline = 0;
  }

  /** Called by the sweep once the deadline has passed. */
  timedOut(): void {
    const what = this.timeoutKind === 'headers-timeout' ? 'response headers' : 'more of the response body';
    this.fail(new UpstreamError(this.timeoutKind, 'ETIMEDOUT', `no ${what} within ${this.timeoutMs} ms`));
  }

  fail(err: UpstreamError): void {
    if (this.done) return;
    this.#finish();
    this.sink.onError(err);
  }
}

export class UpstreamPool {
  readonly #opts: UpstreamPoolOptions;
  readonly #idle: Connection[] = [];
  readonly #open = new Set<Connection>();
  #closed = false;
  /** The TLS context of new connections and the client certificate it holds: made again when that changes. */
  #tls: { cert: string | undefined; key: string | undefined; context: SecureContext } | undefined;
  /**
   * One timer for every deadline (response timeouts, idle connections): while
   * a request with a deadline is out, an interval checks them SWEEP_MS apart
   * (no timer per request); once none is (watches have no body deadline),
   * one timeout waits for the first idle connection to expire, and an idle
   * pool sets no timer at all (an idle pod is not woken ten times a second).
   */
  #timer: NodeJS.Timeout | undefined;
  /** Whether #timer is the interval of a pool with requests out. */
  #sweeping = false;

  /** How long a connection may stay idle (below the server's own idle timeout). */
  readonly #idleLimit: number;

  constructor(opts: UpstreamPoolOptions) {
    this.#opts = opts;
    this.#idleLimit = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  }

  /** A request has a deadline: deadlines are checked SWEEP_MS apart until none has. */
  watchDeadlines(): void {
    if (this.#sweeping || this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setInterval(() => this.#check(), SWEEP_MS);
    this.#timer.unref();
    this.#sweeping = true;
  }

  #check(): void {
    const now = Date.now();
    let busy = false;
    let firstExpiry = Number.POSITIVE_INFINITY;
    // discard() deletes from the set: safe while iterating a Set.
    for (const conn of this.#open) {
      const p = conn.current;
      if (p) {
        if (p.deadline === 0) continue;
        busy = true;
        if (now >= p.deadline) p.timedOut();
      } else if (conn.idleSince !== 0) {
        if (now - conn.idleSince >= this.#idleLimit) this.discard(conn);
        else firstExpiry = Math.min(firstExpiry, conn.idleSince + this.#idleLimit);
      }
    }
    if (busy) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#sweeping = false;
    if (firstExpiry !== Number.POSITIVE_INFINITY) this.#expireIdleIn(firstExpiry - now);
  }

  /** One timeout for the first idle connection to expire (no request with a deadline is out). */
  #expireIdleIn(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => this.#check(), Math.max(ms, SWEEP_MS));
    this.#timer.unref();
  }

  /** What sets a timer now: requests with deadlines (checked SWEEP_MS apart), idle connections to expire, or nothing. */
  get watching(): 'requests' | 'idle' | 'nothing' {
    return this.#sweeping ? 'requests' : this.#timer ? 'idle' : 'nothing';
  }

  /** Open connections (busy and idle). */
  get size(): number {
    return this.#open.size;
  }

  request(req: UpstreamRequest, sink: ResponseSink): Exchange {
    const p = new Pending(this, req, sink);
    if (this.#closed) {
      queueMicrotask(() =>
        p.fail(new UpstreamError('unreachable', 'ECLOSED', 'the sidecar is shutting down')),
      );
      return p;
    }
    let reuse = this.#idle.pop();
    // One idle past the limit (its timer not yet run: the event loop was busy) may be closed at the other end.
    while (reuse && Date.now() - reuse.idleSince >= this.#idleLimit) {
      this.discard(reuse);
      reuse = this.#idle.pop();
    }
    this.#dispatch(p, reuse);
    return p;
  }

  #dispatch(p: Pending, reuse: Connection | undefined): void {
    const conn = reuse ?? this.#connect();
    conn.idleSince = 0;
    p.conn = conn;
    conn.current = p;
    conn.decoder.expect(p.req.method);
    const s = conn.socket;
    if (p.req.body && p.req.body.length > 0) {
      s.cork();
      s.write(p.req.head, 'latin1');
      s.write(p.req.body);
      s.uncork();
    } else {
      s.write(p.req.head, 'latin1');
    }
    p.armTimer(p.req.headersTimeoutMs, 'headers-timeout');
  }

  /**
   * A new TLS connection to the API server, outside the pool: for an exchange
   * that takes the connection over (a WebSocket upgrade). The caller owns it.
   */
  openSocket(): TLSSocket {
    const { host, port, servername } = this.#opts;
    const socket = connect({
      host,
      port,
      secureContext: this.#secureContext(),
      ...(servername ? { servername } : {}),
      ...(this.#opts.insecureSkipTlsVerify ? { rejectUnauthorized: false } : {}),
      ALPNProtocols: ['http/1.1'],
    });
    socket.setNoDelay(true);
    return socket;
  }

  /**
   * The trusted CA and the current client certificate as a TLS context, made
   * once and again only when the certificate changes (making one parses the
   * certificates and key: milliseconds per connection otherwise).
   */
  #secureContext(): SecureContext {
    const client = this.#opts.clientCertificate?.();
    const known = this.#tls;
    if (known && known.cert === client?.cert && known.key === client?.key) return known.context;
    const { ca } = this.#opts;
    const context = createSecureContext({
      ...(ca !== undefined ? { ca } : {}),
      ...(client ? { cert: client.cert, key: client.key } : {}),
    });
    this.#tls = { cert: client?.cert, key: client?.key, context };
    return context;
  }

  #connect(): Connection {
    const socket = this.openSocket();
    const conn = new Connection(socket);
    this.#open.add(conn);
    socket.on('data', (chunk: Buffer) => this.#onData(conn, chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.#onClosed(conn, err));
    socket.on('close', () => this.#onClosed(conn, undefined));
    socket.on('end', () => {
      // The server half-closed: a close-delimited body ends here.
      this.#onEnd(conn);
    });
    return conn;
  }

  #onData(conn: Connection, chunk: Buffer): void {
    const p = conn.current;
    if (!p) {
      // Bytes nobody asked for: the connection cannot be trusted any more.
      this.discard(conn);
      return;
    }
    p.gotBytes = true;
    let parts: ReturnType<ResponseDecoder['push']>;
    try {
      parts = conn.decoder.push(chunk);
    } catch (err) {
      const message = err instanceof HttpParseError ? err.message : String(err);
      p.fail(
        new UpstreamError('protocol', 'EPROTO', `the API server's response could not be read: ${message}`),
      );
      return;
    }
    this.#deliver(conn, p, parts);
  }

  #deliver(conn: Connection, p: Pending, parts: ReturnType<ResponseDecoder['push']>): void {
    for (const part of parts) {
      if (p.done) return;
      if (part.kind === 'head') {
        p.headSeen = true;
        p.armTimer(p.req.bodyTimeoutMs, 'body-timeout');
        p.sink.onHead(part.head);
        if (!part.head.keepAlive) conn.reusable = false;
      } else if (part.kind === 'body') {
        if (p.req.bodyTimeoutMs > 0) p.armTimer(p.req.bodyTimeoutMs, 'body-timeout');
        if (!p.sink.onData(part.data)) conn.socket.pause();
      } else {
        p.done = true;
        p.clearTimer();
        p.conn = undefined;
        conn.current = undefined;
        conn.served++;
        this.#release(conn);
        p.sink.onEnd();
        return;
      }
    }
  }

  #onEnd(conn: Connection): void {
    const p = conn.current;
    if (!p?.headSeen) return; // handled as a reset by #onClosed
    let parts: ReturnType<ResponseDecoder['end']>;
    try {
      parts = conn.decoder.end();
    } catch (err) {
      const message = err instanceof HttpParseError ? err.message : String(err);
      p.fail(
        new UpstreamError(
          'reset',
          'ECONNRESET',
          `the API server closed the connection mid-response: ${message}`,
        ),
      );
      return;
    }
    conn.reusable = false;
    this.#deliver(conn, p, parts);
  }

  #onClosed(conn: Connection, err: NodeJS.ErrnoException | undefined): void {
    if (conn.closed) return;
    conn.closed = true;
    this.#open.delete(conn);
    const i = this.#idle.indexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
    const p = conn.current;
    conn.current = undefined;
    if (!p || p.done) return;
    p.conn = undefined;
    const code = err?.code ?? 'ECONNRESET';
    if (!p.gotBytes && conn.served > 0 && !p.retried && RETRYABLE.has(p.req.method) && !this.#closed) {
      // A keep-alive connection the server had closed: try once more on a new one.
      p.retried = true;
      this.#dispatch(p, undefined);
      return;
    }
    if (!p.gotBytes && conn.served === 0) {
      p.fail(new UpstreamError('unreachable', code, err?.message ?? 'connection closed'));
      return;
    }
    // Fail with the close-delimited ending if the decoder can complete the message.
    if (p.headSeen && !err) {
      this.#onEnd(conn);
      if (p.done) return;
    }
    p.fail(
      new UpstreamError('reset', code, err?.message ?? 'the API server closed the connection mid-response'),
    );
  }

  #release(conn: Connection): void {
    if (
      this.#closed ||
      conn.closed ||
      !conn.reusable ||
      !conn.decoder.idle ||
      this.#idle.length >= (this.#opts.maxIdle ?? 64)
    ) {
      this.discard(conn);
      return;
    }
    conn.socket.resume();
    conn.idleSince = Date.now();
    this.#idle.push(conn);
    // With no timer pending (the request had no deadline left, e.g. a watch), its expiry needs one.
    if (!this.#timer) this.#expireIdleIn(this.#idleLimit);
  }

  /** Closes a connection that must not be reused. */
  discard(conn: Connection): void {
    conn.current = undefined;
    const i = this.#idle.indexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
    conn.closed = true;
    this.#open.delete(conn);
    conn.socket.destroy();
  }

  /** Closes the idle connections (their client certificate was replaced): new ones are opened as needed. */
  closeIdle(): void {
    for (const conn of [...this.#idle]) this.discard(conn);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#sweeping = false;
    // discard() deletes from the set: safe while iterating a Set.
    for (const conn of this.#open) {
      const p = conn.current;
      this.discard(conn);
      p?.fail(new UpstreamError('reset', 'ECLOSED', 'the sidecar is shutting down'));
    }
  }
}
