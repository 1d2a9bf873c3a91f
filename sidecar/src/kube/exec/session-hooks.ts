/**
 * Where an exec session's bytes can be changed or watched on their way
 * through, and the defaults that pass them unchanged:
 *
 * - OutputFilter: the command's stdout and stderr before the agent (and the
 *   recording) sees them — value detectors mask secrets here. It may hold a
 *   tail back until more arrives (a value split across frames) and gives it
 *   up at the end of the stream.
 * - InputFilter: the agent's stdin before it reaches the pod — input lines are
 *   rebuilt and evaluated here. It may withhold bytes, and may answer the
 *   agent itself (the rule's message, written to the agent's terminal).
 * - SessionRecorder: what the agent saw, what reached the pod, resizes and
 *   the exit status, in order (asciicast.ts writes asciicast v2).
 */

/** 1 stdout, 2 stderr. */
export type OutputStream = 1 | 2;

export interface OutputFilter {
  /**
   * Called once as the session starts: `emit` sends what the filter releases
   * later on its own (held-back output after a pause); it does nothing once
   * the stream has ended.
   */
  start?(emit: (stream: OutputStream, data: Buffer) => void): void;
  /** Bytes of one stream in arrival order → what the agent gets now. */
  push(stream: OutputStream, chunk: Buffer): Buffer;
  /** The stream is over: whatever is still held back. */
  end(stream: OutputStream): Buffer;
}

export interface InputResult {
  /** What goes on to the pod's stdin now. */
  readonly toPod: Buffer;
  /** Written back to the agent's terminal (a refusal), if anything. */
  readonly toAgent?: Buffer;
  /**
   * The pod's stdin ends here (a refused line of piped input), for the reason
   * given: a v5 upstream gets the end of stdin; a v4 one cannot end stdin
   * alone, so the session is ended as when the agent's stdin ends there
   * (session.ts). Later input is dropped.
   */
  readonly endStdin?: string;
}

/** What an input filter judged, for the session's close event. */
export interface InputSummary {
  readonly linesEvaluated: number;
  readonly linesDenied: number;
}

export interface InputFilter {
  push(chunk: Buffer): InputResult;
  /** The agent's stdin ended: whatever is still held back. */
  end(): InputResult;
  /** What it judged (a filter that judges lines). */
  summary?(): InputSummary;
}

/** What a recording came to, for the session's close event. */
export interface RecordingSummary {
  /** Size of the recording in bytes. */
  readonly bytes: number;
  /** It reached its size limit and stops with a marker saying so. */
  readonly truncated: boolean;
}

export interface SessionRecorder {
  /** Output as the agent received it (masked). */
  output(data: Buffer): void;
  /** Input as the pod received it. */
  input(data: Buffer): void;
  resize(columns: number, rows: number): void;
  /**
   * The session is over; `exitCode` when the command's status gave one, `why`
   * when the sidecar ended it (the Status message the agent got).
   */
  end(exitCode: number | undefined, why?: string): RecordingSummary | undefined;
}

const EMPTY = Buffer.alloc(0);

export const PASS_OUTPUT: OutputFilter = {
  push: (_stream, chunk) => chunk,
  end: () => EMPTY,
};

export const PASS_INPUT: InputFilter = {
  push: (chunk) => ({ toPod: chunk }),
  end: () => ({ toPod: EMPTY }),
};

export const NO_RECORDING: SessionRecorder = {
  output: () => {},
  input: () => {},
  resize: () => {},
  end: () => undefined,
};

/**
 * Thrown by a session's hooks factory when the session must not open (what a
 * filter needs could not be had): the agent gets the Status.
 */
export class SessionRefusedError extends Error {
  readonly status: { readonly code: number; readonly reason: string; readonly message: string };
  constructor(code: number, reason: string, message: string) {
    super(message);
    this.name = 'SessionRefusedError';
    this.status = { code, reason, message };
  }
}

/** What a session gets for its filters and recording (each created per session). */
export interface SessionHooks {
  readonly output?: OutputFilter;
  readonly input?: InputFilter;
  readonly recorder?: SessionRecorder;
}
