/**
 * Every SQL string the agent sends is read with the real PostgreSQL parser
 * (libpg-query: PostgreSQL 18's parser compiled to WebAssembly), never with
 * regular expressions: each statement of the string becomes a SqlStatement
 * for the policy (sql-tree.ts reads its tree), plus a normalised text with
 * every literal and comment replaced and a fingerprint, for the audit event.
 * Literal values never leave this module: they may hold secrets.
 *
 * Fail closed: a string the parser refuses, a statement of a type the guard
 * does not know, a code body it cannot read, text the server could read
 * differently (sql-reading.ts), a tree too deep to walk, all yield
 * statements with a `problem`, which the policy's built-in rule denies.
 *
 * Results are cached by query text (a bounded LRU): agents repeat queries.
 * A string that differs from a cached one only in literal values reuses its
 * classification without a parse where that is provably the same judgement
 * (sql-literal-shape.ts says when, and why).
 */
import type { SqlStatement } from '@chaperone/shared';
import { Lru } from './lru.ts';
import { emptyMaskFacts, type MaskFacts, maskFacts, mergeMaskFacts } from './mask-facts.ts';
import {
  digitRunsAreIntegers,
  digitTemplate,
  isCommentToken,
  isConstantToken,
  literalShapeKey,
  literalsInert,
} from './sql-literal-shape.ts';
import {
  backslashProblem,
  deeperThan,
  isPgSettings,
  isPlainStringWithBackslash,
  MAX_TREE_DEPTH,
  PG_SETTINGS_WRITE,
  type ScanToken,
  TOO_DEEP,
} from './sql-reading.ts';
import { addFacts, type CodeBody, emptyFacts, type StatementFacts, statementFacts } from './sql-tree.ts';

type Parser = typeof import('libpg-query');

export interface ClassifiedStatement {
  /** What the policy decides on. */
  readonly statement: SqlStatement;
  /** The statement with literals and comments replaced (`SELECT * FROM t WHERE id = $1`). */
  readonly text: string;
  /** libpg-query's fingerprint of `text`: the same for statements that differ only in literals. */
  readonly fingerprint: string;
  /** Where its column values can go (for masking), its code bodies' included. */
  readonly mask: MaskFacts;
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
  /** Strings classified from a cache (by text, or by literal shape). */
  hits: number;
  misses: number;
  /** Of the hits, those found by literal shape (sql-literal-shape.ts). */
  shapeHits: number;
}

/** Texts longer than this are classified but not cached. */
const MAX_CACHED_TEXT = 64 * 1024;
/** Redacted texts longer than this do not key the fingerprint cache. */
const MAX_FINGERPRINTED_TEXT = 4096;
/** How deep code bodies are read (a function body's DO block's …). */
const MAX_BODY_DEPTH = 4;

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
  const problems = new Set(f.problems);
  // Checked on the whole statement, its code bodies' statements included.
  if (f.kinds.has('write') && [...f.tables].some(isPgSettings)) problems.add(PG_SETTINGS_WRITE);
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
  if (f.linksRelations) s.linksRelations = true;
  if (problems.size > 0) s.problem = [...problems].join('; ');
  return s as unknown as SqlStatement;
}

/**
 * A statement judged by what was prepared: EXECUTE's own facts (its
 * parameters) plus the prepared statement's. A prepared statement that itself
 * runs one by name (a Parse of `EXECUTE q`) is not followed: the server looks
 * that name up only when it runs, so what it runs is unknown here.
 */
export function executeOf(
  execute: SqlStatement,
  prepared: SqlStatement | undefined,
  name: string,
): SqlStatement {
  if (!prepared) {
    return {
      ...execute,
      problem: `EXECUTE ${name}: the guard knows no statement named "${name}" in this session (it was not prepared through the guard, or a statement sent since may have changed it: DEALLOCATE, PREPARE, DISCARD ALL, dynamic SQL); prepare it again`,
    };
  }
  if (prepared.kinds?.includes('execute')) {
    return {
      ...execute,
      problem: `EXECUTE ${name}: "${name}" itself runs a prepared statement by name, which the guard does not follow; execute that statement directly`,
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
  readonly #fingerprints: Lru<string, string>;
  /** Classifications whose literals decided nothing, by literal shape (sql-literal-shape.ts). */
  readonly #shapes: Lru<string, Classification>;
  /** The same, by digit template, for strings whose only literals that vary are integers (sql-literal-shape.ts). */
  readonly #templates: Lru<string, Classification>;
  readonly stats: ClassifierStats = { hits: 0, misses: 0, shapeHits: 0 };

  constructor(parser: Parser, cacheEntries = 2048) {
    this.#pg = parser;
    this.#cache = new Lru(cacheEntries);
    this.#fingerprints = new Lru(cacheEntries);
    this.#shapes = new Lru(cacheEntries);
    this.#templates = new Lru(cacheEntries);
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
    if (text.trim() === '') return { statements: [] };
    const template = text.length <= MAX_CACHED_TEXT ? digitTemplate(text) : undefined;
    const templated = template === undefined ? undefined : this.#templates.get(template);
    if (templated) {
      this.stats.hits++;
      this.stats.shapeHits++;
      return templated;
    }
    const bytes = Buffer.from(text, 'utf8');
    // One scan of the whole string serves the literal shape, the string reading and every
    // statement's redaction (redacted from the tokens: no second pass through libpg-query's
    // normalisation, which also takes seconds on a deep tree).
    const tokens = text.length <= MAX_CACHED_TEXT ? this.#scan(text) : undefined;
    const shape = tokens ? literalShapeKey(tokens, redactTokens(bytes, tokens, 0, bytes.length)) : undefined;
    const same = shape === undefined ? undefined : this.#shapes.get(shape);
    if (same) {
      this.stats.hits++;
      this.stats.shapeHits++;
      return same;
    }
    this.stats.misses++;
    const c = this.#classify(text, bytes, tokens ?? this.#scan(text), shape);
    if (text.length <= MAX_CACHED_TEXT) this.#cache.set(text, c);
    if (template !== undefined && tokens && shape !== undefined && this.#shapes.get(shape) === c) {
      if (digitRunsAreIntegers(bytes, tokens)) this.#templates.set(template, c);
    }
    return c;
  }

  /** `shape`: the string's literal-shape key, under which its classification is kept when its literals decide nothing. */
  #classify(
    text: string,
    bytes: Buffer,
    tokens: ScanToken[] | undefined,
    shape: string | undefined,
  ): Classification {
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
            text: redactTokens(bytes, tokens, 0, bytes.length),
            fingerprint: '',
            mask: emptyMaskFacts(),
          },
        ],
      };
    }
    const strings = stringReading(tokens);
    const stmts = tree.stmts ?? [];
    const classification = {
      statements: stmts.map((raw) => {
        // "stmt_location" and "stmt_len" are byte offsets; a missing length means "to the end".
        const start = raw.stmt_location ?? 0;
        const end = raw.stmt_len ? start + raw.stmt_len : bytes.length;
        const own = bytes.toString('utf8', start, end);
        const text = redactTokens(bytes, tokens, start, end);
        try {
          const unreadable =
            strings(start, end, nodeType(raw.stmt)) ??
            (deeperThan(raw.stmt, MAX_TREE_DEPTH) ? TOO_DEEP : undefined);
          return this.#statement(raw.stmt, own, text, unreadable);
        } catch (err) {
          // Nothing the guard cannot read runs: whatever went wrong reading it, it is denied.
          return this.#unreadable(
            raw.stmt,
            own,
            text,
            `reading it failed (${err instanceof Error ? err.name : 'error'})`,
          );
        }
      }),
    };
    // Kept by shape only when read without a problem (a denial is judged afresh each time).
    if (
      shape !== undefined &&
      tokens !== undefined &&
      classification.statements.every((s) => s.statement.problem === undefined) &&
      inertLiterals(stmts, tokens)
    )
      this.#shapes.set(shape, classification);
    return classification;
  }

  /**
   * A statement the guard does not read further: its node type and the
   * reason, for the built-in rule to deny, and `text`, its redaction.
   */
  #unreadable(stmt: unknown, own: string, text: string, problem: string): ClassifiedStatement {
    const facts = emptyFacts(nodeType(stmt));
    facts.problems.push(problem);
    return {
      statement: toSqlStatement(facts),
      text,
      fingerprint: this.#fingerprint(own, text),
      mask: emptyMaskFacts(),
    };
  }

  /** One statement of a string, read: `own` is its text, `text` its redaction, `unreadable` why it is not to be read. */
  #statement(stmt: unknown, own: string, text: string, unreadable: string | undefined): ClassifiedStatement {
    if (unreadable !== undefined) return this.#unreadable(stmt, own, text, unreadable);
    const facts = statementFacts(stmt);
    const bodies: MaskFacts[] = [];
    this.#readBodies(facts, withStatement(facts.bodies.splice(0), own), 0, bodies);
    let prepares: ClassifiedStatement['prepares'];
    if (facts.prepares) {
      const p = facts.prepares.facts;
      this.#readBodies(p, p.bodies.splice(0), 0, bodies);
      prepares = { name: facts.prepares.name, statement: toSqlStatement(p) };
    }
    const out: {
      statement: SqlStatement;
      text: string;
      fingerprint: string;
      mask: MaskFacts;
      prepares?: ClassifiedStatement['prepares'];
      executes?: string;
      deallocates?: string;
    } = {
      statement: toSqlStatement(facts),
      text,
      fingerprint: this.#fingerprint(own, text),
      mask: bodies.reduce(mergeMaskFacts, maskFacts(stmt)),
    };
    if (prepares) out.prepares = prepares;
    if (facts.executes !== undefined) out.executes = facts.executes;
    if (facts.deallocates !== undefined) out.deallocates = facts.deallocates;
    return out;
  }

  /** The scanner's tokens of `sql`, or undefined when it refuses it. */
  #scan(sql: string): ScanToken[] | undefined {
    try {
      return this.#pg.scanSync(sql).tokens;
    } catch {
      return undefined;
    }
  }

  /**
   * How the plain strings of `sql` read to a server with
   * standard_conforming_strings off (sql-reading.ts): for the statement at
   * bytes `start`..`end` of node type `type`, why it would read otherwise,
   * or undefined.
   */
  #stringReading(sql: string): (start: number, end: number, type: string) => string | undefined {
    return stringReading(this.#scan(sql));
  }

  /** Rebuilds `sql` from its tokens: constants become `$n`, comments go, so no literal value remains. */
  redact(sql: string): string {
    const bytes = Buffer.from(sql, 'utf8');
    return redactTokens(bytes, this.#scan(sql), 0, bytes.length);
  }

  /**
   * The fingerprint of a statement's redacted text (literals as `$n`), cached
   * by it: statements that differ only in literals share it, and it is
   * computed once for them all. Where `$n` cannot stand (a DO body, `SET x =
   * …`), the redacted text does not parse and the statement's own is used.
   */
  #fingerprint(own: string, redacted: string): string {
    const cached = this.#fingerprints.get(redacted);
    if (cached !== undefined) return cached;
    try {
      const f = this.#pg.fingerprintSync(redacted);
      if (redacted.length <= MAX_FINGERPRINTED_TEXT) this.#fingerprints.set(redacted, f);
      return f;
    } catch {
      try {
        return this.#pg.fingerprintSync(own);
      } catch {
        return '';
      }
    }
  }

  /**
   * Reads code bodies (DO blocks, functions) and adds what their statements do
   * to the owner's facts; their mask facts go to `masks` (nothing a body's
   * statement returns reaches the client as an attributed column).
   */
  #readBodies(owner: StatementFacts, bodies: readonly CodeBody[], depth: number, masks: MaskFacts[]): void {
    for (const body of bodies) {
      if (depth >= MAX_BODY_DEPTH) {
        owner.problems.push('code bodies are nested too deeply to read');
        return;
      }
      if (body.language === 'sql') {
        this.#readSqlBody(owner, body, body.source, depth, masks);
      } else if (body.language === 'plpgsql') {
        this.#readPlpgsql(owner, body, depth, masks);
      } else {
        // Code the guard cannot read (C, PL/Python, …): what it runs is unknown.
        owner.kinds.add('dynamic-sql');
      }
    }
  }

  #readSqlBody(
    owner: StatementFacts,
    body: CodeBody,
    sql: string,
    depth: number,
    masks: MaskFacts[],
    expression = false,
  ): void {
    let tree: { stmts?: { stmt?: unknown; stmt_location?: number; stmt_len?: number }[] };
    try {
      tree = this.#pg.parseSync(sql);
    } catch (err) {
      owner.problems.push(
        `a statement in the ${body.owner === 'do' ? 'DO block' : 'function body'} could not be read: ${parserMessage(err)}`,
      );
      return;
    }
    const strings = this.#stringReading(sql);
    const bytes = Buffer.from(sql, 'utf8');
    for (const s of tree.stmts ?? []) {
      const start = s.stmt_location ?? 0;
      const end = s.stmt_len ? start + s.stmt_len : bytes.length;
      const unreadable =
        strings(start, end, nodeType(s.stmt)) ?? (deeperThan(s.stmt, MAX_TREE_DEPTH) ? TOO_DEEP : undefined);
      if (unreadable !== undefined) {
        owner.problems.push(unreadable);
        continue;
      }
      const own = bytes.toString('utf8', start, end);
      const f = statementFacts(s.stmt, expression);
      if (f.prepares !== undefined || f.executes !== undefined || f.deallocates !== undefined) {
        owner.problems.push(
          `the ${body.owner === 'do' ? 'DO block' : 'function body'} prepares, runs or drops a prepared statement (PREPARE, EXECUTE, DEALLOCATE, DISCARD ALL); prepared statements share one namespace with the session, and the guard judges EXECUTE and every Bind by what it saw prepared, so code run on the server may not change them: prepare and run statements from the client instead`,
        );
      }
      const type = nodeType(s.stmt);
      if (type === 'DeclareCursorStmt' || type === 'ClosePortalStmt')
        owner.problems.push(closesCursors(body));
      const nested = withStatement(f.bodies.splice(0), own);
      addFacts(owner, f);
      masks.push(maskFacts(s.stmt, false));
      this.#readBodies(owner, nested, depth + 1, masks);
    }
  }

  /**
   * Reads a PL/pgSQL body the way the server compiles it: a function's with
   * its own CREATE FUNCTION statement (its arguments and return type decide
   * what RETURN may say), a DO block's as a function returning void.
   */
  #readPlpgsql(owner: StatementFacts, body: CodeBody, depth: number, masks: MaskFacts[]): void {
    let tag = '$chaperone$';
    for (let i = 0; body.source.includes(tag); i++) tag = `$chaperone${i}$`;
    const what = body.owner === 'do' ? 'DO block' : 'function body';
    let parsed: unknown;
    try {
      parsed = this.#pg.parsePlPgSQLSync(
        body.statement ??
          `CREATE FUNCTION chaperone_body() RETURNS void LANGUAGE plpgsql AS ${tag}${body.source}${tag}`,
      );
    } catch (err) {
      owner.problems.push(`the ${what} could not be read: ${parserMessage(err)}`);
      return;
    }
    if (deeperThan(parsed, MAX_TREE_DEPTH)) {
      owner.problems.push(`the ${what} nests more than ${MAX_TREE_DEPTH} levels deep`);
      return;
    }
    // Where the body's statements end, as the core scanner (which PL/pgSQL uses) finds it; each
    // statement's own strings are judged when it is read.
    const split = this.#stringReading(body.source)(0, Number.POSITIVE_INFINITY, 'PLpgSQL_function');
    if (split !== undefined) owner.problems.push(split);
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
        if (k === 'PLpgSQL_stmt_close') owner.problems.push(closesCursors(body));
        if (k === 'PLpgSQL_expr' && typeof x === 'object' && x !== null) {
          const e = x as { query?: unknown; parseMode?: unknown };
          if (typeof e.query !== 'string') continue;
          if (e.parseMode === undefined || e.parseMode === 0) {
            this.#readSqlBody(owner, body, e.query, depth, masks);
          } else if (e.parseMode === 1 || e.parseMode === 2) {
            this.#readSqlBody(owner, body, `SELECT ${e.query}`, depth, masks, true);
          } else {
            this.#readAssignment(owner, body, e.query, depth, masks);
          }
          continue;
        }
        visit(x);
      }
    };
    visit(parsed);
  }

  /**
   * An assignment reads its value (`SELECT expr`, as the server runs it) and
   * the subscripts of its target (`arr[(SELECT …)] := 1` runs that SELECT):
   * a target with a subscript is read as the expression it is written as.
   */
  #readAssignment(
    owner: StatementFacts,
    body: CodeBody,
    query: string,
    depth: number,
    masks: MaskFacts[],
  ): void {
    let tokens: ScanToken[];
    try {
      tokens = this.#pg.scanSync(query).tokens;
    } catch {
      tokens = [];
    }
    const parts = splitAssignment(query, tokens);
    if (!parts) {
      owner.problems.push(
        `an assignment in the ${body.owner === 'do' ? 'DO block' : 'function body'} could not be read`,
      );
      return;
    }
    if (parts.subscripted) this.#readSqlBody(owner, body, `SELECT ${parts.target}`, depth, masks, true);
    this.#readSqlBody(owner, body, `SELECT ${parts.value}`, depth, masks, true);
  }
}

/**
 * Why code that declares or closes a cursor by name is refused: cursors and
 * the protocol's portals share one namespace with the session (a PL/pgSQL
 * cursor variable is named after itself), and the guard judges an Execute by
 * what it saw bound to the portal, so code run on the server may not close
 * one and open another under its name. A cursor a function opens is closed
 * when the transaction ends (or use FOR … IN … loops).
 */
function closesCursors(body: CodeBody): string {
  return `the ${body.owner === 'do' ? 'DO block' : 'function body'} declares or closes a cursor by name (DECLARE … CURSOR, CLOSE); cursors share their names with the session's portals, which the guard judges by what it saw bound, so code run on the server may not close or declare them: let the transaction close the cursors a function opens, or loop with FOR … IN …`;
}

/** literalsInert of a parsed string; false when its tree cannot be walked (it is then not cached by shape). */
function inertLiterals(stmts: readonly { stmt?: unknown }[], tokens: readonly ScanToken[]): boolean {
  try {
    return literalsInert(
      stmts.map((s) => s.stmt),
      tokens,
    );
  } catch {
    return false;
  }
}

/** Code bodies with the text of the statement that carries them (a function's CREATE FUNCTION). */
/** The string reading of a scanned text (see #stringReading); tokens undefined: the scanner refused it. */
function stringReading(
  tokens: readonly ScanToken[] | undefined,
): (start: number, end: number, type: string) => string | undefined {
  // The parser read what the scanner refuses? Then nothing is certain about it.
  if (!tokens) return () => 'its text could not be tokenised';
  const strings = tokens.filter(isPlainStringWithBackslash);
  if (strings.length === 0) return () => undefined;
  return (start, end, type) =>
    backslashProblem(
      strings.filter((t) => t.start >= start && t.start < end),
      type,
    );
}

/**
 * The bytes `start`..`end` of a scanned text, rebuilt from its tokens:
 * constants become `$n` (numbered after the statement's own parameters),
 * comments go, white space is collapsed; no literal value remains.
 */
function redactTokens(
  bytes: Buffer,
  all: readonly ScanToken[] | undefined,
  start: number,
  end: number,
): string {
  if (!all) return '(statement text withheld: it could not be tokenised)';
  // Tokens are in text order: find the statement's first by bisection (a string may hold thousands of statements).
  let lo = 0;
  let hi = all.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((all[mid] as ScanToken).start < start) lo = mid + 1;
    else hi = mid;
  }
  let stop = lo;
  while (stop < all.length && (all[stop] as ScanToken).start < end) stop++;
  const tokens = all.slice(lo, stop);
  let next = 1;
  for (const t of tokens) {
    const m = t.tokenName === 'PARAM' ? /^\$(\d+)$/.exec(t.text) : null;
    if (m) next = Math.max(next, Number(m[1]) + 1);
  }
  let out = '';
  let at = start;
  for (const t of tokens) {
    // Between tokens there is only white space (comments are tokens).
    if (t.start > at)
      out += /\S/.test(bytes.toString('utf8', at, t.start)) ? ' ' : bytes.toString('utf8', at, t.start);
    at = t.end;
    if (isCommentToken(t)) {
      out += ' ';
      continue;
    }
    // The scanner names some constants UNKNOWN (B'…', X'…', U&'…'): recognise them by their opening.
    if (isConstantToken(t)) {
      out += `$${next++}`;
      continue;
    }
    out += t.text;
  }
  if (at < end && /\S/.test(bytes.toString('utf8', at, end))) out += ' ';
  return out.replace(/\s+/g, ' ').trim();
}

function withStatement(bodies: readonly CodeBody[], statement: string): CodeBody[] {
  return bodies.map((b) => (b.owner === 'function' ? { ...b, statement } : b));
}

/** A statement tree's node type (`SelectStmt`). */
function nodeType(stmt: unknown): string {
  const o = typeof stmt === 'object' && stmt !== null ? stmt : {};
  return Object.keys(o)[0] ?? 'unknown';
}

/**
 * A PL/pgSQL assignment (`target := expr`, or `=`; parse modes 3 and up) cut
 * at its operator, found with the scanner: the first `:=` or `=` outside
 * brackets and parentheses (a subscript may hold a comparison). Undefined
 * when there is none.
 */
function splitAssignment(
  query: string,
  tokens: readonly ScanToken[],
): { target: string; subscripted: boolean; value: string } | undefined {
  const bytes = Buffer.from(query, 'utf8');
  let nesting = 0;
  let subscripted = false;
  for (const t of tokens) {
    if (t.text === '(' || t.text === '[') {
      nesting++;
      if (t.text === '[') subscripted = true;
    } else if (t.text === ')' || t.text === ']') nesting--;
    else if (nesting === 0 && (t.text === ':=' || t.text === '=')) {
      return {
        target: bytes.toString('utf8', 0, t.start),
        subscripted,
        value: bytes.toString('utf8', t.end),
      };
    }
  }
  return undefined;
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
