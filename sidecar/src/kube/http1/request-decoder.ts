/**
 * Incremental HTTP/1.1 request decoder (RFC 9112) for the agent side of the
 * proxy. Strict on purpose: the sidecar decides on what it parsed, and the API
 * server must not be able to read the same bytes differently, so anything the
 * RFC leaves to interpretation (bare LF, obs-fold, Content-Length with
 * Transfer-Encoding, odd targets) is rejected rather than guessed.
 */
import {
  CONN_CLOSE,
  CONN_KEEP_ALIVE,
  CONN_UPGRADE,
  connectionFlags,
  Framer,
  headerRecord,
  type Limits,
  listItems,
  type Part,
  parseContentLength,
  parseFieldLines,
  resolveLimits,
  TOKEN,
} from './framing.ts';
import { HttpParseError } from './http-parse-error.ts';

export interface RequestHead {
  /** As sent (a valid RFC 9110 token). */
  readonly method: string;
  /** Origin-form ("/api/v1/pods?x=y"); an absolute-form target is converted to origin-form; "*" only with OPTIONS. */
  readonly target: string;
  readonly version: '1.0' | '1.1';
  /** Lower-cased names; repeated fields joined with ", " (cookie with "; "). A null-prototype object. */
  readonly headers: Readonly<Record<string, string>>;
  /** As received: [name, value, name, value, …], names in original case, values trimmed of OWS. */
  readonly rawHeaders: readonly string[];
  readonly bodyKind: 'none' | 'length' | 'chunked';
  /** The declared length for 'length', else 0. */
  readonly contentLength: number;
  /** HTTP/1.1 unless "connection: close"; HTTP/1.0 only with "connection: keep-alive". */
  readonly keepAlive: boolean;
  /** An Upgrade header with "connection: upgrade". The decoder does not switch: stop pushing if you do. */
  readonly upgrade: boolean;
}

/** A head, de-chunked payload bytes (may be a subarray of the pushed chunk), or the end (right after the head when there is no body). */
export type RequestPart = Part<RequestHead>;

/** Defaults in DEFAULT_LIMITS. Over maxHeadBytes or maxHeaders: 431; over maxChunkLineBytes: 400. */
export type RequestDecoderOptions = Partial<Limits>;

/** Empty lines skipped before a request line (a client's stray CRLF after a body, RFC 9112 §2.2). */
const MAX_EMPTY_LINES = 4;

// request-line = method SP request-target SP HTTP-version (RFC 9112 §3), single spaces.
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([^ ]+) HTTP\/([0-9])\.([0-9])$/;
/**
 * origin-form = absolute-path [ "?" query ], in the characters RFC 3986 allows
 * there: unreserved / pct-encoded / sub-delims / ":" / "@" / "/" / "?".
 * Everything else (space, CTLs, non-ASCII, "#", "\", quotes, braces, …) must
 * arrive percent-encoded; a server might otherwise split or normalise it
 * differently from us.
 */
const ORIGIN_FORM = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/;
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;
/** absolute-form with an http(s) scheme; no userinfo ("@") in the authority. */
const ABSOLUTE_FORM = /^https?:\/\/([A-Za-z0-9\-._~!$&'()*+,;=:%[\]]+)([/?].*)?$/i;
/** Host = uri-host [ ":" port ] (RFC 9110 §7.2), possibly empty. */
const HOST_VALUE = /^[A-Za-z0-9\-._~!$&'()*+,;=:%[\]]*$/;

export class RequestDecoder {
  readonly #framer: Framer<RequestHead>;
  #error: unknown;
  #failed = false;

  constructor(opts?: RequestDecoderOptions) {
    const limits: Limits = resolveLimits(opts);
    this.#framer = new Framer<RequestHead>(
      {
        lenient: false,
        maxEmptyLines: MAX_EMPTY_LINES,
        malformed: 400,
        tooLarge: 431,
        start: () => {},
        head: parseRequestHead,
        done: () => {},
      },
      limits,
    );
  }

  /**
   * Decodes as many parts as the bytes allow and keeps the rest buffered
   * (bounded). Several pipelined requests in one chunk give the parts of all
   * of them, in order. Throws HttpParseError; after a throw every push throws.
   */
  push(chunk: Buffer): RequestPart[] {
    if (this.#failed) throw this.#error;
    const out: RequestPart[] = [];
    try {
      this.#framer.push(chunk, out);
    } catch (err) {
      this.#failed = true;
      this.#error = err;
      throw err;
    }
    return out;
  }

  /** True when no message is in progress (between messages, nothing buffered). */
  get idle(): boolean {
    return !this.#failed && this.#framer.idle;
  }

  /** Bytes held over for the next push (a head or chunk-size line split across chunks); for tests and metrics. */
  get buffered(): number {
    return this.#framer.buffered;
  }
}

function parseRequestHead(text: string): RequestHead {
  // The scanner has checked that every line ends with CRLF.
  const nl = text.indexOf('\n');
  const line = text.slice(0, nl - 1);
  const m = REQUEST_LINE.exec(line);
  if (m === null) throw new HttpParseError(400, describeRequestLine(line));
  const method = m[1]!;
  const major = m[3]!;
  const minor = m[4]!;
  if (major !== '1' || (minor !== '0' && minor !== '1')) {
    throw new HttpParseError(505, `HTTP/${major}.${minor} is not supported; use HTTP/1.1`);
  }
  const version = minor === '1' ? '1.1' : '1.0';
  const target = requestTarget(method, m[2]!);

  const rawHeaders: string[] = [];
  parseFieldLines(text, nl + 1, false, 400, rawHeaders);
  const headers = headerRecord(rawHeaders);

  // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, with several Host
  // lines, or with an invalid Host value.
  const host = headers.host;
  if (host === undefined) {
    if (version === '1.1') throw new HttpParseError(400, 'the Host header is missing (RFC 9112 §3.2)');
  } else if (!HOST_VALUE.test(host)) {
    throw new HttpParseError(400, 'the Host header is not a valid host[:port] (or there are several)');
  }

  // Message body length, RFC 9112 §6.1-§6.3.
  const te = headers['transfer-encoding'];
  const cl = headers['content-length'];
  let bodyKind: RequestHead['bodyKind'] = 'none';
  let contentLength = 0;
  if (te !== undefined) {
    if (version === '1.0') {
      throw new HttpParseError(
        400,
        'Transfer-Encoding is not allowed in an HTTP/1.0 request (RFC 9112 §6.1)',
      );
    }
    if (cl !== undefined) {
      throw new HttpParseError(
        400,
        'both Transfer-Encoding and Content-Length are present; send only one (RFC 9112 §6.3)',
      );
    }
    checkTransferCoding(te);
    bodyKind = 'chunked';
  } else if (cl !== undefined) {
    contentLength = parseContentLength(cl, 400, 413);
    bodyKind = 'length';
  }

  const conn = connectionFlags(headers.connection);
  const keepAlive = (conn & CONN_CLOSE) === 0 && (version === '1.1' || (conn & CONN_KEEP_ALIVE) !== 0);
  const upgrade = (conn & CONN_UPGRADE) !== 0 && headers.upgrade !== undefined;
  return { method, target, version, headers, rawHeaders, bodyKind, contentLength, keepAlive, upgrade };
}

/**
 * Only "chunked" alone is accepted. RFC 9112 §6.3: if chunked is not the final
 * coding of a request, the length cannot be known: 400. Other codings before
 * chunked would leave the body encoded, hiding it from the guards: 501.
 */
function checkTransferCoding(te: string): void {
  if (te.length === 7 && te.toLowerCase() === 'chunked') return;
  const codings = listItems(te);
  const last = codings[codings.length - 1];
  if (last === undefined) throw new HttpParseError(400, 'Transfer-Encoding is empty');
  if (last !== 'chunked') {
    throw new HttpParseError(400, 'the final transfer coding is not "chunked" (RFC 9112 §6.3)');
  }
  if (codings.indexOf('chunked') !== codings.length - 1) {
    throw new HttpParseError(400, 'the chunked transfer coding is applied more than once (RFC 9112 §6.1)');
  }
  throw new HttpParseError(501, 'transfer codings other than "chunked" are not supported');
}

function requestTarget(method: string, target: string): string {
  if (target.charCodeAt(0) === 47) return originForm(target);
  if (target === '*') {
    if (method === 'OPTIONS') return target;
    throw new HttpParseError(400, 'the request target "*" is only allowed with OPTIONS');
  }
  const m = ABSOLUTE_FORM.exec(target);
  if (m !== null) {
    // absolute-form: keep path and query (RFC 9112 §3.2.2).
    const rest = m[2] ?? '';
    return originForm(rest === '' ? '/' : rest.charCodeAt(0) === 63 ? `/${rest}` : rest);
  }
  throw new HttpParseError(400, 'the request target must be a path ("/…") or an absolute http(s) URL');
}

function originForm(target: string): string {
  if (!ORIGIN_FORM.test(target)) {
    throw new HttpParseError(
      400,
      'the request target contains a character that must be percent-encoded (space, control, non-ASCII, "#", "\\", quotes, …)',
    );
  }
  if (target.includes('%') && BAD_PERCENT.test(target)) {
    throw new HttpParseError(400, 'the request target has a "%" not followed by two hex digits');
  }
  return target;
}

/** Why a request line did not match; never echoes the target (it may carry a token in its query). */
function describeRequestLine(line: string): string {
  const sp = line.indexOf(' ');
  if (sp === -1) return 'malformed request line (expected "METHOD /path HTTP/1.1")';
  if (sp === 0) return 'the request line starts with whitespace';
  if (!TOKEN.test(line.slice(0, sp))) return 'invalid character in the request method';
  const last = line.lastIndexOf(' ');
  if (!/^HTTP\/[0-9]\.[0-9]$/.test(line.slice(last + 1))) {
    return 'malformed HTTP version in the request line (expected "HTTP/1.1")';
  }
  return 'malformed request line: method, target and version must be separated by single spaces';
}
