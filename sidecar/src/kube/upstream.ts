/**
 * The connection to the real API server: keep-alive HTTP/1.1 connections over
 * TLS (cluster CA) that authenticate with the sidecar's own projected token. The token file is
 * re-read periodically (the kubelet rotates it) and at once after a 401.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '@chaperone/shared';
import { UpstreamPool } from './http1/upstream-pool.ts';

export interface UpstreamOptions {
  readonly url: string;
  readonly ca: string;
  readonly tokenFile: string;
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
  readonly #tokenFile: string;
  readonly #log: Logger;
  #authorization = '';
  #token = '';
  #timer: NodeJS.Timeout;

  constructor(opts: UpstreamOptions) {
    const u = new URL(opts.url);
    this.origin = u.origin;
    this.#tokenFile = opts.tokenFile;
    this.#log = opts.log;
    if (u.protocol !== 'https:') throw new Error(`the API server URL must be https: ${opts.url}`);
    this.host = u.host;
    const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    this.pool = new UpstreamPool({
      host: hostname,
      port: u.port === '' ? 443 : Number(u.port),
      ca: opts.ca,
      // An IP address cannot be an SNI name; the certificate is still checked against it.
      servername: /^[\d.]+$|:/.test(hostname) ? undefined : hostname,
      idleTimeoutMs: 30_000,
    });
    this.refreshToken();
    this.#timer = setInterval(() => this.refreshToken(), opts.tokenRefreshMs ?? 10_000);
    this.#timer.unref();
  }

  /** `Bearer <token>` for the current token. */
  get authorization(): string {
    return this.#authorization;
  }

  get token(): string {
    return this.#token;
  }

  refreshToken(): void {
    try {
      const token = readFileSync(this.#tokenFile, 'utf8').trim();
      // It is written into request heads as is: anything but visible ASCII is refused, never sent.
      if (token && !TOKEN_CHARS.test(token)) {
        this.#log.error(
          { tokenFile: this.#tokenFile },
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
      this.#log.error({ err, tokenFile: this.#tokenFile }, 'cannot read the service-account token');
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.pool.close();
  }
}
