/**
 * The SPDY/3.1 port-forward session between the agent (kubectl) and the API
 * server, as bytes in and bytes out: which frames pass, which are rewritten,
 * which the sidecar answers itself. Pure; spdy-session.ts drives it with the
 * sockets.
 *
 * What a forwarded connection looks like (portforward.k8s.io, the kubelet's
 * httpstream handler): the client opens an error stream and a data stream,
 * each a SYN_STREAM with headers `streamtype` (error | data), `port` and
 * `requestid`; the server accepts each with SYN_REPLY; the kubelet dials the
 * data stream's port and copies bytes both ways; a failure is written on the
 * error stream. kubectl waits for the reply to each stream it opens, and
 * drops data on a stream that has none.
 *
 * Decided here, per stream: the port, read as the kubelet reads it (the
 * first value of `port`, decimal digits, 1-65535), is given to `decide`.
 * - Allowed: the SYN_STREAM goes upstream with its header block inflated and
 *   written again by the sidecar's own compressor (spdy-header-codec.ts: a
 *   dropped block would put the API server's inflater out of step); its data
 *   passes byte for byte.
 * - Refused (or a port that cannot be read): nothing of the stream goes
 *   upstream. The sidecar answers it as a kubelet answers a port it cannot
 *   dial: SYN_REPLY, the message on an error stream, FIN — so kubectl prints
 *   `an error occurred forwarding <local> -> <port>: <message>`. Whatever the
 *   agent sends on it afterwards is dropped.
 *
 * Header blocks from the API server are inflated and written again too (the
 * sidecar's SYN_REPLYs share the agent's inflater with them); every other
 * frame either way — data, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE —
 * passes unchanged, except frames of refused streams. Frames the sidecar
 * writes to the agent never land inside a data frame being passed on: they
 * wait for its end.
 *
 * Flow control: kubectl and the kubelet (github.com/moby/spdystream) neither
 * send WINDOW_UPDATE nor honour it, so nothing here waits for a window. For a
 * peer that does count windows, the session-level books are kept straight
 * where the sidecar changes the byte stream: data of refused streams that the
 * sidecar drops is credited back to the agent (WINDOW_UPDATE on stream 0),
 * and the bytes of its own error messages are taken off the agent's next
 * session-level WINDOW_UPDATEs before they pass upstream.
 *
 * Stream ids the agent opens must increase (a SPDY session error otherwise);
 * at most `maxOpenStreams` may be open at once, and at most `maxPorts`
 * distinct ports asked for in one session (which bounds its events). A protocol error throws
 * SpdyProtocolError: the session cannot go on.
 */
import type { PortForwardPortUse } from '@chaperone/shared';
import { readPort } from './ports-query.ts';
import { SpdyFrameDecoder, type SpdyPart, SpdyProtocolError } from './spdy-frame-decoder.ts';
import {
  dataFrame,
  FLAG_FIN,
  readStreamHeaders,
  readStreamValue,
  readSynStream,
  streamHeadersFrame,
  synStreamFrame,
  TYPE,
  windowUpdateFrame,
} from './spdy-frames.ts';
import {
  HeaderBlockReader,
  HeaderBlockWriter,
  headerValue,
  readHeaderPairs,
  writeHeaderPairs,
} from './spdy-header-codec.ts';

export type PortVerdict = { readonly allowed: true } | { readonly allowed: false; readonly message: string };

export interface SpdyRelayOptions {
  /** Decides a port a forwarded connection asks for. */
  decide(port: number): PortVerdict;
  /** Largest control frame either side may send (default 256 KiB). */
  readonly maxControlFrameBytes?: number;
  /** Most streams open at once (default 1024). */
  readonly maxOpenStreams?: number;
  /** Most distinct ports one session may ask for (default 256); a connection to one more is refused. */
  readonly maxPorts?: number;
}

export interface RelayOutput {
  readonly toUpstream: Buffer[];
  readonly toAgent: Buffer[];
}

interface Stream {
  readonly port: number | undefined;
  readonly data: boolean;
  readonly refused: boolean;
  agentDone: boolean;
  upstreamDone: boolean;
}

/** What a kubelet's SYN_REPLY carries: no headers. */
const NO_HEADERS = writeHeaderPairs([]);

export class SpdyPortForwardRelay {
  readonly #o: SpdyRelayOptions;
  readonly #max: number;
  readonly #fromAgent: SpdyFrameDecoder;
  readonly #fromUpstream: SpdyFrameDecoder;
  /** Header compression, per direction (see spdy-header-codec.ts). */
  readonly #agentBlocks = new HeaderBlockReader();
  readonly #upstreamBlocks = new HeaderBlockReader();
  readonly #toUpstreamBlocks = new HeaderBlockWriter();
  readonly #toAgentBlocks = new HeaderBlockWriter();
  readonly #streams = new Map<number, Stream>();
  readonly #usage = new Map<number, PortForwardPortUse>();
  #lastAgentStream = 0;
  /** The agent's data frame being read: whether it passes, and its stream. */
  #agentData: { readonly pass: boolean; readonly stream: Stream | undefined } | undefined;
  /** The upstream data frame being passed to the agent: its stream and the bytes still to come. */
  #upstreamData: { readonly stream: Stream | undefined; remaining: number } | undefined;
  /** Frames of the sidecar's own for the agent, waiting for the end of an upstream data frame. */
  #held: Buffer[] = [];
  /** Bytes of the sidecar's own error messages not yet taken off the agent's session WINDOW_UPDATEs. */
  #owedWindow = 0;

  constructor(o: SpdyRelayOptions) {
    this.#o = o;
    this.#max = o.maxOpenStreams ?? 1024;
    const maxControlFrameBytes = o.maxControlFrameBytes ?? 256 * 1024;
    this.#fromAgent = new SpdyFrameDecoder({ maxControlFrameBytes });
    this.#fromUpstream = new SpdyFrameDecoder({ maxControlFrameBytes });
  }

  /** Per port asked for: connections let through and refused, and their payload bytes each way. */
  get usage(): PortForwardPortUse[] {
    return [...this.#usage.values()].sort((a, b) => a.port - b.port).map((u) => ({ ...u }));
  }

  /** Streams open now (for tests and bounds). */
  get openStreams(): number {
    return this.#streams.size;
  }

  fromAgent(chunk: Buffer): RelayOutput {
    const out: RelayOutput = { toUpstream: [], toAgent: [] };
    let dropped = 0;
    for (const part of this.#fromAgent.push(chunk)) dropped += this.#agentPart(part, out);
    // Data of refused streams never reached the API server: its window is given back here.
    if (dropped > 0) this.#toAgent(out, windowUpdateFrame(0, dropped));
    return out;
  }

  fromUpstream(chunk: Buffer): RelayOutput {
    const out: RelayOutput = { toUpstream: [], toAgent: [] };
    for (const part of this.#fromUpstream.push(chunk)) this.#upstreamPart(part, out);
    return out;
  }

  // ---- agent → upstream ----------------------------------------------------------------------

  /** Returns the payload bytes it dropped. */
  #agentPart(part: SpdyPart, out: RelayOutput): number {
    if (part.kind === 'data-head') {
      const stream = this.#streams.get(part.streamId);
      const pass = !stream?.refused;
      this.#agentData = part.length > 0 ? { pass, stream } : undefined;
      if (pass) out.toUpstream.push(part.raw);
      if (part.flags & FLAG_FIN) this.#ended('agentDone', part.streamId);
      return pass ? 0 : part.length;
    }
    if (part.kind === 'data') {
      const d = this.#agentData;
      if (!d?.pass) return 0;
      out.toUpstream.push(part.data);
      this.#count(d.stream, 'bytesToPod', part.data.length);
      return 0;
    }
    switch (part.type) {
      case TYPE.synStream:
        this.#agentSynStream(part.flags, part.body, out);
        return 0;
      case TYPE.synReply:
      case TYPE.headers: {
        const h = readStreamHeaders(part.body, part.type === TYPE.synReply ? 'SYN_REPLY' : 'HEADERS');
        const raw = this.#agentBlocks.inflate(h.block);
        readHeaderPairs(raw);
        if (this.#streams.get(h.streamId)?.refused) return 0;
        out.toUpstream.push(
          streamHeadersFrame(part.type, part.flags, h.streamId, this.#toUpstreamBlocks.deflate(raw)),
        );
        if (part.flags & FLAG_FIN) this.#ended('agentDone', h.streamId);
        return 0;
      }
      case TYPE.rstStream: {
        const { streamId } = readStreamValue(part.body, 'RST_STREAM');
        const refused = this.#streams.get(streamId)?.refused;
        this.#streams.delete(streamId);
        if (!refused) out.toUpstream.push(part.raw);
        return 0;
      }
      case TYPE.windowUpdate: {
        const { streamId, value } = readStreamValue(part.body, 'WINDOW_UPDATE');
        if (streamId !== 0) {
          if (!this.#streams.get(streamId)?.refused) out.toUpstream.push(part.raw);
          return 0;
        }
        // The agent's session window credit includes the sidecar's own messages: not the API server's to get.
        const taken = Math.min(this.#owedWindow, value);
        this.#owedWindow -= taken;
        if (taken === 0) out.toUpstream.push(part.raw);
        else if (value > taken) out.toUpstream.push(windowUpdateFrame(0, value - taken));
        return 0;
      }
      default:
        out.toUpstream.push(part.raw);
        return 0;
    }
  }

  #agentSynStream(flags: number, body: Buffer, out: RelayOutput): void {
    const syn = readSynStream(body);
    // Inflated whatever happens to the stream: the compression context spans the connection.
    const raw = this.#agentBlocks.inflate(syn.block);
    const pairs = readHeaderPairs(raw);
    const id = syn.streamId;
    if (id === 0 || id <= this.#lastAgentStream)
      throw new SpdyProtocolError(
        `the client opened stream ${id} after stream ${this.#lastAgentStream} (stream ids must increase)`,
      );
    if (id % 2 === 0)
      throw new SpdyProtocolError(`the client opened stream ${id} (a client's stream ids are odd)`);
    this.#lastAgentStream = id;
    if (this.#streams.size >= this.#max)
      throw new SpdyProtocolError(`the client opened more than ${this.#max} streams at once`);
    const portText = headerValue(pairs, 'port');
    const port = readPort(portText);
    const type = headerValue(pairs, 'streamtype');
    const maxPorts = this.#o.maxPorts ?? 256;
    const overLimit = port !== undefined && !this.#usage.has(port) && this.#usage.size >= maxPorts;
    let verdict: PortVerdict;
    if (port === undefined) {
      const why =
        portText === undefined ? 'is missing' : `${JSON.stringify(portText)} is not a port (1-65535)`;
      verdict = { allowed: false, message: `chaperone: the forwarded connection's port ${why}` };
    } else if (overLimit) {
      verdict = {
        allowed: false,
        message: `chaperone: this session has asked for ${maxPorts} ports, the most one port-forward session may forward; start another for port ${port}`,
      };
    } else verdict = this.#o.decide(port);
    const stream: Stream = {
      port,
      data: type === 'data',
      refused: !verdict.allowed,
      agentDone: (flags & FLAG_FIN) !== 0,
      upstreamDone: false,
    };
    this.#streams.set(id, stream);
    if (port !== undefined && !overLimit) {
      const u = this.#use(port);
      if (stream.data && verdict.allowed) u.connections++;
      else if (stream.data) u.refused++;
    }
    if (verdict.allowed) {
      out.toUpstream.push(synStreamFrame(flags, syn, this.#toUpstreamBlocks.deflate(raw)));
      return;
    }
    // Answered as a kubelet answers a port it cannot dial: accepted, the error written, ended.
    const frames = [streamHeadersFrame(TYPE.synReply, 0, id, this.#toAgentBlocks.deflate(NO_HEADERS))];
    if (type === 'error') {
      const message = Buffer.from(verdict.message, 'utf8');
      frames.push(dataFrame(id, 0, message));
      this.#owedWindow += message.length;
    }
    frames.push(dataFrame(id, FLAG_FIN, Buffer.alloc(0)));
    stream.upstreamDone = true;
    for (const f of frames) this.#toAgent(out, f);
    this.#forgetIfDone(id, stream);
  }

  // ---- upstream → agent ----------------------------------------------------------------------

  #upstreamPart(part: SpdyPart, out: RelayOutput): void {
    if (part.kind === 'data-head') {
      const stream = this.#streams.get(part.streamId);
      out.toAgent.push(part.raw);
      if (part.flags & FLAG_FIN) this.#ended('upstreamDone', part.streamId);
      if (part.length > 0) this.#upstreamData = { stream, remaining: part.length };
      else this.#releaseHeld(out);
      return;
    }
    if (part.kind === 'data') {
      out.toAgent.push(part.data);
      const d = this.#upstreamData;
      if (!d) return;
      this.#count(d.stream, 'bytesToAgent', part.data.length);
      d.remaining -= part.data.length;
      if (d.remaining === 0) {
        this.#upstreamData = undefined;
        this.#releaseHeld(out);
      }
      return;
    }
    switch (part.type) {
      case TYPE.synStream: {
        const syn = readSynStream(part.body);
        const raw = this.#upstreamBlocks.inflate(syn.block);
        readHeaderPairs(raw);
        out.toAgent.push(synStreamFrame(part.flags, syn, this.#toAgentBlocks.deflate(raw)));
        break;
      }
      case TYPE.synReply:
      case TYPE.headers: {
        const h = readStreamHeaders(part.body, part.type === TYPE.synReply ? 'SYN_REPLY' : 'HEADERS');
        const raw = this.#upstreamBlocks.inflate(h.block);
        readHeaderPairs(raw);
        out.toAgent.push(
          streamHeadersFrame(part.type, part.flags, h.streamId, this.#toAgentBlocks.deflate(raw)),
        );
        if (part.flags & FLAG_FIN) this.#ended('upstreamDone', h.streamId);
        break;
      }
      case TYPE.rstStream:
        this.#streams.delete(readStreamValue(part.body, 'RST_STREAM').streamId);
        out.toAgent.push(part.raw);
        break;
      default:
        out.toAgent.push(part.raw);
    }
    this.#releaseHeld(out);
  }

  // ---- both --------------------------------------------------------------------------------------

  /** A frame of the sidecar's own for the agent: now, or after the upstream data frame being passed. */
  #toAgent(out: RelayOutput, frame: Buffer): void {
    if (this.#upstreamData) this.#held.push(frame);
    else out.toAgent.push(frame);
  }

  #releaseHeld(out: RelayOutput): void {
    if (this.#held.length === 0 || this.#upstreamData) return;
    out.toAgent.push(...this.#held);
    this.#held = [];
  }

  /** One side of a stream has ended (FIN); once both have, it is forgotten. */
  #ended(side: 'agentDone' | 'upstreamDone', streamId: number): void {
    const s = this.#streams.get(streamId);
    if (!s) return;
    s[side] = true;
    this.#forgetIfDone(streamId, s);
  }

  #forgetIfDone(id: number, s: Stream): void {
    if (s.agentDone && s.upstreamDone) this.#streams.delete(id);
  }

  #count(s: Stream | undefined, what: 'bytesToPod' | 'bytesToAgent', n: number): void {
    if (s?.data && !s.refused && s.port !== undefined) this.#use(s.port)[what] += n;
  }

  #use(port: number): PortForwardPortUse {
    let u = this.#usage.get(port);
    if (!u) {
      u = { port, connections: 0, refused: 0, bytesToPod: 0, bytesToAgent: 0 };
      this.#usage.set(port, u);
    }
    return u;
  }
}
