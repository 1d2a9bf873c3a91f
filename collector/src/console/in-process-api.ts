/**
 * Calls the query listener's own request handler in-process: an HTTP/1.1
 * request written into one end of an in-memory stream pair whose other end is
 * handed to a private, never-listening `http.Server` running that handler, so
 * the API reads exactly the request a remote client would send (headers,
 * body, `Authorization: Bearer`), authenticates and authorises it itself, and
 * answers through Node's own HTTP parser.
 *
 * Chosen over a loopback HTTP request: no port, address or TLS certificate to
 * reach (the listener may be bound to a pod IP only and serve a certificate
 * without a loopback name), and nothing leaves the process.
 */
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { duplexPair } from 'node:stream';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export interface ApiRequest {
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Path and query, e.g. `/v1/approvals?state=pending`. */
  readonly path: string;
  readonly token: string;
  readonly body?: string;
}

/** An API answer's status and the headers the console passes on. */
export interface ApiHead {
  readonly status: number;
  readonly contentType: string;
  /** The API's `content-disposition` header, when it sent one. */
  readonly contentDisposition?: string;
  /** The API's `x-recording-size` header (a recording's total size when it was read from an offset). */
  readonly recordingSize?: string;
}

export interface ApiAnswer extends ApiHead {
  /** The answer's bytes as the API sent them (a recording read from an offset may end inside a character). */
  readonly body: Buffer;
}

/** An answer whose body is still arriving: read it (or pipe it on) as it comes. */
export interface ApiStream extends ApiHead {
  readonly body: IncomingMessage;
}

export interface InProcessApi {
  /** The whole answer, at most MAX_ANSWER_BYTES (the console's own checks: small JSON answers). */
  call(r: ApiRequest): Promise<ApiAnswer>;
  /**
   * The answer as it arrives, for the console to pass on: nothing of it is
   * held here, so a large report or a whole recording (up to the API's own
   * limits) reaches the browser at the pace the browser reads it.
   */
  stream(r: ApiRequest): Promise<ApiStream>;
}

const header = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/** Largest API answer `call` reads into memory. */
export const MAX_ANSWER_BYTES = 8 * 1024 * 1024;
const API_TIMEOUT_MS = 30_000;

function headOf(res: IncomingMessage): ApiHead {
  const disposition = header(res.headers['content-disposition']);
  const size = header(res.headers['x-recording-size']);
  return {
    status: res.statusCode ?? 502,
    contentType: String(res.headers['content-type'] ?? ''),
    ...(disposition ? { contentDisposition: disposition } : {}),
    ...(size ? { recordingSize: size } : {}),
  };
}

async function readAll(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_ANSWER_BYTES) {
      res.destroy();
      throw new Error(`the API's answer is larger than ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

export function inProcessApi(handler: RequestHandler): InProcessApi {
  const server = createServer((req, res) => {
    handler(req, res).catch(() => res.destroy());
  });
  /** Sends the request; resolves with the response once its head arrived (within API_TIMEOUT_MS). */
  const send = (r: ApiRequest) =>
    new Promise<IncomingMessage>((resolve, reject) => {
      const [client, serverSide] = duplexPair();
      server.emit('connection', serverSide);
      const headers: Record<string, string> = {
        host: 'collector.console.internal',
        authorization: `Bearer ${r.token}`,
        accept: 'application/json',
        connection: 'close',
      };
      if (r.body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(Buffer.byteLength(r.body));
      }
      const req = request(
        { method: r.method, path: r.path, headers, createConnection: () => client },
        (res) => {
          clearTimeout(timer);
          resolve(res);
        },
      );
      // An in-memory stream has no socket timeout: a timer of its own, until the answer begins.
      const timer = setTimeout(
        () => req.destroy(new Error(`the API did not answer within ${API_TIMEOUT_MS / 1000} s`)),
        API_TIMEOUT_MS,
      );
      req.on('close', () => clearTimeout(timer));
      req.on('error', reject);
      req.end(r.body);
    });
  return {
    async call(r) {
      const res = await send(r);
      const timer = setTimeout(
        () => res.destroy(new Error(`the API did not finish its answer within ${API_TIMEOUT_MS / 1000} s`)),
        API_TIMEOUT_MS,
      );
      try {
        return { ...headOf(res), body: await readAll(res) };
      } finally {
        clearTimeout(timer);
      }
    },
    async stream(r) {
      const res = await send(r);
      return { ...headOf(res), body: res };
    },
  };
}
