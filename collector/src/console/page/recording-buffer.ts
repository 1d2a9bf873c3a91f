/**
 * A recording as it grows: the asciicast v2 text read so far and the byte
 * offset to read the rest from (`/v1/sessions/{id}/recording?offset=N&length=M`,
 * at most RECORDING_PIECE bytes an answer: `readToEnd` reads piece after piece).
 * Bytes are decoded as a stream, so a piece that ends inside a UTF-8
 * character is completed by the next. Pure (tested in Node).
 */
/** Bytes asked for per read: what the API answers at most (session-routes.ts, MAX_RECORDING_READ). */
export const RECORDING_PIECE = 4 * 1024 * 1024;

/** Reads up to `length` bytes from `offset`: the bytes, and the recording's size now (X-Recording-Size). */
export type PieceReader = (
  offset: number,
  length: number,
) => Promise<{ bytes: Uint8Array; size: number | undefined }>;

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

  /**
   * Reads from `offset` to the recording's end as the API gives it, a piece
   * at a time; true when anything new came.
   */
  async readToEnd(read: PieceReader): Promise<boolean> {
    let grew = false;
    for (;;) {
      const { bytes, size } = await read(this.#offset, RECORDING_PIECE);
      if (!this.push(bytes)) return grew;
      grew = true;
      if (size === undefined || this.#offset >= size) return grew;
    }
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
