/**
 * The connection to the real API server: an undici Pool over TLS (cluster CA)
 * that authenticates with the sidecar's own projected token. The token file is
 * re-read periodically (the kubelet rotates it) and at once after a 401.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '@chaperone/shared';
import { Pool } from 'undici';

export interface UpstreamOptions {
  readonly url: string;
  readonly ca: string;
  readonly tokenFile: string;
  readonly log: Logger;
  readonly tokenRefreshMs?: number;
}

export class Upstream {
  readonly pool: Pool;
  readonly origin: string;
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
    this.pool = new Pool(this.origin, {
      connect: { ca: opts.ca, ...(u.hostname === '127.0.0.1' ? {} : { servername: u.hostname }) },
      connections: null,
      pipelining: 1,
      // HTTP/1.1 to the API server: in this workload Node's HTTP/2 client costs more CPU per request
      // and multiplexes every agent request onto one connection.
      allowH2: false,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 120_000,
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
