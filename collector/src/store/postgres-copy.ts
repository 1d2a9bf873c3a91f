/**
 * `COPY … FROM STDIN` over a `pg` client, with the whole input in one
 * buffer: PostgreSQL's cheapest way to load rows (no statement to plan per
 * row, no array literals to build, quote and parse again), as `pg` runs
 * `pg-cursor` and `pg-copy-streams`: a Submittable that drives the wire
 * protocol for one statement.
 *
 * Protocol (PostgreSQL docs, "53.2.6. COPY Operations"): the simple Query
 * `COPY … FROM STDIN` is answered with CopyInResponse; the client sends
 * CopyData message(s) and CopyDone; the server answers CommandComplete (or
 * ErrorResponse, e.g. a unique violation) and then ReadyForQuery. `pg`
 * routes those messages to the active query's handle* methods below; on an
 * ErrorResponse it clears the active query and calls only handleError.
 *
 * Text format (docs, "COPY", File Formats → Text Format): one line per row,
 * columns separated by a tab, `\N` for NULL, and backslash, newline,
 * carriage return and tab inside values escaped with a backslash.
 */
import type pg from 'pg';

/** The part of pg's Connection a COPY FROM needs (not in @types/pg). */
interface CopyConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

const NEEDS_ESCAPE = /[\\\n\r\t]/;
const ESCAPES = /[\\\n\r\t]/g;
const ESCAPED: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** One value in COPY's text format. Numbers must be integers (BIGINT columns). */
export function copyValue(v: string | number | null): string {
  if (v === null) return '\\N';
  if (typeof v === 'number') return String(v);
  return NEEDS_ESCAPE.test(v) ? v.replace(ESCAPES, (c) => ESCAPED[c] as string) : v;
}

class CopyFrom implements pg.Submittable {
  readonly #sql: string;
  readonly #data: Buffer;
  readonly #resolve: (rows: number) => void;
  readonly #reject: (err: unknown) => void;
  #rows = 0;

  constructor(sql: string, data: Buffer, resolve: (rows: number) => void, reject: (err: unknown) => void) {
    this.#sql = sql;
    this.#data = data;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  submit(connection: pg.Connection): void {
    (connection as unknown as CopyConnection).query(this.#sql);
  }

  handleCopyInResponse(connection: CopyConnection): void {
    if (this.#data.length > 0) connection.sendCopyFromChunk(this.#data);
    connection.endCopyFrom();
  }

  handleCommandComplete(msg: { text?: string }): void {
    const m = /^COPY (\d+)$/.exec(msg.text ?? '');
    this.#rows = m ? Number(m[1]) : 0;
  }

  handleReadyForQuery(): void {
    this.#resolve(this.#rows);
  }

  handleError(err: unknown): void {
    this.#reject(err);
  }

  // Not part of a COPY FROM exchange; pg may call them on a confused server.
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handleCopyData(): void {}
  handlePortalSuspended(): void {}
}

/**
 * Runs `sql` (a `COPY … FROM STDIN` in text format) with `data` as its
 * input; resolves with the number of rows copied.
 */
export function copyFrom(client: pg.ClientBase, sql: string, data: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    client.query(new CopyFrom(sql, data, resolve, reject));
  });
}
