/**
 * What keeps the guard's reading of SQL text the server's. The guard reads
 * every string as UTF-8 with standard_conforming_strings on; the session
 * forces both at start-up and ends a session whose server reports otherwise,
 * but the server reports a changed setting only at the end of a statement
 * string, and may already have read what followed it under the new one. So:
 *
 * - a statement that changes a setting that decides how text is read is
 *   unreadable (denied): SET and its stored forms (ALTER ROLE / DATABASE /
 *   SYSTEM … SET, a function's SET clause) of client_encoding other than
 *   UTF8, of standard_conforming_strings other than on, of backslash_quote
 *   on; `set_config()` of any of the three, or of a name the guard cannot
 *   read; and any statement that names `pg_settings` and writes (its update
 *   rule calls set_config, and a view or rule over it does too);
 * - as a backstop for whatever turns standard_conforming_strings off unseen:
 *   with it off, a plain `'…'` string reads as an `E'…'` one, where a
 *   backslash escapes the character after it. Only plain strings differ
 *   (`E'…'` escapes either way, dollar quotes and identifiers never, and a
 *   server with the setting off refuses `U&'…'`), and where a plain string
 *   ends differs only where an odd run of backslashes meets a quote (`'a\'`:
 *   one string to the guard, an unterminated one to the server). Such a
 *   string is unreadable, so the statements, their boundaries and their
 *   trees are the same under both readings; what still differs is a
 *   string's value (`'\x41'`: four characters, or `A`), which matters only
 *   where the guard reads a value as code or a setting — a DO block's or a
 *   function's body, SET, set_config — so there any backslash in a plain
 *   string is unreadable too (`'a\d+'` in a WHERE clause reads fine);
 * - a parse tree deeper than the guard walks is unreadable (the walks
 *   recurse; a bounded depth keeps them inside the stack).
 *
 * Pure: trees and tokens in, problems out.
 */

type Obj = Record<string, unknown>;

/** Settings that decide how the server reads SQL text, lower-case (setting names are case-insensitive). */
const READING_SETTINGS = new Set(['client_encoding', 'standard_conforming_strings', 'backslash_quote']);

/** How deep (JSON objects and arrays) a statement's tree may be: about 140 nested subqueries. */
export const MAX_TREE_DEPTH = 1000;

function constString(v: unknown): string | undefined {
  const o = typeof v === 'object' && v !== null ? (v as Obj) : undefined;
  const c = (o?.A_Const ?? o) as Obj | undefined;
  const s = (c?.sval as Obj | undefined)?.sval;
  return typeof s === 'string' ? s : undefined;
}

/**
 * Why a SET of one setting (a VariableSetStmt's body, wherever it appears)
 * would change how the server reads text, or undefined. Only a value is
 * judged: DEFAULT, RESET and FROM CURRENT return to the value the session
 * started with, which the guard set.
 */
export function settingProblem(set: Obj): string | undefined {
  if (set.kind !== 'VAR_SET_VALUE') return undefined;
  const name = typeof set.name === 'string' ? set.name.toLowerCase() : '';
  if (!READING_SETTINGS.has(name)) return undefined;
  const args = Array.isArray(set.args) ? set.args : [];
  const value = args.length === 1 ? constString(args[0])?.toLowerCase() : undefined;
  if (name === 'client_encoding' && !['utf8', 'utf-8', 'unicode'].includes(value ?? '')) {
    return 'client_encoding can only be UTF8 through the guard, which reads statements as UTF-8 the way the server then must';
  }
  if (name === 'standard_conforming_strings' && value !== 'on' && value !== 'true') {
    return 'standard_conforming_strings stays on through the guard: with it off the server reads backslashes in strings differently from the guard';
  }
  if (name === 'backslash_quote' && !['safe_encoding', 'off', 'false'].includes(value ?? '')) {
    return 'backslash_quote can only be safe_encoding or off through the guard: it decides which backslashes in strings the server accepts';
  }
  return undefined;
}

/**
 * Why a call of `set_config(name, value, is_local)` would change how the
 * server reads text, or undefined: its name is one of the reading settings
 * (whatever the value, which may be any expression), or not a constant the
 * guard can read.
 */
export function setConfigProblem(args: unknown): string | undefined {
  const first = Array.isArray(args) ? args[0] : undefined;
  const name = constString(first);
  // A backslash: the name may read otherwise to a server with standard_conforming_strings off.
  if (name === undefined || name.includes('\\')) {
    return 'set_config() is called with a setting name the guard cannot read before it runs; name the setting as a string constant';
  }
  if (READING_SETTINGS.has(name.toLowerCase())) {
    return `set_config('${name.toLowerCase()}', …) changes how the server reads the statements after it; the guard reads them as UTF-8 with standard_conforming_strings on, and denies what would change that`;
  }
  return undefined;
}

/** `set_config` named any other way than a call the guard reads (an aggregate's SFUNC, an operator's FUNCTION, …). */
export const SET_CONFIG_INDIRECT =
  'set_config() named where the guard cannot see its arguments (an aggregate, operator, cast or the like would call it with any setting name)';

/** Whether a relation name (as sql-tree writes it, parts quoted where needed) is pg_settings, in any schema. */
export function isPgSettings(name: string): boolean {
  const last = name.split('.').pop() ?? '';
  return last === 'pg_settings' || last === '"pg_settings"';
}

export const PG_SETTINGS_WRITE =
  'the statement writes and names pg_settings, whose update rule changes settings (set_config) the guard cannot see by name; change settings with SET instead';

/** A scanner token as libpg-query's `scanSync` gives it: byte offsets, and the text as written. */
export interface ScanToken {
  readonly start: number;
  readonly end: number;
  readonly text: string;
  readonly tokenName: string;
}

/**
 * Whether a token is a plain string constant (`'…'`, also after `N`) that
 * holds a backslash. `E'…'`, `U&'…'`, `B'…'`, `X'…'` and dollar-quoted
 * strings are not: their text starts otherwise.
 */
export function isPlainStringWithBackslash(t: ScanToken): boolean {
  return t.tokenName === 'SCONST' && t.text.startsWith("'") && t.text.includes('\\');
}

/** Statements whose string constants the guard reads as code (a body) or a setting's value. */
const CODE_OR_SETTING_STATEMENTS = new Set([
  'DoStmt',
  'CreateFunctionStmt',
  'AlterFunctionStmt',
  'VariableSetStmt',
  'AlterRoleSetStmt',
  'AlterDatabaseSetStmt',
  'AlterSystemStmt',
]);

/** An odd run of backslashes right before a quote (after the opening one). */
const ESCAPED_QUOTE = /(?:^|[^\\])(?:\\\\)*\\'/;

/**
 * Why one statement (of node type `type`) could be read otherwise by a
 * server with standard_conforming_strings off, from its plain strings that
 * hold a backslash (isPlainStringWithBackslash); undefined when it reads
 * the same.
 */
export function backslashProblem(strings: readonly ScanToken[], type: string): string | undefined {
  if (strings.some((t) => ESCAPED_QUOTE.test(t.text.slice(1)))) {
    return "a plain '…' string has a backslash before a quote, which ends the string elsewhere when standard_conforming_strings is off; write it as an E'…' string (backslashes doubled) or a dollar-quoted one";
  }
  if (strings.length > 0 && CODE_OR_SETTING_STATEMENTS.has(type)) {
    return "a plain '…' string holds a backslash in a statement whose strings the guard reads as code or settings, which reads differently when standard_conforming_strings is off; write it dollar-quoted or as an E'…' string";
  }
  return undefined;
}

/** Whether a tree nests deeper than `max` objects and arrays (counted without recursion). */
export function deeperThan(tree: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[tree, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    if (depth > max) return true;
    for (const x of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof x === 'object' && x !== null) stack.push([x, depth + 1]);
    }
  }
  return false;
}

export const TOO_DEEP = `the statement nests more than ${MAX_TREE_DEPTH} levels deep (subqueries, expressions); split it or flatten it`;
