/**
 * Incremental splitter for newline-delimited JSON (the API server's watch
 * stream: one JSON object per event, each followed by "\n"). `push(chunk)`
 * returns the complete lines so far, without their newline; a partial line
 * waits for the next chunk. A line longer than `maxLineBytes` is an error, so
 * a hostile or broken stream cannot make us buffer without bound.
 */
export class LineTooLongError extends Error {
  constructor(limit: number) {
    super(`a watch event is larger than ${limit} bytes`);
    this.name = 'LineTooLongError';
  }
}

export class LineSplitter {
  readonly #max: number;
  #parts: Buffer[] = [];
  #size = 0;

  constructor(maxLineBytes: number) {
    this.#max = maxLineBytes;
  }

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      if (this.#size + piece.length > this.#max) throw new LineTooLongError(this.#max);
      if (this.#parts.length > 0) {
        this.#parts.push(piece);
        out.push(Buffer.concat(this.#parts, this.#size + piece.length));
        this.#parts = [];
        this.#size = 0;
      } else {
        out.push(piece);
      }
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.#size + rest.length > this.#max) throw new LineTooLongError(this.#max);
      // Copy: the caller may reuse the chunk's memory.
      this.#parts.push(Buffer.from(rest));
      this.#size += rest.length;
    }
    return out;
  }

  /** What is left at the end of the stream (a last line without a newline), if anything. */
  end(): Buffer | undefined {
    if (this.#size === 0) return undefined;
    const rest = Buffer.concat(this.#parts, this.#size);
    this.#parts = [];
    this.#size = 0;
    return rest;
  }
}
