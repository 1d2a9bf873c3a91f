/**
 * SQL in the policy: the statement kinds a rule may name, how a rule's `sql`
 * conditions match a request's statements, and the built-in SQL rules no
 * policy can switch off. Pure, like the evaluator that calls it.
 *
 * A statement arrives classified from its real PostgreSQL parse tree (the
 * sidecar's classifier): its node type (`DeleteStmt`), friendly kinds
 * (`delete`, `delete-without-where`), the tables it reads and writes, the
 * columns and functions it names. An Action written by hand (a request file
 * for `chaperone policy test`) may give only the node type: its kinds are then
 * derived from the node type here.
 */
import { globMatcher, type Matcher } from './glob.ts';
import type { Action, Decision, Rule, RuleMatch, SqlMask, SqlStatement } from './types.ts';

/**
 * Friendly statement kinds and what each covers. Node-type kinds apply to
 * every statement of those types; the others are read from the parse tree
 * (the node types listed are the ones they can appear on).
 */
export const SQL_KINDS: Readonly<
  Record<string, { readonly nodes?: readonly string[]; readonly about: string }>
> = {
  select: { nodes: ['SelectStmt'], about: 'SELECT, VALUES, TABLE' },
  insert: {
    nodes: ['InsertStmt'],
    about: 'INSERT (also INSERT … ON CONFLICT DO UPDATE, which is update too)',
  },
  update: { nodes: ['UpdateStmt'], about: 'UPDATE' },
  delete: { nodes: ['DeleteStmt'], about: 'DELETE' },
  merge: {
    nodes: ['MergeStmt'],
    about: 'MERGE (with insert, update or delete for what its WHEN clauses do)',
  },
  'delete-without-where': {
    about:
      'DELETE with no WHERE, or one that is always true (`WHERE true`, `1 = 1`; best effort), and MERGE … ON true … THEN DELETE: every row',
  },
  'update-without-where': {
    about:
      'UPDATE with no WHERE, or one that is always true (best effort), and MERGE … ON true … THEN UPDATE: every row',
  },
  drop: {
    nodes: [
      'DropStmt',
      'DropdbStmt',
      'DropRoleStmt',
      'DropTableSpaceStmt',
      'DropOwnedStmt',
      'DropSubscriptionStmt',
      'DropUserMappingStmt',
    ],
    about:
      "DROP of anything: tables, schemas, databases, roles, functions, …; also ALTER TABLE … DROP COLUMN (the column's data goes)",
  },
  truncate: { nodes: ['TruncateStmt'], about: 'TRUNCATE' },
  alter: { about: 'ALTER of anything, RENAME (every Alter…Stmt node, RenameStmt)' },
  'alter-system': { nodes: ['AlterSystemStmt'], about: 'ALTER SYSTEM: server configuration' },
  create: {
    about: 'CREATE of anything (every Create…Stmt node, IndexStmt, ViewStmt, RuleStmt, DefineStmt, …)',
  },
  'create-role': { nodes: ['CreateRoleStmt'], about: 'CREATE ROLE / USER / GROUP' },
  'create-function': { nodes: ['CreateFunctionStmt'], about: 'CREATE FUNCTION / PROCEDURE' },
  'create-function-security-definer': {
    about: 'CREATE or ALTER FUNCTION … SECURITY DEFINER: code that runs as its owner',
  },
  'create-extension': { nodes: ['CreateExtensionStmt'], about: 'CREATE EXTENSION' },
  grant: { nodes: ['GrantStmt', 'GrantRoleStmt'], about: 'GRANT and REVOKE of privileges or roles' },
  revoke: { about: 'REVOKE' },
  copy: { nodes: ['CopyStmt'], about: 'COPY of any kind' },
  'copy-to': { about: 'COPY … TO (reads a table out)' },
  'copy-from': { about: 'COPY … FROM (writes into a table)' },
  'copy-program': { about: 'COPY … TO PROGRAM or FROM PROGRAM: runs a shell command on the server' },
  'copy-to-program': { about: 'COPY … TO PROGRAM' },
  'copy-from-program': { about: 'COPY … FROM PROGRAM' },
  'copy-file': { about: "COPY … TO or FROM a file on the server's file system" },
  do: { nodes: ['DoStmt'], about: 'DO blocks: anonymous code (its statements count too)' },
  'dynamic-sql': {
    about:
      "SQL the guard cannot read before it runs: DO blocks, EXECUTE in PL/pgSQL, bodies in languages other than SQL and PL/pgSQL, functions that run SQL text or read a table named by a value (query_to_xml, table_to_xml and their kin, ts_stat, ts_rewrite with a query, dblink…, crosstab…, connectby, pg_background_launch, pg_cron's schedule)",
  },
  credential: {
    about:
      'CREATE or ALTER ROLE / USER with PASSWORD, LOGIN or VALID UNTIL, and user mappings with a password: always denied (built in), since a credential the agent knows reaches the database around the guard',
  },
  set: { nodes: ['VariableSetStmt'], about: 'SET and RESET of a setting' },
  'set-role': { about: 'SET ROLE / RESET ROLE' },
  'set-session-authorization': { about: 'SET SESSION AUTHORIZATION' },
  prepare: { nodes: ['PrepareStmt'], about: 'PREPARE (also counts as what it prepares)' },
  execute: {
    nodes: ['ExecuteStmt'],
    about: 'EXECUTE of a prepared statement (also counts as what was prepared)',
  },
  deallocate: { nodes: ['DeallocateStmt'], about: 'DEALLOCATE' },
  explain: {
    nodes: ['ExplainStmt'],
    about: 'EXPLAIN (also counts as what it explains: EXPLAIN ANALYZE runs it)',
  },
  transaction: {
    nodes: ['TransactionStmt'],
    about: 'BEGIN, COMMIT, ROLLBACK, SAVEPOINT, PREPARE TRANSACTION, …',
  },
  lock: { nodes: ['LockStmt'], about: 'LOCK TABLE' },
  call: { nodes: ['CallStmt'], about: 'CALL of a procedure' },
  load: { nodes: ['LoadStmt'], about: 'LOAD of a shared library' },
  listen: { nodes: ['ListenStmt', 'UnlistenStmt', 'NotifyStmt'], about: 'LISTEN, UNLISTEN, NOTIFY' },
  maintenance: {
    nodes: ['VacuumStmt', 'ClusterStmt', 'ReindexStmt', 'CheckPointStmt', 'RefreshMatViewStmt'],
    about: 'VACUUM, ANALYZE, CLUSTER, REINDEX, CHECKPOINT, REFRESH MATERIALIZED VIEW',
  },
  show: { nodes: ['VariableShowStmt'], about: 'SHOW' },
  discard: { nodes: ['DiscardStmt'], about: 'DISCARD' },
  cursor: {
    nodes: ['DeclareCursorStmt', 'FetchStmt', 'ClosePortalStmt'],
    about: 'DECLARE, FETCH, MOVE, CLOSE',
  },
  comment: {
    nodes: ['CommentStmt', 'SecLabelStmt'],
    about:
      'COMMENT ON, SECURITY LABEL (of a table or its column, policy, trigger, rule or constraint: a write of that table)',
  },
  ddl: { about: 'every create, alter, drop, truncate and comment' },
  write: {
    about:
      'every statement that changes data or schema: insert, update, delete, merge, truncate, copy-from, SELECT INTO, create, alter, drop, grant, comment',
  },
};

const CREATE_NODES = new Set([
  'IndexStmt',
  'ViewStmt',
  'RuleStmt',
  'DefineStmt',
  'CompositeTypeStmt',
  'ImportForeignSchemaStmt',
]);

/**
 * Every top-level statement node type of PostgreSQL 18's parser. A statement
 * of any other type is unreadable to the guard (denied), and a rule naming a
 * node type must name one of these.
 */
export const SQL_KNOWN_NODES: ReadonlySet<string> = new Set([
  'AlterCollationStmt',
  'AlterDatabaseRefreshCollStmt',
  'AlterDatabaseSetStmt',
  'AlterDatabaseStmt',
  'AlterDefaultPrivilegesStmt',
  'AlterDomainStmt',
  'AlterEnumStmt',
  'AlterEventTrigStmt',
  'AlterExtensionContentsStmt',
  'AlterExtensionStmt',
  'AlterFdwStmt',
  'AlterForeignServerStmt',
  'AlterFunctionStmt',
  'AlterObjectDependsStmt',
  'AlterObjectSchemaStmt',
  'AlterOpFamilyStmt',
  'AlterOperatorStmt',
  'AlterOwnerStmt',
  'AlterPolicyStmt',
  'AlterPublicationStmt',
  'AlterRoleSetStmt',
  'AlterRoleStmt',
  'AlterSeqStmt',
  'AlterStatsStmt',
  'AlterSubscriptionStmt',
  'AlterSystemStmt',
  'AlterTSConfigurationStmt',
  'AlterTSDictionaryStmt',
  'AlterTableMoveAllStmt',
  'AlterTableSpaceOptionsStmt',
  'AlterTableStmt',
  'AlterTypeStmt',
  'AlterUserMappingStmt',
  'CallStmt',
  'CheckPointStmt',
  'ClosePortalStmt',
  'ClusterStmt',
  'CommentStmt',
  'CompositeTypeStmt',
  'ConstraintsSetStmt',
  'CopyStmt',
  'CreateAmStmt',
  'CreateCastStmt',
  'CreateConversionStmt',
  'CreateDomainStmt',
  'CreateEnumStmt',
  'CreateEventTrigStmt',
  'CreateExtensionStmt',
  'CreateFdwStmt',
  'CreateForeignServerStmt',
  'CreateForeignTableStmt',
  'CreateFunctionStmt',
  'CreateOpClassStmt',
  'CreateOpFamilyStmt',
  'CreatePLangStmt',
  'CreatePolicyStmt',
  'CreatePublicationStmt',
  'CreateRangeStmt',
  'CreateRoleStmt',
  'CreateSchemaStmt',
  'CreateSeqStmt',
  'CreateStatsStmt',
  'CreateStmt',
  'CreateSubscriptionStmt',
  'CreateTableAsStmt',
  'CreateTableSpaceStmt',
  'CreateTransformStmt',
  'CreateTrigStmt',
  'CreateUserMappingStmt',
  'CreatedbStmt',
  'DeallocateStmt',
  'DeclareCursorStmt',
  'DefineStmt',
  'DeleteStmt',
  'DiscardStmt',
  'DoStmt',
  'DropOwnedStmt',
  'DropRoleStmt',
  'DropStmt',
  'DropSubscriptionStmt',
  'DropTableSpaceStmt',
  'DropUserMappingStmt',
  'DropdbStmt',
  'ExecuteStmt',
  'ExplainStmt',
  'FetchStmt',
  'GrantRoleStmt',
  'GrantStmt',
  'ImportForeignSchemaStmt',
  'IndexStmt',
  'InsertStmt',
  'ListenStmt',
  'LoadStmt',
  'LockStmt',
  'MergeStmt',
  'NotifyStmt',
  'PrepareStmt',
  'ReassignOwnedStmt',
  'RefreshMatViewStmt',
  'ReindexStmt',
  'RenameStmt',
  'ReplicaIdentityStmt',
  'RuleStmt',
  'SecLabelStmt',
  'SelectStmt',
  'TransactionStmt',
  'TruncateStmt',
  'UnlistenStmt',
  'UpdateStmt',
  'VacuumStmt',
  'VariableSetStmt',
  'VariableShowStmt',
  'ViewStmt',
]);

/**
 * Kinds that stand for others: a statement of the kind on the left is also of
 * the kinds on the right (`delete-without-where` is a `delete`, which is a
 * `write`). A rule naming the right-hand kind covers the left-hand one.
 */
const PARENTS: Readonly<Record<string, readonly string[]>> = {
  insert: ['write'],
  update: ['write'],
  delete: ['write'],
  merge: ['write'],
  'delete-without-where': ['delete'],
  'update-without-where': ['update'],
  truncate: ['ddl', 'write'],
  drop: ['ddl', 'write'],
  alter: ['ddl', 'write'],
  create: ['ddl', 'write'],
  comment: ['ddl', 'write'],
  grant: ['write'],
  revoke: ['grant'],
  'alter-system': ['alter'],
  'create-role': ['create'],
  'create-function': ['create'],
  'create-extension': ['create'],
  'copy-to': ['copy'],
  'copy-from': ['copy', 'write'],
  'copy-program': ['copy'],
  'copy-to-program': ['copy-program'],
  'copy-from-program': ['copy-program', 'write'],
  'copy-file': ['copy'],
  'set-role': ['set'],
  'set-session-authorization': ['set'],
};

function ancestors(kind: string, out: Set<string> = new Set()): Set<string> {
  for (const p of PARENTS[kind] ?? []) {
    if (!out.has(p)) {
      out.add(p);
      ancestors(p, out);
    }
  }
  return out;
}

/** The kinds with every kind they stand for added (`delete-without-where` → also `delete`, `write`). */
export function withParentKinds(kinds: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const k of kinds) {
    out.add(k);
    for (const a of ancestors(k)) out.add(a);
  }
  return [...out];
}

/** The kinds that follow from a statement's node type alone. */
export function nodeKinds(node: string): string[] {
  const out: string[] = [];
  for (const [name, k] of Object.entries(SQL_KINDS)) if (k.nodes?.includes(node)) out.push(name);
  if (node.startsWith('Create') || CREATE_NODES.has(node)) out.push('create');
  if (node.startsWith('Alter') || node === 'RenameStmt') out.push('alter');
  return withParentKinds(out);
}

/** A statement's kinds: from its classification, or derived from its node type (hand-written actions). */
export function statementKinds(s: SqlStatement): readonly string[] {
  if (s.kinds) return s.kinds;
  const kinds = nodeKinds(s.kind);
  if (s.unqualified && s.kind === 'DeleteStmt') kinds.push('delete-without-where');
  if (s.unqualified && s.kind === 'UpdateStmt') kinds.push('update-without-where');
  return kinds;
}

/**
 * Whether an allow rule's `statements` cover everything a statement does:
 * each of its most specific kinds (those no other of its kinds stands for)
 * is named, or stands for a kind that is named; a node type named covers the
 * kinds of that node type. A statement with no friendly kind needs its node
 * type named. So `statements: [select]` allows a SELECT but not
 * `WITH d AS (DELETE …) SELECT …` or `EXPLAIN ANALYZE DELETE …`.
 */
function coversAll(wanted: ReadonlySet<string>, s: SqlStatement): boolean {
  const named = new Set(wanted);
  for (const w of wanted) if (SQL_KNOWN_NODES.has(w)) for (const k of nodeKinds(w)) named.add(k);
  const kinds = statementKinds(s);
  const implied = new Set(kinds.flatMap((k) => [...ancestors(k)]));
  const specific = kinds.filter((k) => !implied.has(k));
  if (specific.length === 0) return wanted.has(s.kind);
  return specific.every((k) => named.has(k) || [...ancestors(k)].some((a) => named.has(a)));
}

/** A rule may name a friendly kind or a parser node type (`DropStmt`). */
export function isSqlStatementName(name: string): boolean {
  return name in SQL_KINDS || SQL_KNOWN_NODES.has(name);
}

/**
 * `s.orders` → [`s`, `orders`]; a quoted part (`"a.b"`) stays whole, with its
 * quotes, or `unquote`d to the name it stands for (`a.b`).
 */
export function sqlNameParts(name: string, unquote = false): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < name.length; i++) {
    const ch = name[i] as string;
    if (ch === '"') {
      if (quoted && name[i + 1] === '"') {
        cur += unquote ? '"' : '""';
        i++;
        continue;
      }
      quoted = !quoted;
      if (!unquote) cur += ch;
    } else if (ch === '.' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/**
 * Matches qualified names (tables, functions) against globs. A name also
 * matches by its last part (`s.orders` matches `orders`: an unqualified glob
 * names that object in any schema). In a restrictive rule an unqualified name
 * also matches a qualified glob by its last part: the server finds it through
 * the search path, which may well lead to the schema the rule names. A
 * database part (`app.public.orders`) is left out before matching.
 */
export function qualifiedNameMatcher(globs: readonly string[], restrictive: boolean): Matcher {
  const whole = globMatcher(globs);
  const lastParts = globMatcher(globs.map((g) => sqlNameParts(g).pop() as string));
  return (written) => {
    if (written === undefined) return false;
    // A database part (`app.public.orders`) names the server's own database, or fails there.
    const all = sqlNameParts(written);
    const parts = all.length > 2 ? all.slice(-2) : all;
    const name = parts.join('.');
    const last = parts[parts.length - 1] as string;
    if (whole(name) || whole(last)) return true;
    return restrictive && parts.length === 1 && lastParts(last);
  };
}

/** Whether a restrictive `tables` condition reaches a schema the statement affects as a whole. */
function schemaMatcher(globs: readonly string[]): (schema: string) => boolean {
  const schemaGlobs = globs.map((g) => {
    const parts = sqlNameParts(g);
    return parts.length > 1 ? (parts.slice(0, -1).join('.') as string) : '*';
  });
  return globMatcher(schemaGlobs);
}

/**
 * The test a rule's `sql` conditions make of an action: all of them must
 * hold on one statement. A restrictive rule (deny, review, mask) matches what
 * a statement reaches: any of its kinds, tables (those the catalog says it
 * reaches too: `reaches`), columns or functions; a statement that reaches every column (`*`, a whole-row reference, COPY of a
 * whole table) matches any `columns`; one that reaches a whole schema matches
 * `tables` in it. An allow rule matches only what it names: every kind,
 * table, column and function of the statement must be named.
 */
export function sqlTest(m: NonNullable<RuleMatch['sql']>, restrictive: boolean): (a: Action) => boolean {
  const wanted = m.statements ? new Set(m.statements) : undefined;
  const tables = m.tables ? qualifiedNameMatcher(m.tables, restrictive) : undefined;
  const schemas = m.tables ? schemaMatcher(m.tables) : undefined;
  const tableGlobs = m.tables ? globMatcher(m.tables) : undefined;
  const columns = m.columns ? globMatcher(m.columns) : undefined;
  const functions = m.functions ? qualifiedNameMatcher(m.functions, restrictive) : undefined;
  const databases = m.databases ? globMatcher(m.databases) : undefined;
  const reaches = (s: SqlStatement): boolean => {
    if (wanted && !(wanted.has(s.kind) || statementKinds(s).some((k) => wanted.has(k)))) return false;
    // `*` in schemas: every table (planner statistics hold values of all of them).
    if (
      tables &&
      !s.tables.some((t) => tables(t)) &&
      !(s.reaches ?? []).some((t) => tables(t)) &&
      !(s.schemas ?? []).some((x) => x === '*' || schemas?.(x))
    )
      return false;
    if (columns) {
      const cols = s.columns ?? [];
      if (!cols.some((c) => columns(c)) && !cols.includes('*')) return false;
    }
    if (functions && !(s.functions ?? []).some((f) => functions(f))) return false;
    return true;
  };
  const names = (s: SqlStatement): boolean => {
    if (wanted && !coversAll(wanted, s)) return false;
    if (tables) {
      const reached = s.tables.length + (s.schemas?.length ?? 0);
      if (reached === 0 || !s.tables.every((t) => tables(t))) return false;
      // A whole schema is named only by `schema.*` (or `*`); every schema (`*`) only by `*` or `*.*`.
      if (!(s.schemas ?? []).every((x) => tableGlobs?.(`${x}.*`))) return false;
    }
    if (columns && !((s.columns?.length ?? 0) > 0 && (s.columns ?? []).every((c) => columns(c))))
      return false;
    if (functions && !((s.functions?.length ?? 0) > 0 && (s.functions ?? []).every((f) => functions(f)))) {
      return false;
    }
    return true;
  };
  const test = restrictive ? reaches : names;
  return (a) => {
    const q = a.sql;
    if (!q) return false;
    if (databases && !databases(q.database)) return false;
    return q.statements.some(test);
  };
}

/** Kinds that run SQL the guard cannot read first: denied unless the allow rule that decided names them. */
const DYNAMIC_KINDS = ['do', 'dynamic-sql'];

/**
 * The built-in SQL rules, applied after the policy decided one statement:
 * - a statement the guard could not read (the parser refused it, or its
 *   node type is unknown, or the server could read it otherwise) is
 *   denied, whatever the policy says;
 * - a statement that gives a role a password, a login or a password expiry,
 *   or a user mapping a password (kind `credential`), is denied whatever the
 *   policy says, like the Kubernetes rules against minting credentials;
 * - DO blocks and dynamic SQL (EXECUTE in PL/pgSQL, code in other languages)
 *   are denied unless the allow rule that decided names them (`do`,
 *   `dynamic-sql`): a default or a broad allow never lets through SQL that
 *   nothing has read.
 */
export function sqlBuiltins(action: Action, decision: Decision, decidedBy: Rule | undefined): Decision {
  const s = action.sql?.statements[0];
  if (!s || action.protocol !== 'postgres') return decision;
  if (s.problem !== undefined) {
    return {
      action: 'deny',
      rule: 'chaperone-sql-unreadable',
      reason: 'self_protection',
      message: `the guard could not read this statement (${s.problem}); statements it cannot read are denied`,
    };
  }
  if (statementKinds(s).includes('credential')) {
    return {
      action: 'deny',
      rule: 'chaperone-sql-credentials',
      reason: 'self_protection',
      message:
        'giving a role a password, a login or a password expiry, or a user mapping a password, is not allowed through the guard: a credential the agent knows would reach the database around it; an administrator can do this directly',
    };
  }
  // A review goes to a human, who sees the statement; a deny stands.
  if (decision.action !== 'allow' && decision.action !== 'mask') return decision;
  const named = decidedBy?.action === 'allow' ? (decidedBy.match.sql?.statements ?? []) : [];
  const missing = statementKinds(s).filter((k) => DYNAMIC_KINDS.includes(k) && !named.includes(k));
  if (missing.length === 0) return decision;
  return {
    action: 'deny',
    rule: 'chaperone-sql-dynamic',
    reason: 'self_protection',
    message: `${missing.includes('do') ? 'DO blocks run' : 'this statement runs'} SQL the guard cannot read first (${missing.join(', ')}); denied unless an allow rule names ${missing.map((k) => `"${k}"`).join(' and ')} in sql.statements`,
  };
}

// ---------------------------------------------------------------------------
// Masking

/** A name part as a statement would have to write it: quoted when it holds a dot or a quote. */
export function sqlIdent(part: string): string {
  return /[."]/.test(part) ? `"${part.replaceAll('"', '""')}"` : part;
}

/** The conditions a SQL mask rule may have: any other only Kubernetes or exec requests meet. */
export const SQL_MASK_CONDITIONS: readonly string[] = ['protocols', 'verbs', 'users', 'sql'];

/**
 * Whether a rule masks SQL results: a mask rule that names `sql` conditions
 * or the `postgres` protocol (and no condition only Kubernetes or exec
 * requests have). A mask rule with neither, such as `match: {}`, masks
 * Kubernetes objects only.
 */
export function isSqlMaskRule(rule: Rule): boolean {
  if (rule.action !== 'mask') return false;
  const m = rule.match;
  if (!Object.keys(m).every((k) => SQL_MASK_CONDITIONS.includes(k))) return false;
  return m.sql !== undefined || (m.protocols?.includes('postgres') ?? false);
}

interface MaskMatchers {
  /** Tables as a statement writes them: an unqualified name matches a qualified glob by its last part. */
  readonly writtenTable: Matcher;
  /** Tables as the catalog names them (`schema.table`). */
  readonly catalogTable: Matcher;
  readonly column: Matcher;
}

const maskMatchers = new WeakMap<SqlMask, MaskMatchers>();

function matchers(mask: SqlMask): MaskMatchers {
  let m = maskMatchers.get(mask);
  if (!m) {
    const any: Matcher = () => true;
    m = {
      writtenTable: mask.tables ? qualifiedNameMatcher(mask.tables, true) : any,
      catalogTable: mask.tables ? qualifiedNameMatcher(mask.tables, false) : any,
      column: mask.columns ? globMatcher(mask.columns) : any,
    };
    maskMatchers.set(mask, m);
  }
  return m;
}

interface MaskRule {
  readonly mask: SqlMask;
  readonly rule: Rule;
  /** Whether the rule applies to the action's session (protocols, verbs, users, databases). */
  readonly applies: (a: Action) => boolean;
}

const maskRules = new WeakMap<Rule, MaskRule>();

function maskRule(rule: Rule): MaskRule {
  let c = maskRules.get(rule);
  if (c) return c;
  const m = rule.match;
  const sql = m.sql ?? {};
  const protocols = m.protocols ? new Set<string>(m.protocols) : undefined;
  const verbs = m.verbs ? globMatcher(m.verbs) : undefined;
  const users = m.users ? globMatcher(m.users) : undefined;
  const databases = sql.databases ? globMatcher(sql.databases) : undefined;
  c = {
    mask: Object.freeze({
      rule: rule.name,
      ...(sql.tables ? { tables: sql.tables } : {}),
      ...(sql.columns ? { columns: sql.columns } : {}),
    }),
    rule,
    applies: (a) =>
      a.sql !== undefined &&
      (!protocols || protocols.has(a.protocol)) &&
      (!verbs || verbs(a.verb)) &&
      (!users || users(a.user)) &&
      (!databases || databases(a.sql.database)),
  };
  maskRules.set(rule, c);
  return c;
}

/**
 * The SQL masks in force for an action: every SQL mask rule of the policy
 * whose `protocols`, `verbs`, `users` and `sql.databases` hold for it. A mask
 * does not depend on what the statement names — a view, a function or a
 * table's children reach a table without naming it — so its `sql.tables` and
 * `sql.columns` say what is masked, not which statements it applies to.
 */
export function sqlMasksFor(action: Action, rules: readonly Rule[]): SqlMask[] {
  const out: SqlMask[] = [];
  for (const r of rules) {
    if (!isSqlMaskRule(r)) continue;
    const c = maskRule(r);
    if (c.applies(action)) out.push(c.mask);
  }
  return out;
}

/** The masks that cover a table as a statement names it (`users`, `billing.users`): the search path may lead an unqualified name to any schema. */
export function masksOfWrittenTable(masks: readonly SqlMask[], table: string): SqlMask[] {
  return masks.filter((m) => matchers(m).writtenTable(table));
}

/** The masks that cover a table as the catalog names it (`schema.table`, parts quoted by sqlIdent). */
export function masksOfCatalogTable(masks: readonly SqlMask[], table: string): SqlMask[] {
  return masks.filter((m) => matchers(m).catalogTable(table));
}

/** Whether a mask covers a column by name (`*`, every column, is covered by every mask). */
export function maskCoversColumn(mask: SqlMask, column: string): boolean {
  return column === '*' || matchers(mask).column(column);
}

/** Whether a statement names a masked column of a masked table (or all of a masked table's columns). */
function namesMasked(mask: SqlMask, s: SqlStatement): boolean {
  const written = matchers(mask).writtenTable;
  if (!s.tables.some((t) => written(t))) return false;
  if (!mask.columns) return true;
  return (s.columns ?? []).some((col) => maskCoversColumn(mask, col));
}

/**
 * Masks on a decided SQL statement. Mask rules do not take part in the
 * first-match order for SQL (evaluate.ts skips them): whatever allow rule or
 * default lets a statement run, every mask in force applies to what it
 * returns (so two mask rules on two tables both hold for a join of them, and
 * no allow rule placed earlier unmasks a column). A statement that names a
 * masked column is decided `mask` by the first mask rule that covers it; one
 * that does not stays `allow`, with the masks still attached, since what it
 * returns may come from a masked column all the same. Denials and reviews
 * return nothing and are left alone.
 */
export function applySqlMasks(action: Action, decision: Decision, rules: readonly Rule[]): Decision {
  if (decision.action !== 'allow' || action.protocol !== 'postgres') return decision;
  const masks = sqlMasksFor(action, rules);
  if (masks.length === 0) return decision;
  const statement = action.sql?.statements[0];
  const named = statement ? masks.find((m) => namesMasked(m, statement)) : undefined;
  const rule = named && rules.find((r) => r.name === named.rule);
  if (!rule) return { ...decision, sqlMasks: masks };
  return {
    action: 'mask',
    rule: rule.name,
    reason: 'rule_matched',
    message: rule.message ?? `allowed with masking by ${rule.name}`,
    sqlMasks: masks,
  };
}
