/**
 * When two query strings differ only in the values of their literals
 * (`… WHERE aid = 123`, `… WHERE aid = 456`), the guard may reuse the first
 * one's classification for the second instead of parsing it again — but only
 * where that is provably the same judgement. This file holds both halves of
 * that argument:
 *
 * 1. `literalShapeKey`: the key. It is built from the scanner's tokens (the
 *    real PostgreSQL scanner, the same one the parser reads): every token
 *    verbatim except constants, which become their token type (ICONST,
 *    FCONST, SCONST, …), each token kept apart from the next, then the
 *    string's redaction (the audit text, every constant as `$n`). Two strings
 *    with the same key have the same token sequence, constant types included,
 *    apart from the constants' values (comments and the amount of white space
 *    between tokens aside, which the grammar never sees), and the same
 *    redaction. The redaction alone would not do: it collapses white space
 *    inside a token too, and `"a  b"` and `"a b"` name different tables. The
 *    grammar chooses its productions by token type, so their parse trees have
 *    the same shape; a constant's value only lands in a leaf, unless a grammar
 *    action looks at it (FLOAT(p), a minus folded into a number, UESCAPE, …),
 *    which `literalsInert` refuses.
 *    A string with a plain '…' string holding a backslash has no key: how it
 *    reads depends on its value (sql-reading.ts). Nor has one with a `U&'…'`
 *    string: the parser, not the scanner, reads its escapes, and refuses a
 *    string whose escapes are invalid.
 *
 * 2. `literalsInert`: whether a classified string's literals could not have
 *    decided anything. It holds when the string is one statement and every
 *    constant token became exactly one A_Const node, at that token's place,
 *    that is an operand of a comparison (`=`, `<>`, `!=`, `<`, `>`, `<=`,
 *    `>=`) whose other operand is a column reference. Nothing the classifier
 *    reads looks at a value there: the tree readers (sql-tree.ts,
 *    mask-facts.ts) walk an A_Const without reading it, a column can be
 *    compared with any value (sql-condition.ts folds only constants compared
 *    with constants, and a column with itself), and the string readers
 *    (sql-reading.ts) read constants only as SET values and set_config
 *    arguments. Any other place a constant can go (a function argument, a
 *    cast, LIMIT, ORDER BY 1, a code body, an option, a setting) makes the
 *    string uncached by shape: it is parsed every time, as before.
 *
 * So a string whose key matches a cached one that passed `literalsInert` is
 * classified as that one was; its redacted text and fingerprint are the same
 * by construction (both are made from the same tokens with literals replaced).
 */
import { isPlainStringWithBackslash, type ScanToken } from './sql-reading.ts';

const CONSTANT_TOKENS = new Set(['SCONST', 'USCONST', 'BCONST', 'XCONST', 'ICONST', 'FCONST']);
const COMMENT_TOKENS = new Set(['SQL_COMMENT', 'C_COMMENT']);
const COMPARISONS = new Set(['=', '<>', '!=', '<', '>', '<=', '>=']);
/** Keys longer than this are not kept (a key holds the string's tokens and its redaction). */
const MAX_KEY_LENGTH = 8192;

type Obj = Record<string, unknown>;

/** Whether a token is a comment (SQL_COMMENT or C_COMMENT). */
export function isCommentToken(t: ScanToken): boolean {
  return COMMENT_TOKENS.has(t.tokenName);
}

/** Whether a token is a literal constant (the scanner names some UNKNOWN: B'…', X'…', U&'…'). */
export function isConstantToken(t: ScanToken): boolean {
  return (
    CONSTANT_TOKENS.has(t.tokenName) || /^(?:[BbXxEeNn]'|[Uu]&'|')/.test(t.text) || /^\$[^0-9]/.test(t.text)
  );
}

/**
 * The key statements that differ only in literal values share (see above),
 * from the string's tokens and its redaction (every constant as `$n`);
 * undefined when the string has no literal to vary or must not be keyed.
 */
export function literalShapeKey(tokens: readonly ScanToken[], redacted: string): string | undefined {
  const parts: string[] = [];
  let constants = 0;
  let length = redacted.length;
  for (const t of tokens) {
    if (isPlainStringWithBackslash(t) || /^[Uu]&'/.test(t.text)) return undefined;
    if (isCommentToken(t)) continue;
    // A constant is its type; any other token is itself, whole (a quoted name's white space included).
    const part = isConstantToken(t) ? `\u0001${t.tokenName}` : t.text;
    if (isConstantToken(t)) constants++;
    length += part.length + 1;
    if (part.includes('\u0000') || length > MAX_KEY_LENGTH) return undefined;
    parts.push(part);
  }
  if (constants === 0) return undefined;
  return `${parts.join('\u0000')}\u0000\u0000${redacted}`;
}

function obj(v: unknown): Obj | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}

/** An A_Const that carries a value from a constant token (not TRUE, FALSE or NULL, which are keywords). */
function valueConst(v: unknown): Obj | undefined {
  const c = obj(obj(v)?.A_Const);
  if (!c) return undefined;
  return 'ival' in c || 'fval' in c || 'sval' in c || 'bsval' in c ? c : undefined;
}

/** The A_Const operands of a comparison with a column reference on the other side. */
function comparedWithColumn(expr: Obj, inert: Set<Obj>): void {
  if (expr.kind !== 'AEXPR_OP' || !Array.isArray(expr.name) || expr.name.length !== 1) return;
  const op = obj(obj(expr.name[0])?.String)?.sval;
  if (typeof op !== 'string' || !COMPARISONS.has(op)) return;
  const isColumn = (v: unknown) => obj(v)?.ColumnRef !== undefined;
  const l = valueConst(expr.lexpr);
  const r = valueConst(expr.rexpr);
  if (l && isColumn(expr.rexpr)) inert.add(l);
  if (r && isColumn(expr.lexpr)) inert.add(r);
}

/**
 * Whether a parsed string's literals decided nothing (see above): `stmts` is
 * its parse tree's statement list, `tokens` its scanner tokens.
 */
export function literalsInert(stmts: readonly unknown[], tokens: readonly ScanToken[]): boolean {
  if (stmts.length !== 1) return false;
  const starts = new Set(tokens.filter(isConstantToken).map((t) => t.start));
  const inert = new Set<Obj>();
  const seen = new Set<number>();
  let ok = true;
  const stack: unknown[] = [stmts[0]];
  while (ok && stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      stack.push(...v);
      continue;
    }
    const o = obj(v);
    if (!o) continue;
    const e = obj(o.A_Expr);
    if (e) comparedWithColumn(e, inert);
    const c = valueConst(o);
    if (c) {
      const at = typeof c.location === 'number' ? c.location : 0;
      // Each constant token became this one A_Const, in a place where its value is not read.
      if (!inert.has(c) || !starts.has(at) || seen.has(at)) ok = false;
      seen.add(at);
      continue;
    }
    for (const x of Object.values(o)) if (typeof x === 'object' && x !== null) stack.push(x);
  }
  return ok && seen.size === starts.size;
}

/** Integer literals longer than this are not templated (ten digits may not fit int4, and scan as FCONST). */
const MAX_TEMPLATED_DIGITS = 9;

/**
 * A cheaper key for the commonest case, statements that differ only in
 * integer literals, found without the scanner: the text with every run of
 * ASCII digits replaced by NUL (which a query string cannot hold: the
 * protocol ends it with one). Undefined when the text has no digit, a NUL,
 * or a run longer than MAX_TEMPLATED_DIGITS.
 *
 * It is sound for a string classified under it only when every digit run of
 * that string was exactly one integer constant (ICONST) to the scanner
 * (`digitRunsAreIntegers`): then a string with the same template has the same
 * characters everywhere but in those runs, and PostgreSQL's scanner reads it
 * the same way up to each run (the characters before it are the same and end
 * a token there, since in the first string the run began one); a run of
 * digits followed by the same character is one ICONST again (what follows
 * could only extend it as `0x…`, `1_0`, `1.5`, `1e5` or trailing junk, and
 * then the first string's run would not have been exactly an ICONST either),
 * and the scanner reads on from the same character in the same state. So
 * both strings have the same tokens apart from integer values, the same
 * literal-shape key, and the first one's classification, kept only when its
 * literals are inert (`literalsInert`), is the second one's.
 */
export function digitTemplate(text: string): string | undefined {
  let runs = 0;
  let ok = true;
  const template = text.replace(/[0-9]+/g, (run) => {
    runs++;
    if (run.length > MAX_TEMPLATED_DIGITS) ok = false;
    return '\u0000';
  });
  if (!ok || runs === 0 || text.includes('\u0000')) return undefined;
  return template;
}

/** Whether every run of ASCII digits in `bytes` (UTF-8) is exactly one ICONST token (see digitTemplate). */
export function digitRunsAreIntegers(bytes: Buffer, tokens: readonly ScanToken[]): boolean {
  const integers = new Map<number, number>();
  for (const t of tokens) if (t.tokenName === 'ICONST') integers.set(t.start, t.end);
  const isDigit = (b: number | undefined) => b !== undefined && b >= 0x30 && b <= 0x39;
  for (let i = 0; i < bytes.length; i++) {
    if (!isDigit(bytes[i])) continue;
    let end = i;
    while (isDigit(bytes[end])) end++;
    if (integers.get(i) !== end || end - i > MAX_TEMPLATED_DIGITS) return false;
    i = end;
  }
  return true;
}
