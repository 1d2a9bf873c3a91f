/**
 * Where a statement's column values can go, read from its parse tree, for
 * masking. Masking rewrites values in the result columns the server
 * attributes to a table column (RowDescription's table OID and attribute
 * number): that holds only for a *plain output column* — a column reference
 * as it is in the target list of the statement's own result (a top-level
 * SELECT, RETURNING, what DECLARE or PREPARE run), `*` and `t.*` there
 * included. Anywhere else a column's value can leave unmasked: computed into
 * an expression (`md5(password)`, `password::text`), compared in a condition
 * (`WHERE password LIKE 'a%'` answers yes or no about it), sorted or grouped
 * on, aggregated, read as a whole row (`row_to_json(u)`), copied into a table
 * or a view, put through a set operation or a code body. Those are *derived
 * uses*, collected here with the relations they may belong to; the policy's
 * masks then decide which of them are denied (mask-check.ts). Pure: trees in,
 * facts out.
 *
 * The reading errs on the side of a derived use: an unqualified column, or one
 * qualified by a subquery's or a function's alias, may belong to any relation
 * the statement names, and a name used both as a CTE and as a table counts as
 * the table.
 */
import { obj, qualified, str, unwrap } from './sql-tree.ts';

type Obj = Record<string, unknown>;

/** A column used where its value is not a plain output column. */
export interface ColumnUse {
  /** The relations (as written) it may belong to; absent: any relation the statement names. */
  readonly relations?: readonly string[];
  /** The column's name, or `*` for every column (a whole-row reference, `t.*` inside an expression, a natural join). */
  readonly column: string;
}

/** `COPY relation [(columns)] TO …`: values leave as COPY data, not as attributed result columns. */
export interface CopyFacts {
  readonly relation: string;
  readonly columns?: readonly string[];
  /** Where the data goes: to the client (`STDOUT`), a server file, or a program. */
  readonly to: 'client' | 'file' | 'program';
  /** The statement's options, by lower-case name: a string, `*`, a list of names, or true when given without a value. */
  readonly options: ReadonlyMap<string, string | true | readonly string[]>;
}

export interface MaskFacts {
  /** Every relation the statement names, as written (`users`, `billing.users`); a CTE's name counts too. */
  readonly relations: ReadonlySet<string>;
  readonly derived: readonly ColumnUse[];
  /** Relations whose definition the statement changes or attaches code to (ALTER, RENAME, SET SCHEMA, triggers, rules, policies). */
  readonly altered: ReadonlySet<string>;
  /** `ALTER SCHEMA … RENAME`: every qualified name in it changes. */
  readonly renamesSchema: boolean;
  readonly copy?: CopyFacts;
}

/** A column reference as the tree has it: qualifier parts (maybe none) and the column or `*`. */
interface RawUse {
  readonly qualifier: readonly string[];
  readonly column: string;
}

interface Collector {
  readonly relations: Set<string>;
  /** Range names (aliases, table names, CTE and subquery names) → the relations they stand for, or `any`. */
  readonly ranges: Map<string, Set<string> | 'any'>;
  readonly uses: RawUse[];
  readonly altered: Set<string>;
  renamesSchema: boolean;
  copy?: CopyFacts;
}

function newCollector(): Collector {
  return { relations: new Set(), ranges: new Map(), uses: [], altered: new Set(), renamesSchema: false };
}

function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function range(c: Collector, name: string, relation: string | 'any'): void {
  const had = c.ranges.get(name);
  if (relation === 'any' || had === 'any') {
    c.ranges.set(name, 'any');
    return;
  }
  if (had) had.add(relation);
  else c.ranges.set(name, new Set([relation]));
}

function rangeVar(c: Collector, rv: Obj): string | undefined {
  if (typeof rv.relname !== 'string') return undefined;
  const name = qualified(rv);
  c.relations.add(name);
  const alias = obj(rv.alias)?.aliasname;
  range(c, typeof alias === 'string' ? alias : rv.relname, name);
  // A table is also reachable by its full name (`public.users.password`).
  if (name !== rv.relname) range(c, name, name);
  return name;
}

function refUse(ref: Obj): RawUse {
  const parts = list(ref.fields);
  const last = parts[parts.length - 1];
  const column = obj(last)?.A_Star !== undefined ? '*' : (str(last) ?? '*');
  const qualifier = parts
    .slice(0, -1)
    .map((p) => str(p))
    .filter((p): p is string => p !== undefined);
  return { qualifier, column };
}

/** Walks anything: every column reference in it is a derived use. */
function walk(c: Collector, v: unknown): void {
  if (Array.isArray(v)) {
    for (const x of v) walk(c, x);
    return;
  }
  const o = obj(v);
  if (!o) return;
  const keys = Object.keys(o);
  if (keys.length === 1 && /^[A-Z]/.test(keys[0] as string)) {
    node(c, keys[0] as string, obj(o[keys[0] as string]) ?? {});
    return;
  }
  if (typeof o.relname === 'string') {
    rangeVar(c, o);
    return;
  }
  for (const x of Object.values(o)) walk(c, x);
}

function walkExcept(c: Collector, b: Obj, skip: readonly string[]): void {
  for (const [k, x] of Object.entries(b)) if (!skip.includes(k)) walk(c, x);
}

/** Columns named as plain strings (a USING list) are read too. */
function nameUses(c: Collector, names: unknown): void {
  for (const n of list(names)) {
    const name = str(n);
    if (name !== undefined) c.uses.push({ qualifier: [], column: name });
  }
}

function node(c: Collector, type: string, b: Obj): void {
  switch (type) {
    case 'RangeVar':
      rangeVar(c, b);
      return;
    case 'ColumnRef':
      c.uses.push(refUse(b));
      return;
    case 'RangeSubselect':
    case 'RangeFunction':
    case 'RangeTableFunc':
    case 'JoinExpr': {
      const alias = obj(b.alias)?.aliasname;
      if (typeof alias === 'string') range(c, alias, 'any');
      if (type === 'JoinExpr') {
        nameUses(c, b.usingClause);
        // A natural join compares every column the two sides share.
        if (b.isNatural === true) c.uses.push({ qualifier: [], column: '*' });
      }
      walkExcept(c, b, ['alias']);
      return;
    }
    case 'CommonTableExpr':
      if (typeof b.ctename === 'string') range(c, b.ctename, 'any');
      walkExcept(c, b, ['ctename']);
      return;
    case 'IndexElem':
      // ON CONFLICT (column) answers whether a value exists; an index names what it orders.
      if (typeof b.name === 'string') c.uses.push({ qualifier: [], column: b.name });
      walkExcept(c, b, ['name']);
      return;
    case 'AlterTableStmt':
    case 'RenameStmt':
    case 'AlterObjectSchemaStmt':
    case 'CreateTrigStmt':
    case 'RuleStmt':
    case 'CreatePolicyStmt':
    case 'AlterPolicyStmt': {
      const before = new Set(c.relations);
      walk(c, type.endsWith('PolicyStmt') ? b.table : b.relation);
      if (type === 'AlterTableStmt') {
        // ATTACH PARTITION, INHERIT …: the other table's place in the hierarchy changes too.
        const cmds = new Set(c.relations);
        walk(c, b.cmds);
        for (const r of c.relations) if (!cmds.has(r)) c.altered.add(r);
      }
      for (const r of c.relations) if (!before.has(r)) c.altered.add(r);
      if (type === 'RenameStmt' && b.renameType === 'OBJECT_SCHEMA') c.renamesSchema = true;
      walkExcept(c, b, ['relation', 'table', 'cmds']);
      return;
    }
    case 'CopyStmt':
      copy(c, b);
      return;
    default:
      for (const x of Object.values(b)) walk(c, x);
  }
}

function copy(c: Collector, b: Obj): void {
  const rv = unwrap(b.relation, 'RangeVar');
  const relation = rv ? rangeVar(c, rv) : undefined;
  walk(c, b.query);
  walk(c, b.whereClause);
  if (!relation || b.is_from === true) return;
  const options = new Map<string, string | true | readonly string[]>();
  for (const d of list(b.options)) {
    const de = unwrap(d, 'DefElem');
    if (typeof de?.defname !== 'string') continue;
    const arg = de.arg;
    const a = obj(arg);
    let value: string | true | readonly string[] = true;
    if (a?.A_Star !== undefined) value = '*';
    else if (a?.List !== undefined) value = list(obj(a.List)?.items).map((x) => str(x) ?? '');
    else if (Array.isArray(arg)) value = arg.map((x) => str(x) ?? '');
    else if (str(arg) !== undefined) value = str(arg) as string;
    else if (a?.Integer !== undefined) value = String(obj(a.Integer)?.ival ?? 0);
    else if (a?.Boolean !== undefined) value = obj(a.Boolean)?.boolval === true ? 'true' : 'false';
    options.set(de.defname.toLowerCase(), value);
  }
  const columns = list(b.attlist)
    .map((x) => str(x))
    .filter((x): x is string => x !== undefined);
  c.copy = {
    relation,
    ...(columns.length > 0 ? { columns } : {}),
    to: b.is_program === true ? 'program' : typeof b.filename === 'string' ? 'file' : 'client',
    options,
  };
}

/** The position (1-based) a sort or grouping item names in the target list, by ordinal or output name. */
function outputReference(item: unknown, outputNames: readonly (string | undefined)[]): number | undefined {
  const n = unwrap(unwrap(item, 'SortBy')?.node ?? item, 'A_Const');
  const ival = obj(n?.ival)?.ival;
  if (typeof ival === 'number') return ival;
  const ref = unwrap(unwrap(item, 'SortBy')?.node ?? item, 'ColumnRef');
  const parts = list(ref?.fields);
  if (parts.length !== 1) return undefined;
  const name = str(parts[0]);
  const at = name === undefined ? -1 : outputNames.indexOf(name);
  return at === -1 ? undefined : at + 1;
}

/**
 * A target list whose plain column references are output columns: those are
 * left out of the derived uses, unless the statement sorts, groups or
 * deduplicates on them by position or output name. Everything else in the
 * list is walked as derived.
 */
function outputList(c: Collector, targets: unknown, reused: ReadonlySet<number> = new Set()): RawUse[] {
  const plain: RawUse[] = [];
  list(targets).forEach((t, i) => {
    const rt = unwrap(t, 'ResTarget');
    const ref = unwrap(rt?.val, 'ColumnRef');
    if (rt && obj(rt.val)?.ColumnRef !== undefined && ref && !reused.has(i + 1)) {
      plain.push(refUse(ref));
      return;
    }
    walk(c, t);
  });
  return plain;
}

/** The statement's own result: a plain SELECT's target list, or RETURNING. */
function topLevel(c: Collector, type: string, b: Obj): RawUse[] {
  switch (type) {
    case 'SelectStmt': {
      const simple = (b.op === undefined || b.op === 'SETOP_NONE') && b.intoClause === undefined;
      if (!simple || b.distinctClause !== undefined) break;
      const names = list(b.targetList).map((t) => {
        const n = unwrap(t, 'ResTarget')?.name;
        return typeof n === 'string' ? n : undefined;
      });
      const reused = new Set<number>();
      for (const item of [...list(b.sortClause), ...list(b.groupClause)]) {
        const at = outputReference(item, names);
        if (at !== undefined) reused.add(at);
      }
      const plain = outputList(c, b.targetList, reused);
      walkExcept(c, b, ['targetList']);
      return plain;
    }
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt': {
      const returning = obj(b.returningClause)?.exprs ?? b.returningList;
      const plain = outputList(c, returning);
      walkExcept(c, b, ['returningClause', 'returningList']);
      return plain;
    }
    case 'DeclareCursorStmt':
    case 'PrepareStmt':
    case 'ExplainStmt': {
      const q = obj(b.query);
      const inner = q ? Object.keys(q)[0] : undefined;
      const plain = inner ? topLevel(c, inner, obj(q?.[inner]) ?? {}) : [];
      walkExcept(c, b, ['query']);
      return plain;
    }
  }
  node(c, type, b);
  return [];
}

function resolve(c: Collector, use: RawUse): ColumnUse {
  if (use.qualifier.length === 0) return { column: use.column };
  const name = use.qualifier.join('.');
  const r = c.ranges.get(name) ?? c.ranges.get(use.qualifier[use.qualifier.length - 1] as string);
  if (!r || r === 'any') return { column: use.column };
  return { relations: [...r].sort(), column: use.column };
}

/**
 * The mask facts of one statement tree (`{"SelectStmt": {…}}`). `output`:
 * whether the statement's own result reaches the client (false for the
 * statements of a code body, whose every use is derived).
 */
export function maskFacts(tree: unknown, output = true): MaskFacts {
  const c = newCollector();
  const o = obj(tree);
  const type = o ? Object.keys(o)[0] : undefined;
  let plain: RawUse[] = [];
  if (type !== undefined) {
    const b = obj(o?.[type]) ?? {};
    if (output) plain = topLevel(c, type, b);
    else node(c, type, b);
  }
  const derived = c.uses.map((u) => resolve(c, u));
  // A bare name that is a range's (`row_to_json(u)`, `(u).password`, `SELECT u FROM users u`) is the
  // whole row as one value, even in a plain output column; it may also be a column of that name.
  for (const u of [...c.uses, ...plain]) {
    if (u.qualifier.length === 0 && u.column !== '*' && c.ranges.has(u.column)) {
      derived.push(resolve(c, { qualifier: [u.column], column: '*' }));
    }
  }
  return {
    relations: c.relations,
    derived,
    altered: c.altered,
    renamesSchema: c.renamesSchema,
    ...(c.copy ? { copy: c.copy } : {}),
  };
}

export function emptyMaskFacts(): MaskFacts {
  return { relations: new Set(), derived: [], altered: new Set(), renamesSchema: false };
}

/**
 * The facts of a statement whose result is stored rather than returned
 * (`CREATE TABLE … AS EXECUTE`): its plain output columns are copied into a
 * table no mask names, so every column of every relation it names counts as
 * a derived use.
 */
export function storedMaskFacts(f: MaskFacts): MaskFacts {
  return { ...f, derived: [...f.derived, ...[...f.relations].map((r) => ({ relations: [r], column: '*' }))] };
}

/** Facts of a statement and what it runs in turn (its code bodies, what EXECUTE runs) together. */
export function mergeMaskFacts(a: MaskFacts, b: MaskFacts): MaskFacts {
  return {
    relations: new Set([...a.relations, ...b.relations]),
    derived: [...a.derived, ...b.derived],
    altered: new Set([...a.altered, ...b.altered]),
    renamesSchema: a.renamesSchema || b.renamesSchema,
    ...(a.copy ? { copy: a.copy } : b.copy ? { copy: b.copy } : {}),
  };
}
