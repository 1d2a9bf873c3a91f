/**
 * Builders for the messages the sidecar itself sends: to the agent (its own
 * authentication, key, errors) and to the server (startup, authentication,
 * the statements it substitutes). Everything else is forwarded as received.
 */
import type { FieldDescription } from './backend-decoder.ts';
import { CANCEL_REQUEST_CODE, type ErrorFields, PROTOCOL_3_0, SSL_REQUEST_CODE } from './protocol.ts';

/** Accumulates the body of one message. */
class Body {
  readonly #parts: Buffer[] = [];
  #size = 0;

  #add(b: Buffer): this {
    this.#parts.push(b);
    this.#size += b.length;
    return this;
  }

  int8(v: number): this {
    const b = Buffer.allocUnsafe(1);
    b.writeUInt8(v);
    return this.#add(b);
  }

  int16(v: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeInt16BE(v);
    return this.#add(b);
  }

  int32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32BE(v | 0);
    return this.#add(b);
  }

  cstring(s: string): this {
    return this.#add(Buffer.from(`${s}\0`, 'utf8'));
  }

  bytes(b: Buffer): this {
    return this.#add(b);
  }

  /** A typed message: type byte, Int32 length (itself included), body. */
  typed(type: string): Buffer {
    const head = Buffer.allocUnsafe(5);
    head.writeUInt8(type.charCodeAt(0), 0);
    head.writeInt32BE(this.#size + 4, 1);
    return Buffer.concat([head, ...this.#parts], this.#size + 5);
  }

  /** An untyped startup packet: Int32 length (itself included), body. */
  untyped(): Buffer {
    const head = Buffer.allocUnsafe(4);
    head.writeInt32BE(this.#size + 4, 0);
    return Buffer.concat([head, ...this.#parts], this.#size + 4);
  }
}

const body = () => new Body();

// ---------------------------------------------------------------------------
// Frontend messages (the sidecar as a client of the server)

export function startupMessage(
  parameters: Iterable<readonly [string, string]>,
  protocol = PROTOCOL_3_0,
): Buffer {
  const b = body().int32(protocol);
  for (const [k, v] of parameters) b.cstring(k).cstring(v);
  return b.int8(0).untyped();
}

export function sslRequest(): Buffer {
  return body().int32(SSL_REQUEST_CODE).untyped();
}

export function cancelRequest(processId: number, secretKey: Buffer): Buffer {
  return body().int32(CANCEL_REQUEST_CODE).int32(processId).bytes(secretKey).untyped();
}

/** PasswordMessage: cleartext or md5 (`md5…`). */
export function passwordMessage(password: string): Buffer {
  return body().cstring(password).typed('p');
}

export function saslInitialResponse(mechanism: string, data: Buffer): Buffer {
  return body().cstring(mechanism).int32(data.length).bytes(data).typed('p');
}

export function saslResponse(data: Buffer): Buffer {
  return body().bytes(data).typed('p');
}

export function query(text: string): Buffer {
  return body().cstring(text).typed('Q');
}

export function parse(name: string, text: string, paramTypes: readonly number[] = []): Buffer {
  const b = body().cstring(name).cstring(text).int16(paramTypes.length);
  for (const t of paramTypes) b.int32(t);
  return b.typed('P');
}

export function bind(
  portal: string,
  statement: string,
  params: readonly (Buffer | null)[] = [],
  resultFormats: readonly number[] = [],
): Buffer {
  const b = body().cstring(portal).cstring(statement).int16(0).int16(params.length);
  for (const p of params) {
    if (p === null) b.int32(-1);
    else b.int32(p.length).bytes(p);
  }
  b.int16(resultFormats.length);
  for (const f of resultFormats) b.int16(f);
  return b.typed('B');
}

export function describe(target: 'S' | 'P', name: string): Buffer {
  return body().int8(target.charCodeAt(0)).cstring(name).typed('D');
}

export function execute(portal: string, maxRows = 0): Buffer {
  return body().cstring(portal).int32(maxRows).typed('E');
}

export function close(target: 'S' | 'P', name: string): Buffer {
  return body().int8(target.charCodeAt(0)).cstring(name).typed('C');
}

export function sync(): Buffer {
  return body().typed('S');
}

export function flush(): Buffer {
  return body().typed('H');
}

export function terminate(): Buffer {
  return body().typed('X');
}

/** CopyData, the same in both directions. */
export function copyData(data: Buffer): Buffer {
  return body().bytes(data).typed('d');
}

export function copyDone(): Buffer {
  return body().typed('c');
}

/** Ends a COPY FROM STDIN with an error carrying `message`. */
export function copyFail(message: string): Buffer {
  return body().cstring(message).typed('f');
}

// ---------------------------------------------------------------------------
// Backend messages (the sidecar as the agent's server)

export function authenticationOk(): Buffer {
  return body().int32(0).typed('R');
}

export function authentication(code: number, data: Buffer = Buffer.alloc(0)): Buffer {
  return body().int32(code).bytes(data).typed('R');
}

export function parameterStatus(name: string, value: string): Buffer {
  return body().cstring(name).cstring(value).typed('S');
}

export function backendKeyData(processId: number, secretKey: Buffer): Buffer {
  return body().int32(processId).bytes(secretKey).typed('K');
}

export function readyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return body().int8(status.charCodeAt(0)).typed('Z');
}

function fields(b: Body, f: ErrorFields): Body {
  for (const [code, value] of Object.entries(f)) b.int8(code.charCodeAt(0)).cstring(value);
  return b.int8(0);
}

export function errorResponse(f: ErrorFields): Buffer {
  return fields(body(), f).typed('E');
}

export function noticeResponse(f: ErrorFields): Buffer {
  return fields(body(), f).typed('N');
}

/** An ERROR (the session goes on) or FATAL (the connection ends) with SQLSTATE `code`. */
export function errorMessage(
  severity: 'ERROR' | 'FATAL',
  code: string,
  message: string,
  extra: { detail?: string; hint?: string } = {},
): Buffer {
  return errorResponse({
    S: severity,
    V: severity,
    C: code,
    M: message,
    ...(extra.detail ? { D: extra.detail } : {}),
    ...(extra.hint ? { H: extra.hint } : {}),
  });
}

export function negotiateProtocolVersion(newestMinor: number, unrecognized: readonly string[]): Buffer {
  const b = body().int32(newestMinor).int32(unrecognized.length);
  for (const o of unrecognized) b.cstring(o);
  return b.typed('v');
}

export function rowDescription(fieldList: readonly FieldDescription[]): Buffer {
  const b = body().int16(fieldList.length);
  for (const f of fieldList) {
    b.cstring(f.name)
      .int32(f.tableOid)
      .int16(f.column)
      .int32(f.typeOid)
      .int16(f.typeSize)
      .int32(f.typeModifier)
      .int16(f.format);
  }
  return b.typed('T');
}

export function dataRow(values: readonly (Buffer | null)[]): Buffer {
  const b = body().int16(values.length);
  for (const v of values) {
    if (v === null) b.int32(-1);
    else b.int32(v.length).bytes(v);
  }
  return b.typed('D');
}

export function commandComplete(tag: string): Buffer {
  return body().cstring(tag).typed('C');
}

export function emptyMessage(type: '1' | '2' | '3' | 'n' | 's' | 'I'): Buffer {
  return body().typed(type);
}
