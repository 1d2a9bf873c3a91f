/**
 * A bearer token kept in a file that is rotated on disk (projected
 * service-account tokens, a kubeconfig's `tokenFile`): re-read at most once a
 * minute as client-go does, and at once after the API server refused it.
 * When the file cannot be read the last token read is kept; the API server's
 * 401 then says what is wrong.
 */
import { readFileSync, statSync } from 'node:fs';
import type { CredentialSource } from './connection.ts';

export interface TokenFileOptions {
  /** How long a token read is used before the file is looked at again; default one minute. */
  readonly rereadMs?: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

export function tokenFileCredentials(path: string, opts: TokenFileOptions = {}): CredentialSource {
  const rereadMs = opts.rereadMs ?? 60_000;
  const now = opts.now ?? Date.now;
  let token: string | undefined;
  let readAt = 0;
  let mtime = 0;
  return {
    current() {
      const t = now();
      if (token !== undefined && t - readAt < rereadMs) return { token };
      try {
        const m = statSync(path).mtimeMs;
        if (token === undefined || m !== mtime) {
          token = readFileSync(path, 'utf8').trim();
          mtime = m;
        }
        readAt = t;
      } catch {
        // keep the last token: a rotation in progress, or a 401 that names the problem
      }
      return token ? { token } : {};
    },
    refused() {
      readAt = 0;
      mtime = 0;
    },
  };
}
