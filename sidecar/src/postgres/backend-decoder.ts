/**
 * Incremental decoder of what a PostgreSQL server sends: typed messages only
 * (the one-byte answer to an SSLRequest is read before this decoder starts).
 * `push(chunk)` returns the messages completed so far; a partial one waits
 * within a hard size limit; anything else throws a ProtocolError.
 */
import { ByteQueue } from './byte-queue.ts';
import { type ErrorFields, FieldReader, ProtocolError, readErrorFields } from './protocol.ts';

interface Raw {
  readonly raw: Buffer;
}

export interface FieldDescription {
  readonly name: string;
  /** "If the field can be identified as a column of a specific table, the object ID of the table; otherwise zero." */
  readonly tableOid: number;
  /** "If the field can be identified as a column of a specific table, the attribute number of the column; otherwise zero." */
  readonly column: number;
  readonly typeOid: number;
  readonly typeSize: number;
  readonly typeModifier: number;
  /** 0 text, 1 binary ("In a RowDescription returned from the statement variant of Describe, the format code is not yet known and will always be zero.") */
  readonly format: number;
}

export type Authentication =
  | { readonly kind: 'ok' }
  | { readonly kind: 'kerberos-v5' }
  | { readonly kind: 'cleartext-password' }
  | { readonly kind: 'md5-password'; readonly salt: Buffer }
  | { readonly kind: 'gss' }
  | { readonly kind: 'gss-continue'; readonly data: Buffer }
  | { readonly kind: 'sspi' }
  | { readonly kind: 'sasl'; readonly mechanisms: readonly string[] }
  | { readonly kind: 'sasl-continue'; readonly data: Buffer }
  | { readonly kind: 'sasl-final'; readonly data: Buffer };

export type BackendMessage =
  | ({ readonly type: 'Authentication'; readonly auth: Authentication } & Raw)
  | ({ readonly type: 'ParameterStatus'; readonly name: string; readonly value: string } & Raw)
  | ({ readonly type: 'BackendKeyData'; readonly processId: number; readonly secretKey: Buffer } & Raw)
  | ({ readonly type: 'ReadyForQuery'; readonly status: 'I' | 'T' | 'E' } & Raw)
  | ({ readonly type: 'RowDescription'; readonly fields: readonly FieldDescription[] } & Raw)
  | ({ readonly type: 'DataRow'; readonly values: readonly (Buffer | null)[] } & Raw)
  | ({ readonly type: 'CommandComplete'; readonly tag: string } & Raw)
  | ({ readonly type: 'ErrorResponse'; readonly fields: ErrorFields } & Raw)
  | ({ readonly type: 'NoticeResponse'; readonly fields: ErrorFields } & Raw)
  | ({ readonly type: 'ParseComplete' } & Raw)
  | ({ readonly type: 'BindComplete' } & Raw)
  | ({ readonly type: 'CloseComplete' } & Raw)
  | ({ readonly type: 'NoData' } & Raw)
  | ({ readonly type: 'PortalSuspended' } & Raw)
  | ({ readonly type: 'EmptyQueryResponse' } & Raw)
  | ({ readonly type: 'ParameterDescription'; readonly types: readonly number[] } & Raw)
  | ({
      readonly type: 'CopyInResponse' | 'CopyOutResponse' | 'CopyBothResponse';
      /** 0 textual, 1 binary. */
      readonly format: number;
      readonly columnFormats: readonly number[];
    } & Raw)
  | ({ readonly type: 'CopyData'; readonly data: Buffer } & Raw)
  | ({ readonly type: 'CopyDone' } & Raw)
  | ({
      readonly type: 'NotificationResponse';
      readonly processId: number;
      readonly channel: string;
      readonly payload: string;
    } & Raw)
  | ({ readonly type: 'FunctionCallResponse'; readonly value: Buffer | null } & Raw)
  | ({
      readonly type: 'NegotiateProtocolVersion';
      readonly newestMinor: number;
      readonly unrecognized: readonly string[];
    } & Raw);

export interface BackendDecoderOptions {
  /** Largest message accepted (its type byte and length field included). */
  readonly maxMessageBytes: number;
}

export class BackendDecoder {
  readonly #queue = new ByteQueue();
  readonly #max: number;

  constructor(options: BackendDecoderOptions) {
    this.#max = options.maxMessageBytes;
  }

  /** Bytes received but not yet decoded. */
  get buffered(): number {
    return this.#queue.length;
  }

  push(chunk: Buffer): BackendMessage[] {
    const q = this.#queue;
    q.push(chunk);
    const out: BackendMessage[] = [];
    while (q.length >= 5) {
      const len = q.int32At(1);
      if (len < 4) throw new ProtocolError(`invalid message length ${len} from the server`);
      if (len + 1 > this.#max) {
        throw new ProtocolError(
          `a ${String.fromCharCode(q.byteAt(0))} message of ${len + 1} bytes from the server is over the limit of ${this.#max} bytes`,
          '54000',
        );
      }
      if (q.length < len + 1) break;
      out.push(decodeBackend(q.take(len + 1)));
    }
    return out;
  }
}

function authentication(r: FieldReader): Authentication {
  const code = r.int32();
  switch (code) {
    case 0:
      r.end();
      return { kind: 'ok' };
    case 2:
      r.end();
      return { kind: 'kerberos-v5' };
    case 3:
      r.end();
      return { kind: 'cleartext-password' };
    case 5: {
      const salt = r.bytes(4);
      r.end();
      return { kind: 'md5-password', salt };
    }
    case 7:
      r.end();
      return { kind: 'gss' };
    case 8:
      return { kind: 'gss-continue', data: r.rest() };
    case 9:
      r.end();
      return { kind: 'sspi' };
    case 10: {
      // "The message body is a list of SASL authentication mechanisms, in the server's order of
      // preference. A zero byte is required as terminator after the last authentication mechanism name."
      const mechanisms: string[] = [];
      for (;;) {
        const m = r.cstring();
        if (m === '') break;
        mechanisms.push(m);
      }
      r.end();
      return { kind: 'sasl', mechanisms };
    }
    case 11:
      return { kind: 'sasl-continue', data: r.rest() };
    case 12:
      return { kind: 'sasl-final', data: r.rest() };
    default:
      throw new ProtocolError(`unknown authentication request ${code} from the server`);
  }
}

function decodeBackend(raw: Buffer): BackendMessage {
  const t = raw[0] as number;
  const name = String.fromCharCode(t);
  const r = new FieldReader(raw, name, 5);
  const empty = <T extends BackendMessage['type']>(type: T) => {
    r.end();
    return { type, raw } as BackendMessage;
  };
  switch (name) {
    case 'R':
      return { type: 'Authentication', auth: authentication(r), raw };
    case 'S': {
      const n = r.cstring();
      const value = r.cstring();
      r.end();
      return { type: 'ParameterStatus', name: n, value, raw };
    }
    case 'K': {
      const processId = r.int32();
      const secretKey = r.rest();
      if (secretKey.length < 4 || secretKey.length > 256)
        throw new ProtocolError('BackendKeyData key of a bad length');
      return { type: 'BackendKeyData', processId, secretKey, raw };
    }
    case 'Z': {
      const s = String.fromCharCode(r.byte());
      r.end();
      // "'I' if idle (not in a transaction block); 'T' if in a transaction block; or 'E' if in a
      // failed transaction block (queries will be rejected until block is ended)."
      if (s !== 'I' && s !== 'T' && s !== 'E')
        throw new ProtocolError(`ReadyForQuery with unknown status "${s}"`);
      return { type: 'ReadyForQuery', status: s, raw };
    }
    case 'T': {
      const n = r.int16();
      if (n < 0) throw new ProtocolError('RowDescription with a negative field count');
      const fields: FieldDescription[] = [];
      for (let i = 0; i < n; i++) {
        fields.push({
          name: r.cstring(),
          tableOid: r.uint32(),
          column: r.int16(),
          typeOid: r.uint32(),
          typeSize: r.int16(),
          typeModifier: r.int32(),
          format: r.int16(),
        });
      }
      r.end();
      return { type: 'RowDescription', fields, raw };
    }
    case 'D': {
      const n = r.int16();
      if (n < 0) throw new ProtocolError('DataRow with a negative column count');
      const values: (Buffer | null)[] = [];
      for (let i = 0; i < n; i++) {
        // "The length of the column value, in bytes (this count does not include itself). Can be
        // zero. As a special case, -1 indicates a NULL column value. No value bytes follow in the NULL case."
        const len = r.int32();
        if (len < -1) throw new ProtocolError('DataRow with a negative column length');
        values.push(len === -1 ? null : r.bytes(len));
      }
      r.end();
      return { type: 'DataRow', values, raw };
    }
    case 'C': {
      const tag = r.cstring();
      r.end();
      return { type: 'CommandComplete', tag, raw };
    }
    case 'E':
      return { type: 'ErrorResponse', fields: readErrorFields(r), raw };
    case 'N':
      return { type: 'NoticeResponse', fields: readErrorFields(r), raw };
    case '1':
      return empty('ParseComplete');
    case '2':
      return empty('BindComplete');
    case '3':
      return empty('CloseComplete');
    case 'n':
      return empty('NoData');
    case 's':
      return empty('PortalSuspended');
    case 'I':
      return empty('EmptyQueryResponse');
    case 'c':
      return empty('CopyDone');
    case 't': {
      const n = r.int16();
      if (n < 0) throw new ProtocolError('ParameterDescription with a negative count');
      const types: number[] = [];
      for (let i = 0; i < n; i++) types.push(r.uint32());
      r.end();
      return { type: 'ParameterDescription', types, raw };
    }
    case 'G':
    case 'H':
    case 'W': {
      const format = r.byte();
      const n = r.int16();
      if (n < 0) throw new ProtocolError('copy response with a negative column count');
      const columnFormats: number[] = [];
      for (let i = 0; i < n; i++) columnFormats.push(r.int16());
      r.end();
      const type = name === 'G' ? 'CopyInResponse' : name === 'H' ? 'CopyOutResponse' : 'CopyBothResponse';
      return { type, format, columnFormats, raw };
    }
    case 'd':
      return { type: 'CopyData', data: r.rest(), raw };
    case 'A': {
      const processId = r.int32();
      const channel = r.cstring();
      const payload = r.cstring();
      r.end();
      return { type: 'NotificationResponse', processId, channel, payload, raw };
    }
    case 'V': {
      const len = r.int32();
      if (len < -1) throw new ProtocolError('FunctionCallResponse with a negative length');
      const value = len === -1 ? null : r.bytes(len);
      r.end();
      return { type: 'FunctionCallResponse', value, raw };
    }
    case 'v': {
      const newestMinor = r.int32();
      const n = r.int32();
      if (n < 0 || n > 1000) throw new ProtocolError('NegotiateProtocolVersion with a bad option count');
      const unrecognized: string[] = [];
      for (let i = 0; i < n; i++) unrecognized.push(r.cstring());
      r.end();
      return { type: 'NegotiateProtocolVersion', newestMinor, unrecognized, raw };
    }
    default:
      throw new ProtocolError(`unknown backend message type 0x${t.toString(16).padStart(2, '0')}`);
  }
}
