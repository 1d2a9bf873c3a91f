/**
 * Whether a condition (a WHERE clause, MERGE's ON or a WHEN's AND) holds for
 * every row, read from its parse tree: `DELETE FROM t WHERE true` empties t
 * as surely as `DELETE FROM t`. Best effort, and only that: it folds
 * constants (`true`, `'t'`, `1::bool`, `1 = 1`, `'a' <> 'b'`, `NULL IS
 * NULL`, `true IS TRUE`), NOT, AND and OR of them, a column compared equal to
 * itself (`id = id`), and `EXISTS` of a SELECT with no FROM. A condition that
 * depends on the rows (`id > 0`, `id IS NOT NULL`, a subquery) is not
 * recognised, however many rows it happens to match: the without-where kinds
 * guard against whole-table mistakes, not against an agent set on emptying a
 * table, which a policy must deny by `delete` or `update` on that table.
 * Pure.
 */

type Obj = Record<string, unknown>;

/** A constant's value: true/false, a number, a string (whose type the context decides), or SQL NULL. */
type Value = boolean | number | string | null;

function obj(v: unknown): Obj | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}

/** The one node type of a wrapped node and its body. */
function nodeOf(v: unknown): [string, Obj] | undefined {
  const o = obj(v);
  const keys = o ? Object.keys(o) : [];
  if (keys.length !== 1) return undefined;
  const body = obj(o?.[keys[0] as string]);
  return body ? [keys[0] as string, body] : undefined;
}

/** Boolean input as PostgreSQL's boolin reads it (unique prefixes of true/false/yes/no, on/off, 1/0). */
function boolFromText(s: string): boolean | undefined {
  const t = s.trim().toLowerCase();
  if (t === '') return undefined;
  if ('true'.startsWith(t) || 'yes'.startsWith(t) || t === 'on' || t === '1') return true;
  if ('false'.startsWith(t) || 'no'.startsWith(t) || t === 'off' || t === '0') return false;
  return undefined;
}

function constValue(c: Obj): Value | undefined {
  if (c.isnull === true) return null;
  const b = obj(c.boolval);
  if (b) return b.boolval === true;
  const i = obj(c.ival);
  if (i) return typeof i.ival === 'number' ? i.ival : 0;
  const f = obj(c.fval);
  if (f && typeof f.fval === 'string') return Number(f.fval);
  const s = obj(c.sval);
  if (s) return typeof s.sval === 'string' ? s.sval : '';
  return undefined;
}

function typeNameOf(t: unknown): string {
  const names = Array.isArray(obj(t)?.names) ? (obj(t)?.names as unknown[]) : [];
  const last = obj(obj(names[names.length - 1])?.String)?.sval;
  return typeof last === 'string' ? last.toLowerCase() : '';
}

const COMPARE: Readonly<Record<string, (a: number | string, b: number | string) => boolean>> = {
  '=': (a, b) => a === b,
  '<>': (a, b) => a !== b,
  '!=': (a, b) => a !== b,
  '<': (a, b) => a < b,
  '>': (a, b) => a > b,
  '<=': (a, b) => a <= b,
  '>=': (a, b) => a >= b,
};

/** Two subtrees that are the same apart from where they were written. */
function sameTree(a: unknown, b: unknown): boolean {
  const strip = (v: unknown) => JSON.stringify(v, (k, x) => (k === 'location' ? undefined : x));
  return strip(a) === strip(b);
}

/** The constant value of an expression, or undefined when it is not a constant this reading folds. */
function constantOf(e: unknown): Value | undefined {
  const n = nodeOf(e);
  if (!n) return undefined;
  const [type, b] = n;
  switch (type) {
    case 'A_Const':
      return constValue(b);
    case 'TypeCast': {
      const v = constantOf(b.arg);
      const to = typeNameOf(b.typeName);
      if (to !== 'bool' && to !== 'boolean') return v;
      if (typeof v === 'string') return boolFromText(v);
      if (typeof v === 'number') return Number.isInteger(v) ? v !== 0 : undefined;
      return v;
    }
    case 'BoolExpr': {
      const args = Array.isArray(b.args) ? b.args.map(truth) : [];
      if (b.boolop === 'NOT_EXPR') {
        const a = args[0];
        return a === undefined || a === null ? a : !a;
      }
      if (b.boolop === 'AND_EXPR') {
        if (args.includes(false)) return false;
        return args.every((a) => a === true) ? true : undefined;
      }
      if (b.boolop === 'OR_EXPR') {
        if (args.includes(true)) return true;
        return args.every((a) => a === false) ? false : undefined;
      }
      return undefined;
    }
    case 'A_Expr': {
      const op = Array.isArray(b.name) && b.name.length === 1 ? obj(obj(b.name[0])?.String)?.sval : undefined;
      const compare = b.kind === 'AEXPR_OP' && typeof op === 'string' ? COMPARE[op] : undefined;
      if (!compare) return undefined;
      if (nodeOf(b.lexpr)?.[0] === 'ColumnRef' && sameTree(b.lexpr, b.rexpr)) {
        // A column against itself: true on every row where it is not null.
        return op === '=' || op === '<=' || op === '>=' ? true : op === '<' || op === '>' ? false : undefined;
      }
      const l = constantOf(b.lexpr);
      const r = constantOf(b.rexpr);
      if (l === null || r === null) return null;
      if (typeof l === 'number' && typeof r === 'number') return compare(l, r);
      // Strings only for (in)equality: their order is the collation's.
      if (typeof l === 'string' && typeof r === 'string' && (op === '=' || op === '<>' || op === '!='))
        return compare(l, r);
      return undefined;
    }
    case 'NullTest': {
      const v = constantOf(b.arg);
      if (v === undefined) return undefined;
      return b.nulltesttype === 'IS_NULL' ? v === null : v !== null;
    }
    case 'BooleanTest': {
      const v = truth(b.arg);
      if (v === undefined) return undefined;
      switch (b.booltesttype) {
        case 'IS_TRUE':
          return v === true;
        case 'IS_NOT_TRUE':
          return v !== true;
        case 'IS_FALSE':
          return v === false;
        case 'IS_NOT_FALSE':
          return v !== false;
        case 'IS_UNKNOWN':
          return v === null;
        case 'IS_NOT_UNKNOWN':
          return v !== null;
      }
      return undefined;
    }
    case 'SubLink': {
      if (b.subLinkType !== 'EXISTS_SUBLINK') return undefined;
      const s = nodeOf(b.subselect);
      if (s?.[0] !== 'SelectStmt') return undefined;
      const q = s[1];
      const plain =
        q.fromClause === undefined &&
        q.whereClause === undefined &&
        q.havingClause === undefined &&
        q.limitCount === undefined &&
        q.limitOffset === undefined &&
        q.op === 'SETOP_NONE';
      return plain && Array.isArray(q.targetList) ? true : undefined;
    }
    default:
      return undefined;
  }
}

/** An expression read as a condition: true, false, null (unknown), or undefined when not folded. */
function truth(e: unknown): boolean | null | undefined {
  const v = constantOf(e);
  if (v === null || typeof v === 'boolean') return v;
  if (typeof v === 'string') return boolFromText(v);
  return undefined;
}

/** Whether a condition holds for every row (best effort: see above). */
export function alwaysTrue(condition: unknown): boolean {
  return truth(condition) === true;
}

/** Whether a condition holds for no row: false, or unknown (null), which WHERE and ON treat as false. */
export function neverTrue(condition: unknown): boolean {
  const t = truth(condition);
  return t === false || t === null;
}
