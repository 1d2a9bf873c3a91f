/**
 * Every SQL string the agent sends is read with the real PostgreSQL parser
 * (libpg-query: PostgreSQL 18's parser compiled to WebAssembly), never with
 * regular expressions: each statement of the string becomes a SqlStatement
 * for the policy (sql-tree.ts reads its tree), plus a normalised text with
 * every literal and comment replaced and a fingerprint, for the audit event.
 * Literal values never leave this module: they may hold secrets.
 *
 * Fail closed: a string the parser refuses, a statement of a type the guard
 * does not know, a code body it cannot read, all yield statements with a
 * `problem`, which the policy's built-in rule denies.
 *
 * Results are cached by query text (a bounded LRU): agents repeat queries.
 */
import type { SqlStatement } from '@chaperone/shared';
import { Lru } from './lru.ts';
import { addFacts, type CodeBody, type StatementFacts, statementFacts } from './sql-tree.ts';

type Parser = typeof import('libpg-query');

export interface ClassifiedStatement {
  /** What the policy decides on. */
  readonly statement: SqlStatement;
  /** The statement with literals and comments replaced (`SELECT * FROM t WHERE id = $1`). */
  readonly text: string;
  /** libpg-query's fingerprint: the same for statements that differ only in literals. */
  readonly fingerprint: string;
  /** `PREPARE name AS …`: the name and what EXECUTE of it runs. */
  readonly prepares?: { readonly name: string; readonly statement: SqlStatement };
  /** `EXECUTE name`: judged by what was prepared under that name. */
  readonly executes?: string;
  /** `DEALLOCATE name` (`*` for ALL). */
  readonly deallocates?: string;
}

export interface Classification {
  readonly statements: readonly ClassifiedStatement[];
}

export interface ClassifierStats {
  hits: number;
  misses: number;
}

/** Texts longer than this are classified but not cached. */
const MAX_CACHED_TEXT = 64 * 1024;
/** How deep code bodies are read (a function body's DO block's …). */
const MAX_BODY_DEPTH = 4;
const CONSTANT_TOKENS = new Set(['SCONST', 'USCONST', 'BCONST', 'XCONST', 'ICONST', 'FCONST']);
const COMMENT_TOKENS = new Set(['SQL_COMMENT', 'C_COMMENT']);

let loading: Promise<Parser> | undefined;

/** Loads the parser (≈50 ms, once per process). */
export function loadSqlParser(): Promise<Parser> {
  loading ??= import('libpg-query').then(async (m) => {
    // Bundled (scripts/build.ts), the CommonJS package is the module's default export.
    const lib = ('loadModule' in m ? m : (m as { default: Parser }).default) as Parser;
    await lib.loadModule();
    return lib;
  });
  return loading;
}

/** The facts as the policy reads them. */
export function toSqlStatement(f: StatementFacts): SqlStatement {
  const s: Record<string, unknown> = {
    kind: f.kind,
    kinds: [...f.kinds].sort(),
    tables: [...f.tables].sort(),
  };
  if (f.writes.size > 0) s.writes = [...f.writes].sort();
  if (f.columns.size > 0) s.columns = [...f.columns].sort();
  if (f.functions.size > 0) s.functions = [...f.functions].sort();
  if (f.schemas.size > 0) s.schemas = [...f.schemas].sort();
  if (f.unqualified) s.unqualified = true;
  if (f.problems.length > 0) s.problem = f.problems.join('; ');
  return s as unknown as SqlStatement;
}

/** A statement judged by what was prepared: EXECUTE's own facts (its parameters) plus the prepared statement's. */
export function executeOf(
  execute: SqlStatement,
  prepared: SqlStatement | undefined,
  name: string,
): SqlStatement {
  if (!prepared) {
    return {
      ...execute,
      problem: `EXECUTE ${name}: no statement named "${name}" was prepared through the guard in this session`,
    };
  }
  const union = (a?: readonly string[], b?: readonly string[]) =>
    [...new Set([...(a ?? []), ...(b ?? [])])].sort();
  const out: Record<string, unknown> = {
    ...prepared,
    kind: execute.kind,
    kinds: union(execute.kinds, prepared.kinds),
    tables: union(execute.tables, prepared.tables),
  };
  if (execute.functions || prepared.functions) out.functions = union(execute.functions, prepared.functions);
  if (execute.columns || prepared.columns) out.columns = union(execute.columns, prepared.columns);
  return out as unknown as SqlStatement;
}

export class SqlClassifier {
  readonly #pg: Parser;
  readonly #cache: Lru<string, Classification>;
  readonly stats: ClassifierStats = { hits: 0, misses: 0 };

  constructor(parser: Parser, cacheEntries = 2048) {
    this.#pg = parser;
    this.#cache = new Lru(cacheEntries);
  }

  static async create(cacheEntries?: number): Promise<SqlClassifier> {
    return new SqlClassifier(await loadSqlParser(), cacheEntries);
  }

  classify(text: string): Classification {
    const cached = this.#cache.get(text);
    if (cached) {
      this.stats.hits++;
      return cached;
    }
    this.stats.misses++;
    const c = this.#classify(text);
    if (text.length <= MAX_CACHED_TEXT) this.#cache.set(text, c);
    return c;
  }

  #classify(text: string): Classification {
    if (text.trim() === '') return { statements: [] };
    let tree: { stmts?: { stmt?: unknown; stmt_location?: number; stmt_len?: number }[] };
    try {
      tree = this.#pg.parseSync(text);
    } catch (err) {
      return {
        statements: [
          {
            statement: {
              kind: 'unknown',
              tables: [],
              problem: `the parser refused it: ${parserMessage(err)}`,
            },
            text: this.redact(text),
            fingerprint: '',
          },
        ],
      };
    }
    const bytes = Buffer.from(text, 'utf8');
    return {
      statements: (tree.stmts ?? []).map((raw) => {
        // "stmt_location" and "stmt_len" are byte offsets; a missing length means "to the end".
        const start = raw.stmt_location ?? 0;
        const end = raw.stmt_len ? start + raw.stmt_len : bytes.length;
        const own = bytes.toString('utf8', start, end);
        const facts = statementFacts(raw.stmt);
        this.#readBodies(facts, facts.bodies.splice(0), 0);
        const out: {
          statement: SqlStatement;
          text: string;
          fingerprint: string;
          prepares?: ClassifiedStatement['prepares'];
          executes?: string;
          deallocates?: string;
        } = {
          statement: toSqlStatement(facts),
          text: this.normalize(own),
          fingerprint: this.#fingerprint(own),
        };
        if (facts.prepares) {
          const p = facts.prepares.facts;
          this.#readBodies(p, p.bodies.splice(0), 0);
          out.prepares = { name: facts.prepares.name, statement: toSqlStatement(p) };
        }
        if (facts.executes !== undefined) out.executes = facts.executes;
        if (facts.deallocates !== undefined) out.deallocates = facts.deallocates;
        return out;
      }),
    };
  }

  /** libpg-query's normalisation, then every literal and comment it left (COPY file names, PREPARE bodies, …) replaced too. */
  normalize(statement: string): string {
    let normal: string;
    try {
      normal = this.#pg.normalizeSync(statement);
    } catch {
      normal = statement;
    }
    return this.redact(normal);
  }

  /** Rebuilds `sql` from its tokens: constants become `$n`, comments go, so no literal value remains. */
  redact(sql: string): string {
    let tokens: { start: number; end: number; text: string; tokenName: string }[];
    try {
      tokens = this.#pg.scanSync(sql).tokens;
    } catch {
      return '(statement text withheld: it could not be tokenised)';
    }
    const bytes = Buffer.from(sql, 'utf8');
    let next = 1;
    for (const t of tokens) {
      const m = t.tokenName === 'PARAM' ? /^\$(\d+)$/.exec(t.text) : null;
      if (m) next = Math.max(next, Number(m[1]) + 1);
    }
    let out = '';
    let at = 0;
    for (const t of tokens) {
      // Between tokens there is only white space (comments are tokens).
      if (t.start > at)
        out += /\S/.test(bytes.toString('utf8', at, t.start)) ? ' ' : bytes.toString('utf8', at, t.start);
      at = t.end;
      if (COMMENT_TOKENS.has(t.tokenName)) {
        out += ' ';
        continue;
      }
      // The scanner names some constants UNKNOWN (B'…', X'…', U&'…'): recognise them by their opening.
      if (
        CONSTANT_TOKENS.has(t.tokenName) ||
        /^(?:[BbXxEeNn]'|[Uu]&'|')/.test(t.text) ||
        /^\$[^0-9]/.test(t.text)
      ) {
        out += `$${next++}`;
        continue;
      }
      out += t.text;
    }
    if (at < bytes.length && /\S/.test(bytes.toString('utf8', at))) out += ' ';
    return out.replace(/\s+/g, ' ').trim();
  }

  #fingerprint(statement: string): string {
    try {
      return this.#pg.fingerprintSync(statement);
    } catch {
      return '';
    }
  }

  /** Reads code bodies (DO blocks, functions) and adds what their statements do to the owner's facts. */
  #readBodies(owner: StatementFacts, bodies: readonly CodeBody[], depth: number): void {
    for (const body of bodies) {
      if (depth >= MAX_BODY_DEPTH) {
        owner.problems.push('code bodies are nested too deeply to read');
        return;
      }
      if (body.language === 'sql') {
        this.#readSqlBody(owner, body, body.source, depth);
      } else if (body.language === 'plpgsql') {
        this.#readPlpgsql(owner, body, depth);
      } else {
        // Code the guard cannot read (C, PL/Python, …): what it runs is unknown.
        owner.kinds.add('dynamic-sql');
      }
    }
  }

  #readSqlBody(owner: StatementFacts, body: CodeBody, sql: string, depth: number, expression = false): void {
    let tree: { stmts?: { stmt?: unknown }[] };
    try {
      tree = this.#pg.parseSync(sql);
    } catch (err) {
      owner.problems.push(
        `a statement in the ${body.owner === 'do' ? 'DO block' : 'function body'} could not be read: ${parserMessage(err)}`,
      );
      return;
    }
    for (const s of tree.stmts ?? []) {
      const f = statementFacts(s.stmt, expression);
      const nested = f.bodies.splice(0);
      addFacts(owner, f);
      this.#readBodies(owner, nested, depth + 1);
    }
  }

  #readPlpgsql(owner: StatementFacts, body: CodeBody, depth: number): void {
    let tag = '$chaperone$';
    for (let i = 0; body.source.includes(tag); i++) tag = `$chaperone${i}$`;
    let parsed: unknown;
    try {
      parsed = this.#pg.parsePlPgSQLSync(
        `CREATE FUNCTION chaperone_body() RETURNS void LANGUAGE plpgsql AS ${tag}${body.source}${tag}`,
      );
    } catch (err) {
      owner.problems.push(
        `the ${body.owner === 'do' ? 'DO block' : 'function body'} could not be read: ${parserMessage(err)}`,
      );
      return;
    }
    const visit = (v: unknown): void => {
      if (Array.isArray(v)) {
        for (const x of v) visit(x);
        return;
      }
      if (typeof v !== 'object' || v === null) return;
      for (const [k, x] of Object.entries(v)) {
        if (k === 'PLpgSQL_stmt_dynexecute' || k === 'PLpgSQL_stmt_dynfors' || k === 'dynquery') {
          owner.kinds.add('dynamic-sql');
        }
        if (k === 'PLpgSQL_expr' && typeof x === 'object' && x !== null) {
          const e = x as { query?: unknown; parseMode?: unknown };
          if (typeof e.query === 'string') {
            const statement = e.parseMode === undefined || e.parseMode === 0;
            this.#readSqlBody(owner, body, plpgsqlStatement(e.query, e.parseMode), depth, !statement);
          }
          continue;
        }
        visit(x);
      }
    };
    visit(parsed);
  }
}

/**
 * A PL/pgSQL expression as the SQL statement the server runs for it:
 * statements as they are (parse mode 0), expressions as `SELECT expr` (mode
 * 2), assignments `target := expr` as `SELECT expr` (modes 3 and up).
 */
function plpgsqlStatement(query: string, parseMode: unknown): string {
  if (parseMode === undefined || parseMode === 0) return query;
  if (parseMode === 1 || parseMode === 2) return `SELECT ${query}`;
  const at = query.search(/:=|=/);
  return `SELECT ${at === -1 ? query : query.slice(at + (query[at] === ':' ? 2 : 1))}`;
}

/**
 * The parser's message without the text it quotes (`syntax error at or near
 * "…"` may quote a literal), with the position instead.
 */
function parserMessage(err: unknown): string {
  const m = (err instanceof Error ? err.message : String(err)).replace(/\s+at or near ".*$/s, '');
  const pos = (err as { sqlDetails?: { cursorPosition?: unknown } }).sqlDetails?.cursorPosition;
  const where = typeof pos === 'number' && pos > 0 ? ` at character ${pos + 1}` : '';
  return `${m.length > 200 ? `${m.slice(0, 200)}…` : m}${where}`;
}
