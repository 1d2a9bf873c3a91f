/**
 * One agent connection: HTTP/1.1 requests framed by RequestDecoder, handed to
 * the handler one at a time (pipelined requests wait their turn, within a
 * bound on their count and bytes), answered through AgentResponse. Request
 * bodies are collected in memory within the caller's limit, so what goes
 * upstream is exactly what was checked, sent with a Content-Length. Malformed
 * requests, and pipelined requests beyond the bound, get a Kubernetes Status
 * (after the responses before them) and the connection is closed; nothing of
 * them reaches the handler.
 *
 * A request that upgrades the connection (a WebSocket exec) ends HTTP on it:
 * AgentResponse#switchProtocols hands the socket to the caller. Its client
 * must wait for the answer before sending anything more (RFC 6455 §4.1), so
 * bytes that arrive before it make the takeover fail.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { HttpParseError } from './http-parse-error.ts';
import { RequestDecoder, type RequestHead } from './request-decoder.ts';

export class BodyTooLargeError extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`the request body is larger than the limit of ${limit} bytes`);
    this.name = 'BodyTooLargeError';
    this.limit = limit;
  }
}

/** The client sent bytes after an upgrade request before it was answered: they cannot be handed over as they came. */
export class EarlyDataError extends Error {
  constructor() {
    super('the client sent data after its upgrade request before the answer (RFC 6455 §4.1: it must wait)');
    this.name = 'EarlyDataError';
  }
}

export class BodyAbortedError extends Error {
  constructor() {
    super('the client went away before sending the whole request body');
    this.name = 'BodyAbortedError';
  }
}

/** The request as the guards see it. */
export class AgentRequest {
  readonly method: string;
  /** The request target (origin-form path and query). */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly rawHeaders: readonly string[];
  readonly remoteAddress: string;
  readonly hasBody: boolean;
  readonly contentLength: number;
  readonly keepAlive: boolean;
  /** The request asks to upgrade the connection (an Upgrade header with "connection: upgrade"). */
  readonly upgrade: boolean;
  #chunks: Buffer[] = [];
  #size = 0;
  #complete: boolean;
  #aborted = false;
  #limit = Number.POSITIVE_INFINITY;
  #tooLarge = false;
  #waiters: { resolve: (b: Buffer) => void; reject: (e: Error) => void }[] = [];
  #onFirstRead: (() => void) | undefined;

  constructor(head: RequestHead, remoteAddress: string, onFirstRead: () => void) {
    this.method = head.method;
    this.url = head.target;
    this.headers = head.headers;
    this.rawHeaders = head.rawHeaders;
    this.remoteAddress = remoteAddress;
    this.hasBody = head.bodyKind !== 'none';
    this.contentLength = head.contentLength;
    this.keepAlive = head.keepAlive;
    this.upgrade = head.upgrade;
    this.#complete = head.bodyKind === 'none';
    this.#onFirstRead = onFirstRead;
  }

  /** True once the whole request (body included) has arrived. */
  get complete(): boolean {
    return this.#complete;
  }

  /** Body bytes held before the handler asked for the body (it has not, while this is not undefined). */
  get unreadBytes(): number | undefined {
    return this.#onFirstRead === undefined ? undefined : this.#size;
  }

  /**
   * The whole body (empty when there is none), read within `limit` bytes.
   * Rejects with BodyTooLargeError beyond it, BodyAbortedError if the client leaves.
   */
  body(limit: number): Promise<Buffer> {
    this.#limit = Math.min(this.#limit, limit);
    if (this.#onFirstRead) {
      const f = this.#onFirstRead;
      this.#onFirstRead = undefined;
      f();
    }
    if (this.#size > this.#limit) this.#tooLarge = true;
    if (this.#tooLarge) return Promise.reject(new BodyTooLargeError(this.#limit));
    if (this.#complete) return Promise.resolve(this.#joined());
    if (this.#aborted) return Promise.reject(new BodyAbortedError());
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #joined(): Buffer {
    if (this.#chunks.length !== 1) {
      this.#chunks = [Buffer.concat(this.#chunks, this.#size)];
    }
    return this.#chunks[0] as Buffer;
  }

  /** @internal from the connection */
  pushBody(data: Buffer): void {
    if (this.#tooLarge) return;
    this.#size += data.length;
    if (this.#size > this.#limit) {
      this.#tooLarge = true;
      this.#chunks = [];
      const waiters = this.#waiters.splice(0);
      for (const w of waiters) w.reject(new BodyTooLargeError(this.#limit));
      return;
    }
    // Copy: the chunk belongs to the socket's read buffer.
    this.#chunks.push(Buffer.from(data));
  }

  /** @internal */
  endBody(): void {
    this.#complete = true;
    if (this.#tooLarge) return;
    const waiters = this.#waiters.splice(0);
    if (waiters.length > 0) {
      const body = this.#joined();
      for (const w of waiters) w.resolve(body);
    }
  }

  /** @internal */
  abort(): void {
    if (this.#complete) return;
    this.#aborted = true;
    const waiters = this.#waiters.splice(0);
    for (const w of waiters) w.reject(new BodyAbortedError());
  }
}

type HeaderValue = string | number;

/**
 * A body that writes itself into the buffer the response is sent from (a
 * masked document, mask-bytes.ts MaskedBytes), so it is never joined into a
 * buffer of its own first. It is read only while end() runs.
 */
export interface PiecewiseBody {
  readonly byteLength: number;
  /** Writes the body into `out` at `at`; returns the position after it. */
  copyTo(out: Buffer, at: number): number;
}

type Body = Buffer | string | PiecewiseBody;

function byteLengthOf(data: Body | undefined): number {
  if (data === undefined) return 0;
  if (typeof data === 'string') return Buffer.byteLength(data);
  return Buffer.isBuffer(data) ? data.length : data.byteLength;
}

/** The body as a Buffer or string (a piecewise body written into a buffer of its own). */
function joined(data: Body): Buffer | string {
  if (typeof data === 'string' || Buffer.isBuffer(data)) return data;
  const out = Buffer.allocUnsafe(data.byteLength);
  data.copyTo(out, 0);
  return out;
}

/** Responses up to this size are copied into one buffer and written at once. */
const SINGLE_WRITE_BYTES = 64 * 1024;

/**
 * The response to one request. Written straight onto the socket: the head
 * with the first bytes of body, Content-Length when the caller gives one,
 * chunked transfer coding otherwise.
 */
export class AgentResponse {
  statusCode = 0;
  headersSent = false;
  /** The whole response has been handed to the socket. */
  writableFinished = false;
  destroyed = false;
  readonly #conn: AgentConnection;
  readonly #noBody: boolean;
  #head = '';
  #chunked = false;
  #closeAfter: boolean;
  #onClose: (() => void)[] = [];
  #closed = false;
  #divert: ((code: number, body: Buffer, socket: Socket) => void) | undefined;
  #diverted: Buffer[] = [];
  #divertedBytes = 0;

  constructor(conn: AgentConnection, req: AgentRequest) {
    this.#conn = conn;
    this.#noBody = req.method === 'HEAD';
    this.#closeAfter = !req.keepAlive;
  }

  /** Runs once when the response is finished or the connection is gone, whichever is first. */
  onClose(cb: () => void): void {
    if (this.#closed) queueMicrotask(cb);
    else this.#onClose.push(cb);
  }

  /** @internal */
  closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    const cbs = this.#onClose.splice(0);
    for (const cb of cbs) cb();
  }

  /**
   * Sets the status and header fields; they are sent with the first body
   * bytes (or at end). `headers` is a flat [name, value, …] list or a record.
   * Framing fields (content-length, transfer-encoding, connection) are managed
   * here: give `content-length` when known.
   */
  writeHead(code: number, headers: readonly string[] | Readonly<Record<string, HeaderValue>>): void {
    if (this.headersSent) throw new Error('headers already sent');
    this.statusCode = code;
    this.headersSent = true;
    // A 101 head is written by switchProtocols; a diverted answer by the divert.
    if (code === 101 || this.#divert) return;
    let head = `HTTP/1.1 ${code} ${STATUS_CODES[code] ?? 'Unknown'}\r\n`;
    let length = false;
    const add = (name: string, value: string) => {
      const lower = name.toLowerCase();
      if (lower === 'transfer-encoding' || lower === 'connection' || lower === 'keep-alive') return;
      if (lower === 'content-length') length = true;
      head += `${name}: ${value}\r\n`;
    };
    if (Array.isArray(headers)) {
      const list = headers as readonly string[];
      for (let i = 0; i + 1 < list.length; i += 2) add(list[i] as string, list[i + 1] as string);
    } else {
      const rec = headers as Readonly<Record<string, HeaderValue>>;
      for (const name in rec) add(name, String(rec[name]));
    }
    const bodiless = this.#noBody || code === 204 || code === 304 || (code >= 100 && code < 200);
    if (!length && !bodiless) {
      this.#chunked = true;
      head += 'transfer-encoding: chunked\r\n';
    }
    if (this.#closeAfter) head += 'connection: close\r\n';
    this.#head = `${head}\r\n`;
  }

  /**
   * Sends the head now instead of with the first body bytes: for streams
   * (watches, followed logs) where the first bytes may be long in coming and
   * the client waits for the head before it reports anything.
   */
  flushHeaders(): void {
    if (this.destroyed || this.writableFinished || this.#head === '') return;
    this.#send(undefined, false);
  }

  /** Writes body bytes; false when the socket's buffer is full (wait for onDrain). */
  write(data: Buffer | string): boolean {
    if (this.destroyed || this.writableFinished) return false;
    if (!this.headersSent) this.writeHead(200, {});
    if (this.#divert) {
      this.#keep(data);
      return true;
    }
    if (this.#noBody) return true;
    if (data.length === 0) return true;
    return this.#send(data, false);
  }

  end(data?: Body): void {
    if (this.destroyed || this.writableFinished) return;
    if (!this.headersSent) this.writeHead(200, { 'content-length': byteLengthOf(data) });
    const divert = this.#divert;
    if (divert) {
      if (data !== undefined) this.#keep(joined(data));
      this.writableFinished = true;
      let socket: Socket;
      try {
        socket = this.#conn.takeOver(this);
      } catch {
        this.destroy();
        return;
      }
      divert(this.statusCode, Buffer.concat(this.#diverted), socket);
      return;
    }
    this.#send(this.#noBody ? undefined : data, true);
    this.writableFinished = true;
    this.#conn.finished(this, this.#closeAfter);
  }

  /**
   * Writes the head if it is still pending, then `data` (chunk-framed when
   * chunked) and, at the end, the last chunk. Small responses go out as one
   * buffer in one write; large ones as a corked vector.
   */
  #send(data: Body | undefined, last: boolean): boolean {
    const socket = this.#conn.socket;
    const len = byteLengthOf(data);
    const framed = this.#chunked && len > 0;
    // Head and framing are latin1 text (header values are, as in Node): one byte per character.
    const pre = framed ? `${this.#head}${len.toString(16)}\r\n` : this.#head;
    const post = (framed ? '\r\n' : '') + (last && this.#chunked ? '0\r\n\r\n' : '');
    this.#head = '';
    const total = pre.length + len + post.length;
    if (total === 0) return true;
    if (total <= SINGLE_WRITE_BYTES) {
      const out = Buffer.allocUnsafe(total);
      let at = out.write(pre, 0, 'latin1');
      if (typeof data === 'string') at += out.write(data, at, 'utf8');
      else if (Buffer.isBuffer(data)) at += data.copy(out, at);
      else if (data !== undefined) at = data.copyTo(out, at);
      if (post) out.write(post, at, 'latin1');
      return socket.write(out) && !socket.writableNeedDrain;
    }
    socket.cork();
    if (pre) socket.write(pre, 'latin1');
    const ok = data === undefined || len === 0 ? true : socket.write(joined(data));
    if (post) socket.write(post, 'latin1');
    socket.uncork();
    return ok && !socket.writableNeedDrain;
  }

  /** Diverted body bytes, up to 64 KiB (a Status). */
  #keep(data: Buffer | string): void {
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    const room = SINGLE_WRITE_BYTES - this.#divertedBytes;
    if (room <= 0) return;
    const kept = b.length > room ? b.subarray(0, room) : Buffer.from(b);
    this.#diverted.push(kept);
    this.#divertedBytes += kept.length;
  }

  /**
   * Hands this response's answer, whoever writes it, to `fn` with the socket
   * instead of writing it as HTTP: for an upgrade request whose client would
   * misread a plain HTTP answer (kubectl falls back to SPDY on anything but a
   * 101), `fn` answers over the new protocol and owns the socket from then on.
   * The body is cut at 64 KiB (it is a Status). A 101 through switchProtocols
   * is not diverted. `undefined` writes answers as HTTP again.
   */
  answerThrough(fn: ((code: number, body: Buffer, socket: Socket) => void) | undefined): void {
    if (this.headersSent) throw new Error('headers already sent');
    this.#divert = fn;
  }

  /**
   * Switches protocols: the 101 goes through writeHead first (so whatever
   * wraps it, the audit guard, sees the answer before a byte is sent; it may
   * throw, having answered otherwise), then `head` — the whole 101 head — is
   * written and the socket is handed over. Throws EarlyDataError, before
   * anything is sent, when the client did not wait for the answer.
   */
  switchProtocols(head: string): Socket {
    if (this.headersSent) throw new Error('headers already sent');
    this.#conn.checkTakeOver(this);
    this.writeHead(101, []);
    const socket = this.#conn.takeOver(this);
    this.writableFinished = true;
    socket.write(head, 'latin1');
    return socket;
  }

  /** Abandons the response: the connection is closed (the client sees a cut-off response). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.#conn.socket.destroy();
  }

  /** Calls `cb` once the socket can take more. */
  onDrain(cb: () => void): void {
    this.#conn.socket.once('drain', cb);
  }
}

export type AgentHandler = (req: AgentRequest, res: AgentResponse) => void;

/** Requests that may wait behind the one being answered, by default. */
export const DEFAULT_MAX_QUEUED_REQUESTS = 32;

export interface AgentConnectionOptions {
  /** Closes a connection idle (between requests, or while a head or body is arriving) this long. */
  readonly idleTimeoutMs: number;
  /**
   * Most bytes held for one connection: of requests queued behind the one
   * being answered (heads and bodies; beyond it the connection is answered
   * with an error and closed), and of a body the handler has not asked for
   * yet (beyond it the socket is paused until it does).
   */
  readonly maxBufferedBytes: number;
  /** Most requests queued behind the one being answered (default DEFAULT_MAX_QUEUED_REQUESTS); beyond it, as above. */
  readonly maxQueuedRequests?: number;
  /** Builds the body of an error answer (a Kubernetes Status) for a request that could not be parsed. */
  readonly errorBody: (code: number, message: string) => string;
}

/** Drives one socket. */
export class AgentConnection {
  readonly socket: Socket;
  readonly #decoder = new RequestDecoder();
  readonly #handler: AgentHandler;
  readonly #opts: AgentConnectionOptions;
  readonly #remote: string;
  /** Parts of requests waiting for the current one to finish. */
  #queue: (ReturnType<RequestDecoder['push']>[number] | { kind: 'error'; error: HttpParseError })[] = [];
  /** Requests (heads) and bytes in #queue. */
  #queuedRequests = 0;
  #queuedBytes = 0;
  readonly #maxQueuedRequests: number;
  /** The request being read (its body parts go to it). */
  #reading: AgentRequest | undefined;
  #active: { req: AgentRequest; res: AgentResponse } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #dead = false;
  readonly #dataListener = (chunk: Buffer) => this.#onData(chunk);
  readonly #closeListener = () => this.#onClose();

  constructor(socket: Socket, handler: AgentHandler, opts: AgentConnectionOptions) {
    this.socket = socket;
    this.#handler = handler;
    this.#opts = opts;
    this.#remote = socket.remoteAddress ?? 'unknown';
    this.#maxQueuedRequests = opts.maxQueuedRequests ?? DEFAULT_MAX_QUEUED_REQUESTS;
    socket.setNoDelay(true);
    socket.on('data', this.#dataListener);
    socket.on('error', () => {});
    socket.on('close', this.#closeListener);
    this.#armIdle();
  }

  /** @internal Throws unless `res` may take the socket over: it answers the request being handled, and nothing came after it. */
  checkTakeOver(res: AgentResponse): void {
    if (this.#active?.res !== res)
      throw new Error('only the response being written can take the connection over');
    // The end of this request may still be queued (the handler runs before it is taken off).
    if (this.#queue.some((p) => p.kind !== 'end') || !this.#decoder.idle || this.#reading !== undefined)
      throw new EarlyDataError();
  }

  /**
   * @internal The active response switches protocols: the connection stops
   * reading requests and its idle timer, and the socket (paused) is the
   * caller's. `res` closes when the socket does.
   */
  takeOver(res: AgentResponse): Socket {
    this.checkTakeOver(res);
    this.#dead = true;
    this.#active = undefined;
    this.#queue = [];
    this.#clearIdle();
    const socket = this.socket;
    socket.off('data', this.#dataListener);
    socket.off('close', this.#closeListener);
    socket.pause();
    if (socket.destroyed) queueMicrotask(() => res.closed());
    else socket.once('close', () => res.closed());
    return socket;
  }

  #armIdle(): void {
    if (this.#timer !== undefined) this.#timer.refresh();
    else {
      this.#timer = setTimeout(() => this.socket.destroy(), this.#opts.idleTimeoutMs);
      this.#timer.unref();
    }
  }

  #clearIdle(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #onData(chunk: Buffer): void {
    if (this.#dead) return;
    let parts: ReturnType<RequestDecoder['push']>;
    try {
      parts = this.#decoder.push(chunk);
    } catch (err) {
      const error =
        err instanceof HttpParseError ? err : new HttpParseError(400, `malformed request (${String(err)})`);
      this.#dead = true;
      this.#queue.push({ kind: 'error', error });
      this.#pump();
      return;
    }
    if (parts.length === 0) {
      if (!this.#active) this.#armIdle();
      return;
    }
    for (const part of parts) {
      this.#queue.push(part);
      if (part.kind === 'head') {
        this.#queuedRequests++;
        this.#queuedBytes += headBytes(part.head);
      } else if (part.kind === 'body') this.#queuedBytes += part.data.length;
    }
    this.#pump();
  }

  /** Takes the first queued part off the queue, keeping the counts. */
  #shift(): void {
    const part = this.#queue.shift();
    if (part?.kind === 'head') {
      this.#queuedRequests--;
      this.#queuedBytes -= headBytes(part.head);
    } else if (part?.kind === 'body') this.#queuedBytes -= part.data.length;
  }

  /** Processes queued parts until a request is being answered. */
  #pump(): void {
    while (this.#queue.length > 0) {
      const part = this.#queue[0];
      if (part === undefined) break;
      if (part.kind === 'body' || part.kind === 'end') {
        this.#shift();
        const r = this.#reading;
        if (!r) continue;
        if (part.kind === 'body') {
          r.pushBody(part.data);
          const unread = r.unreadBytes;
          // Until the handler asks for the body, hold no more than the bound.
          if (unread !== undefined && unread > this.#opts.maxBufferedBytes) this.socket.pause();
        } else {
          this.#reading = undefined;
          r.endBody();
          if (this.#active) this.#clearIdle();
        }
        continue;
      }
      if (this.#active) {
        // A pipelined request (or an error after one): wait for the current response.
        this.#bound();
        return;
      }
      this.#shift();
      if (part.kind === 'error') {
        this.#answerError(part.error);
        return;
      }
      const req = new AgentRequest(part.head, this.#remote, () => this.#continue(part.head));
      const res = new AgentResponse(this, req);
      this.#active = { req, res };
      this.#reading = req.complete ? undefined : req;
      if (req.complete) this.#clearIdle();
      this.#handler(req, res);
    }
    if (this.#active && this.socket.isPaused() && !this.#dead) {
      const unread = this.#active.req.unreadBytes;
      if (unread === undefined || unread <= this.#opts.maxBufferedBytes) this.socket.resume();
    }
  }

  /**
   * Too many requests, or too many bytes, queued behind the current one: the
   * queued requests are dropped unanswered, an error is answered after the
   * current response, and nothing more is read from the connection.
   */
  #bound(): void {
    if (this.#dead) return;
    const max = this.#maxQueuedRequests;
    const maxBytes = this.#opts.maxBufferedBytes;
    if (this.#queuedRequests <= max && this.#queuedBytes <= maxBytes) return;
    const what =
      this.#queuedRequests > max
        ? `more than ${max} requests were sent`
        : `more than ${maxBytes} bytes of requests were sent`;
    this.#dead = true;
    this.#queue = [
      {
        kind: 'error',
        error: new HttpParseError(
          400,
          `${what} on one connection ahead of their responses; the requests after the one being answered were not processed. Wait for responses before sending more (at most ${max} requests, ${maxBytes} bytes ahead), or use more connections`,
        ),
      },
    ];
    this.#queuedRequests = 0;
    this.#queuedBytes = 0;
    this.socket.pause();
  }

  #continue(head: RequestHead): void {
    if (head.headers.expect?.toLowerCase() === '100-continue' && this.#reading !== undefined) {
      this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
    }
    if (this.socket.isPaused() && !this.#dead) this.socket.resume();
  }

  #answerError(error: HttpParseError): void {
    this.#dead = true;
    const body = this.#opts.errorBody(error.status, error.message);
    const head =
      `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Bad Request'}\r\n` +
      'content-type: application/json\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      'connection: close\r\n\r\n';
    this.socket.end(head + body);
    // Read on (and discard: the connection is dead) so the client's close is seen.
    this.socket.resume();
  }

  /** @internal the active response was written in full */
  finished(res: AgentResponse, close: boolean): void {
    const active = this.#active;
    if (!active || active.res !== res) return;
    this.#active = undefined;
    res.closed();
    // A body we did not read to its end leaves the connection out of step: close it.
    // A connection that failed after this request answers the error first.
    const failed = this.#queue[0]?.kind === 'error';
    if (close || !active.req.complete || (this.#dead && !failed)) {
      this.#dead = true;
      this.#queue = [];
      this.socket.end();
      return;
    }
    this.#armIdle();
    if (this.#queue.length > 0) this.#pump();
    else if (this.socket.isPaused()) this.socket.resume();
  }

  #onClose(): void {
    this.#clearIdle();
    this.#dead = true;
    this.#reading?.abort();
    this.#reading = undefined;
    const active = this.#active;
    this.#active = undefined;
    if (active) {
      active.res.destroyed = true;
      active.res.closed();
    }
  }
}

/** What a parsed head took on the wire, near enough to bound memory by (request line and field lines). */
function headBytes(head: RequestHead): number {
  let n = head.method.length + head.target.length + 13;
  const raw = head.rawHeaders;
  for (let i = 0; i < raw.length; i++) n += (raw[i] as string).length + 2;
  return n;
}
