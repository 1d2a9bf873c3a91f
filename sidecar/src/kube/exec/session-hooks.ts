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
}

export interface InputFilter {
  push(chunk: Buffer): InputResult;
  /** The agent's stdin ended: whatever is still held back. */
  end(): InputResult;
}

export interface SessionRecorder {
  /** Output as the agent received it (masked). */
  output(data: Buffer): void;
  /** Input as the pod received it. */
  input(data: Buffer): void;
  resize(columns: number, rows: number): void;
  /** The session is over; `exitCode` when the command's status gave one. */
  end(exitCode: number | undefined): void;
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
  end: () => {},
};

/** What a session gets for its filters and recording (each created per session). */
export interface SessionHooks {
  readonly output?: OutputFilter;
  readonly input?: InputFilter;
  readonly recorder?: SessionRecorder;
}
