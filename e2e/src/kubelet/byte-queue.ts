/**
 * The bytes a frame decoder has received but not yet used, kept as the chunks
 * they arrived in: reading a header never copies a large payload, and a
 * payload that arrived in one chunk is handed out as a view of it.
 */
export class ByteQueue {
  #chunks: Buffer[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The first `n` bytes (n <= length), without consuming them. */
  peek(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.#chunks[0];
    if (first && first.length >= n) return first.subarray(0, n);
    // Merge just the leading chunks that hold the n bytes.
    let count = 0;
    let bytes = 0;
    while (bytes < n) bytes += this.#chunks[count++]!.length;
    const merged = Buffer.concat(this.#chunks.slice(0, count), bytes);
    this.#chunks.splice(0, count, merged);
    return merged.subarray(0, n);
  }

  /** Removes and returns the first `n` bytes (n <= length). */
  take(n: number): Buffer {
    const out = this.peek(n);
    this.skip(n);
    return out;
  }

  /** Drops the first `n` bytes (n <= length). */
  skip(n: number): void {
    this.#length -= n;
    while (n > 0) {
      const first = this.#chunks[0]!;
      if (first.length <= n) {
        this.#chunks.shift();
        n -= first.length;
      } else {
        this.#chunks[0] = first.subarray(n);
        n = 0;
      }
    }
  }
}
