/**
 * The masked form of last-applied copies already seen, so that listing the
 * same Secrets again does not decode, mask and encode each copy again. An
 * entry is found by the SHA-256 of the copy's exact bytes (the JSON string
 * token as the API server sent it) and holds only the masked result: no
 * secret value is kept. Bounded in entries and in characters held: the
 * oldest entries go when it is full, and a result larger than the whole
 * bound is not kept.
 */
import { hash } from 'node:crypto';

export interface MaskedCopy {
  /** The masked copy as a JSON string token. */
  readonly text: string;
  /** How many values masking it replaced. */
  readonly masked: number;
}

export const MASKED_COPY_CACHE_ENTRIES = 1024;
export const MASKED_COPY_CACHE_CHARS = 128 * 1024;

export class MaskedCopyCache {
  readonly #entries = new Map<string, MaskedCopy>();
  readonly #maxEntries: number;
  readonly #maxChars: number;
  #chars = 0;

  constructor(maxEntries = MASKED_COPY_CACHE_ENTRIES, maxChars = MASKED_COPY_CACHE_CHARS) {
    this.#maxEntries = maxEntries;
    this.#maxChars = maxChars;
  }

  /** The masked form of the bytes [start, end) of `buf`, computed by `mask` when not seen yet. */
  get(buf: Buffer, start: number, end: number, mask: () => MaskedCopy): MaskedCopy {
    const id = hash('sha256', buf.subarray(start, end), 'base64');
    const known = this.#entries.get(id);
    if (known) return known;
    const made = mask();
    const chars = made.text.length;
    if (chars > this.#maxChars) return made;
    for (const [oldest, copy] of this.#entries) {
      if (this.#entries.size < this.#maxEntries && this.#chars + chars <= this.#maxChars) break;
      this.#entries.delete(oldest);
      this.#chars -= copy.text.length;
    }
    this.#entries.set(id, made);
    this.#chars += chars;
    return made;
  }

  get size(): number {
    return this.#entries.size;
  }
}
