/**
 * Appending a chunk to a session's recording (asciicast v2, stored exactly as
 * received, one row per chunk): the decision both backends make inside their
 * write transaction, with the recording's row locked. Pure.
 *
 * - The first chunk (offset 0) creates the recording, for the connection's
 *   chain, only if an event of that chain names the session
 *   (`chaperone.sessionId`): a sidecar records only its own sessions, and no
 *   one can take a session id before its owner's first chunk arrives, since
 *   the owner's open event comes first.
 * - A chunk at the recording's end is appended; one inside it must carry the
 *   same bytes as what is stored there (a resend: a duplicate); one past the
 *   end would leave a hole and is refused, as retryable when the connection
 *   lost an earlier message (the resend fills it).
 * - Later chunks come only from the chain the recording belongs to.
 */
import { ChaperoneError, checkAsciicastChunk, MAX_RECORDING_BYTES } from '@chaperone/shared';
import { nowMicros } from '../events/time.ts';
import type { AuditStore, IncomingRecording, RecordingOutcome } from './store.ts';

/** The recording row as the store holds it. */
export interface HeldRecording {
  readonly sidecarId: string;
  readonly size: number;
}

export type ChunkPlan =
  | { readonly kind: 'create' }
  | { readonly kind: 'append'; readonly size: number }
  /** Inside what is stored: compare with the stored bytes (`compareChunk`). */
  | { readonly kind: 'compare'; readonly size: number }
  | Extract<RecordingOutcome, { kind: 'refused' }>;

export function planRecordingChunk(
  w: IncomingRecording,
  held: HeldRecording | undefined,
  namedByChain: boolean,
): ChunkPlan {
  const bytes = Buffer.byteLength(w.data, 'utf8');
  if (!held) {
    if (w.offset !== 0) return hole(w, 0);
    if (!namedByChain)
      return {
        kind: 'refused',
        code: 'identity_mismatch',
        message: `no event of chain ${w.sidecarId} names session ${w.sessionId}: a sidecar records only its own sessions, after their open event`,
        retryable: w.afterLoss,
      };
    return { kind: 'create' };
  }
  if (held.sidecarId !== w.sidecarId)
    return {
      kind: 'refused',
      code: 'identity_mismatch',
      message: `recording ${w.sessionId} belongs to another sidecar`,
      retryable: false,
    };
  if (w.offset === held.size) {
    if (held.size + bytes > MAX_RECORDING_BYTES)
      return {
        kind: 'refused',
        code: 'too_large',
        message: `recording ${w.sessionId} would exceed ${MAX_RECORDING_BYTES} bytes`,
        retryable: false,
      };
    return { kind: 'append', size: held.size };
  }
  if (w.offset > held.size) return hole(w, held.size);
  if (w.offset + bytes > held.size) return conflict(w);
  return { kind: 'compare', size: held.size };
}

function hole(w: IncomingRecording, size: number): ChunkPlan {
  return {
    kind: 'refused',
    code: 'out_of_order',
    message: `recording ${w.sessionId} has ${size} bytes; a chunk at offset ${w.offset} would leave a gap: send from offset ${size}`,
    retryable: w.afterLoss,
  };
}

function conflict(w: IncomingRecording): Extract<RecordingOutcome, { kind: 'refused' }> {
  return {
    kind: 'refused',
    code: 'recording_conflict',
    message: `recording ${w.sessionId}: the chunk at offset ${w.offset} differs from what is stored there`,
    retryable: false,
  };
}

/** The outcome of a chunk inside the recording, given the stored chunks that overlap it (in order). */
export function compareChunk(
  w: IncomingRecording,
  size: number,
  stored: readonly { readonly start: number; readonly data: string }[],
): RecordingOutcome {
  const want = Buffer.from(w.data, 'utf8');
  const first = stored[0];
  if (!first) return conflict(w);
  const held = Buffer.concat(stored.map((c) => Buffer.from(c.data, 'utf8'))).subarray(
    w.offset - first.start,
    w.offset - first.start + want.length,
  );
  return held.equals(want) ? { kind: 'recorded', size, duplicate: true } : conflict(w);
}

/** A refusal as the error `appendRecording` throws. */
export function refusalError(o: Extract<RecordingOutcome, { kind: 'refused' }>): ChaperoneError {
  const code =
    o.code === 'too_large' ? 'limit_exceeded' : o.code === 'identity_mismatch' ? 'forbidden' : 'conflict';
  return new ChaperoneError(code, o.message);
}

/**
 * `AuditStore#appendRecording` for a store, on top of its `commit`: the chunk
 * checked as ingest checks it, committed alone, a refusal thrown.
 */
export function appendRecordingVia(store: Pick<AuditStore, 'commit'>): AuditStore['appendRecording'] {
  return async (sessionId, sidecarId, identity, offset, data) => {
    checkAsciicastChunk(data, offset);
    const w: IncomingRecording = {
      kind: 'recording',
      sidecarId,
      identity,
      sessionId,
      offset,
      data,
      receivedUs: nowMicros(),
      afterLoss: false,
    };
    const [o] = await store.commit([w]);
    if (!o) throw new ChaperoneError('internal', 'the store gave no outcome for a recording chunk');
    if (o.kind === 'refused') throw refusalError(o);
    return { size: o.size };
  };
}
