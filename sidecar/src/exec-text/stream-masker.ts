/**
 * Masks secrets in a byte stream (an exec session's stdout and stderr, a
 * pod's log) before the agent or the recording sees them: PEM private keys
 * (also base64-encoded, as in a kubeconfig), JWTs, AWS access key ids and
 * (after their name) secret keys, GitHub and Slack tokens, and the exact
 * values the caller names with their base64 forms. Each match becomes
 * `[masked:<kind>]`; every other byte passes through unchanged.
 *
 * Streaming: `push(chunk)` returns the bytes that are decided, and holds back
 * only what could still be the start of a secret (at most `maxHoldBytes`,
 * 16 KiB by default). The output does not depend on how the stream was cut:
 * every decision is made on the same bytes whatever the chunk boundaries.
 * With `eager` (a terminal echoing typed keys), push() also shows at once the
 * held bytes that are no part of any possible secret — the public start of a
 * pattern, as `idle()` does — so output differs from an uninterrupted run by
 * those public bytes only, and a byte that may be part of a value is still held.
 * A private key is replaced from its BEGIN line as soon as that line is
 * complete, and its body is swallowed as it arrives, so a key of any size
 * costs no hold-back and a block that never ends never shows key material.
 *
 * Speed: one pass of a regular expression of trigger texts (`eyJ`,
 * `-----BEGIN `, `AKIA` …) over each chunk finds where a detector has to
 * look; the bytes in between are not examined again. Held-back bytes are
 * re-read only at the position where they are held.
 *
 * Output chunks end on a UTF-8 character boundary: up to three bytes of a
 * character cut by the chunk are carried to the next output.
 */
import { LiteralSet, TRIGGER_BYTES } from './literal-values.ts';
import {
  awsAccessKeyId,
  awsSecretAccessKey,
  B64,
  FIXED_TRIGGER_MAX,
  FIXED_TRIGGERS,
  githubToken,
  jwt,
  MASK_KINDS,
  MATCH,
  type MaskKind,
  MORE,
  PEM_BODY,
  pemBase64,
  pemLine,
  type Swallow,
  slackToken,
  VERDICT_NO,
  type Verdict,
} from './value-detectors.ts';

export type { MaskKind } from './value-detectors.ts';

export interface StreamMaskerOptions {
  /**
   * Exact values to mask (the values of the Secrets a rule names), as text
   * (UTF-8) or bytes. Their base64 and base64url forms are masked too.
   * Values shorter than 6 bytes are ignored (see `ignoredValues`).
   */
  readonly values?: readonly (string | Uint8Array)[];
  /** The most bytes held back while a match is undecided (default 16 KiB, at least 1 KiB). */
  readonly maxHoldBytes?: number;
  /**
   * Show held bytes that cannot be part of a secret at once, on every push
   * (what `idle()` shows), instead of waiting for the caller's pause.
   */
  readonly eager?: boolean;
}

export const DEFAULT_MAX_HOLD_BYTES = 16 * 1024;
const MIN_MAX_HOLD_BYTES = 1024;

const EMPTY = Buffer.alloc(0);
const MARKERS = Object.fromEntries(MASK_KINDS.map((k) => [k, Buffer.from(`[masked:${k}]`)])) as Record<
  MaskKind,
  Buffer
>;

const D_PEM = 1;
const D_JWT = 2;
const D_AWS_ID = 4;
const D_GITHUB = 8;
const D_SLACK = 16;
const D_AWS_SECRET = 32;
const D_LITERAL = 64;
const D_PEM_BASE64 = 128;
const FIXED_DISPATCH: readonly [string, number][] = [
  ['-', D_PEM],
  ['L', D_PEM_BASE64],
  ['e', D_JWT],
  ['A', D_AWS_ID],
  ['g', D_GITHUB],
  ['x', D_SLACK],
  ['s', D_AWS_SECRET],
  ['S', D_AWS_SECRET],
];

/** How many of the last bytes of `buf` are an incomplete UTF-8 character. */
function cutCharacter(buf: Buffer): number {
  const n = buf.length;
  for (let k = 1; k <= Math.min(3, n); k++) {
    const c = buf[n - k] as number;
    if ((c & 0xc0) === 0x80) continue;
    if (c < 0xc0) return 0;
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    return need > k ? k : 0;
  }
  return 0;
}

function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

export class StreamMasker {
  readonly #cap: number;
  readonly #literals: LiteralSet;
  /** Per first byte: which detectors may start there (D_* bits). */
  readonly #dispatch = new Uint8Array(256);
  readonly #triggers: RegExp;
  /** A trigger that starts this close to the end of the bytes may be cut: those positions are checked one by one. */
  readonly #tail: number;
  readonly #eager: boolean;
  readonly #counts = Object.fromEntries(MASK_KINDS.map((k) => [k, 0])) as Record<MaskKind, number>;
  /** Bytes not yet decided; they start where a secret may start. */
  #pending: Buffer = EMPTY;
  /** How many leading bytes of #pending idle() already released. */
  #shown = 0;
  /** Decided bytes of a character cut at the end of the last output. */
  #carry: Buffer = EMPTY;
  /** After a match: what still belongs to it. */
  #swallow: Swallow | undefined;
  /** Stream offset of #pending[0]. */
  #base = 0;
  /** Stream offset before which no JWT can start (see jwt()). */
  #jwtSkip = 0;
  #ended = false;

  constructor(options: StreamMaskerOptions = {}) {
    this.#cap = Math.max(MIN_MAX_HOLD_BYTES, options.maxHoldBytes ?? DEFAULT_MAX_HOLD_BYTES);
    this.#literals = new LiteralSet(options.values ?? []);
    for (let c = 0; c < 256; c++) {
      let bits = this.#literals.starts(c) ? D_LITERAL : 0;
      for (const [ch, bit] of FIXED_DISPATCH) if (ch.charCodeAt(0) === c) bits |= bit;
      this.#dispatch[c] = bits;
    }
    this.#triggers = new RegExp([...FIXED_TRIGGERS, ...this.#literals.triggers].join('|'), 'g');
    this.#tail = Math.max(FIXED_TRIGGER_MAX, TRIGGER_BYTES) - 1;
    this.#eager = options.eager === true;
  }

  /** Matches replaced so far, by kind (for the audit). */
  get masked(): Readonly<Record<MaskKind, number>> {
    return { ...this.#counts };
  }

  /** How many of the given values were too short to be masked. */
  get ignoredValues(): number {
    return this.#literals.ignored;
  }

  /** Bytes currently held back (for metrics and tests). */
  get held(): number {
    return this.#pending.length - this.#shown + this.#carry.length;
  }

  /**
   * The bytes of `chunk` (after any held back before) that are decided, with
   * secrets replaced. The result may share memory with `chunk`, and is `chunk` itself when all of it is decided and unchanged.
   */
  push(chunk: Uint8Array): Buffer {
    if (this.#ended) throw new Error('StreamMasker: push() after end()');
    if (chunk.length === 0) return EMPTY;
    const c = asBuffer(chunk);
    const data = this.#pending.length > 0 ? Buffer.concat([this.#pending, c]) : c;
    const out: Buffer[] = [];
    if (this.#carry.length > 0) out.push(this.#carry);
    this.#run(data, false, out);
    return this.#finish(out, true);
  }

  /**
   * The stream has ended: everything held is decided and returned. push()
   * may not be called after this.
   */
  end(): Buffer {
    if (this.#ended) return EMPTY;
    this.#ended = true;
    const out: Buffer[] = [this.#carry];
    if (this.#pending.length > 0) this.#run(this.#pending, true, out);
    this.#pending = EMPTY;
    this.#swallow = undefined;
    return this.#finish(out, false);
  }

  /**
   * Nothing has arrived for a while (the caller's timer, e.g. 20 ms in a TTY
   * session, where a typed key is echoed alone): returns the held bytes that
   * are not part of any possible secret — a cut character, the public start
   * of a pattern (`e` of `eyJ`, `gh`, `-----BEG`). Bytes that may be part of
   * a value stay held. Afterwards a match that completes is replaced from
   * where the released bytes end, so the output may differ from an
   * uninterrupted run by those public bytes only.
   */
  idle(): Buffer {
    if (this.#ended) return EMPTY;
    const out: Buffer[] = [this.#carry];
    if (!this.#swallow) {
      const p = this.#pending;
      const limit = this.#publicEnd(p, 0, p.length);
      if (limit > this.#shown) {
        out.push(p.subarray(this.#shown, limit));
        this.#shown = limit;
      }
    }
    return this.#finish(out, false);
  }

  /**
   * Where the bytes from `at` (a held position) stop being public: before the
   * first byte that any candidate starting in them may count as its secret.
   * The candidate at `at` bounds the loop by its public length, so this looks
   * at a few bytes only.
   */
  #publicEnd(data: Buffer, at: number, end: number): number {
    let limit = end;
    for (let j = at; j < limit; j++) {
      const v = this.#decide(data, j, end, false);
      if (v.t === MORE) limit = Math.min(limit, j + v.pub);
      else if (v.t === MATCH) limit = Math.min(limit, j + v.keep);
    }
    return limit;
  }

  #finish(out: Buffer[], holdCutCharacter: boolean): Buffer {
    let result = out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
    this.#carry = EMPTY;
    if (holdCutCharacter) {
      const k = cutCharacter(result);
      if (k > 0) {
        this.#carry = Buffer.from(result.subarray(result.length - k));
        result = result.subarray(0, result.length - k);
      }
    }
    return result;
  }

  /** Decides what it can of `data` (#pending followed by new bytes), appending the output to `out`. */
  #run(data: Buffer, final: boolean, out: Buffer[]): void {
    const end = data.length;
    const shown = this.#shown;
    // Plain bytes are emitted in runs, cut only at matches: a chunk without secrets is returned as it is.
    let from = 0;
    const flush = (to: number): void => {
      const a = Math.max(from, shown);
      // The whole chunk decided at once is returned as the same object (the caller may pass it on as it came).
      if (to > a) out.push(a === 0 && to === end ? data : data.subarray(a, to));
      from = to;
    };
    // Held bytes start at a possible match: look there first, without a scan.
    let heldAt0 = this.#pending.length > 0 && !this.#swallow;
    let text = '';
    let textFrom = -1;
    let pos = 0;
    let hold = end;
    while (pos < end) {
      if (this.#swallow) {
        const r = this.#swallowFrom(this.#swallow, data, pos, end, final);
        if (r < 0) {
          hold = -r - 1;
          from = hold;
          break;
        }
        pos = from = r;
        continue;
      }
      let i: number;
      if (heldAt0) {
        i = 0;
        heldAt0 = false;
      } else {
        if (textFrom < 0) {
          textFrom = pos;
          text = data.toString('latin1', pos, end);
        }
        i = this.#next(data, pos, end, text, textFrom);
      }
      if (i === end) break;
      const v = this.#decide(data, i, end, final);
      if (v.t === MORE) {
        hold = i;
        break;
      }
      if (v.t === MATCH) {
        flush(i + v.keep);
        out.push(MARKERS[v.kind]);
        this.#counts[v.kind]++;
        pos = from = i + v.len;
        this.#swallow = v.swallow;
      } else {
        if (v.until !== undefined) this.#jwtSkip = this.#base + v.until;
        pos = i + 1;
      }
    }
    // Eager: the public start of what is held goes out now (see idle()).
    const shownTo =
      this.#eager && !final && hold < end && !this.#swallow ? this.#publicEnd(data, hold, end) : hold;
    flush(shownTo);
    this.#pending = hold < end ? Buffer.from(data.subarray(hold)) : EMPTY;
    this.#shown = Math.max(0, shown - hold, shownTo - hold);
    this.#base += hold;
  }

  /** The next position at or after `pos` where a detector may start. */
  #next(data: Buffer, pos: number, end: number, text: string, textFrom: number): number {
    const re = this.#triggers;
    re.lastIndex = pos - textFrom;
    const m = re.exec(text);
    const found = m ? m.index + textFrom : end;
    // A trigger cut by the end of the bytes is not found by the expression.
    for (let j = Math.max(pos, end - this.#tail); j < found; j++) {
      if (this.#dispatch[data[j] as number]) return j;
    }
    return found;
  }

  /**
   * Every detector that may start at `i`: MORE if one still waits, else the
   * longest match, else NO.
   */
  #decide(data: Buffer, i: number, end: number, final: boolean): Verdict {
    const bits = this.#dispatch[data[i] as number] as number;
    if (bits === 0) return VERDICT_NO;
    const verdicts: Verdict[] = [];
    if (bits & D_PEM) verdicts.push(pemLine(data, i, end, final, true));
    if (bits & D_PEM_BASE64) verdicts.push(pemBase64(data, i, end, final));
    if (bits & D_JWT && this.#base + i >= this.#jwtSkip) verdicts.push(jwt(data, i, end, final, this.#cap));
    if (bits & D_AWS_ID) verdicts.push(awsAccessKeyId(data, i, end, final));
    if (bits & D_GITHUB) verdicts.push(githubToken(data, i, end, final));
    if (bits & D_SLACK) verdicts.push(slackToken(data, i, end, final));
    if (bits & D_AWS_SECRET) verdicts.push(awsSecretAccessKey(data, i, end, final));
    if (bits & D_LITERAL) verdicts.push(this.#literals.at(data, i, end, final));
    let pub = Number.POSITIVE_INFINITY;
    let waiting = false;
    let best: Verdict | undefined;
    let no: Verdict = VERDICT_NO;
    for (const v of verdicts) {
      if (v.t === MORE) {
        waiting = true;
        pub = Math.min(pub, v.pub);
      } else if (v.t === MATCH) {
        if (!best || (best.t === MATCH && v.len > best.len)) best = v;
        pub = Math.min(pub, v.keep);
      } else if (v.until !== undefined) no = v;
    }
    if (waiting) return { t: MORE, pub };
    return best ?? no;
  }

  /**
   * Swallows the rest of a match from `pos`. Returns where normal scanning
   * resumes (clearing #swallow when the match has ended before `end`), or
   * -(p + 1) to hold from p (a PEM END line cut by the end of the bytes).
   */
  #swallowFrom(s: Swallow, data: Buffer, pos: number, end: number, final: boolean): number {
    let p = pos;
    if (s.t === 'run') {
      const t = s.table;
      while (p < end && t[data[p] as number]) p++;
    } else if (s.t === 'base64') {
      while (p < end) {
        const c = data[p] as number;
        if (B64[c]) s.line++;
        else if (c === 0x0a && (s.line === 64 || s.line === 76)) s.line = 0;
        else if (c !== 0x0d || (s.line !== 64 && s.line !== 76)) break;
        p++;
      }
    } else if (s.t === 'follow') {
      while (p < end) {
        const c = data[p];
        const off = s.off;
        const next = s.forms.filter((f) => off < f.length && f[off] === c);
        if (next.length === 0) break;
        s.forms = next;
        s.off++;
        p++;
      }
    } else {
      while (p < end) {
        const c = data[p] as number;
        if (c === 0x2d) {
          const v = pemLine(data, p, end, final, false);
          if (v.t === MATCH) {
            this.#swallow = undefined;
            return p + v.len;
          }
          if (v.t === MORE) return -(p + 1);
        } else if (!PEM_BODY[c]) break;
        p++;
      }
    }
    if (p < end) this.#swallow = undefined;
    return p;
  }
}
