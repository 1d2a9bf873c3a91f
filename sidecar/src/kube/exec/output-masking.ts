/**
 * The output filter that masks secrets in a session's stdout and stderr: one
 * StreamMasker per stream (exec-text/), so a value split across frames is
 * still found. The session records what this returns, so the recording holds
 * the masked output too.
 *
 * A masker holds back the bytes that may start a secret until more arrive.
 * A TTY echoes one typed key at a time, so the maskers are eager: a chunk's
 * bytes that cannot be part of any secret the masker knows (a lone `e`, the
 * `eyJ` of a JWT, `ghp_`) go out with the chunk itself, and only a byte that
 * may be part of a secret is held (the start of a value a mask rule names,
 * the body after `AKIA`). Held bytes go out as soon as the next bytes decide
 * them. After `idleMs` without output, a UTF-8 character cut by the end of a
 * chunk goes out on its own through the `emit` the session gives `start`.
 */
import { type MaskKind, StreamMasker } from '../../exec-text/index.ts';
import type { OutputFilter, OutputStream } from './session-hooks.ts';

export interface OutputMaskingOptions {
  /** Exact values to mask besides the built-in detectors (the values of the Secrets a rule names). */
  readonly values?: readonly (string | Uint8Array)[];
  /** How long output may pause before a held cut character goes out (default 20 ms). */
  readonly idleMs?: number;
  /** Told of every value masked, as it is. */
  readonly onMasked?: (kind: MaskKind, count: number) => void;
}

export const DEFAULT_IDLE_MS = 20;

interface Stream {
  readonly masker: StreamMasker;
  readonly counts: Map<MaskKind, number>;
  timer?: NodeJS.Timeout;
  ended: boolean;
}

export class OutputMasking implements OutputFilter {
  readonly #o: OutputMaskingOptions;
  readonly #streams = new Map<OutputStream, Stream>();
  #emit: ((stream: OutputStream, data: Buffer) => void) | undefined;

  constructor(o: OutputMaskingOptions = {}) {
    this.#o = o;
  }

  start(emit: (stream: OutputStream, data: Buffer) => void): void {
    this.#emit = emit;
  }

  push(stream: OutputStream, chunk: Buffer): Buffer {
    const s = this.#stream(stream);
    if (s.ended) return chunk;
    const out = s.masker.push(chunk);
    this.#count(s);
    this.#arm(stream, s);
    return out;
  }

  end(stream: OutputStream): Buffer {
    const s = this.#stream(stream);
    if (s.ended) return Buffer.alloc(0);
    s.ended = true;
    if (s.timer) clearTimeout(s.timer);
    const out = s.masker.end();
    this.#count(s);
    return out;
  }

  /** Values masked so far, both streams. */
  get masked(): number {
    let n = 0;
    for (const s of this.#streams.values()) for (const c of s.counts.values()) n += c;
    return n;
  }

  #stream(stream: OutputStream): Stream {
    let s = this.#streams.get(stream);
    if (!s) {
      s = {
        masker: new StreamMasker({ eager: true, ...(this.#o.values ? { values: this.#o.values } : {}) }),
        counts: new Map(),
        ended: false,
      };
      this.#streams.set(stream, s);
    }
    return s;
  }

  /** While bytes are held, a pause of idleMs releases what of them cannot be a secret. */
  #arm(stream: OutputStream, s: Stream): void {
    if (s.masker.held === 0 || this.#emit === undefined) {
      // Forgotten once cleared: refresh() does not bring a cleared timer back.
      if (s.timer) clearTimeout(s.timer);
      s.timer = undefined;
      return;
    }
    if (s.timer) {
      s.timer.refresh();
      return;
    }
    s.timer = setTimeout(() => {
      if (s.ended) return;
      const out = s.masker.idle();
      this.#count(s);
      if (out.length > 0) this.#emit?.(stream, out);
    }, this.#o.idleMs ?? DEFAULT_IDLE_MS);
    s.timer.unref();
  }

  #count(s: Stream): void {
    const now = s.masker.masked;
    for (const kind of Object.keys(now) as MaskKind[]) {
      const was = s.counts.get(kind) ?? 0;
      const n = now[kind];
      if (n > was) {
        s.counts.set(kind, n);
        this.#o.onMasked?.(kind, n - was);
      }
    }
  }
}
