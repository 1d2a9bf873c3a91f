/**
 * The console's sessions, kept in this process's memory: a random id in an
 * HttpOnly cookie names one; the approver's bearer token and the session's
 * CSRF token stay here and never reach the page. A session ends when it has
 * been idle for `idleMs`, `absoluteMs` after it began, on sign-out, or when
 * the API refuses its token. Pure: the clock and the random source are given.
 */
import { createHash, randomBytes } from 'node:crypto';

export type SessionSource = 'token' | 'proxy';

export interface ConsoleSession {
  readonly id: string;
  /** The approver's bearer token, sent to the API as `Authorization: Bearer`; a session keeps the one it began with. */
  readonly token: string;
  /** sha256 of `token`: a proxy header carrying another token does not use this session. */
  readonly tokenHash: string;
  /** The synchronizer token every state-changing request must carry in `X-CSRF-Token`. */
  readonly csrf: string;
  /** How the token arrived: pasted on the sign-in page, or from the authenticating proxy's header. */
  readonly source: SessionSource;
  readonly createdAt: number;
  lastSeen: number;
  /** What the token may do, as the API answered when it was checked (a proxy's session: on first use). */
  can?: SessionAbilities;
}

/** What a session's token may do: read the audit log (the query API), decide approvals (the approvers' API). */
export interface SessionAbilities {
  readonly read: boolean;
  readonly approve: boolean;
}

export interface SessionStoreOptions {
  readonly idleMs: number;
  readonly absoluteMs: number;
  /** Most sessions held at once; the least recently used is dropped past it. */
  readonly maxSessions: number;
  readonly now: () => number;
  /** `n` random bytes, base64url (tests may pass their own). */
  readonly random?: (n: number) => string;
}

export const DEFAULT_IDLE_MS = 30 * 60_000;
export const DEFAULT_ABSOLUTE_MS = 12 * 60 * 60_000;
export const DEFAULT_MAX_SESSIONS = 10_000;

const randomId = (n: number) => randomBytes(n).toString('base64url');

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

export class SessionStore {
  readonly #opts: SessionStoreOptions;
  /** Insertion order is use order: a session is moved to the end when used. */
  readonly #sessions = new Map<string, ConsoleSession>();

  constructor(opts: SessionStoreOptions) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#sessions.size;
  }

  create(token: string, source: SessionSource): ConsoleSession {
    const random = this.#opts.random ?? randomId;
    const now = this.#opts.now();
    const session: ConsoleSession = {
      id: random(32),
      token,
      tokenHash: tokenHash(token),
      csrf: random(32),
      source,
      createdAt: now,
      lastSeen: now,
    };
    this.#sessions.set(session.id, session);
    while (this.#sessions.size > this.#opts.maxSessions) {
      const oldest = this.#sessions.keys().next().value as string;
      this.#sessions.delete(oldest);
    }
    return session;
  }

  /** The live session with this id (its idle clock restarted), or undefined; an expired one is removed. */
  use(id: string | undefined): ConsoleSession | undefined {
    if (!id) return undefined;
    const s = this.#sessions.get(id);
    if (!s) return undefined;
    const now = this.#opts.now();
    if (now - s.lastSeen >= this.#opts.idleMs || now - s.createdAt >= this.#opts.absoluteMs) {
      this.#sessions.delete(id);
      return undefined;
    }
    s.lastSeen = now;
    this.#sessions.delete(id);
    this.#sessions.set(id, s);
    return s;
  }

  /** When the session ends if unused: the earlier of its idle and absolute expiry (ms since the epoch). */
  expiresAt(s: ConsoleSession): number {
    return Math.min(s.lastSeen + this.#opts.idleMs, s.createdAt + this.#opts.absoluteMs);
  }

  end(id: string): void {
    this.#sessions.delete(id);
  }

  /** Drops every expired session (called now and then, so abandoned sessions do not pile up). */
  sweep(): void {
    const now = this.#opts.now();
    for (const [id, s] of this.#sessions)
      if (now - s.lastSeen >= this.#opts.idleMs || now - s.createdAt >= this.#opts.absoluteMs)
        this.#sessions.delete(id);
  }
}
