/**
 * Text chosen by an agent (request URIs, command lines, SQL, pod names,
 * messages) is shown, never interpreted: by a terminal (cli/terminal-safe.ts)
 * and by the approvals page (console/page/format.ts). One character class for
 * both: C0 controls, DEL, C1 controls (a terminal acts on them), the
 * characters that reorder or split a line (bidirectional overrides, embeddings
 * and isolates, marks, U+2028/U+2029: a command can be made to read like a
 * comment) and the invisible ones (zero-width space/joiners, word joiner and
 * invisible operators, BOM). Each becomes `\xNN` or `\u{NNNN}`.
 *
 * Pure, no Node API: the page's bundle imports it.
 */

/** The unsafe characters other than C0, as a character class body (no brackets). */
export const UNSAFE_BEYOND_C0 =
  '\\u007f-\\u009f\\u061c\\u200b-\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff';
/** The characters `visible()` replaces, as a character class body (no brackets). */
export const UNSAFE_CLASS = `\\u0000-\\u001f${UNSAFE_BEYOND_C0}`;

const UNSAFE = new RegExp(`[${UNSAFE_CLASS}]`, 'g');
const HAS_UNSAFE = new RegExp(`[${UNSAFE_CLASS}]`);

function hex(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u{${code.toString(16).padStart(4, '0')}}`;
}

/** The text with every unsafe character written out as `\xNN` / `\u{NNNN}`. */
export function visible(text: string): string {
  return text.replace(UNSAFE, hex);
}

/** True when `visible(text)` would change something. */
export function hasUnsafe(text: string): boolean {
  return HAS_UNSAFE.test(text);
}
