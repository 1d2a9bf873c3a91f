/**
 * Carries one exec or attach session's recording (asciicast lines, written by
 * kube/exec/asciicast.ts) into the spool while the session runs, as chunks of
 * whole lines: a chunk is written once `flushBytes` are waiting, or
 * `flushMs` after the first line that is waiting, and at the end — so the
 * collector has the session up to a fraction of a second behind, and every
 * stored prefix is a recording asciinema can play. Each chunk carries its
 * byte offset in the recording, which makes a resent chunk recognisable.
 *
 * A chunk that cannot be written (the spool's disk is full or gone) stops the
 * recording and is reported once through `onFailure`: the caller ends the
 * session (fail closed), since what follows would go unrecorded. What was
 * waiting then (at most `flushMs` or `flushBytes` of the session) is lost.
 */
import type { Spool } from './spool.ts';

/** Default: a chunk after 16 KiB, or 200 ms after its first line. */
export const RECORDING_FLUSH_BYTES = 16 * 1024;
export const RECORDING_FLUSH_MS = 200;

export interface RecordingSinkOptions {
  readonly spool: Pick<Spool, 'appendRecording'>;
  readonly sessionId: string;
  readonly flushBytes?: number;
  readonly flushMs?: number;
  readonly onFailure: (err: Error) => void;
  readonly onClose?: () => void;
}

export class RecordingSink {
  readonly #o: RecordingSinkOptions;
  #pending: string[] = [];
  #pendingBytes = 0;
  /** Bytes of the recording already in the spool. */
  #offset = 0;
  #timer: NodeJS.Timeout | undefined;
  #failed = false;
  #closed = false;

  constructor(o: RecordingSinkOptions) {
    this.#o = o;
  }

  /** Bytes of the recording written to the spool so far. */
  get spooled(): number {
    return this.#offset;
  }

  write(line: string): void {
    if (this.#failed || this.#closed) return;
    this.#pending.push(line);
    this.#pendingBytes += Buffer.byteLength(line, 'utf8');
    if (this.#pendingBytes >= (this.#o.flushBytes ?? RECORDING_FLUSH_BYTES)) this.flush();
    else if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.flush();
      }, this.#o.flushMs ?? RECORDING_FLUSH_MS);
      this.#timer.unref();
    }
  }

  /** Writes what is waiting as one chunk. */
  flush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#failed || this.#pending.length === 0) return;
    const data = this.#pending.join('');
    const bytes = this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    try {
      this.#o.spool.appendRecording({ sessionId: this.#o.sessionId, offset: this.#offset, data });
    } catch (err) {
      this.#failed = true;
      this.#o.onFailure(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.#offset += bytes;
  }

  /** The recording is complete: what is waiting is written, nothing more is taken. */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    this.#o.onClose?.();
  }
}
