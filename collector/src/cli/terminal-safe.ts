/**
 * What the operator verbs print is shown, never interpreted. Events, alerts
 * and verify reports carry text chosen by the agent (request URIs, exec
 * command lines, SQL, pod names, error messages); a terminal reading an
 * ESC, a C1 control such as CSI (U+009B) or a carriage return in it would
 * let the agent rewrite the screen: hide lines, fake a verdict, set the
 * window title. So:
 *
 *  - text lines (table, tail, alerts, verify, replay): every C0 control,
 *    DEL and C1 control becomes `\xNN`, and the characters that reorder or
 *    split lines (bidirectional overrides and isolates, U+2028/U+2029)
 *    become `\u{NNNN}`;
 *  - JSON and JSONL: the same characters as JSON `\uNNNN` escapes, so the
 *    output is still the same JSON value (JSON.stringify already escapes
 *    C0, not DEL, C1 or the others).
 */

/** C0, DEL, C1, and the bidi/line-separator characters that change how a line reads. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this matches
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/g;
/** The same, less C0: JSON.stringify escapes C0 in strings, and its own line breaks are layout. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/g;

function hex(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u{${code.toString(16).padStart(4, '0')}}`;
}

/** A line of text safe to print to a terminal: control characters shown as `\xNN`. */
export function visible(text: string): string {
  return text.replace(UNSAFE, hex);
}

/** JSON.stringify whose output has no character a terminal would act on (still the same JSON value). */
export function safeJson(value: unknown, indent?: number): string {
  return (JSON.stringify(value, null, indent) ?? 'null').replace(
    UNSAFE_IN_JSON,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
