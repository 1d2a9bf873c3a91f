/**
 * Incremental HTTP/1.1 response decoder (RFC 9112) for the upstream side of
 * the proxy. Tolerant where the RFC asks recipients to be (bare LF line ends,
 * obs-fold), strict on framing: a response whose length is ambiguous, or bytes
 * nobody asked for, fail with 502 and the connection must not be reused.
 */
import {
  CONN_CLOSE,
  CONN_KEEP_ALIVE,
  connectionFlags,
  Framer,
  headerRecord,
  type Limits,
  listItems,
  type Part,
  parseContentLength,
  parseFieldLines,
  resolveLimits,
} from './framing.ts';
import { HttpParseError } from './http-parse-error.ts';

export interface ResponseHead {
  readonly statusCode: number;
  readonly reason: string;
  readonly version: '1.0' | '1.1';
  /** Lower-cased names, repeated fields joined with ", "; set-cookie only in rawHeaders. A null-prototype object. */
  readonly headers: Readonly<Record<string, string>>;
  /** As received: [name, value, name, value, …]. */
  readonly rawHeaders: readonly string[];
  readonly bodyKind: 'none' | 'length' | 'chunked' | 'close';
  /** The declared length for 'length', else 0. */
  readonly contentLength: number;
  /** False for 'close' bodies, "connection: close", or HTTP/1.0 without "connection: keep-alive". */
  readonly keepAlive: boolean;
}

export type ResponsePart = Part<ResponseHead>;

/** Defaults in DEFAULT_LIMITS; anything over a limit is a 502. */
export type ResponseDecoderOptions = Partial<Limits>;

// status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4);
// a missing SP before an empty reason is tolerated.
const STATUS_LINE = /^HTTP\/([0-9])\.([0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?$/;

export class ResponseDecoder {
  readonly #framer: Framer<ResponseHead>;
  /** Request methods whose responses are due, oldest first. */
  readonly #expected: string[] = [];
  /** An interim (1xx) response was read; the final one is still due. */
  #interim = false;
  #error: unknown;
  #failed = false;

  constructor(opts?: ResponseDecoderOptions) {
    this.#framer = new Framer<ResponseHead>(
      {
        lenient: true,
        maxEmptyLines: 0,
        malformed: 502,
        tooLarge: 502,
        start: () => {
          if (this.#expected.length === 0) {
            throw new HttpParseError(502, 'unsolicited data: the server sent bytes when no response was due');
          }
        },
        head: (text) => this.#head(text),
        done: () => {
          this.#expected.shift();
          this.#interim = false;
        },
      },
      resolveLimits(opts),
    );
  }

  /** Call before each request is sent: a response to HEAD has no body. */
  expect(method: string): void {
    this.#expected.push(method);
  }

  /**
   * Decodes as many parts as the bytes allow. Interim 1xx responses are
   * skipped; 101, a response nobody asked for, or bytes after a complete
   * response before the next expect() throw HttpParseError(502). After a
   * throw every call throws.
   */
  push(chunk: Buffer): ResponsePart[] {
    if (this.#failed) throw this.#error;
    const out: ResponsePart[] = [];
    try {
      this.#framer.push(chunk, out);
    } catch (err) {
      throw this.#fail(err);
    }
    return out;
  }

  /**
   * The connection closed. Completes a close-delimited body (returns its
   * 'end'); returns [] when idle, including when a response was expected but
   * not one byte of it arrived (the caller can tell that apart: no head); throws
   * HttpParseError(502) when a response was cut short.
   */
  end(): ResponsePart[] {
    if (this.#failed) throw this.#error;
    if (this.#framer.closeDelimited) {
      const out: ResponsePart[] = [];
      this.#framer.finishClose(out);
      return out;
    }
    if (this.idle) return [];
    throw this.#fail(new HttpParseError(502, 'the connection closed before the response was complete'));
  }

  /** True when no response is in progress (between responses, nothing buffered). */
  get idle(): boolean {
    return !this.#failed && !this.#interim && this.#framer.idle;
  }

  /** Bytes held over for the next push; for tests and metrics. */
  get buffered(): number {
    return this.#framer.buffered;
  }

  #fail(err: unknown): unknown {
    this.#failed = true;
    this.#error = err;
    return err;
  }

  #head(text: string): ResponseHead | undefined {
    const nl = text.indexOf('\n');
    const line = text.slice(0, nl > 0 && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl);
    const m = STATUS_LINE.exec(line);
    if (m === null) throw new HttpParseError(502, 'malformed status line (expected "HTTP/1.1 200 OK")');
    const major = m[1]!;
    const minor = m[2]!;
    if (major !== '1' || (minor !== '0' && minor !== '1')) {
      throw new HttpParseError(502, `the server answered with unsupported HTTP/${major}.${minor}`);
    }
    const version = minor === '1' ? '1.1' : '1.0';
    const statusCode = Number(m[3]);
    if (statusCode < 100) throw new HttpParseError(502, `invalid status code ${m[3]}`);

    const rawHeaders: string[] = [];
    parseFieldLines(text, nl + 1, true, 502, rawHeaders);

    if (statusCode < 200) {
      if (statusCode === 101) {
        throw new HttpParseError(
          502,
          'the server switched protocols (101) although no upgrade was requested',
        );
      }
      // 100 Continue, 102, 103 Early Hints: interim, no body; the final response follows.
      this.#interim = true;
      return undefined;
    }

    const headers = headerRecord(rawHeaders, 'set-cookie');
    // Message body length, RFC 9112 §6.3.
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    let bodyKind: ResponseHead['bodyKind'];
    let contentLength = 0;
    if (this.#expected[0] === 'HEAD' || statusCode === 204 || statusCode === 304) {
      bodyKind = 'none';
    } else if (te !== undefined) {
      // The RFC lets TE override CL, but calls the pair a sign of smuggling or
      // response splitting; a non-chunked coding or TE in HTTP/1.0 leaves the
      // length to the connection close. The API server never sends any of these.
      if (cl !== undefined)
        throw new HttpParseError(502, 'both Transfer-Encoding and Content-Length in a response');
      if (version === '1.0') throw new HttpParseError(502, 'Transfer-Encoding in an HTTP/1.0 response');
      const codings = listItems(te);
      if (codings.length !== 1 || codings[0] !== 'chunked') {
        throw new HttpParseError(502, 'a response transfer coding other than "chunked"');
      }
      bodyKind = 'chunked';
    } else if (cl !== undefined) {
      contentLength = parseContentLength(cl, 502, 502);
      bodyKind = 'length';
    } else {
      bodyKind = 'close';
    }
    const conn = connectionFlags(headers.connection);
    const keepAlive =
      bodyKind !== 'close' &&
      (conn & CONN_CLOSE) === 0 &&
      (version === '1.1' || (conn & CONN_KEEP_ALIVE) !== 0);
    return {
      statusCode,
      reason: m[4] ?? '',
      version,
      headers,
      rawHeaders,
      bodyKind,
      contentLength,
      keepAlive,
    };
  }
}
