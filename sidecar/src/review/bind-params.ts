/**
 * What an approver reads of a Bind's parameter values (HeldAction `params`):
 * one line each, `$n`, its declared type OID (0: the server infers it), its
 * format and length, and its value only when it is text, short
 * (SHOWN_VALUE_CHARS at most), printable, and no built-in credential
 * detector matches it. Short values are what an approver needs to tell
 * `role = 'viewer'` from `role = 'superuser'`; long, binary or detected ones
 * may hold anything, so their length is all that is shown (the digest still
 * pins their bytes).
 *
 * `bindDigestParts` is what a Bind's digest (action-digest.ts) pins beyond
 * the statement: the Parse's declared types, the formats and the values,
 * exactly as sent — the same bytes read as int4 or as text are different
 * actions, so an approval or grant of one never covers the other.
 */
import { maskDetected } from './detected-secrets.ts';

export const SHOWN_VALUE_CHARS = 64;

export interface BindValues {
  readonly params: readonly (Buffer | null)[];
  /** As in the Bind: none (all text), one (for all), or one per parameter. */
  readonly formats: readonly number[];
  /** The Parse's declared type OIDs (missing or 0: unspecified). */
  readonly types: readonly number[];
}

export function formatOf(formats: readonly number[], i: number): 'text' | 'binary' {
  const f = formats.length === 0 ? 0 : formats.length === 1 ? formats[0] : formats[i];
  return f === 1 ? 'binary' : 'text';
}

export function describeParams(b: BindValues): string[] {
  return b.params.map((p, i) => {
    const head = `$${i + 1} type ${b.types[i] ?? 0}`;
    if (p === null) return `${head} NULL`;
    const format = formatOf(b.formats, i);
    const what = `${head} ${format} ${p.length} bytes`;
    if (format === 'binary') return what;
    const value = p.toString('utf8');
    const printable = !/[\p{Cc}\u202a-\u202e\u2066-\u2069\uFFFD]/u.test(value);
    if (value.length > SHOWN_VALUE_CHARS || !printable || maskDetected(value).masked > 0)
      return `${what} (value not shown)`;
    return `${what}: ${JSON.stringify(value)}`;
  });
}

/** The parts of a Bind's digest after the statement's own: declared types, formats, then each value (or NULL). */
export function bindDigestParts(b: BindValues): (string | Uint8Array)[] {
  return [
    'bind',
    `types ${b.types.join(',')}`,
    `formats ${b.formats.join(',')}`,
    String(b.params.length),
    ...b.params.flatMap((p) => (p === null ? ['null', ''] : ['value', p])),
  ];
}
