/**
 * Facts of the PostgreSQL frontend/backend protocol, version 3.0 (PostgreSQL
 * documentation, "Frontend/Backend Protocol", "Message Formats"), shared by
 * the decoders and the message builders.
 *
 * "All communication is through a stream of messages. The first byte of a
 * message identifies the message type, and the next four bytes specify the
 * length of the rest of the message (this length count includes itself, but
 * not the message-type byte)." The exception is the first message a client
 * sends, which has no type byte: a startup packet (StartupMessage,
 * SSLRequest, GSSENCRequest or CancelRequest), told apart by its first Int32
 * after the length.
 */

/** "The protocol version number. The most significant 16 bits are the major version number (3 …)." */
export const PROTOCOL_3_0 = 196_608;
/** SSLRequest: "The SSL request code. The value is chosen to contain 1234 in the most significant 16 bits, and 5679 in the least significant 16 bits." */
export const SSL_REQUEST_CODE = 80_877_103;
/** GSSENCRequest: 1234 and 5680. */
export const GSSENC_REQUEST_CODE = 80_877_104;
/** CancelRequest: 1234 and 5678. */
export const CANCEL_REQUEST_CODE = 80_877_102;
/**
 * A TLS record of type handshake starts with this byte: libpq 17's
 * `sslnegotiation=direct` opens with a ClientHello instead of an SSLRequest.
 */
export const TLS_HANDSHAKE_BYTE = 0x16;
/** The server refuses longer startup packets (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10_000;

/** A stream that is not the protocol, or that exceeds a limit. SQLSTATE 08P01 is protocol_violation. */
export class ProtocolError extends Error {
  readonly sqlstate: string;
  constructor(message: string, sqlstate = '08P01') {
    super(message);
    this.name = 'ProtocolError';
    this.sqlstate = sqlstate;
  }
}

/** Reads the fields of one message body, front to back; any overrun is a ProtocolError. */
export class FieldReader {
  readonly #buf: Buffer;
  readonly #what: string;
  #at: number;

  constructor(buf: Buffer, what: string, start = 0) {
    this.#buf = buf;
    this.#what = what;
    this.#at = start;
  }

  #need(n: number): void {
    if (n < 0 || this.#at + n > this.#buf.length) {
      throw new ProtocolError(`${this.#what} message is shorter than its fields`);
    }
  }

  get remaining(): number {
    return this.#buf.length - this.#at;
  }

  byte(): number {
    this.#need(1);
    return this.#buf[this.#at++] as number;
  }

  int16(): number {
    this.#need(2);
    const v = this.#buf.readInt16BE(this.#at);
    this.#at += 2;
    return v;
  }

  int32(): number {
    this.#need(4);
    const v = this.#buf.readInt32BE(this.#at);
    this.#at += 4;
    return v;
  }

  uint32(): number {
    this.#need(4);
    const v = this.#buf.readUInt32BE(this.#at);
    this.#at += 4;
    return v;
  }

  /** "String: A null-terminated string (C-style string)." Decoded as UTF-8 (the sidecar keeps client_encoding UTF8). */
  cstring(): string {
    const end = this.#buf.indexOf(0, this.#at);
    if (end === -1)
      throw new ProtocolError(`${this.#what} message has a string without its terminating zero`);
    const s = this.#buf.toString('utf8', this.#at, end);
    this.#at = end + 1;
    return s;
  }

  bytes(n: number): Buffer {
    this.#need(n);
    const v = this.#buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return v;
  }

  rest(): Buffer {
    const v = this.#buf.subarray(this.#at);
    this.#at = this.#buf.length;
    return v;
  }

  /** Fails unless every byte was read: trailing bytes mean the message is not what it claims. */
  end(): void {
    if (this.#at !== this.#buf.length) throw new ProtocolError(`${this.#what} message has trailing bytes`);
  }
}

/** Fields of an ErrorResponse or NoticeResponse, by their one-byte codes (`S`, `V`, `C`, `M`, `D`, `H`, `P`, …). */
export type ErrorFields = Readonly<Record<string, string>>;

export function readErrorFields(r: FieldReader): ErrorFields {
  const out: Record<string, string> = {};
  for (;;) {
    const code = r.byte();
    // "A code identifying the field type; if zero, this is the message terminator and no string follows."
    if (code === 0) break;
    out[String.fromCharCode(code)] = r.cstring();
  }
  r.end();
  return out;
}
