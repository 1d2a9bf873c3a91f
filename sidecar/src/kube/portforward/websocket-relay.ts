/**
 * A WebSocket port-forward session (`v4.channel.k8s.io` or its base64
 * variant, as @kubernetes/client-node opens it) between the agent and the API
 * server, as bytes in and bytes out. Pure; socket-relay.ts drives it.
 *
 * The request's `ports=` (all decided before the session opened) give two
 * channels each, in order: data (2i) and error (2i+1). The kubelet starts each
 * channel it sends on with the port, 2 bytes little-endian, then carries the
 * connection's bytes (data) or its failure (error). The messages pass through
 * re-framed (the agent's frames are masked by the agent, the sidecar masks its
 * own toward the API server; base64 and binary framing are translated) and
 * counted per port; pings are answered on each side; a close from one side is
 * passed to the other and answered, and ends the session.
 */
import type { PortForwardPortUse } from '@chaperone/shared';
import {
  type ChannelProtocol,
  decodeChannelMessage,
  encodeChannelMessage,
} from '../exec/channel-protocol.ts';
import {
  FrameDecoder,
  OPCODE,
  type WebSocketMessage,
  WebSocketProtocolError,
} from '../exec/frame-decoder.ts';
import { closePayload, encodeFrame, type Opcode } from '../exec/frame-encoder.ts';
import type { RelaySide, RelayStep, SessionRelay } from './socket-relay.ts';
import type { RelayOutput } from './spdy-relay.ts';

export interface WebSocketRelayOptions {
  readonly agentProtocol: ChannelProtocol;
  readonly upstreamProtocol: ChannelProtocol;
  /** The ports of the request, in order. */
  readonly ports: readonly number[];
  /** Largest message taken from the agent (default 1 MiB). */
  readonly maxAgentMessageBytes?: number;
  /** Largest message taken from the API server (default 16 MiB). */
  readonly maxUpstreamMessageBytes?: number;
}

const PORT_PREFIX = 2;

/** Close codes that describe a close but may not be sent (RFC 6455 §7.4.1) stand in as these. */
function sendable(code: number | undefined): number {
  if (code === undefined || code === 1005) return 1000;
  return code === 1006 || code === 1015 || code < 1000 || code > 4999 ? 1011 : code;
}

export class WebSocketPortForwardRelay implements SessionRelay {
  readonly #o: WebSocketRelayOptions;
  readonly #agent: FrameDecoder;
  readonly #upstream: FrameDecoder;
  readonly #usage: PortForwardPortUse[];
  /** Upstream channels whose port prefix has passed. */
  readonly #prefixed = new Set<number>();

  constructor(o: WebSocketRelayOptions) {
    this.#o = o;
    this.#agent = new FrameDecoder({ role: 'server', maxMessageBytes: o.maxAgentMessageBytes ?? 1 << 20 });
    this.#upstream = new FrameDecoder({
      role: 'client',
      maxMessageBytes: o.maxUpstreamMessageBytes ?? 16 << 20,
    });
    this.#usage = o.ports.map((port) => ({
      port,
      connections: 1,
      refused: 0,
      bytesToPod: 0,
      bytesToAgent: 0,
    }));
  }

  /** Per port: its one connection and the payload bytes each way. */
  get usage(): PortForwardPortUse[] {
    return this.#usage.map((u) => ({ ...u }));
  }

  fromAgent(chunk: Buffer): RelayStep {
    return this.#messages('agent', this.#agent.push(chunk));
  }

  fromUpstream(chunk: Buffer): RelayStep {
    return this.#messages('upstream', this.#upstream.push(chunk));
  }

  broken(side: RelaySide, err: unknown): RelayOutput {
    const code = err instanceof WebSocketProtocolError ? err.closeCode : 1007;
    const reason = err instanceof Error ? err.message : '';
    const toBroken = [this.#close(side, code, reason)];
    const toOther = [
      this.#close(side === 'agent' ? 'upstream' : 'agent', side === 'agent' ? 1001 : 1011, ''),
    ];
    return side === 'agent'
      ? { toAgent: toBroken, toUpstream: toOther }
      : { toAgent: toOther, toUpstream: toBroken };
  }

  gone(side: RelaySide): RelayOutput {
    return side === 'agent'
      ? { toAgent: [], toUpstream: [this.#close('upstream', 1001, 'the client went away')] }
      : { toAgent: [this.#close('agent', 1011, '')], toUpstream: [] };
  }

  #messages(from: RelaySide, messages: WebSocketMessage[]): RelayStep {
    const toAgent: Buffer[] = [];
    const toUpstream: Buffer[] = [];
    const back = from === 'agent' ? toAgent : toUpstream;
    const on = from === 'agent' ? toUpstream : toAgent;
    for (const m of messages) {
      switch (m.type) {
        case 'ping':
          back.push(this.#frame(from, OPCODE.pong, m.data));
          break;
        case 'pong':
          break;
        case 'close':
          on.push(this.#close(from === 'agent' ? 'upstream' : 'agent', sendable(m.code), m.reason));
          back.push(this.#close(from, sendable(m.code), ''));
          return { toAgent, toUpstream, end: true };
        default: {
          const to = from === 'agent' ? 'upstream' : 'agent';
          const inProto = from === 'agent' ? this.#o.agentProtocol : this.#o.upstreamProtocol;
          const outProto = to === 'agent' ? this.#o.agentProtocol : this.#o.upstreamProtocol;
          const msg = decodeChannelMessage(inProto, m.type, m.data);
          if (msg === undefined) break;
          this.#count(from, msg.channel, msg.data.length);
          const out = encodeChannelMessage(outProto, msg.channel, msg.data);
          on.push(this.#frame(to, out.type === 'text' ? OPCODE.text : OPCODE.binary, out.data));
        }
      }
    }
    return { toAgent, toUpstream };
  }

  #count(from: RelaySide, channel: number, bytes: number): void {
    const use = this.#usage[channel >> 1];
    if (from === 'upstream' && !this.#prefixed.has(channel)) {
      this.#prefixed.add(channel);
      bytes = Math.max(0, bytes - PORT_PREFIX);
    }
    if (!use || channel % 2 !== 0) return;
    if (from === 'agent') use.bytesToPod += bytes;
    else use.bytesToAgent += bytes;
  }

  /** One frame to `to`: masked toward the API server (the sidecar is its client), not toward the agent. */
  #frame(to: RelaySide, opcode: Opcode, payload: Buffer): Buffer {
    return Buffer.concat(encodeFrame(opcode, payload, to === 'upstream'));
  }

  #close(to: RelaySide, code: number, reason: string): Buffer {
    return this.#frame(to, OPCODE.close, closePayload(sendable(code), reason));
  }
}
