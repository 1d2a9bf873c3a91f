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
import { sqlIdent as ident, nodeKinds, SQL_KNOWN_NODES, withParentKinds } from '@chaperone/shared/policy';
import { alwaysTrue, neverTrue } from './sql-condition.ts';
import { SET_CONFIG_INDIRECT, setConfigProblem, settingProblem } from './sql-reading.ts';

type Obj = Record<string, unknown>;

export interface CodeBody {
  /** `do` (runs now) or `function` (runs when called). */
  readonly owner: 'do' | 'function';
  readonly language: string;
  readonly source: string;
  /** A function's whole CREATE FUNCTION statement (set by the classifier, which has the text). */
  readonly statement?: string;
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
  /** A definition that makes the relations it names other names for each other (see SqlStatement.linksRelations). */
  linksRelations?: boolean;
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

export function str(v: unknown): string | undefined {
  if (typeof v === 'object' && v !== null && 'String' in v) {
    const s = (v as { String: { sval?: unknown } }).String.sval;
    return typeof s === 'string' ? s : '';
  }
  return undefined;
}

function names(list: unknown): string[] {
  return Array.isArray(list) ? list.map((x) => str(x)).filter((x): x is string => x !== undefined) : [];
}

export function obj(v: unknown): Obj | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}

/** The body of a wrapped node of the given type, or of an unwrapped struct. */
export function unwrap(v: unknown, type: string): Obj | undefined {
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

/**
 * A name's parts without a database part (`app.public.orders` →
 * `public.orders`): the server accepts only its own database's name there,
 * so the part adds nothing, and a rule on `public.orders` must see the name.
 */
function withoutDatabase(parts: readonly string[]): readonly string[] {
  return parts.length > 2 ? parts.slice(-2) : parts;
}

/** A table's or function's name as rules match it: parts quoted where needed, no database part. */
function qualifiedName(parts: readonly string[]): string {
  return withoutDatabase(parts).map(ident).join('.');
}

/** A RangeVar's name as rules match it (its database part, `catalogname`, dropped). */
export function qualified(rv: Obj): string {
  return qualifiedName(
    [rv.schemaname, rv.relname].filter((p): p is string => typeof p === 'string' && p !== ''),
  );
}

/**
 * Catalog relations whose rows hold values sampled from the columns of every
 * table (planner statistics: most common values, histogram bounds): reading
 * one reaches every table, as a whole schema's worth of them (`*`).
 */
const STATISTICS_RELATIONS = new Set([
  'pg_stats',
  'pg_stats_ext',
  'pg_stats_ext_exprs',
  'pg_statistic',
  'pg_statistic_ext_data',
]);

/**
 * Functions that run SQL given as text, or read a whole table, schema or
 * database named by a value: what they reach is unknown until they run, so
 * calling one is `dynamic-sql`. Matched by the function's own name in any
 * schema (the search path decides which one a bare name calls); `ts_rewrite`
 * only in its two-argument form, which takes a query.
 */
const SQL_TEXT_FUNCTIONS = new Set([
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
  'ts_stat',
  'connectby',
  'pg_background_launch',
]);
/** dblink, dblink_exec, dblink_open, …; crosstab, crosstab2, … (tablefunc). */
const SQL_TEXT_FUNCTION_PREFIXES = ['dblink', 'crosstab'];
/** pg_cron's, in its schema `cron` or unqualified (the search path may lead there). */
const CRON_FUNCTIONS = new Set(['schedule', 'schedule_in_database', 'alter_job']);

function runsSqlText(parts: readonly string[], args: number | undefined): boolean {
  const own = parts[parts.length - 1] ?? '';
  const schema = parts.length > 1 ? parts[parts.length - 2] : undefined;
  if (SQL_TEXT_FUNCTIONS.has(own) || SQL_TEXT_FUNCTION_PREFIXES.some((p) => own.startsWith(p))) return true;
  if (own === 'ts_rewrite') return args === undefined || args === 2;
  return CRON_FUNCTIONS.has(own) && (schema === undefined || schema === 'cron');
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
  if (STATISTICS_RELATIONS.has(rv.relname)) ctx.facts.schemas.add('*');
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

/**
 * A function the statement has the server call: by name in an expression,
 * or named in DDL that calls it later (an operator's FUNCTION, an
 * aggregate's SFUNC, a cast's or a trigger's function, …). `args`: how many
 * arguments a call passes (undefined when named in DDL).
 */
function callsFunction(ctx: Ctx, parts: readonly string[], args?: unknown[]): void {
  if (parts.length === 0) return;
  ctx.facts.functions.add(qualifiedName(parts));
  if (parts[parts.length - 1] === 'set_config') {
    const problem = args ? setConfigProblem(args) : SET_CONFIG_INDIRECT;
    if (problem) ctx.facts.problems.push(problem);
  }
  if (runsSqlText(parts, args?.length)) addKinds(ctx, 'dynamic-sql');
}

/** A function's name parts as DDL gives them: a TypeName, a List, an ObjectWithArgs or a bare list of String. */
function functionParts(v: unknown): string[] {
  if (Array.isArray(v)) return names(v);
  const o = obj(v);
  if (!o) return [];
  for (const [type, field] of [
    ['TypeName', 'names'],
    ['List', 'items'],
    ['ObjectWithArgs', 'objname'],
  ] as const) {
    const list = unwrap(o, type)?.[field];
    if (Array.isArray(list)) return names(list);
  }
  return [];
}

/**
 * Options of CREATE OPERATOR, AGGREGATE, TYPE, TEXT SEARCH PARSER and
 * TEMPLATE, range types, foreign-data wrappers (and their ALTERs) that name a
 * function the server calls.
 */
const FUNCTION_OPTIONS = new Set([
  'function',
  'procedure',
  'restrict',
  'join',
  'sfunc',
  'finalfunc',
  'combinefunc',
  'serialfunc',
  'deserialfunc',
  'msfunc',
  'minvfunc',
  'mfinalfunc',
  'input',
  'output',
  'receive',
  'send',
  'typmod_in',
  'typmod_out',
  'analyze',
  'subscript',
  'start',
  'gettoken',
  'end',
  'headline',
  'lextypes',
  'init',
  'lexize',
  'subtype_diff',
  'canonical',
  'handler',
  'validator',
]);

/** Where each statement type keeps those options. */
const FUNCTION_OPTION_LISTS: Readonly<Record<string, string>> = {
  DefineStmt: 'definition',
  AlterOperatorStmt: 'options',
  AlterTypeStmt: 'options',
  CreateRangeStmt: 'params',
  CreateFdwStmt: 'func_options',
  AlterFdwStmt: 'func_options',
};

/** Fields of other DDL that name a function the server calls (a cast's, a language's handler, …). */
const FUNCTION_FIELDS: Readonly<Record<string, readonly string[]>> = {
  CreateCastStmt: ['func'],
  CreateTransformStmt: ['fromsql', 'tosql'],
  CreateConversionStmt: ['func_name'],
  CreatePLangStmt: ['plhandler', 'plinline', 'plvalidator'],
  CreateAmStmt: ['handler_name'],
  CreateEventTrigStmt: ['funcname'],
};

function functionOptions(list: unknown, ctx: Ctx): void {
  for (const d of Array.isArray(list) ? list : []) {
    const de = unwrap(d, 'DefElem');
    if (typeof de?.defname === 'string' && FUNCTION_OPTIONS.has(de.defname.toLowerCase()))
      callsFunction(ctx, functionParts(de.arg));
  }
}

/** Objects that belong to a table (`DROP POLICY p ON t`, `COMMENT ON TRIGGER tr ON t`): the last name part is the object's own. */
const ON_TABLE_OBJECTS = new Set(['OBJECT_POLICY', 'OBJECT_TRIGGER', 'OBJECT_RULE', 'OBJECT_TABCONSTRAINT']);

/**
 * The table a DROP, COMMENT or SECURITY LABEL names or reaches through an
 * object of its own (a column, a policy, a trigger, a rule, a constraint),
 * from the object's name parts; undefined for other objects.
 */
function tableOfObject(objtype: unknown, parts: readonly string[]): string | undefined {
  const t = String(objtype);
  if (TABLE_OBJECTS.has(t)) return parts.length > 0 ? qualifiedName(parts) : undefined;
  if (t === 'OBJECT_COLUMN' || ON_TABLE_OBJECTS.has(t))
    return parts.length > 1 ? qualifiedName(parts.slice(0, -1)) : undefined;
  return undefined;
}

/** Whether CREATE or ALTER ROLE gives a role a password, a login or a password expiry (`CREATE USER` logs in unless told NOLOGIN). */
function grantsRoleCredential(type: string, b: Obj): boolean {
  const opts = defElems(b.options);
  if (opts.has('password') || opts.has('validUntil')) return true;
  if (opts.has('canlogin')) return isTrue(opts.get('canlogin'));
  return type === 'CreateRoleStmt' && b.stmt_type === 'ROLESTMT_USER';
}

/** User-mapping options that hold a password or where to find one (postgres_fdw, dblink_fdw). */
const MAPPING_CREDENTIALS = new Set(['password', 'passfile', 'sslpassword', 'password_required']);

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
    case 'FuncCall':
      callsFunction(ctx, names(b.funcname), Array.isArray(b.args) ? b.args : []);
      fields(b, ctx, ['funcname']);
      return;
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
        if (b.whereClause === undefined || alwaysTrue(b.whereClause)) {
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
        if (b.whereClause === undefined || alwaysTrue(b.whereClause)) {
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
        // A WHEN clause reaches every row of the target when its AND (if any) always holds and the
        // join always matches (WHEN MATCHED) or never does (WHEN NOT MATCHED BY SOURCE).
        const joinsAll = alwaysTrue(b.joinCondition);
        const joinsNone = neverTrue(b.joinCondition);
        for (const x of Array.isArray(b.mergeWhenClauses) ? b.mergeWhenClauses : []) {
          const w = unwrap(x, 'MergeWhenClause') ?? {};
          const t = w.commandType;
          const everyRow =
            (w.condition === undefined || alwaysTrue(w.condition)) &&
            ((w.matchKind === 'MERGE_WHEN_MATCHED' && joinsAll) ||
              (w.matchKind === 'MERGE_WHEN_NOT_MATCHED_BY_SOURCE' && joinsNone));
          if (t === 'CMD_INSERT') addKinds(c, 'insert');
          if (t === 'CMD_UPDATE') addKinds(c, everyRow ? 'update-without-where' : 'update');
          if (t === 'CMD_DELETE') addKinds(c, everyRow ? 'delete-without-where' : 'delete');
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
      if (b.removeType !== 'OBJECT_SCHEMA') {
        // A table, or what belongs to one: DROP POLICY / TRIGGER / RULE … ON t changes t.
        for (const o of objects) {
          const name = tableOfObject(b.removeType, names(unwrap(o, 'List')?.items));
          if (name !== undefined) {
            f.tables.add(name);
            f.writes.add(name);
          }
        }
      } else {
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
      variableSet(b, ctx, true);
      return;
    case 'AlterRoleSetStmt':
    case 'AlterDatabaseSetStmt':
    case 'AlterSystemStmt':
      // Stored defaults for later sessions: read as SET is.
      variableSet(unwrap(b.setstmt, 'VariableSetStmt') ?? {}, ctx, false);
      fields(b, ctx, ['setstmt']);
      return;
    case 'CreateRoleStmt':
    case 'AlterRoleStmt':
      if (grantsRoleCredential(type, b)) addKinds(ctx, 'credential');
      fields(b, ctx);
      return;
    case 'CreateUserMappingStmt':
    case 'AlterUserMappingStmt':
      if ([...defElems(b.options).keys()].some((k) => MAPPING_CREDENTIALS.has(k.toLowerCase())))
        addKinds(ctx, 'credential');
      fields(b, ctx);
      return;
    case 'CreateFunctionStmt':
    case 'AlterFunctionStmt': {
      const list = type === 'CreateFunctionStmt' ? b.options : b.actions;
      const opts = defElems(list);
      if (opts.has('security') && isTrue(opts.get('security')))
        addKinds(ctx, 'create-function-security-definer');
      // SET clauses hold while the function runs, and its body is read under them.
      for (const d of Array.isArray(list) ? list : []) {
        const de = unwrap(d, 'DefElem');
        if (de?.defname === 'set') variableSet(unwrap(de.arg, 'VariableSetStmt') ?? {}, ctx, false);
      }
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
    case 'DiscardStmt':
      // Only DISCARD ALL deallocates prepared statements; PLANS, SEQUENCES and TEMP leave them.
      if (b.target === 'DISCARD_ALL') f.deallocates = '*';
      return;
    case 'ExplainStmt':
    case 'DeclareCursorStmt':
      inner(b.query, ctx, true);
      fields(b, ctx, ['query']);
      return;
    case 'DefineStmt':
    case 'AlterOperatorStmt':
    case 'AlterTypeStmt':
    case 'CreateRangeStmt':
    case 'CreateFdwStmt':
    case 'AlterFdwStmt':
      functionOptions(b[FUNCTION_OPTION_LISTS[type] as string], ctx);
      fields(b, ctx);
      return;
    case 'CreateCastStmt':
    case 'CreateTransformStmt':
    case 'CreateConversionStmt':
    case 'CreatePLangStmt':
    case 'CreateAmStmt':
    case 'CreateEventTrigStmt':
      for (const k of FUNCTION_FIELDS[type] ?? []) callsFunction(ctx, functionParts(b[k]));
      fields(b, ctx, FUNCTION_FIELDS[type]);
      return;
    case 'CreateOpClassStmt':
    case 'AlterOpFamilyStmt':
      for (const i of Array.isArray(b.items) ? b.items : []) {
        const item = unwrap(i, 'CreateOpClassItem');
        // itemtype 2: OPCLASS_ITEM_FUNCTION (1 is an operator, 3 a storage type).
        if (item?.itemtype === 2) callsFunction(ctx, functionParts(item.name));
      }
      fields(b, ctx);
      return;
    case 'CommentStmt':
    case 'SecLabelStmt': {
      const parts = names(unwrap(b.object, 'List')?.items);
      const table = tableOfObject(b.objtype, parts);
      if (table !== undefined) {
        f.tables.add(table);
        f.writes.add(table);
        if (b.objtype === 'OBJECT_COLUMN') f.columns.add(parts[parts.length - 1] as string);
      }
      fields(b, ctx, ['object']);
      return;
    }
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
      if (type === 'CreateTrigStmt') callsFunction(ctx, names(b.funcname));
      if (type === 'AlterTableStmt') {
        // DROP COLUMN destroys the column's data: a drop as well as an alter.
        for (const c of Array.isArray(b.cmds) ? b.cmds : []) {
          const cmd = unwrap(c, 'AlterTableCmd');
          if (cmd?.subtype === 'AT_DropColumn') {
            addKinds(ctx, 'drop');
            if (typeof cmd.name === 'string') f.columns.add(cmd.name);
          }
          // A partition attached, a parent added: rows of one are the other's.
          if (cmd?.subtype === 'AT_AttachPartition' || cmd?.subtype === 'AT_AddInherit')
            f.linksRelations = true;
        }
      }
      if (type === 'CreateStmt') {
        const inherits = Array.isArray(b.inhRelations) && b.inhRelations.length > 0;
        if (inherits || b.partbound !== undefined) f.linksRelations = true;
      }
      if (type === 'RuleStmt') {
        f.linksRelations = true;
        // A rule's actions run whenever the rule fires.
        for (const a of Array.isArray(b.actions) ? b.actions : []) inner(a, ctx, true);
      }
      fields(b, ctx, ['relation', 'funcname', 'actions']);
      return;
    case 'ViewStmt':
      f.linksRelations = true;
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

/**
 * A SET, wherever it appears: directly (`session`: it applies now), or
 * stored for later (ALTER ROLE / DATABASE / SYSTEM … SET, a function's SET
 * clause). A setting that changes how the server reads SQL text is refused
 * (sql-reading.ts); SET of role or session_authorization is its own kind.
 */
function variableSet(b: Obj, ctx: Ctx, session: boolean): void {
  const name = typeof b.name === 'string' ? b.name.toLowerCase() : '';
  if (name === 'role') addKinds(ctx, 'set-role');
  if (name === 'session_authorization') addKinds(ctx, 'set-session-authorization');
  if (session && b.kind === 'VAR_RESET_ALL') addKinds(ctx, 'set-role');
  const problem = settingProblem(b);
  if (problem) ctx.facts.problems.push(problem);
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
