/**
 * What crosses between the channel protocol the agent speaks and the one the
 * API server speaks, message by message. Pure.
 *
 * - Output (stdout, stderr) and the agent's input and resizes pass unchanged
 *   between any two versions (the base64 variants only change how a message is
 *   written, channel-protocol.ts).
 * - The error channel: from v4 on it carries a metav1.Status; a pre-v4 agent
 *   gets the Status's message alone, and nothing for a success (as a kubelet
 *   speaking that version writes it).
 * - v5's close signal ([255, n]) exists only between two v5 ends. An agent's
 *   end of stdin toward a v4 upstream cannot be passed on (v4 has no way to
 *   end one stream without ending the session): that is reported as
 *   `stdin-end` for the session to handle (session.ts says how).
 * - Channels a side does not read are dropped (a kubelet ignores them too).
 */
import {
  type ChannelData,
  type ChannelProtocol,
  CLOSE,
  ERROR,
  RESIZE,
  STDERR,
  STDIN,
  STDOUT,
} from './channel-protocol.ts';

export type ToUpstream =
  | { readonly kind: 'forward'; readonly message: ChannelData }
  | { readonly kind: 'stdin-end' }
  | { readonly kind: 'drop' };

const DROP: ToUpstream = { kind: 'drop' };
const STDIN_END: ToUpstream = { kind: 'stdin-end' };

/** An agent's message on its way to the API server. */
export function toUpstream(agent: ChannelProtocol, upstream: ChannelProtocol, m: ChannelData): ToUpstream {
  switch (m.channel) {
    case STDIN:
    case RESIZE:
      return { kind: 'forward', message: m };
    case CLOSE: {
      if (agent.version < 5) return DROP;
      if (upstream.version >= 5) return { kind: 'forward', message: m };
      return m.data[0] === STDIN ? STDIN_END : DROP;
    }
    default:
      return DROP;
  }
}

/** An API server's message on its way to the agent; undefined drops it. */
export function toAgent(
  upstream: ChannelProtocol,
  agent: ChannelProtocol,
  m: ChannelData,
): ChannelData | undefined {
  switch (m.channel) {
    case STDOUT:
    case STDERR:
      return m;
    case ERROR: {
      if (agent.version >= 4 || upstream.version < 4) return m;
      const text = statusText(m.data);
      return text === undefined ? undefined : { channel: ERROR, data: text };
    }
    case CLOSE:
      return agent.version >= 5 && upstream.version >= 5 ? m : undefined;
    default:
      return undefined;
  }
}

/** What a session's Status says, as far as the sidecar reads it. */
export interface ExecStatus {
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
  /** 0 for Success; the ExitCode cause of a NonZeroExitCode Failure. */
  readonly exitCode?: number;
}

/**
 * Reads a v4/v5 error-channel payload: `{"status":"Success"}`, or a Failure
 * whose reason NonZeroExitCode carries the exit status in
 * `details.causes[{reason: "ExitCode", message: "3"}]`. Undefined when it is
 * not a Status.
 */
export function parseStatus(data: Buffer): ExecStatus | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(data.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const s = doc as { status?: unknown; reason?: unknown; message?: unknown; details?: unknown };
  if (typeof s.status !== 'string') return undefined;
  const out: { -readonly [K in keyof ExecStatus]: ExecStatus[K] } = { status: s.status };
  if (typeof s.reason === 'string') out.reason = s.reason;
  if (typeof s.message === 'string') out.message = s.message;
  if (s.status === 'Success') out.exitCode = 0;
  else if (s.reason === 'NonZeroExitCode') {
    const causes = (s.details as { causes?: unknown } | undefined)?.causes;
    if (Array.isArray(causes)) {
      for (const c of causes as { reason?: unknown; message?: unknown }[]) {
        if (c?.reason !== 'ExitCode' || typeof c.message !== 'string') continue;
        const n = Number(c.message);
        if (/^-?\d+$/.test(c.message) && Number.isSafeInteger(n)) out.exitCode = n;
      }
    }
  }
  return out;
}

/**
 * The pre-v4 error channel's text for a Status: its message for a failure,
 * nothing (undefined) for a success; a payload that is not a Status passes as it is.
 */
export function statusText(data: Buffer): Buffer | undefined {
  const s = parseStatus(data);
  if (s === undefined) return data;
  if (s.status === 'Success') return undefined;
  return Buffer.from(s.message ?? s.reason ?? 'error', 'utf8');
}

/** A Status the sidecar writes on the agent's error channel, in the agent's protocol version. */
export function statusForAgent(agent: ChannelProtocol, status: object): Buffer | undefined {
  const json = Buffer.from(JSON.stringify(status), 'utf8');
  return agent.version >= 4 ? json : statusText(json);
}
