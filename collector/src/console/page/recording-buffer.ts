/**
 * A recording as it grows: the asciicast v2 text read so far and the byte
 * offset to read the rest from (`/v1/sessions/{id}/recording?offset=N`).
 * Bytes are decoded as a stream, so a piece that ends inside a UTF-8
 * character is completed by the next. Pure (tested in Node).
 */
export class RecordingBuffer {
  #offset = 0;
  #text = '';
  readonly #decoder = new TextDecoder('utf-8');

  /** Bytes received so far: where the next read starts. */
  get offset(): number {
    return this.#offset;
  }

  /** The text of the complete lines received so far (a header line and events). */
  get text(): string {
    const end = this.#text.lastIndexOf('\n');
    return end === -1 ? '' : this.#text.slice(0, end + 1);
  }

  /** Adds the bytes read from `offset`; true when they brought anything new. */
  push(bytes: Uint8Array): boolean {
    if (bytes.length === 0) return false;
    this.#offset += bytes.length;
    this.#text += this.#decoder.decode(bytes, { stream: true });
    return true;
  }

  /** The time (seconds) of the last complete event line, 0 with none. */
  get duration(): number {
    const lines = this.text.trimEnd().split('\n');
    for (let i = lines.length - 1; i > 0; i--) {
      try {
        const e = JSON.parse(lines[i] as string) as unknown;
        if (Array.isArray(e) && typeof e[0] === 'number') return e[0];
      } catch {}
    }
    return 0;
  }
}
