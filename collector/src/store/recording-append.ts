/**
 * Appending to an exec recording (asciicast v2, stored exactly as received):
 * chunks carry their byte offset, so a resent chunk is recognised and a
 * missing one is refused instead of leaving a hole in the replay.
 */
import { ChaperoneError } from '@chaperone/shared';
import { MAX_RECORDING_BYTES } from './store-rows.ts';

export function recordingGap(sessionId: string, size: number, offset: number): ChaperoneError {
  return new ChaperoneError(
    'conflict',
    `recording ${sessionId} has ${size} bytes; a chunk at offset ${offset} would leave a gap: send from offset ${size}`,
  );
}

/** asciicast v2 is JSON lines: a raw NUL can never be part of it (and PostgreSQL text cannot hold one). */
export function checkRecordingChunk(sessionId: string, chunk: string): void {
  if (chunk.includes('\u0000') || !chunk.isWellFormed())
    throw new ChaperoneError('validation_failed', `recording ${sessionId}: a chunk is not asciicast text`);
}

/** Decides an append at `offset` to a recording of `size` bytes: append, duplicate, or error. */
export function resolveRecordingAppend(
  sessionId: string,
  content: string,
  size: number,
  offset: number,
  chunk: string,
  chunkBytes: number,
): 'append' | 'duplicate' {
  if (offset === size) {
    if (size + chunkBytes > MAX_RECORDING_BYTES)
      throw new ChaperoneError(
        'limit_exceeded',
        `recording ${sessionId} would exceed ${MAX_RECORDING_BYTES} bytes`,
      );
    return 'append';
  }
  if (offset > size) throw recordingGap(sessionId, size, offset);
  const held = Buffer.from(content).subarray(offset, offset + chunkBytes);
  if (offset + chunkBytes <= size && held.equals(Buffer.from(chunk))) return 'duplicate';
  throw new ChaperoneError(
    'conflict',
    `recording ${sessionId}: the chunk at offset ${offset} differs from what is stored there`,
  );
}
