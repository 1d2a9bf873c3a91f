/**
 * Incremental decoder of what a client sends: `push(chunk)` returns the
 * messages completed so far. First a startup packet (no type byte), then
 * typed messages. A partial message waits for the next chunk, within a hard
 * size limit; anything that is not the protocol throws a ProtocolError (the
 * connection is then answered with an ErrorResponse and closed).
 *
 * Every message keeps `raw`, its exact bytes, so the proxy forwards what the
 * client sent rather than a re-encoding of what it understood.
 */
import { ByteQueue } from './byte-queue.ts';
import {
  CANCEL_REQUEST_CODE,
  FieldReader,
  GSSENC_REQUEST_CODE,
  MAX_STARTUP_PACKET,
  ProtocolError,
  SSL_REQUEST_CODE,
  TLS_HANDSHAKE_BYTE,
} from './protocol.ts';

interface Raw {
  readonly raw: Buffer;
}

export type FrontendMessage =
  | ({ readonly type: 'SSLRequest' } & Raw)
  | ({ readonly type: 'GSSENCRequest' } & Raw)
  | ({ readonly type: 'CancelRequest'; readonly processId: number; readonly secretKey: Buffer } & Raw)
  | ({
      readonly type: 'StartupMessage';
      readonly protocol: number;
      readonly parameters: ReadonlyMap<string, string>;
    } & Raw)
  /** The first byte of a TLS ClientHello (libpq 17 direct TLS): the rest is TLS, not this protocol. */
  | ({ readonly type: 'TlsClientHello' } & Raw)
  | ({ readonly type: 'Query'; readonly query: string } & Raw)
  | ({
      readonly type: 'Parse';
      readonly name: string;
      readonly query: string;
      readonly paramTypes: readonly number[];
    } & Raw)
  | ({
      readonly type: 'Bind';
      readonly portal: string;
      readonly statement: string;
      readonly paramFormats: readonly number[];
      readonly params: readonly (Buffer | null)[];
      readonly resultFormats: readonly number[];
    } & Raw)
  | ({ readonly type: 'Describe'; readonly target: 'S' | 'P'; readonly name: string } & Raw)
  | ({ readonly type: 'Execute'; readonly portal: string; readonly maxRows: number } & Raw)
  | ({ readonly type: 'Sync' } & Raw)
  | ({ readonly type: 'Flush' } & Raw)
  | ({ readonly type: 'Close'; readonly target: 'S' | 'P'; readonly name: string } & Raw)
  | ({ readonly type: 'Terminate' } & Raw)
  | ({ readonly type: 'FunctionCall'; readonly functionOid: number } & Raw)
  | ({ readonly type: 'CopyData'; readonly data: Buffer } & Raw)
  | ({ readonly type: 'CopyDone' } & Raw)
  | ({ readonly type: 'CopyFail'; readonly message: string } & Raw)
  /** PasswordMessage, SASLInitialResponse, SASLResponse or GSSResponse: which one depends on what the server asked. */
  | ({ readonly type: 'AuthenticationResponse'; readonly data: Buffer } & Raw);

export interface FrontendDecoderOptions {
  /** Largest typed message accepted (its length field included). */
  readonly maxMessageBytes: number;
}

type Phase = 'startup' | 'typed' | 'cancelled' | 'tls';

function target(r: FieldReader, what: string): 'S' | 'P' {
  const t = r.byte();
  if (t !== 0x53 && t !== 0x50)
    throw new ProtocolError(`${what} message names neither a statement nor a portal`);
  return t === 0x53 ? 'S' : 'P';
}

function int16List(r: FieldReader): number[] {
  const n = r.int16();
  if (n < 0) throw new ProtocolError('negative count in a message');
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r.int16());
  return out;
}

export class FrontendDecoder {
  readonly #queue = new ByteQueue();
  readonly #max: number;
  #phase: Phase = 'startup';

  constructor(options: FrontendDecoderOptions) {
    this.#max = options.maxMessageBytes;
  }

  /** Whether the next message is a startup packet (before StartupMessage, and again after an SSLRequest or GSSENCRequest was answered). */
  get expectingStartup(): boolean {
    return this.#phase === 'startup';
  }

  /** Bytes received but not yet decoded (handed to TLS after an SSLRequest was accepted). */
  takeBuffered(): Buffer {
    return this.#queue.drain();
  }

  push(chunk: Buffer): FrontendMessage[] {
    this.#queue.push(chunk);
    const out: FrontendMessage[] = [];
    for (;;) {
      const m =
        this.#phase === 'startup' ? this.#startup() : this.#phase === 'typed' ? this.#typed() : undefined;
      if (m === undefined) break;
      out.push(m);
      if (m.type === 'TlsClientHello') break;
    }
    if (this.#phase === 'cancelled' && this.#queue.length > 0) {
      throw new ProtocolError('bytes after a CancelRequest');
    }
    return out;
  }

  #startup(): FrontendMessage | undefined {
    const q = this.#queue;
    if (q.length >= 1 && q.byteAt(0) === TLS_HANDSHAKE_BYTE) {
      this.#phase = 'tls';
      // The TLS bytes belong to whoever terminates TLS: none of them are read here.
      return { type: 'TlsClientHello', raw: Buffer.alloc(0) };
    }
    if (q.length < 8) {
      if (q.length >= 4) this.#checkStartupLength(q.int32At(0));
      return undefined;
    }
    const len = q.int32At(0);
    this.#checkStartupLength(len);
    if (q.length < len) return undefined;
    const raw = q.take(len);
    const r = new FieldReader(raw, 'startup', 4);
    const code = r.int32();
    switch (code) {
      case SSL_REQUEST_CODE:
        r.end();
        return { type: 'SSLRequest', raw };
      case GSSENC_REQUEST_CODE:
        r.end();
        return { type: 'GSSENCRequest', raw };
      case CANCEL_REQUEST_CODE: {
        const processId = r.int32();
        // 4 bytes in protocol 3.0; protocol 3.2 allows up to 256.
        const secretKey = r.rest();
        if (secretKey.length < 4 || secretKey.length > 256)
          throw new ProtocolError('CancelRequest key of a bad length');
        this.#phase = 'cancelled';
        return { type: 'CancelRequest', processId, secretKey, raw };
      }
    }
    if (code >>> 16 !== 3) {
      throw new ProtocolError(
        `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: this proxy speaks protocol 3`,
        '0A000',
      );
    }
    // "The protocol version number is followed by one or more pairs of parameter name and value
    // strings. A zero byte is required as a terminator after the last name/value pair."
    const parameters = new Map<string, string>();
    for (;;) {
      const name = r.cstring();
      if (name === '') break;
      if (parameters.has(name)) throw new ProtocolError(`startup parameter "${name}" given twice`);
      parameters.set(name, r.cstring());
    }
    r.end();
    this.#phase = 'typed';
    return { type: 'StartupMessage', protocol: code, parameters, raw };
  }

  #checkStartupLength(len: number): void {
    if (len < 8 || len > MAX_STARTUP_PACKET) {
      throw new ProtocolError(`invalid startup packet length ${len} (8 to ${MAX_STARTUP_PACKET} bytes)`);
    }
  }

  #typed(): FrontendMessage | undefined {
    const q = this.#queue;
    if (q.length < 5) return undefined;
    const len = q.int32At(1);
    if (len < 4) throw new ProtocolError(`invalid message length ${len}`);
    if (len + 1 > this.#max) {
      throw new ProtocolError(
        `a ${String.fromCharCode(q.byteAt(0))} message of ${len + 1} bytes is over the limit of ${this.#max} bytes`,
        '54000',
      );
    }
    if (q.length < len + 1) return undefined;
    const raw = q.take(len + 1);
    return decodeTyped(raw);
  }
}

function decodeTyped(raw: Buffer): FrontendMessage {
  const t = raw[0] as number;
  const name = String.fromCharCode(t);
  const r = new FieldReader(raw, name, 5);
  switch (name) {
    case 'Q': {
      const query = r.cstring();
      r.end();
      return { type: 'Query', query, raw };
    }
    case 'P': {
      const stmt = r.cstring();
      const query = r.cstring();
      const n = r.int16();
      if (n < 0) throw new ProtocolError('Parse message with a negative parameter count');
      const paramTypes: number[] = [];
      for (let i = 0; i < n; i++) paramTypes.push(r.uint32());
      r.end();
      return { type: 'Parse', name: stmt, query, paramTypes, raw };
    }
    case 'B': {
      const portal = r.cstring();
      const statement = r.cstring();
      const paramFormats = int16List(r);
      const n = r.int16();
      if (n < 0) throw new ProtocolError('Bind message with a negative parameter count');
      const params: (Buffer | null)[] = [];
      for (let i = 0; i < n; i++) {
        // "The length of the parameter value, in bytes (this count does not include itself).
        // Can be zero. As a special case, -1 indicates a NULL parameter value."
        const len = r.int32();
        if (len < -1) throw new ProtocolError('Bind message with a negative parameter length');
        params.push(len === -1 ? null : r.bytes(len));
      }
      const resultFormats = int16List(r);
      r.end();
      return { type: 'Bind', portal, statement, paramFormats, params, resultFormats, raw };
    }
    case 'D': {
      const tgt = target(r, 'Describe');
      const n = r.cstring();
      r.end();
      return { type: 'Describe', target: tgt, name: n, raw };
    }
    case 'E': {
      const portal = r.cstring();
      const maxRows = r.int32();
      r.end();
      return { type: 'Execute', portal, maxRows, raw };
    }
    case 'C': {
      const tgt = target(r, 'Close');
      const n = r.cstring();
      r.end();
      return { type: 'Close', target: tgt, name: n, raw };
    }
    case 'S':
      r.end();
      return { type: 'Sync', raw };
    case 'H':
      r.end();
      return { type: 'Flush', raw };
    case 'X':
      r.end();
      return { type: 'Terminate', raw };
    case 'c':
      r.end();
      return { type: 'CopyDone', raw };
    case 'd':
      return { type: 'CopyData', data: r.rest(), raw };
    case 'f': {
      const message = r.cstring();
      r.end();
      return { type: 'CopyFail', message, raw };
    }
    case 'F': {
      const functionOid = r.uint32();
      int16List(r);
      const n = r.int16();
      if (n < 0) throw new ProtocolError('FunctionCall message with a negative argument count');
      for (let i = 0; i < n; i++) {
        const len = r.int32();
        if (len < -1) throw new ProtocolError('FunctionCall message with a negative argument length');
        if (len > 0) r.bytes(len);
      }
      r.int16();
      r.end();
      return { type: 'FunctionCall', functionOid, raw };
    }
    case 'p':
      return { type: 'AuthenticationResponse', data: r.rest(), raw };
    default:
      throw new ProtocolError(`unknown frontend message type 0x${t.toString(16).padStart(2, '0')}`);
  }
}
