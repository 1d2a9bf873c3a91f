/**
 * Drives one exec or attach session: the agent's WebSocket on one side, the
 * sidecar's own WebSocket to the API server on the other, each read by a
 * FrameDecoder, messages translated between the two channel protocols
 * (translate.ts) and passed through the session's filters and recorder
 * (session-hooks.ts). The only file here that touches sockets.
 *
 * Life of a session:
 * - It starts with the agent's side alone (the 101 is already sent): pings are
 *   answered, input is held (within a bound; beyond it the agent is paused)
 *   until `connect` gives it the upstream side, or `refuse` ends it with a
 *   Status on the agent's error channel.
 * - Pings are answered on each side; pongs are dropped.
 * - Back-pressure: when one side's socket cannot take more, the other side is
 *   paused until it drains; nothing is buffered beyond one read.
 * - A close from either side is passed to the other and answered; then both
 *   sockets are ended and, once both are gone (or after `closeTimeoutMs`),
 *   `onEnd` gets the summary.
 * - The end of the agent's stdin (v5's close signal) reaches a v5 upstream as
 *   it is. A v4 upstream (an API server before 1.30, which hands the session to
 *   the kubelet) has no way to end stdin alone: the session then goes on (the
 *   command may finish by itself; a TTY session also gets Ctrl-D, which ends
 *   input at the start of a line), and once the command has been silent for
 *   `stdinEndGraceMs` without exiting, the sidecar ends the session and tells
 *   the agent why with a Failure Status (STDIN_END_MESSAGE). So
 *   `echo hi | kubectl exec -i pod -- cat` prints "hi" and then fails with that
 *   message after the grace period instead of hanging.
 * - A refused line of piped input (the input filter's `endStdin`) ends the
 *   pod's stdin the same way: a v5 upstream gets the end of stdin; toward a v4
 *   one the grace period above runs and the Status names the refusal
 *   (REFUSED_STDIN_MESSAGE). Input after it is dropped.
 * - Output a filter holds back and releases on its own after a pause (masking
 *   a TTY's echo) goes out through the `emit` its `start` was given.
 */
import type { Socket } from 'node:net';
import {
  type ChannelData,
  ChannelFrameError,
  type ChannelProtocol,
  CLOSE,
  decodeChannelMessage,
  ERROR,
  encodeChannelMessage,
  RESIZE,
  STDERR,
  STDIN,
  STDOUT,
} from './channel-protocol.ts';
import { FrameDecoder, OPCODE, type WebSocketMessage, WebSocketProtocolError } from './frame-decoder.ts';
import { closePayload, encodeFrame, type Opcode } from './frame-encoder.ts';
import {
  type InputFilter,
  type InputResult,
  type InputSummary,
  NO_RECORDING,
  type OutputFilter,
  type OutputStream,
  PASS_INPUT,
  PASS_OUTPUT,
  type RecordingSummary,
  type SessionHooks,
  type SessionRecorder,
} from './session-hooks.ts';
import { type ExecStatus, parseStatus, statusForAgent, toAgent, toUpstream } from './translate.ts';

export interface SessionSide {
  readonly socket: Socket;
  /** Bytes read past the handshake: the first frames. */
  readonly rest: Buffer;
  readonly protocol: ChannelProtocol;
}

/** Why the sidecar ended a session, or how a side broke it (for the close event and the agent). */
export interface SessionProblem {
  readonly code: number;
  readonly reason: string;
  readonly message: string;
}

export interface SessionSummary {
  /** What the command's status said (error channel), if it came. */
  readonly status?: ExecStatus;
  readonly exitCode?: number;
  /** Stdin payload bytes the pod received. */
  readonly bytesToPod: number;
  /** Output payload bytes the agent received. */
  readonly bytesToAgent: number;
  readonly durationMs: number;
  readonly agentProtocol: string;
  readonly upstreamProtocol?: string;
  readonly problem?: SessionProblem;
  /** What the session's recording came to, when it was recorded. */
  readonly recording?: RecordingSummary;
  /** What the input filter judged, when it judges lines. */
  readonly input?: InputSummary;
}

export interface SessionOptions {
  readonly tty: boolean;
  readonly hooks?: SessionHooks;
  /** Largest message taken from the agent (default 1 MiB). */
  readonly maxAgentMessageBytes?: number;
  /** Largest message taken from the API server (default 16 MiB). */
  readonly maxUpstreamMessageBytes?: number;
  /** Input held while the upstream side is not connected; beyond it the agent is paused (default 1 MiB). */
  readonly maxHeldBytes?: number;
  /** See the file's comment (default 5 s). */
  readonly stdinEndGraceMs?: number;
  /** How long a closing peer may take to finish the close (default 5 s). */
  readonly closeTimeoutMs?: number;
  readonly onEnd: (summary: SessionSummary) => void;
}

export const STDIN_END_MESSAGE =
  "chaperone: the agent's stdin ended, but the API server passes exec sessions to the kubelet over v4.channel.k8s.io (Kubernetes before 1.30), which has no way to end the command's stdin alone; the command did not exit within {grace} of its last output, so the guard ended the session. Commands that read stdin to its end (cat, tar x, sh reading a script) cannot finish this way on this cluster: give them a file or argument instead of piped stdin, or use an API server from 1.30 on";

/** The Status when a refused input line ends stdin toward a v4 upstream ({why}: the refusal). */
export const REFUSED_STDIN_MESSAGE =
  "{why}; the command's stdin ends at that line, but the API server passes exec sessions to the kubelet over v4.channel.k8s.io (Kubernetes before 1.30), which has no way to end the command's stdin alone; the command did not exit within {grace} of its last output, so the guard ended the session";

const MAX_STATUS_BYTES = 64 * 1024;
const EOT = Buffer.from([0x04]);

type Side = 'agent' | 'upstream';

interface Peer {
  readonly socket: Socket;
  readonly protocol: ChannelProtocol;
  readonly decoder: FrameDecoder;
  /** Frames to this peer are masked (the sidecar is its client). */
  readonly masked: boolean;
  /** Why this peer's socket is paused (it is read while the set is empty). */
  readonly pausedBy: Set<string>;
  closeSent: boolean;
  closeReceived: boolean;
  gone: boolean;
}

export class ExecSession {
  readonly #o: SessionOptions;
  readonly #agent: Peer;
  #up: Peer | undefined;
  readonly #output: OutputFilter;
  readonly #input: InputFilter;
  readonly #recorder: SessionRecorder;
  readonly #started = performance.now();
  /** Agent messages waiting for the upstream side. */
  #held: ChannelData[] = [];
  #heldBytes = 0;
  #statusBytes: Buffer[] = [];
  #statusSize = 0;
  #outputEnded = false;
  /** The pod's stdin has ended (the agent's end passed on, or a refused line): later input is dropped. */
  #podStdinEnded = false;
  #bytesToPod = 0;
  #bytesToAgent = 0;
  #problem: SessionProblem | undefined;
  #grace: NodeJS.Timeout | undefined;
  #closeTimer: NodeJS.Timeout | undefined;
  #ending = false;
  #ended = false;

  constructor(agent: SessionSide, o: SessionOptions) {
    this.#o = o;
    this.#output = o.hooks?.output ?? PASS_OUTPUT;
    this.#input = o.hooks?.input ?? PASS_INPUT;
    this.#recorder = o.hooks?.recorder ?? NO_RECORDING;
    this.#agent = this.#peer(agent, 'server', o.maxAgentMessageBytes ?? 1 << 20, false);
    this.#output.start?.((stream, data) => this.#released(stream, data));
    this.#listen(this.#agent, 'agent', agent.rest);
  }

  #peer(s: SessionSide, role: 'server' | 'client', max: number, masked: boolean): Peer {
    s.socket.setNoDelay(true);
    s.socket.setKeepAlive(true, 30_000);
    return {
      socket: s.socket,
      protocol: s.protocol,
      decoder: new FrameDecoder({ role, maxMessageBytes: max }),
      masked,
      pausedBy: new Set(),
      closeSent: false,
      closeReceived: false,
      gone: false,
    };
  }

  #listen(p: Peer, side: Side, rest: Buffer): void {
    const s = p.socket;
    s.on('data', (chunk: Buffer) => this.#read(p, side, chunk));
    s.on('error', () => {});
    s.on('close', () => this.#gone(p, side));
    // A peer that ends its half without a close frame is gone as far as the session goes.
    s.on('end', () => this.#gone(p, side));
    if (rest.length > 0) this.#read(p, side, rest);
    if (s.destroyed) {
      // Gone before the session began (its close event has passed).
      this.#gone(p, side);
      return;
    }
    if (p.pausedBy.size === 0) s.resume();
  }

  /** Gives the session its upstream side (the API server answered 101). */
  connect(up: SessionSide): void {
    if (this.#up) throw new Error('the session is already connected');
    if (this.#ending) {
      // The session ended while the upstream side was being opened (the agent left).
      const s = up.socket;
      s.on('error', () => {});
      s.end(Buffer.concat(encodeFrame(OPCODE.close, closePayload(1001, 'the client went away'), true)));
      setTimeout(() => s.destroy(), this.#o.closeTimeoutMs ?? 5000).unref();
      s.resume();
      return;
    }
    const peer = this.#peer(up, 'client', this.#o.maxUpstreamMessageBytes ?? 16 << 20, true);
    this.#up = peer;
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    this.#resume(this.#agent, 'held');
    for (const m of held) this.#agentMessage(m);
    this.#listen(peer, 'upstream', up.rest);
  }

  /**
   * Ends a session that could not reach the pod: the Status goes on the
   * agent's error channel (what kubectl prints), then the close.
   */
  refuse(status: { code: number; reason: string; message: string } & object): void {
    if (this.#ending) return;
    this.#problem = { code: status.code, reason: status.reason, message: status.message };
    this.#writeStatus(status);
    this.#closeBoth(1000, '');
  }

  /**
   * Ends a running session from the sidecar's side (its recording cannot be
   * written): the output the filter still holds goes out, then the Status on
   * the agent's error channel, then the close to both sides.
   */
  abort(status: { code: number; reason: string; message: string } & object): void {
    if (this.#ending) return;
    this.#flushOutput();
    this.refuse(status);
  }

  // ---- reading ------------------------------------------------------------------------------

  #read(p: Peer, side: Side, chunk: Buffer): void {
    if (p.closeReceived) return;
    let messages: WebSocketMessage[];
    try {
      messages = p.decoder.push(chunk);
    } catch (err) {
      this.#broken(side, err);
      return;
    }
    for (const m of messages) {
      if (p.closeReceived || this.#ended) return;
      switch (m.type) {
        case 'ping':
          this.#send(p, OPCODE.pong, m.data);
          break;
        case 'pong':
          break;
        case 'close':
          p.closeReceived = true;
          if (side === 'agent') this.#agentClosed(m.code);
          else this.#upstreamClosed(m.code, m.reason);
          return;
        default: {
          let data: ChannelData | undefined;
          try {
            data = decodeChannelMessage(p.protocol, m.type, m.data);
          } catch (err) {
            this.#broken(side, err);
            return;
          }
          if (data === undefined) break;
          if (side === 'agent') this.#agentMessage(data);
          else this.#upstreamMessage(data, m.type === 'binary' ? m.data : undefined);
        }
      }
    }
  }

  #agentMessage(m: ChannelData): void {
    const up = this.#up;
    if (!up) {
      this.#held.push(m);
      this.#heldBytes += m.data.length;
      if (this.#heldBytes > (this.#o.maxHeldBytes ?? 1 << 20)) this.#pause(this.#agent, 'held');
      return;
    }
    if (up.closeSent) return;
    const t = toUpstream(this.#agent.protocol, up.protocol, m);
    if (t.kind === 'drop') return;
    if (t.kind === 'stdin-end') {
      this.#stdinEnded(up);
      return;
    }
    const msg = t.message;
    if (msg.channel === STDIN) {
      if (!this.#podStdinEnded) this.#toPod(up, this.#input.push(msg.data));
      return;
    }
    if (msg.channel === RESIZE) {
      const size = readResize(msg.data);
      if (size) this.#recorder.resize(size.width, size.height);
    } else if (msg.data[0] === STDIN) {
      // v5 close of stdin toward a v5 upstream: what the input filter held goes first.
      if (this.#podStdinEnded) return;
      this.#podStdinEnded = true;
      this.#toPod(up, this.#input.end());
    }
    this.#sendChannel(up, msg.channel, msg.data);
  }

  #toPod(up: Peer, r: InputResult): void {
    if (r.toPod.length > 0) {
      this.#bytesToPod += r.toPod.length;
      this.#recorder.input(r.toPod);
      this.#sendChannel(up, STDIN, r.toPod);
    }
    if (r.toAgent && r.toAgent.length > 0) this.#toAgentOutput(this.#o.tty ? STDOUT : STDERR, r.toAgent);
    if (r.endStdin !== undefined && !this.#podStdinEnded) {
      // The input filter refused a line: the pod's stdin ends there.
      if (up.protocol.version >= 5) {
        this.#podStdinEnded = true;
        this.#sendChannel(up, CLOSE, Buffer.of(STDIN));
      } else this.#stdinEnded(up, r.endStdin);
    }
  }

  /** Stdin ends toward a v4 upstream: the agent's stdin ended, or (`why`) the input filter refused a line. */
  #stdinEnded(up: Peer, why?: string): void {
    if (this.#podStdinEnded) return;
    this.#podStdinEnded = true;
    this.#toPod(up, this.#input.end());
    if (this.#o.tty) {
      this.#bytesToPod += 1;
      this.#recorder.input(EOT);
      this.#sendChannel(up, STDIN, EOT);
    }
    const grace = this.#o.stdinEndGraceMs ?? 5000;
    this.#grace = setTimeout(() => {
      if (this.#ending) return;
      const [message, reason, code] =
        why === undefined
          ? [STDIN_END_MESSAGE.replace('{grace}', `${grace / 1000} s`), 'StdinEndNotSupported', 500]
          : [
              REFUSED_STDIN_MESSAGE.replace('{why}', why).replace('{grace}', `${grace / 1000} s`),
              'Forbidden',
              403,
            ];
      this.#problem = { code, reason, message };
      this.#flushOutput();
      this.#writeStatus({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message,
        reason,
        code,
      });
      this.#closeBoth(1000, '');
    }, grace);
    this.#grace.unref();
  }

  #upstreamMessage(m: ChannelData, raw: Buffer | undefined): void {
    const agent = this.#agent;
    if (agent.closeSent) {
      // The agent is gone (kubectl cp leaves once the archive is read): nothing goes to it, but a
      // status already on its way still tells the session's record how the command ended.
      if (m.channel === ERROR) this.#keepStatus(m.data);
      return;
    }
    if (m.channel === STDOUT || m.channel === STDERR) {
      this.#grace?.refresh();
      if (m.data.length === 0) {
        // The kubelet's "streams are open" message: passed on as it is.
        this.#sendChannel(agent, m.channel, m.data);
        return;
      }
      const out = this.#output.push(m.channel as OutputStream, m.data);
      if (out === m.data && raw !== undefined && !agent.protocol.base64) {
        // Unchanged and in the same framing: the upstream message goes out as it came.
        this.#countOutput(out);
        this.#send(agent, OPCODE.binary, raw);
      } else if (out.length > 0) {
        this.#toAgentOutput(m.channel, out);
      }
      return;
    }
    if (m.channel === ERROR) {
      this.#flushOutput();
      this.#keepStatus(m.data);
    }
    const t = toAgent(this.#up?.protocol ?? agent.protocol, agent.protocol, m);
    if (t) this.#sendChannel(agent, t.channel, t.data);
  }

  /** The status channel's bytes, for the session's record (up to MAX_STATUS_BYTES). */
  #keepStatus(data: Buffer): void {
    if (this.#statusSize + data.length > MAX_STATUS_BYTES) return;
    this.#statusBytes.push(Buffer.from(data));
    this.#statusSize += data.length;
  }

  /** Output the filter released on its own (after a pause). */
  #released(stream: OutputStream, data: Buffer): void {
    if (this.#outputEnded || this.#agent.closeSent || data.length === 0) return;
    this.#toAgentOutput(stream, data);
  }

  #countOutput(data: Buffer): void {
    this.#bytesToAgent += data.length;
    this.#recorder.output(data);
  }

  #toAgentOutput(channel: number, data: Buffer): void {
    this.#countOutput(data);
    this.#sendChannel(this.#agent, channel, data);
  }

  /** The output streams are over (the status came, or the session ends): what the filter held goes out. */
  #flushOutput(): void {
    if (this.#outputEnded) return;
    this.#outputEnded = true;
    for (const stream of [STDOUT, STDERR] as const) {
      const tail = this.#output.end(stream);
      if (tail.length > 0 && !this.#agent.closeSent) this.#toAgentOutput(stream, tail);
    }
  }

  #agentClosed(code: number | undefined): void {
    const up = this.#up;
    if (up && !up.closeSent) this.#sendClose(up, code ?? 1000, '');
    this.#closeBoth(code ?? 1000, '');
  }

  #upstreamClosed(code: number | undefined, reason: string): void {
    this.#flushOutput();
    this.#closeBoth(code ?? 1000, reason);
  }

  /** A side broke the protocol (or the connection): it gets the error's close code, the other side a close too. */
  #broken(side: Side, err: unknown): void {
    const code =
      err instanceof WebSocketProtocolError ? err.closeCode : err instanceof ChannelFrameError ? 1007 : 1011;
    const message = err instanceof Error ? err.message : String(err);
    this.#problem ??= {
      code: side === 'agent' ? 400 : 502,
      reason: side === 'agent' ? 'BadRequest' : 'BadGateway',
      message: `chaperone: the ${side === 'agent' ? 'client' : 'API server'} broke the WebSocket protocol: ${message}`,
    };
    const bad = side === 'agent' ? this.#agent : this.#up;
    if (bad && !bad.closeSent) this.#sendClose(bad, code, message);
    const other = side === 'agent' ? this.#up : this.#agent;
    if (other && !other.closeSent) this.#sendClose(other, side === 'agent' ? 1001 : 1011, '');
    this.#closeBoth(code, message);
  }

  #gone(p: Peer, side: Side): void {
    if (p.gone) return;
    p.gone = true;
    if (!this.#ending) {
      if (side === 'upstream') {
        this.#flushOutput();
        // No close frame, no status: the agent learns the session broke off.
        const agent = this.#agent;
        if (!agent.closeSent) this.#sendClose(agent, this.#statusSize > 0 ? 1000 : 1011, '');
        if (this.#statusSize === 0) {
          this.#problem ??= {
            code: 502,
            reason: 'BadGateway',
            message: 'chaperone: the API server closed the session without a status',
          };
        }
      } else if (this.#up && !this.#up.closeSent) {
        this.#sendClose(this.#up, 1001, 'the client went away');
      }
      this.#closeBoth(1000, '');
    }
    this.#maybeEnd();
  }

  // ---- writing ------------------------------------------------------------------------------

  #writeStatus(status: object): void {
    const data = statusForAgent(this.#agent.protocol, status);
    if (data) this.#sendChannel(this.#agent, ERROR, data);
  }

  #sendChannel(p: Peer, channel: number, data: Buffer): void {
    if (!p.protocol.base64) {
      // A binary message is the channel byte, then the data: the byte rides in the frame's header buffer.
      this.#send(p, OPCODE.binary, data, channel);
      return;
    }
    const m = encodeChannelMessage(p.protocol, channel, data);
    this.#send(p, m.type === 'text' ? OPCODE.text : OPCODE.binary, m.data);
  }

  #send(p: Peer, opcode: Opcode, payload: Buffer, lead?: number): void {
    if (p.gone || p.closeSent || p.socket.destroyed) return;
    const frame = encodeFrame(opcode, payload, p.masked, lead);
    const s = p.socket;
    let ok: boolean;
    if (frame.length === 1) ok = s.write(frame[0] as Buffer);
    else {
      s.cork();
      s.write(frame[0] as Buffer);
      ok = s.write(frame[1] as Buffer);
      s.uncork();
    }
    if (!ok && opcode !== OPCODE.pong) {
      // This side is full: stop reading the other until it drains.
      const other = p === this.#agent ? this.#up : this.#agent;
      if (other && !other.pausedBy.has('peer-full')) {
        this.#pause(other, 'peer-full');
        s.once('drain', () => this.#resume(other, 'peer-full'));
      }
    }
  }

  #sendClose(p: Peer, code: number, reason: string): void {
    if (p.gone || p.closeSent) return;
    const frame = encodeFrame(OPCODE.close, closePayload(sendableCloseCode(code), reason), p.masked);
    for (const b of frame) p.socket.write(b);
    p.closeSent = true;
  }

  #pause(p: Peer, why: string): void {
    p.pausedBy.add(why);
    p.socket.pause();
  }

  #resume(p: Peer, why: string): void {
    p.pausedBy.delete(why);
    if (p.pausedBy.size === 0 && !p.gone) p.socket.resume();
  }

  // ---- ending -------------------------------------------------------------------------------

  /** Closes both sides (a close frame to each that has not had one), ends the sockets, and waits for them to go. */
  #closeBoth(code: number, reason: string): void {
    if (this.#ending) return;
    this.#ending = true;
    if (this.#grace) clearTimeout(this.#grace);
    for (const p of [this.#agent, this.#up]) {
      if (!p) continue;
      if (!p.closeSent) this.#sendClose(p, code, reason);
      // Read on (discarding) so the peer's own close and FIN are seen.
      p.pausedBy.clear();
      if (!p.gone) {
        p.socket.resume();
        p.socket.end();
      }
    }
    this.#closeTimer = setTimeout(() => {
      for (const p of [this.#agent, this.#up]) p?.socket.destroy();
    }, this.#o.closeTimeoutMs ?? 5000);
    this.#closeTimer.unref();
    this.#maybeEnd();
  }

  #maybeEnd(): void {
    if (this.#ended || !this.#ending) return;
    if (!this.#agent.gone || (this.#up !== undefined && !this.#up.gone)) return;
    this.#ended = true;
    if (this.#closeTimer) clearTimeout(this.#closeTimer);
    const status = this.#statusSize > 0 ? parseStatus(Buffer.concat(this.#statusBytes)) : undefined;
    const exitCode = status?.exitCode;
    const recording = this.#recorder.end(exitCode, this.#problem?.message);
    const summary: { -readonly [K in keyof SessionSummary]: SessionSummary[K] } = {
      bytesToPod: this.#bytesToPod,
      bytesToAgent: this.#bytesToAgent,
      durationMs: Math.round((performance.now() - this.#started) * 1000) / 1000,
      agentProtocol: this.#agent.protocol.name,
    };
    if (status) summary.status = status;
    if (exitCode !== undefined) summary.exitCode = exitCode;
    if (this.#up) summary.upstreamProtocol = this.#up.protocol.name;
    if (this.#problem) summary.problem = this.#problem;
    if (recording) summary.recording = recording;
    const input = this.#input.summary?.();
    if (input) summary.input = input;
    this.#o.onEnd(summary);
  }
}

/** Codes that may be sent in a close frame: 1005, 1006 and 1015 only describe a close, so 1000 / 1011 stand in. */
function sendableCloseCode(code: number): number {
  if (code === 1005) return 1000;
  if (code === 1006 || code === 1015 || code < 1000 || code > 4999) return 1011;
  return code;
}

/** A resize message: `{"Width":80,"Height":24}`. */
function readResize(data: Buffer): { width: number; height: number } | undefined {
  try {
    const v = JSON.parse(data.toString('utf8')) as { Width?: unknown; Height?: unknown };
    if (Number.isInteger(v.Width) && Number.isInteger(v.Height))
      return { width: v.Width as number, height: v.Height as number };
  } catch {}
  return undefined;
}
