/**
 * Reads one statement's parse tree (libpg-query's JSON: the real PostgreSQL
 * parser's nodes, `{"NodeType": {fields}}`; fields typed as a specific
 * struct, such as a statement's `relation`, appear without the wrapper) and
 * collects what the statement does: its kinds, the tables it reads and
 * writes (through joins, subqueries and CTEs, CTE names told apart from
 * tables by scope), the columns and functions it names, the schemas it
 * reaches as a whole, and the bodies of code it carries (DO blocks,
 * functions) for the classifier to read in turn. Pure: trees in, facts out.
 */
import { nodeKinds, SQL_KNOWN_NODES, withParentKinds } from '@chaperone/shared/policy';

type Obj = Record<string, unknown>;

export interface CodeBody {
  /** `do` (runs now) or `function` (runs when called). */
  readonly owner: 'do' | 'function';
  readonly language: string;
  readonly source: string;
}

export interface StatementFacts {
  readonly kind: string;
  readonly kinds: Set<string>;
  readonly tables: Set<string>;
  readonly writes: Set<string>;
  readonly columns: Set<string>;
  readonly functions: Set<string>;
  readonly schemas: Set<string>;
  readonly problems: string[];
  readonly bodies: CodeBody[];
  /** A top-level DELETE or UPDATE without WHERE. */
  unqualified: boolean;
  /** `PREPARE name AS …`: the name, and what was prepared (for EXECUTE). */
  prepares?: { readonly name: string; readonly facts: StatementFacts };
  /** `EXECUTE name`. */
  executes?: string;
  /** `DEALLOCATE name`; `*` for ALL. */
  deallocates?: string;
}

export function emptyFacts(kind: string): StatementFacts {
  return {
    kind,
    kinds: new Set(),
    tables: new Set(),
    writes: new Set(),
    columns: new Set(),
    functions: new Set(),
    schemas: new Set(),
    problems: [],
    bodies: [],
    unqualified: false,
  };
}

/** A name part as the server would need it written: quoted when it holds a dot or a quote. */
function ident(part: string): string {
  return /[."]/.test(part) ? `"${part.replaceAll('"', '""')}"` : part;
}

function str(v: unknown): string | undefined {
  if (typeof v === 'object' && v !== null && 'String' in v) {
    const s = (v as { String: { sval?: unknown } }).String.sval;
    return typeof s === 'string' ? s : '';
  }
  return undefined;
}

function names(list: unknown): string[] {
  return Array.isArray(list) ? list.map((x) => str(x)).filter((x): x is string => x !== undefined) : [];
}

function obj(v: unknown): Obj | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}

/** The body of a wrapped node of the given type, or of an unwrapped struct. */
function unwrap(v: unknown, type: string): Obj | undefined {
  const o = obj(v);
  if (!o) return undefined;
  return obj(o[type]) ?? o;
}

interface Ctx {
  readonly facts: StatementFacts;
  /** CTE names visible here, innermost last. */
  readonly ctes: readonly ReadonlySet<string>[];
  /** Whether a SELECT here counts as the statement's own kind (top level, or what PREPARE/EXPLAIN run). */
  readonly selectCounts: boolean;
  /** Range names (table names, aliases, CTE names) of this statement: a bare column naming one is a whole-row reference. */
  readonly rangeNames: Set<string>;
  readonly bareColumns: Set<string>;
}

function isCte(ctx: Ctx, name: string): boolean {
  return ctx.ctes.some((s) => s.has(name));
}

function qualified(rv: Obj): string {
  return [rv.catalogname, rv.schemaname, rv.relname]
    .filter((p): p is string => typeof p === 'string' && p !== '')
    .map(ident)
    .join('.');
}

function noteRange(ctx: Ctx, rv: Obj): void {
  if (typeof rv.relname === 'string') ctx.rangeNames.add(rv.relname);
  const alias = obj(rv.alias)?.aliasname;
  if (typeof alias === 'string') ctx.rangeNames.add(alias);
}

function readRange(ctx: Ctx, rv: Obj): void {
  noteRange(ctx, rv);
  if (typeof rv.relname !== 'string') return;
  if (rv.schemaname === undefined && rv.catalogname === undefined && isCte(ctx, rv.relname)) return;
  ctx.facts.tables.add(qualified(rv));
}

/** A table the statement writes: always a table (a CTE cannot be written to). */
function writeRange(ctx: Ctx, v: unknown): void {
  const rv = unwrap(v, 'RangeVar');
  if (!rv || typeof rv.relname !== 'string') return;
  noteRange(ctx, rv);
  const name = qualified(rv);
  ctx.facts.tables.add(name);
  ctx.facts.writes.add(name);
}

function addKinds(ctx: Ctx, ...kinds: string[]): void {
  for (const k of withParentKinds(kinds)) ctx.facts.kinds.add(k);
}

function walk(v: unknown, ctx: Ctx): void {
  if (Array.isArray(v)) {
    for (const x of v) walk(x, ctx);
    return;
  }
  const o = obj(v);
  if (!o) return;
  const keys = Object.keys(o);
  if (keys.length === 1 && /^[A-Z]/.test(keys[0] as string)) {
    node(keys[0] as string, obj(o[keys[0] as string]) ?? {}, ctx);
    return;
  }
  if (typeof o.relname === 'string') {
    // An unwrapped RangeVar (a field typed RangeVar *).
    readRange(ctx, o);
    return;
  }
  fields(o, ctx);
}

function fields(o: Obj, ctx: Ctx, skip?: readonly string[]): void {
  for (const [k, v] of Object.entries(o)) if (!skip?.includes(k)) walk(v, ctx);
}

/** Walks a statement that has a WITH clause: each CTE sees the ones before it (all of them when RECURSIVE); the rest sees every one. */
function withScope(body: Obj, ctx: Ctx, rest: (inner: Ctx) => void): void {
  const w = unwrap(body.withClause, 'WithClause');
  const ctes = Array.isArray(w?.ctes) ? w.ctes.map((c) => unwrap(c, 'CommonTableExpr') ?? {}) : [];
  if (ctes.length === 0) {
    rest(ctx);
    return;
  }
  const all = ctes.map((c) => String(c.ctename ?? ''));
  const recursive = w?.recursive === true;
  ctes.forEach((c, i) => {
    const visible = new Set(recursive ? all : all.slice(0, i));
    for (const n of all) ctx.rangeNames.add(n);
    // A CTE's query is the statement's own work, never "what PREPARE runs".
    walk(c.ctequery, { ...ctx, ctes: [...ctx.ctes, visible], selectCounts: false });
    fields(c, { ...ctx, ctes: [...ctx.ctes, visible], selectCounts: false }, ['ctequery']);
  });
  rest({ ...ctx, ctes: [...ctx.ctes, new Set(all)] });
}

function targetNames(list: unknown, ctx: Ctx): void {
  if (!Array.isArray(list)) return;
  for (const t of list) {
    const rt = unwrap(t, 'ResTarget');
    if (typeof rt?.name === 'string') ctx.facts.columns.add(rt.name);
  }
}

function defElems(list: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!Array.isArray(list)) return out;
  for (const d of list) {
    const de = unwrap(d, 'DefElem');
    if (typeof de?.defname === 'string') out.set(de.defname, de.arg);
  }
  return out;
}

function isTrue(v: unknown): boolean {
  const b = unwrap(v, 'Boolean');
  return b?.boolval === true;
}

function constText(v: unknown): string | undefined {
  const c = unwrap(v, 'A_Const');
  const sv = obj(c?.sval)?.sval;
  if (typeof sv === 'string') return sv;
  return str(v);
}

const TABLE_OBJECTS = new Set([
  'OBJECT_TABLE',
  'OBJECT_VIEW',
  'OBJECT_MATVIEW',
  'OBJECT_SEQUENCE',
  'OBJECT_FOREIGN_TABLE',
  'OBJECT_INDEX',
]);

/** Runs a nested statement (a CTE's DML, what PREPARE or EXPLAIN runs, a rule's action) in the same facts. */
function inner(v: unknown, ctx: Ctx, selectCounts: boolean): void {
  walk(v, { ...ctx, selectCounts });
}

function node(type: string, b: Obj, ctx: Ctx): void {
  const f = ctx.facts;
  // A statement's own kinds, wherever it appears (a SELECT's only where it is what runs).
  if (type !== 'SelectStmt' && SQL_KNOWN_NODES.has(type)) addKinds(ctx, ...nodeKinds(type));
  switch (type) {
    case 'RangeVar':
      readRange(ctx, b);
      return;
    case 'ColumnRef': {
      const parts = Array.isArray(b.fields) ? b.fields : [];
      const last = parts[parts.length - 1];
      if (obj(last)?.A_Star !== undefined) f.columns.add('*');
      else {
        const name = str(last);
        if (name !== undefined) {
          if (parts.length === 1) ctx.bareColumns.add(name);
          else f.columns.add(name);
        }
      }
      return;
    }
    case 'FuncCall': {
      const fn = names(b.funcname).map(ident).join('.');
      if (fn) f.functions.add(fn);
      fields(b, ctx, ['funcname']);
      return;
    }
    case 'SelectStmt':
      withScope(b, ctx, (c) => {
        // A query that reads (has FROM) counts wherever it is (INSERT … SELECT, a subquery in
        // UPDATE, COPY (SELECT …)): a rule on reading a table must see it. VALUES lists and
        // SELECTs of expressions count only as the statement itself.
        if (ctx.selectCounts || b.fromClause !== undefined) addKinds(c, 'select');
        const into = unwrap(b.intoClause, 'IntoClause');
        if (into) {
          writeRange(c, into.rel);
          addKinds(c, 'create');
        }
        fields(b, { ...c, selectCounts: false }, ['withClause', 'intoClause']);
      });
      return;
    case 'InsertStmt':
      withScope(b, ctx, (c) => {
        addKinds(c, 'insert');
        writeRange(c, b.relation);
        if (Array.isArray(b.cols) && b.cols.length > 0) targetNames(b.cols, c);
        else f.columns.add('*');
        const onConflict = unwrap(b.onConflictClause, 'OnConflictClause');
        if (onConflict?.action === 'ONCONFLICT_UPDATE') {
          addKinds(c, 'update');
          targetNames(onConflict.targetList, c);
        }
        fields(b, { ...c, selectCounts: false }, ['withClause', 'relation', 'cols']);
      });
      return;
    case 'UpdateStmt':
      withScope(b, ctx, (c) => {
        addKinds(c, 'update');
        writeRange(c, b.relation);
        targetNames(b.targetList, c);
        if (b.whereClause === undefined) {
          addKinds(c, 'update-without-where');
          if (ctx.selectCounts) f.unqualified = true;
        }
        fields(b, { ...c, selectCounts: false }, ['withClause', 'relation']);
      });
      return;
    case 'DeleteStmt':
      withScope(b, ctx, (c) => {
        addKinds(c, 'delete');
        writeRange(c, b.relation);
        if (b.whereClause === undefined) {
          addKinds(c, 'delete-without-where');
          if (ctx.selectCounts) f.unqualified = true;
        }
        fields(b, { ...c, selectCounts: false }, ['withClause', 'relation']);
      });
      return;
    case 'MergeStmt':
      withScope(b, ctx, (c) => {
        addKinds(c, 'merge');
        writeRange(c, b.relation);
        for (const w of Array.isArray(b.mergeWhenClauses) ? b.mergeWhenClauses : []) {
          const t = unwrap(w, 'MergeWhenClause')?.commandType;
          if (t === 'CMD_INSERT') addKinds(c, 'insert');
          if (t === 'CMD_UPDATE') addKinds(c, 'update');
          if (t === 'CMD_DELETE') addKinds(c, 'delete');
        }
        fields(b, { ...c, selectCounts: false }, ['withClause', 'relation']);
      });
      return;
    case 'CopyStmt': {
      const from = b.is_from === true;
      addKinds(ctx, from ? 'copy-from' : 'copy-to');
      if (b.is_program === true) addKinds(ctx, from ? 'copy-from-program' : 'copy-to-program');
      else if (typeof b.filename === 'string') addKinds(ctx, 'copy-file');
      if (b.relation !== undefined) {
        if (from) writeRange(ctx, b.relation);
        else readRange(ctx, unwrap(b.relation, 'RangeVar') ?? {});
        const cols = names(b.attlist);
        if (cols.length > 0) for (const c of cols) f.columns.add(c);
        else f.columns.add('*');
      }
      inner(b.query, ctx, false);
      return;
    }
    case 'TruncateStmt':
      for (const r of Array.isArray(b.relations) ? b.relations : []) writeRange(ctx, r);
      return;
    case 'DropStmt': {
      const objects = Array.isArray(b.objects) ? b.objects : [];
      if (TABLE_OBJECTS.has(String(b.removeType))) {
        for (const o of objects) {
          const parts = names(unwrap(o, 'List')?.items);
          if (parts.length > 0) {
            const name = parts.map(ident).join('.');
            f.tables.add(name);
            f.writes.add(name);
          }
        }
      } else if (b.removeType === 'OBJECT_SCHEMA') {
        for (const o of objects) {
          const s = str(o);
          if (s !== undefined) f.schemas.add(ident(s));
        }
      }
      return;
    }
    case 'GrantStmt':
      // libpg-query leaves false booleans out: no is_grant is a REVOKE.
      if (b.is_grant !== true) addKinds(ctx, 'revoke');
      if (b.targtype === 'ACL_TARGET_ALL_IN_SCHEMA' || b.objtype === 'OBJECT_SCHEMA') {
        for (const o of names(b.objects)) f.schemas.add(ident(o));
      } else if (b.objtype === 'OBJECT_TABLE' || b.objtype === 'OBJECT_SEQUENCE') {
        for (const o of Array.isArray(b.objects) ? b.objects : []) writeRange(ctx, o);
      }
      fields(b, ctx, ['objects']);
      return;
    case 'GrantRoleStmt':
      if (b.is_grant !== true) addKinds(ctx, 'revoke');
      return;
    case 'RenameStmt':
      if (b.relation !== undefined) writeRange(ctx, b.relation);
      if (b.renameType === 'OBJECT_SCHEMA' && typeof b.subname === 'string') f.schemas.add(ident(b.subname));
      fields(b, ctx, ['relation']);
      return;
    case 'VariableSetStmt':
      variableSet(b, ctx);
      return;
    case 'CreateFunctionStmt':
    case 'AlterFunctionStmt': {
      const opts = defElems(type === 'CreateFunctionStmt' ? b.options : b.actions);
      if (opts.has('security') && isTrue(opts.get('security')))
        addKinds(ctx, 'create-function-security-definer');
      if (type === 'CreateFunctionStmt') {
        const language = constText(opts.get('language'))?.toLowerCase() ?? 'sql';
        const as = opts.get('as');
        const parts = names(unwrap(as, 'List')?.items ?? as);
        if (b.sql_body !== undefined) inner(b.sql_body, ctx, true);
        else if (parts.length > 0) f.bodies.push({ owner: 'function', language, source: parts[0] as string });
      }
      fields(b, ctx, ['options', 'actions', 'sql_body', 'funcname']);
      return;
    }
    case 'DoStmt': {
      const opts = defElems(b.args);
      const source = constText(opts.get('as'));
      const language = constText(opts.get('language'))?.toLowerCase() ?? 'plpgsql';
      if (source !== undefined) f.bodies.push({ owner: 'do', language, source });
      return;
    }
    case 'PrepareStmt': {
      const prepared = emptyFacts(statementType(b.query));
      collect(b.query, prepared);
      merge(f, prepared);
      f.prepares = { name: String(b.name ?? ''), facts: prepared };
      fields(b, ctx, ['query']);
      return;
    }
    case 'ExecuteStmt':
      f.executes = String(b.name ?? '');
      fields(b, ctx);
      return;
    case 'DeallocateStmt':
      f.deallocates = b.isall === true || b.name === undefined ? '*' : String(b.name);
      return;
    case 'ExplainStmt':
    case 'DeclareCursorStmt':
      inner(b.query, ctx, true);
      fields(b, ctx, ['query']);
      return;
    case 'CreateTableAsStmt':
      writeRange(ctx, unwrap(b.into, 'IntoClause')?.rel);
      fields(b, ctx, ['into']);
      return;
    case 'CreateStmt':
    case 'AlterTableStmt':
    case 'IndexStmt':
    case 'CreateTrigStmt':
    case 'RuleStmt':
    case 'RefreshMatViewStmt':
    case 'AlterObjectSchemaStmt':
      writeRange(ctx, b.relation);
      if (type === 'CreateTrigStmt') {
        const fn = names(b.funcname).map(ident).join('.');
        if (fn) f.functions.add(fn);
      }
      if (type === 'RuleStmt') {
        // A rule's actions run whenever the rule fires.
        for (const a of Array.isArray(b.actions) ? b.actions : []) inner(a, ctx, true);
      }
      fields(b, ctx, ['relation', 'funcname', 'actions']);
      return;
    case 'ViewStmt':
      writeRange(ctx, b.view);
      fields(b, ctx, ['view']);
      return;
    case 'CreatePolicyStmt':
    case 'AlterPolicyStmt':
      writeRange(ctx, b.table);
      fields(b, ctx, ['table']);
      return;
    default:
      fields(b, ctx);
  }
}

/** SET of the settings that change how the server reads SQL text is refused: the guard reads it as UTF-8 with standard strings. */
function variableSet(b: Obj, ctx: Ctx): void {
  const name = typeof b.name === 'string' ? b.name.toLowerCase() : '';
  if (name === 'role') addKinds(ctx, 'set-role');
  if (name === 'session_authorization') addKinds(ctx, 'set-session-authorization');
  if (b.kind === 'VAR_RESET_ALL') addKinds(ctx, 'set-role');
  const value =
    Array.isArray(b.args) && b.args.length === 1 ? constText(b.args[0])?.toLowerCase() : undefined;
  const settingValue = b.kind === 'VAR_SET_VALUE' ? value : undefined;
  if (
    name === 'client_encoding' &&
    b.kind === 'VAR_SET_VALUE' &&
    !['utf8', 'utf-8', 'unicode'].includes(settingValue ?? '')
  ) {
    ctx.facts.problems.push(
      'client_encoding can only be UTF8 through the guard, which reads statements as UTF-8 the way the server then must',
    );
  }
  if (
    name === 'standard_conforming_strings' &&
    b.kind === 'VAR_SET_VALUE' &&
    settingValue !== 'on' &&
    settingValue !== 'true'
  ) {
    ctx.facts.problems.push(
      'standard_conforming_strings stays on through the guard: with it off the server reads backslashes in strings differently from the guard',
    );
  }
  fields(b, ctx);
}

function statementType(v: unknown): string {
  const o = obj(v);
  const k = o ? Object.keys(o)[0] : undefined;
  return k ?? 'unknown';
}

function merge(into: StatementFacts, from: StatementFacts): void {
  for (const k of ['kinds', 'tables', 'writes', 'columns', 'functions', 'schemas'] as const) {
    for (const x of from[k]) into[k].add(x);
  }
  into.problems.push(...from.problems);
  into.bodies.push(...from.bodies);
}

/** Collects the facts of one statement tree into `facts` (its top node type is `facts.kind`). */
function collect(tree: unknown, facts: StatementFacts, selectCounts = true): void {
  const ctx: Ctx = {
    facts,
    ctes: [],
    selectCounts,
    rangeNames: new Set(),
    bareColumns: new Set(),
  };
  walk(tree, ctx);
  for (const c of ctx.bareColumns) facts.columns.add(ctx.rangeNames.has(c) ? '*' : c);
}

/**
 * The facts of one top-level statement: `{ "SelectStmt": {…} }` as
 * libpg-query gives it. `expression`: the statement is a `SELECT expr` the
 * classifier made of a PL/pgSQL expression, so its SELECT is not a kind.
 */
export function statementFacts(tree: unknown, expression = false): StatementFacts {
  const type = statementType(tree);
  const facts = emptyFacts(type);
  if (!SQL_KNOWN_NODES.has(type)) {
    facts.problems.push(`the statement type ${type} is not known to the guard`);
    return facts;
  }
  collect(tree, facts, !expression);
  return facts;
}

/** Adds a nested statement's facts (a DO block's or a function's statements) to its owner's. */
export function addFacts(into: StatementFacts, from: StatementFacts): void {
  merge(into, from);
}
