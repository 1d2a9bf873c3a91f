/**
 * The connection to the real API server: keep-alive HTTP/1.1 connections over
 * TLS (cluster CA) that authenticate with the sidecar's own projected token. The token file is
 * re-read periodically (the kubelet rotates it) and at once after a 401.
 *
 * Outside a pod (`chaperone local`) the credentials come from a kubeconfig
 * context instead (`credentials`: a bearer token, token file, client
 * certificate or exec plugin, @chaperone/shared/kube): they are asked for
 * periodically — an exec plugin's are fetched anew shortly before they expire
 * — and afresh after a 401.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '@chaperone/shared';
import type { CredentialSource, KubeCredentials } from '@chaperone/shared/kube';
import { UpstreamPool } from './http1/upstream-pool.ts';

export interface UpstreamOptions {
  readonly url: string;
  /** PEM CA bundle; the system's roots when absent. */
  readonly ca?: string | undefined;
  /** The projected service-account token (in a pod). */
  readonly tokenFile?: string;
  /** Credentials from a kubeconfig context, instead of `tokenFile`. */
  readonly credentials?: CredentialSource;
  /** Name to send as SNI and check the certificate against, instead of the URL's host. */
  readonly tlsServerName?: string | undefined;
  readonly insecureSkipTlsVerify?: boolean | undefined;
  readonly log: Logger;
  readonly tokenRefreshMs?: number;
}

/** RFC 6750 b64token, which covers JWTs. */
const TOKEN_CHARS = /^[A-Za-z0-9\-._~+/]+=*$/;

export class Upstream {
  readonly pool: UpstreamPool;
  readonly origin: string;
  /** The Host header value sent upstream. */
  readonly host: string;
  readonly #tokenFile: string | undefined;
  readonly #source: CredentialSource | undefined;
  readonly #log: Logger;
  #authorization = '';
  #token = '';
  #clientCert: { readonly cert: string; readonly key: string } | undefined;
  #fetching: Promise<void> | undefined;
  #ready: Promise<void>;
  #timer: NodeJS.Timeout;

  constructor(opts: UpstreamOptions) {
    const u = new URL(opts.url);
    this.origin = u.origin;
    this.#tokenFile = opts.tokenFile;
    this.#source = opts.credentials;
    this.#log = opts.log;
    if (u.protocol !== 'https:') throw new Error(`the API server URL must be https: ${opts.url}`);
    if (!this.#source && this.#tokenFile === undefined) throw new Error('no upstream credentials given');
    this.host = u.host;
    const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    const servername = opts.tlsServerName ?? hostname;
    this.pool = new UpstreamPool({
      host: hostname,
      port: u.port === '' ? 443 : Number(u.port),
      ca: opts.ca,
      // An IP address cannot be an SNI name; the certificate is still checked against it.
      servername: /^[\d.]+$|:/.test(servername) ? undefined : servername,
      ...(opts.insecureSkipTlsVerify ? { insecureSkipTlsVerify: true } : {}),
      clientCertificate: () => this.#clientCert,
      idleTimeoutMs: 30_000,
    });
    this.#ready = this.#poll();
    // Rejections are reported by ready(); the poll itself logs them.
    this.#ready.catch(() => {});
    this.#timer = setInterval(() => void this.#poll().catch(() => {}), opts.tokenRefreshMs ?? 10_000);
    this.#timer.unref();
  }

  /** `Bearer <token>` for the current token ('' when the credentials are a client certificate alone). */
  get authorization(): string {
    return this.#authorization;
  }

  get token(): string {
    return this.#token;
  }

  /** Settles once the first credentials are in hand; rejects when they could not be had (a failing plugin). */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** The API server refused the credentials (401): read them anew. */
  refreshToken(): void {
    if (!this.#source) {
      this.#readTokenFile();
      return;
    }
    this.#source.refused?.();
    void this.#poll().catch(() => {});
  }

  #poll(): Promise<void> {
    if (!this.#source) {
      this.#readTokenFile();
      return Promise.resolve();
    }
    const source = this.#source;
    this.#fetching ??= (async () => {
      try {
        this.#use(await source.current());
      } catch (err) {
        this.#log.error({ err }, 'cannot get the credentials for the API server; keeping the previous ones');
        throw err;
      } finally {
        this.#fetching = undefined;
      }
    })();
    return this.#fetching;
  }

  #use(c: KubeCredentials): void {
    const token = c.token ?? '';
    if (token && !TOKEN_CHARS.test(token)) {
      this.#log.error(
        'the credentials hold a token with characters a bearer token cannot have; not using it',
      );
    } else if (token !== this.#token) {
      if (this.#token) this.#log.info('the API server token changed; using the new one');
      this.#token = token;
      this.#authorization = token ? `Bearer ${token}` : '';
    }
    const cert = c.clientCert && c.clientKey ? { cert: c.clientCert, key: c.clientKey } : undefined;
    if (cert?.cert !== this.#clientCert?.cert || cert?.key !== this.#clientCert?.key) {
      const replaced = this.#clientCert !== undefined;
      this.#clientCert = cert;
      if (replaced) {
        this.#log.info('the client certificate changed; new connections use the new one');
        this.pool.closeIdle();
      }
    }
  }

  #readTokenFile(): void {
    const tokenFile = this.#tokenFile as string;
    try {
      const token = readFileSync(tokenFile, 'utf8').trim();
      // It is written into request heads as is: anything but visible ASCII is refused, never sent.
      if (token && !TOKEN_CHARS.test(token)) {
        this.#log.error(
          { tokenFile },
          'the service-account token file holds characters a bearer token cannot have; keeping the previous token',
        );
        return;
      }
      if (token && token !== this.#token) {
        if (this.#token) this.#log.info('service-account token rotated; using the new one');
        this.#token = token;
        this.#authorization = `Bearer ${token}`;
      }
    } catch (err) {
      this.#log.error({ err, tokenFile }, 'cannot read the service-account token');
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.pool.close();
  }
}

/** A whole answer of the API server to a request the sidecar makes on its own behalf. */
export interface UpstreamReply {
  readonly status: number;
  readonly contentType: string;
  readonly body: Buffer;
}

export interface UpstreamCall {
  readonly method: string;
  /** Origin-form request target: path and query. */
  readonly target: string;
  readonly contentType?: string;
  readonly body?: Buffer;
  /**
   * Sent as Audit-ID. The agent's own request keeps the request's id; a call
   * the guard makes to decide on it (a dry run, a read) gets a derived one
   * (derivedAuditID), so each id names one request in the API server's log.
   */
  readonly auditID: string;
  readonly timeoutMs: number;
  /** Answers larger than this fail the call. */
  readonly maxBytes: number;
  /** The Accept header (default application/json): a constant of the caller's, never the agent's. */
  readonly accept?: string;
}

/** What the API server takes as an Audit-ID (longer or other ids are replaced by its own). */
const AUDIT_ID = /^[A-Za-z0-9-]{1,256}$/;

/**
 * The Audit-ID of the `n`th call the guard makes on its own to decide on the
 * request with id `auditID`: `<auditID>-check-<n>`.
 */
export function derivedAuditID(auditID: string, n: number): string {
  const id = `${auditID}-check-${n}`;
  if (!AUDIT_ID.test(id)) throw new Error(`cannot derive an Audit-ID from ${JSON.stringify(auditID)}`);
  return id;
}

/**
 * One request to the API server with the sidecar's credentials, answered as
 * JSON and read whole (within `maxBytes`): for the guards that must see an
 * object before deciding (the current object, a dry run, a namespace).
 * Rejects on a transport failure, with the pool's UpstreamError.
 */
export function upstreamCall(upstream: Upstream, call: UpstreamCall): Promise<UpstreamReply> {
  // Written into the request head as is.
  if (!AUDIT_ID.test(call.auditID)) return Promise.reject(new Error('invalid Audit-ID'));
  if (call.accept !== undefined && /[\r\n]/.test(call.accept))
    return Promise.reject(new Error('invalid Accept'));
  let head =
    `${call.method} ${call.target} HTTP/1.1\r\nhost: ${upstream.host}\r\n` +
    `authorization: ${upstream.authorization}\r\naudit-id: ${call.auditID}\r\n` +
    `accept: ${call.accept ?? 'application/json'}\r\nuser-agent: chaperone-sidecar\r\n`;
  if (call.body !== undefined) {
    head += `content-type: ${call.contentType ?? 'application/json'}\r\ncontent-length: ${call.body.length}\r\n`;
  }
  head += '\r\n';
  return new Promise((resolve, reject) => {
    let status = 0;
    let contentType = '';
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const exchange = upstream.pool.request(
      {
        method: call.method,
        head,
        body: call.body,
        headersTimeoutMs: call.timeoutMs,
        bodyTimeoutMs: call.timeoutMs,
      },
      {
        onHead(h) {
          status = h.statusCode;
          contentType = h.headers['content-type'] ?? '';
          if (status === 401) upstream.refreshToken();
        },
        onData(data) {
          if (done) return true;
          size += data.length;
          if (size > call.maxBytes) {
            done = true;
            exchange.abort();
            reject(new Error(`the API server's answer is larger than ${call.maxBytes} bytes`));
            return true;
          }
          chunks.push(data);
          return true;
        },
        onEnd() {
          if (done) return;
          done = true;
          resolve({ status, contentType, body: Buffer.concat(chunks, size) });
        },
        onError(err) {
          if (done) return;
          done = true;
          reject(err);
        },
      },
    );
  });
}
