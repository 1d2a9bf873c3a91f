/**
 * The body of a watch (`?watch=true`): one JSON `WatchEvent` per line,
 * `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{…}}`, each ended
 * by "\n" (the API server's JSON stream framing). Incremental and pure: feed
 * it the bytes as they arrive, in chunks split anywhere (inside a UTF-8
 * character too); it returns the complete events. A line longer than the
 * limit or one that is not a watch event throws.
 */
import { ChaperoneError } from '../errors.ts';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent<T = unknown> {
  readonly type: WatchEventType;
  /** The object; for ERROR a `metav1.Status` (410 Gone: the resourceVersion is too old, list again). */
  readonly object: T;
}

const TYPES: ReadonlySet<string> = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);

/**
 * An object is at most about 1.5 MiB in etcd; as JSON (base64 Secret data,
 * escapes) it grows, so allow ample room while still bounding the buffer.
 */
export const DEFAULT_MAX_WATCH_EVENT_BYTES = 16 << 20;

export class WatchDecoder<T = unknown> {
  readonly #max: number;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;

  constructor(maxEventBytes = DEFAULT_MAX_WATCH_EVENT_BYTES) {
    this.#max = maxEventBytes;
  }

  /** Bytes of an event not yet complete. */
  get buffered(): number {
    return this.#pendingBytes;
  }

  push(chunk: Uint8Array): WatchEvent<T>[] {
    const events: WatchEvent<T>[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      this.#hold(nl - start);
      const tail = chunk.subarray(start, nl);
      const line = this.#pending.length === 0 ? tail : Buffer.concat([...this.#pending, tail]);
      this.#pending = [];
      this.#pendingBytes = 0;
      const event = decodeLine<T>(line);
      if (event) events.push(event);
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.#hold(chunk.length - start);
      this.#pending.push(chunk.subarray(start));
      this.#pendingBytes += chunk.length - start;
    }
    return events;
  }

  #hold(more: number): void {
    if (this.#pendingBytes + more > this.#max)
      throw new ChaperoneError(
        'limit_exceeded',
        `a watch event is larger than ${this.#max} bytes; the stream is not a Kubernetes watch or the object is too large`,
      );
  }
}

function decodeLine<T>(line: Uint8Array): WatchEvent<T> | undefined {
  const text = Buffer.from(line.buffer, line.byteOffset, line.byteLength).toString('utf8').trim();
  if (text === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // The line itself stays out of the message: it may be a Secret.
    throw new ChaperoneError(
      'validation_failed',
      `the watch stream holds a line that is not JSON (${line.byteLength} bytes)`,
    );
  }
  const e = value as { type?: unknown; object?: unknown };
  if (
    value === null ||
    typeof value !== 'object' ||
    typeof e.type !== 'string' ||
    !TYPES.has(e.type) ||
    e.object === null ||
    typeof e.object !== 'object'
  ) {
    throw new ChaperoneError(
      'validation_failed',
      'the watch stream holds a line that is not a watch event ({"type":…,"object":{…}})',
    );
  }
  return { type: e.type as WatchEventType, object: e.object as T };
}
