/**
 * Which request each server message answers. The server answers a
 * connection's messages strictly in order, so the sidecar keeps a queue with
 * one entry per forwarded message that gets an answer (a simple Query; each
 * Parse, Bind, Describe, Execute, Close and Sync) and moves along it as the
 * answers come: that is how a CommandComplete becomes the end of *this*
 * statement (its audit event, with the rows), and a ParseComplete the moment
 * a prepared statement exists. After an error in the extended protocol "the
 * backend … reads and discards messages until a Sync is reached": their
 * entries are dropped the same way. Pure: messages in, callbacks out.
 */
import type { BackendMessage } from './backend-decoder.ts';

/** One statement the server runs: what the sidecar decided, waiting for how it ends. */
export interface Run<T> {
  readonly about: T;
  /** process.hrtime.bigint() when it was sent (for a simple query's later statements: when the one before ended). */
  startNs: bigint;
  /** Values masked in what it returned, by the rule that masked them. */
  masked?: Map<string, number>;
}

export type Entry<T> =
  /**
   * An allowed simple Query: its statements end one CommandComplete (or EmptyQueryResponse) at a time.
   * `batch` (here, on `refused` and on `sync`): the sender's number for what this ReadyForQuery ends (#readied).
   */
  | { readonly t: 'query'; readonly runs: Run<T>[]; next: number; readonly batch?: number }
  /** A statement the sidecar replaced with one that fails (a denial): its ErrorResponse is the sidecar's. */
  | { readonly t: 'refused'; readonly batch?: number }
  | { readonly t: 'parse'; readonly name: string }
  | { readonly t: 'refused-parse' }
  /** `settle`: told whether the server bound the portal (false also when it discarded the Bind). */
  | { readonly t: 'bind'; readonly settle?: (ok: boolean) => void }
  | { readonly t: 'describe' }
  /** A Describe of the portal the sidecar sends before an Execute, to read the columns it returns: its answer stays with the sidecar. */
  | { readonly t: 'own-describe'; readonly run: Run<T> | undefined }
  | { readonly t: 'execute'; readonly run: Run<T> | undefined }
  | { readonly t: 'close' }
  | { readonly t: 'sync'; readonly batch?: number };

export interface TrackerEvents<T> {
  /** A statement ended: completed (rows, when the tag counts them), failed (sqlstate), or never ran. */
  done(run: Run<T>, outcome: { tag?: string; sqlstate?: string; notRun?: string }): void;
  /** The server created the prepared statement of a Parse, or refused to. */
  parsed(name: string, ok: boolean): void;
  /** Entries the answers did not fit (the sidecar's bookkeeping and the server disagree). */
  mismatch(what: string): void;
}

const DISCARDED = 'the server discarded it after an earlier error in the same pipeline';

export class ResponseTracker<T> {
  readonly #queue: Entry<T>[] = [];
  readonly #on: TrackerEvents<T>;
  #now: () => bigint;
  /** After an error in the extended protocol with no Sync sent yet: the server discards everything until one. */
  #skipping = false;
  #readied: Extract<Entry<T>, { t: 'query' | 'refused' | 'sync' }> | undefined;

  constructor(on: TrackerEvents<T>, now: () => bigint = () => process.hrtime.bigint()) {
    this.#on = on;
    this.#now = now;
  }

  get pending(): number {
    return this.#queue.length;
  }

  /** A ReadyForQuery is still to come (a Query, a refused one, or a Sync waits for its answer). */
  get awaitsReady(): boolean {
    return this.#queue.some((e) => e.t === 'query' || e.t === 'refused' || e.t === 'sync');
  }

  /** The Query, refused Query or Sync the last ReadyForQuery answered. */
  get readied(): Extract<Entry<T>, { t: 'query' | 'refused' | 'sync' }> | undefined {
    return this.#readied;
  }

  /** After an error in the extended protocol, until Sync: what is sent now the server discards unanswered. */
  get discarding(): boolean {
    return this.#skipping;
  }

  expect(entry: Entry<T>): void {
    if (this.#skipping && entry.t !== 'sync') {
      // The server will discard it unanswered (a simple Query too), as it does everything up to Sync after an error.
      this.#drop(entry, DISCARDED);
      return;
    }
    this.#skipping = false;
    this.#queue.push(entry);
  }

  /** The request the next answer belongs to. */
  get head(): Entry<T> | undefined {
    return this.#queue[0];
  }

  /** The statement the server is running now (whose rows, COPY data or notices arrive). */
  current(): Run<T> | undefined {
    const head = this.#queue[0];
    if (head?.t === 'query') return head.runs[head.next];
    if (head?.t === 'execute' || head?.t === 'own-describe') return head.run;
    return undefined;
  }

  /** Statements still waiting when the connection ends. */
  abandon(why: string): void {
    for (const e of this.#queue.splice(0)) this.#drop(e, why);
  }

  #drop(e: Entry<T>, why: string, sqlstate?: string): void {
    const outcome = sqlstate === undefined ? { notRun: why } : { notRun: why, sqlstate };
    if (e.t === 'query') {
      for (let i = e.next; i < e.runs.length; i++) this.#on.done(e.runs[i] as Run<T>, outcome);
      e.next = e.runs.length;
    } else if (e.t === 'execute' && e.run) {
      this.#on.done(e.run, outcome);
    } else if (e.t === 'parse') {
      this.#on.parsed(e.name, false);
    } else if (e.t === 'bind') {
      e.settle?.(false);
    }
  }

  #shift(want: readonly Entry<T>['t'][], what: string): Entry<T> | undefined {
    const head = this.#queue[0];
    if (!head || !want.includes(head.t)) {
      this.#on.mismatch(`${what} while expecting ${head?.t ?? 'nothing'}`);
      return undefined;
    }
    return this.#queue.shift();
  }

  backend(m: BackendMessage): void {
    const head = this.#queue[0];
    switch (m.type) {
      case 'ParseComplete': {
        const e = this.#shift(['parse'], m.type);
        if (e?.t === 'parse') this.#on.parsed(e.name, true);
        return;
      }
      case 'BindComplete': {
        const e = this.#shift(['bind'], m.type);
        if (e?.t === 'bind') e.settle?.(true);
        return;
      }
      case 'CloseComplete':
        this.#shift(['close'], m.type);
        return;
      case 'RowDescription':
      case 'NoData':
        if (head?.t === 'describe' || head?.t === 'own-describe') this.#queue.shift();
        return;
      case 'CommandComplete':
      case 'EmptyQueryResponse':
      case 'PortalSuspended': {
        const tag = m.type === 'CommandComplete' ? m.tag : undefined;
        if (head?.t === 'query') {
          // An empty query string ends with EmptyQueryResponse and has no statement.
          if (m.type === 'EmptyQueryResponse' && head.runs.length === 0) return;
          const run = head.runs[head.next++];
          if (!run) {
            this.#on.mismatch(`${m.type} after the last statement of a query`);
            return;
          }
          this.#on.done(run, { ...(tag !== undefined ? { tag } : {}) });
          const following = head.runs[head.next];
          if (following) following.startNs = this.#now();
          return;
        }
        const e = this.#shift(['execute'], m.type);
        if (e?.t === 'execute' && e.run) this.#on.done(e.run, tag !== undefined ? { tag } : {});
        return;
      }
      case 'ErrorResponse': {
        const sqlstate = m.fields.C ?? 'XX000';
        if (!head) return; // a FATAL the server sends before closing; nothing was waiting
        if (head.t === 'query') {
          const run = head.runs[head.next++];
          if (run) this.#on.done(run, { sqlstate });
          for (let i = head.next; i < head.runs.length; i++) {
            this.#on.done(head.runs[i] as Run<T>, {
              notRun: 'an earlier statement of the same query failed',
            });
          }
          head.next = head.runs.length;
          return;
        }
        if (head.t === 'refused' || head.t === 'sync') return;
        // Extended protocol: this message failed, and the server skips everything up to Sync.
        const failed = this.#queue.shift() as Entry<T>;
        if (failed.t === 'execute' && failed.run) this.#on.done(failed.run, { sqlstate });
        if (failed.t === 'parse') this.#on.parsed(failed.name, false);
        if (failed.t === 'bind') failed.settle?.(false);
        // A simple Query sent before the Sync is discarded too, unanswered.
        while (this.#queue.length > 0 && this.#queue[0]?.t !== 'sync') {
          this.#drop(this.#queue.shift() as Entry<T>, DISCARDED, sqlstate);
        }
        this.#skipping = this.#queue.length === 0;
        return;
      }
      case 'ReadyForQuery': {
        // Whatever still waits before the Sync (or query) this answers will not be answered now.
        const first = this.#queue.findIndex((e) => e.t === 'query' || e.t === 'refused' || e.t === 'sync');
        if (first === -1) {
          this.#on.mismatch('ReadyForQuery with no query or Sync waiting');
          return;
        }
        if (first > 0) this.#on.mismatch(`ReadyForQuery while expecting ${this.#queue[0]?.t}`);
        const answered = this.#queue[first] as Extract<Entry<T>, { t: 'query' | 'refused' | 'sync' }>;
        for (const e of this.#queue.splice(0, first + 1))
          this.#drop(e, 'the server ended the request before it');
        this.#readied = answered;
        return;
      }
      default:
        return;
    }
  }
}
