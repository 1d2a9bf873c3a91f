/**
 * The server side of a SPDY/3.1 session after `101 Switching Protocols`, as
 * the kubelet's streaming server runs one (k8s.io/apimachinery
 * pkg/util/httpstream/spdy over github.com/docker/spdystream, v1.20): the
 * client opens every stream (odd ids) with SYN_STREAM; the server accepts it
 * with an empty SYN_REPLY or refuses it with RST_STREAM CANCEL; data frames
 * carry the bytes, a FIN (empty data frame) ends one direction; the client's
 * PINGs are echoed; at the end every stream still open is reset, GOAWAY is
 * sent and the socket closed.
 *
 * Flow control: spdystream sends no WINDOW_UPDATE or SETTINGS and ignores
 * the peer's, so a kubelet neither waits for send windows nor grants receive
 * windows. `flowControl: 'none'` (the default) behaves the same. 'spdy/3.1'
 * follows the spec instead: 64 KiB initial windows per stream and for the
 * session, the peer's SETTINGS_INITIAL_WINDOW_SIZE, WINDOW_UPDATE for what was
 * received, and data held back while a send window is empty — for testing a
 * client against a strict peer.
 *
 * Every header block is inflated in order, also for frames that are then
 * refused, because the compression context spans the connection.
 */
import type { Duplex } from 'node:stream';
import {
  encodeDataFrameHeader,
  encodeGoAway,
  encodePing,
  encodeRstStream,
  encodeSynReply,
  encodeWindowUpdate,
  GOAWAY_STATUS,
  RST_STATUS,
  SETTINGS_ID,
  type SpdyFrame,
  SpdyFrameDecoder,
  SpdyFrameError,
} from './spdy-frames.ts';
import { SpdyHeaderDeflater, SpdyHeaderError, SpdyHeaderInflater, type SpdyHeaders } from './spdy-headers.ts';

export type SpdyFlowControl = 'none' | 'spdy/3.1';

const INITIAL_WINDOW = 64 * 1024;
/** Largest data frame written (the kubelet's io.Copy writes 32 KiB at a time). */
const MAX_DATA_FRAME = 32 * 1024;

export interface SpdyConnectionOptions {
  /** A client opened a stream: return a reason to refuse it, or undefined to accept it. */
  onStream(stream: SpdyStream): string | undefined;
  /** The session has ended (closed by either side). Called once. */
  onClose?(): void;
  flowControl?: SpdyFlowControl;
  maxFrameBytes?: number;
  /** Why the session ended early: the peer broke the protocol, or a handler threw. */
  onError?(err: Error): void;
}

/** What the stand-in passes down to each SPDY session. */
export type SpdySessionOptions = Pick<SpdyConnectionOptions, 'flowControl' | 'onError'>;

export class SpdyStream {
  readonly id: number;
  readonly headers: SpdyHeaders;
  /** Bytes from the client. */
  onData: ((data: Buffer) => void) | undefined;
  /** The client ended its side (FIN). */
  onEnd: (() => void) | undefined;
  /** The stream was reset (by the client, or because the session ended). */
  onReset: (() => void) | undefined;
  readonly #conn: SpdyServerConnection;
  #localDone = false;
  #remoteDone = false;
  #reset = false;
  sendWindow: number;
  /** Data waiting for send window (flow control on). */
  readonly pending: { data: Buffer; fin: boolean }[] = [];

  constructor(conn: SpdyServerConnection, id: number, headers: SpdyHeaders, sendWindow: number) {
    this.#conn = conn;
    this.id = id;
    this.headers = headers;
    this.sendWindow = sendWindow;
  }

  /** The first value of a header. */
  header(name: string): string | undefined {
    return this.headers.get(name.toLowerCase())?.[0];
  }

  get localDone(): boolean {
    return this.#localDone || this.#reset;
  }

  get remoteDone(): boolean {
    return this.#remoteDone || this.#reset;
  }

  /** Sends bytes; false when the connection wants the writer to wait (see SpdyServerConnection.onDrain). */
  write(data: Buffer): boolean {
    if (this.localDone || data.length === 0) return !this.#conn.needsDrain;
    return this.#conn.sendData(this, data, false);
  }

  /** Ends our side with an empty FIN data frame (spdystream's Stream.Close). */
  end(): void {
    if (this.localDone) return;
    this.#localDone = true;
    this.#conn.sendData(this, Buffer.alloc(0), true);
    this.#conn.forgetIfDone(this);
  }

  /** RST_STREAM (spdystream's Stream.Reset: status CANCEL). Nothing is sent once our side has ended. */
  reset(status: number = RST_STATUS.cancel): void {
    if (this.#reset) return;
    const send = !this.#localDone;
    this.#reset = true;
    this.pending.length = 0;
    if (send) this.#conn.sendFrame(encodeRstStream(this.id, status));
    this.#conn.forgetIfDone(this);
    this.onReset?.();
  }

  /** @internal data from the client */
  received(data: Buffer, fin: boolean): void {
    if (data.length > 0) this.onData?.(data);
    if (fin && !this.#remoteDone) {
      this.#remoteDone = true;
      this.onEnd?.();
    }
  }

  /** @internal the client reset the stream, or the session ended */
  resetByPeer(): void {
    if (this.#reset) return;
    this.#reset = true;
    this.pending.length = 0;
    this.onReset?.();
  }
}

export class SpdyServerConnection {
  readonly #socket: Duplex;
  readonly #opts: SpdyConnectionOptions;
  readonly #flow: boolean;
  readonly #decoder: SpdyFrameDecoder;
  readonly #inflater = new SpdyHeaderInflater();
  readonly #deflater = new SpdyHeaderDeflater();
  readonly #streams = new Map<number, SpdyStream>();
  #lastStreamId = 0;
  #initialSendWindow = INITIAL_WINDOW;
  #sessionSendWindow = INITIAL_WINDOW;
  #closed = false;
  #goneAway = false;
  readonly #drainWaiters: (() => void)[] = [];

  constructor(socket: Duplex, head: Buffer, opts: SpdyConnectionOptions) {
    this.#socket = socket;
    this.#opts = opts;
    this.#flow = opts.flowControl === 'spdy/3.1';
    this.#decoder = new SpdyFrameDecoder(
      opts.maxFrameBytes === undefined ? {} : { maxFrameBytes: opts.maxFrameBytes },
    );
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('end', () => this.#ended());
    socket.on('close', () => this.#ended());
    socket.on('error', () => this.#ended());
    if (head.length > 0) this.#receive(head);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get needsDrain(): boolean {
    return this.#socket.writableNeedDrain || [...this.#streams.values()].some((s) => s.pending.length > 0);
  }

  /** Calls back once the socket has drained (at once when it has or is gone). */
  onDrain(callback: () => void): void {
    if (this.#closed || !this.needsDrain) queueMicrotask(callback);
    else if (this.#socket.writableNeedDrain) this.#socket.once('drain', () => this.onDrain(callback));
    else this.#drainWaiters.push(callback);
  }

  /** Resets every stream still open, sends GOAWAY and closes the socket (k8s connection.Close). */
  close(): void {
    if (this.#closed) return;
    for (const s of this.#streams.values()) s.reset();
    this.#streams.clear();
    this.sendFrame(encodeGoAway(this.#lastStreamId, GOAWAY_STATUS.ok));
    this.#closed = true;
    this.#socket.end();
    this.#opts.onClose?.();
  }

  /** @internal */
  sendFrame(frame: Buffer): boolean {
    if (this.#closed) return false;
    return this.#socket.write(frame);
  }

  /** @internal writes data frames for a stream, within the send windows when flow control is on */
  sendData(stream: SpdyStream, data: Buffer, fin: boolean): boolean {
    if (this.#closed) return false;
    if (this.#flow) {
      stream.pending.push({ data, fin });
      this.#flush(stream);
      return !this.needsDrain;
    }
    this.#socket.cork();
    for (let at = 0; at < data.length; at += MAX_DATA_FRAME)
      this.#writeData(stream.id, data.subarray(at, at + MAX_DATA_FRAME), false);
    if (fin) this.#writeData(stream.id, Buffer.alloc(0), true);
    this.#socket.uncork();
    return !this.#socket.writableNeedDrain;
  }

  /** One data frame: its header and the payload as they are (the payload is not copied). */
  #writeData(id: number, payload: Buffer, fin: boolean): void {
    this.#socket.write(encodeDataFrameHeader(id, payload.length, fin));
    if (payload.length > 0) this.#socket.write(payload);
  }

  #flush(stream: SpdyStream): void {
    while (stream.pending.length > 0) {
      const next = stream.pending[0]!;
      const room = Math.min(stream.sendWindow, this.#sessionSendWindow, MAX_DATA_FRAME);
      if (next.data.length > 0 && room <= 0) return;
      const part = next.data.subarray(0, room);
      const last = part.length === next.data.length;
      this.#writeData(stream.id, part, last && next.fin);
      stream.sendWindow -= part.length;
      this.#sessionSendWindow -= part.length;
      if (last) stream.pending.shift();
      else next.data = next.data.subarray(part.length);
    }
    this.forgetIfDone(stream);
    if (!this.needsDrain) for (const w of this.#drainWaiters.splice(0)) w();
  }

  #receive(chunk: Buffer): void {
    if (this.#closed) return;
    let frames: SpdyFrame[];
    try {
      frames = this.#decoder.push(chunk);
      for (const f of frames) {
        if (this.#closed) return;
        this.#handle(f);
      }
    } catch (err) {
      const peer = err instanceof SpdyFrameError || err instanceof SpdyHeaderError;
      this.sendFrame(
        encodeGoAway(this.#lastStreamId, peer ? GOAWAY_STATUS.protocolError : GOAWAY_STATUS.internalError),
      );
      this.#opts.onError?.(err instanceof Error ? err : new Error(String(err)));
      this.#ended();
    }
  }

  #handle(f: SpdyFrame): void {
    switch (f.type) {
      case 'syn_stream': {
        const headers = this.#inflater.decode(f.headerBlock);
        if (this.#goneAway) return;
        if (f.streamId % 2 === 0 || f.streamId <= this.#lastStreamId) {
          this.sendFrame(encodeRstStream(f.streamId, RST_STATUS.protocolError));
          return;
        }
        this.#lastStreamId = f.streamId;
        const stream = new SpdyStream(this, f.streamId, headers, this.#initialSendWindow);
        const refusal = this.#opts.onStream(stream);
        if (refusal !== undefined) {
          stream.reset();
          return;
        }
        this.#streams.set(f.streamId, stream);
        this.sendFrame(encodeSynReply(f.streamId, this.#deflater.encode([])));
        if (f.fin) stream.received(Buffer.alloc(0), true);
        return;
      }
      case 'syn_reply':
      case 'headers':
        // The server opens no streams and needs no extra headers; the block still moves the zlib context.
        this.#inflater.decode(f.headerBlock);
        return;
      case 'data': {
        const stream = this.#streams.get(f.streamId);
        if (!stream) {
          this.sendFrame(encodeRstStream(f.streamId, RST_STATUS.invalidStream));
          return;
        }
        if (stream.remoteDone) {
          this.sendFrame(encodeRstStream(f.streamId, RST_STATUS.streamAlreadyClosed));
          return;
        }
        stream.received(f.data, f.fin);
        if (this.#flow && f.data.length > 0) {
          this.sendFrame(encodeWindowUpdate(f.streamId, f.data.length));
          this.sendFrame(encodeWindowUpdate(0, f.data.length));
        }
        this.forgetIfDone(stream);
        return;
      }
      case 'rst_stream': {
        const stream = this.#streams.get(f.streamId);
        this.#streams.delete(f.streamId);
        stream?.resetByPeer();
        return;
      }
      case 'settings':
        for (const e of f.entries) {
          if (e.id === SETTINGS_ID.initialWindowSize && this.#flow) {
            const delta = e.value - this.#initialSendWindow;
            this.#initialSendWindow = e.value;
            for (const s of this.#streams.values()) s.sendWindow += delta;
          }
        }
        this.#flushAll();
        return;
      case 'ping':
        // Client pings have odd ids; an even id answers one of ours (we send none).
        if (f.id % 2 === 1) this.sendFrame(encodePing(f.id));
        return;
      case 'goaway':
        this.#goneAway = true;
        return;
      case 'window_update':
        if (!this.#flow) return;
        if (f.streamId === 0) this.#sessionSendWindow += f.delta;
        else {
          const stream = this.#streams.get(f.streamId);
          if (stream) stream.sendWindow += f.delta;
        }
        this.#flushAll();
        return;
    }
  }

  #flushAll(): void {
    for (const s of this.#streams.values()) this.#flush(s);
  }

  /** @internal drops a stream that is over in both directions, so a long session does not pile them up */
  forgetIfDone(stream: SpdyStream): void {
    if (stream.localDone && stream.remoteDone && stream.pending.length === 0) this.#streams.delete(stream.id);
  }

  #ended(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#streams.values()) s.resetByPeer();
    this.#streams.clear();
    if (!this.#socket.destroyed) this.#socket.destroy();
    this.#opts.onClose?.();
  }
}
