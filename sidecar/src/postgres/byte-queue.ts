/**
 * The bytes a decoder has received but not yet turned into messages: chunks
 * kept as they came (no copy until a message spans two of them), with a hard
 * bound on how much may wait.
 */
export class ByteQueue {
  #chunks: Buffer[] = [];
  /** Offset of the first unread byte in #chunks[0]. */
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The byte at `offset` from the start (the caller checks `length` first). */
  byteAt(offset: number): number {
    let i = 0;
    let at = this.#head + offset;
    for (;;) {
      const c = this.#chunks[i] as Buffer;
      if (at < c.length) return c[at] as number;
      at -= c.length;
      i++;
    }
  }

  /** Big-endian int32 at `offset` (the caller checks `length` first). */
  int32At(offset: number): number {
    const first = this.#chunks[0] as Buffer;
    if (this.#head + offset + 4 <= first.length) return first.readInt32BE(this.#head + offset);
    return (
      ((this.byteAt(offset) << 24) |
        (this.byteAt(offset + 1) << 16) |
        (this.byteAt(offset + 2) << 8) |
        this.byteAt(offset + 3)) >>
      0
    );
  }

  /**
   * Removes and returns the first `n` bytes. A view into the received chunk
   * when they lie in one (the caller must not keep it past the chunk's life
   * if the chunk's memory is reused: socket chunks are not), a copy otherwise.
   */
  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.#chunks[0] as Buffer;
    if (this.#head + n <= first.length) {
      const out = first.subarray(this.#head, this.#head + n);
      this.#head += n;
      this.#length -= n;
      if (this.#head === first.length) {
        this.#chunks.shift();
        this.#head = 0;
      }
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    while (written < n) {
      const c = this.#chunks[0] as Buffer;
      const available = c.length - this.#head;
      const want = Math.min(available, n - written);
      c.copy(out, written, this.#head, this.#head + want);
      written += want;
      this.#head += want;
      if (this.#head === c.length) {
        this.#chunks.shift();
        this.#head = 0;
      }
    }
    this.#length -= n;
    return out;
  }

  /** Everything left, removed from the queue. */
  drain(): Buffer {
    return this.take(this.#length);
  }
}
