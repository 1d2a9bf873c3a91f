/**
 * The recording of one exec or attach session: what the session's driver
 * reports (output as the agent saw it, input as the pod got it, resizes, the
 * exit) written as asciicast v2 (asciicast.ts) into the audit spool while the
 * session runs (the audit recorder's recording sink), under the session's id
 * — the id of the request's event, which the spool holds before the first
 * chunk.
 *
 * If a chunk cannot be written to the spool, the session is ended with a
 * Status saying why (fail closed), unless the sidecar runs fail-open; then
 * the session goes on with its recording stopped there.
 */
import type { AuditRecorder } from '../../audit/recorder.ts';
import { statusBody } from '../status.ts';
import { AsciicastWriter } from './asciicast.ts';
import type { SessionRecorder } from './session-hooks.ts';

export interface SessionRecordingOptions {
  readonly recorder: Pick<AuditRecorder, 'openRecording' | 'recordingMaxBytes'>;
  readonly sessionId: string;
  readonly failOpen: boolean;
  /** Ends the session (ExecSession#abort); called at most once, outside the recorder's own calls. */
  readonly abort: (status: ReturnType<typeof statusBody>) => void;
}

export function recordSession(o: SessionRecordingOptions): SessionRecorder {
  const sink = o.recorder.openRecording(o.sessionId, (err) => {
    if (o.failOpen) return;
    const status = statusBody(
      503,
      'ServiceUnavailable',
      `chaperone: the recording of this session could not be written to the audit spool (${err.message}); the guard ended the session because unrecorded sessions are not allowed. Check the sidecar's spool volume (free space, mount) — session ${o.sessionId}`,
    );
    // Not from inside the session's own call into the recorder.
    setImmediate(() => o.abort(status));
  });
  const writer = new AsciicastWriter({
    startMs: Date.now(),
    maxBytes: o.recorder.recordingMaxBytes,
    write: (line) => sink.write(line),
  });
  return {
    output: (data) => writer.output(data),
    input: (data) => writer.input(data),
    resize: (columns, rows) => writer.resize(columns, rows),
    end: (exitCode, why) => {
      const { truncated } = writer.end(exitCode, why);
      sink.close();
      // What reached the spool (less than was written if a chunk failed).
      return { bytes: sink.spooled, truncated };
    },
  };
}
