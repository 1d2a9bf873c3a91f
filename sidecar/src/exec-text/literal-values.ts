/**
 * Exact values the caller names (the values of the Secrets a rule names) and
 * the forms they are printed in: the bytes themselves, their base64 and
 * base64url encodings (`kubectl get secret -o yaml` prints `data` values that
 * way), and the part of those encodings that is the same wherever the value
 * sits inside a longer base64 text (a password inside a base64
 * `.dockerconfigjson`): a value starting at byte offset 0, 1 or 2 of a 3-byte
 * group gives three encodings, and the characters that depend on the value
 * alone are masked.
 */
import { MATCH, MORE, VERDICT_NO, type Verdict } from './value-detectors.ts';

/** Values shorter than this are not masked: a short value ("true", "1") would mask ordinary output. */
export const MIN_VALUE_BYTES = 6;
/** Forms (encodings) shorter than this are dropped. */
const MIN_FORM_BYTES = 6;
/**
 * A value longer than this is recognised by its first CONFIRM_BYTES bytes;
 * the rest is swallowed while the stream keeps following it. This bounds
 * both the bytes held back and the work per position.
 */
export const CONFIRM_BYTES = 256;
/** The longest literal text put in the trigger expression. */
export const TRIGGER_BYTES = 16;

/** The characters of `value`'s encoding that do not depend on the bytes around it. */
function innerForms(value: Buffer, alphabet: 'base64' | 'base64url'): string[] {
  const out: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const enc = Buffer.concat([Buffer.alloc(offset), value]).toString(alphabet);
    const from = Math.ceil((8 * offset) / 6);
    const to = Math.floor((8 * (offset + value.length)) / 6);
    out.push(enc.slice(from, to));
  }
  out.push(value.toString(alphabet));
  return out;
}

export function valueForms(value: Buffer): Buffer[] {
  const forms = new Map<string, Buffer>();
  forms.set(value.toString('latin1'), value);
  for (const alphabet of ['base64', 'base64url'] as const) {
    for (const s of innerForms(value, alphabet)) {
      if (s.length >= MIN_FORM_BYTES && !forms.has(s)) forms.set(s, Buffer.from(s, 'latin1'));
    }
  }
  return [...forms.values()];
}

function escapeLatin1(bytes: Buffer): string {
  let s = '';
  for (const c of bytes) {
    const ch = String.fromCharCode(c);
    s += /[A-Za-z0-9]/.test(ch) ? ch : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return s;
}

/** Every form of every value, indexed by first byte. */
export class LiteralSet {
  readonly #byFirst: (Buffer[] | undefined)[] = new Array(256);
  /** Regular-expression source for the start of each form (latin1). */
  readonly triggers: string[] = [];
  /** How many values were too short to mask. */
  readonly ignored: number;

  constructor(values: readonly (string | Uint8Array)[]) {
    let ignored = 0;
    const seen = new Set<string>();
    const triggers = new Set<string>();
    for (const v of values) {
      const value = typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v);
      if (value.length < MIN_VALUE_BYTES) {
        ignored++;
        continue;
      }
      for (const form of valueForms(value)) {
        const key = form.toString('latin1');
        if (seen.has(key)) continue;
        seen.add(key);
        const first = form[0] as number;
        const list = this.#byFirst[first] ?? [];
        list.push(form);
        this.#byFirst[first] = list;
        triggers.add(escapeLatin1(form.subarray(0, TRIGGER_BYTES)));
      }
    }
    this.ignored = ignored;
    this.triggers = [...triggers];
  }

  /** Whether any form starts with byte `c`. */
  starts(c: number): boolean {
    return this.#byFirst[c] !== undefined;
  }

  /**
   * The longest form at `i` (up to CONFIRM_BYTES of it); MORE while a form
   * agrees with every byte there is and could still match.
   */
  at(b: Uint8Array, i: number, end: number, final: boolean): Verdict {
    const forms = this.#byFirst[b[i] as number];
    if (!forms) return VERDICT_NO;
    let best: Buffer | undefined;
    let waiting = false;
    for (const form of forms) {
      const need = Math.min(form.length, CONFIRM_BYTES);
      const n = Math.min(need, end - i);
      let k = 1;
      while (k < n && b[i + k] === form[k]) k++;
      if (k < n) continue;
      if (n < need) {
        waiting = true;
        continue;
      }
      if (!best || form.length > best.length) best = form;
    }
    if (waiting && !final) return { t: MORE, pub: 0 };
    if (!best) return VERDICT_NO;
    if (best.length <= CONFIRM_BYTES) return { t: MATCH, keep: 0, len: best.length, kind: 'secret' };
    // A long value: swallow while the stream follows any long form that agreed so far.
    const follow = forms.filter(
      (f) => f.length > CONFIRM_BYTES && f.subarray(0, CONFIRM_BYTES).equals(best.subarray(0, CONFIRM_BYTES)),
    );
    return {
      t: MATCH,
      keep: 0,
      len: CONFIRM_BYTES,
      kind: 'secret',
      swallow: { t: 'follow', forms: follow, off: CONFIRM_BYTES },
    };
  }
}
