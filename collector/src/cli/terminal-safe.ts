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
 *    split lines (bidirectional overrides and isolates, U+2028/U+2029) or
 *    hide (zero-width) become `\u{NNNN}` (text/visible-text.ts, shared with
 *    the approvals page);
 *  - JSON and JSONL: the same characters as JSON `\uNNNN` escapes, so the
 *    output is still the same JSON value (JSON.stringify already escapes
 *    C0, not DEL, C1 or the others).
 */

import { UNSAFE_BEYOND_C0, visible } from '../text/visible-text.ts';

export { visible };

/** The shared class less C0: JSON.stringify escapes C0 in strings, and its own line breaks are layout. */
const UNSAFE_IN_JSON = new RegExp(`[${UNSAFE_BEYOND_C0}]`, 'g');

/** JSON.stringify whose output has no character a terminal would act on (still the same JSON value). */
export function safeJson(value: unknown, indent?: number): string {
  return (JSON.stringify(value, null, indent) ?? 'null').replace(
    UNSAFE_IN_JSON,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
