/**
 * The Kubernetes channel protocols that carry exec and attach streams over a
 * WebSocket (k8s.io/apimachinery wsstream, the kubelet's
 * remotecommand/websocket.go): the names a client offers in
 * Sec-WebSocket-Protocol, and how one WebSocket message carries one channel's
 * bytes. Pure.
 *
 * Binary protocols: one binary message = 1 channel byte + the payload.
 * Base64 protocols: one text message = the channel as an ASCII digit ('0'+n)
 * + the payload in standard base64.
 *
 * Channels: 0 stdin, 1 stdout, 2 stderr, 3 error (the session's outcome),
 * 4 resize (JSON {"Width":80,"Height":24}); v5 adds 255 close ([255, n]: the
 * sender will write no more on channel n — how a client ends stdin).
 * From v4 on, the error channel carries a metav1.Status (JSON); before v4 it
 * carries the error text alone.
 */

export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;
export const ERROR = 3;
export const RESIZE = 4;
export const CLOSE = 255;

export interface ChannelProtocol {
  /** As it appears in Sec-WebSocket-Protocol. */
  readonly name: string;
  /** 1 stands for every protocol before v4 (channel.k8s.io). */
  readonly version: 1 | 4 | 5;
  readonly base64: boolean;
}

/**
 * Every channel protocol accepted from agents, in no particular order: what a
 * kubelet accepts (channel.k8s.io, base64.channel.k8s.io, v4.channel.k8s.io,
 * v4.base64.channel.k8s.io) and v5, which API servers from 1.30 accept.
 */
export const AGENT_PROTOCOLS: readonly ChannelProtocol[] = [
  { name: 'v5.channel.k8s.io', version: 5, base64: false },
  { name: 'v4.channel.k8s.io', version: 4, base64: false },
  { name: 'v4.base64.channel.k8s.io', version: 4, base64: true },
  { name: 'channel.k8s.io', version: 1, base64: false },
  { name: 'base64.channel.k8s.io', version: 1, base64: true },
];

/**
 * What the sidecar offers the API server, best first: API servers from 1.30
 * take v5; older ones hand the upgrade to the kubelet, which takes v4.
 */
export const UPSTREAM_PROTOCOLS: readonly ChannelProtocol[] = AGENT_PROTOCOLS.filter(
  (p) => !p.base64 && p.version >= 4,
);

const BY_NAME = new Map(AGENT_PROTOCOLS.map((p) => [p.name, p]));

export function protocolNamed(name: string): ChannelProtocol | undefined {
  return BY_NAME.get(name);
}

/** The Sec-WebSocket-Protocol header's values (comma-separated tokens, several header lines already joined with ", "). */
export function offeredProtocols(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
}

/** The first offered protocol the sidecar speaks, in the client's order (as the kubelet chooses). */
export function chooseProtocol(offered: readonly string[]): ChannelProtocol | undefined {
  for (const name of offered) {
    const p = BY_NAME.get(name);
    if (p) return p;
  }
  return undefined;
}

/** One channel's bytes, as carried by one WebSocket message. */
export interface ChannelData {
  readonly channel: number;
  readonly data: Buffer;
}

export class ChannelFrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChannelFrameError';
  }
}

/**
 * A data message (binary or text) → channel and payload. An empty message
 * carries nothing (the kubelet skips them) and gives undefined. Throws
 * ChannelFrameError when the message does not fit the protocol.
 */
export function decodeChannelMessage(
  p: ChannelProtocol,
  type: 'binary' | 'text',
  message: Buffer,
): ChannelData | undefined {
  if (message.length === 0) return undefined;
  if (p.base64) {
    if (type !== 'text') throw new ChannelFrameError(`${p.name} carries text messages, not binary ones`);
    const digit = (message[0] as number) - 48;
    if (digit < 0 || digit > 9)
      throw new ChannelFrameError(`${p.name}: a message does not start with a channel digit`);
    const text = message.subarray(1).toString('latin1');
    if (!BASE64.test(text)) throw new ChannelFrameError(`${p.name}: a message's payload is not base64`);
    return { channel: digit, data: Buffer.from(text, 'base64') };
  }
  if (type !== 'binary') throw new ChannelFrameError(`${p.name} carries binary messages, not text ones`);
  return { channel: message[0] as number, data: message.subarray(1) };
}

// Standard alphabet, padded (Go's base64.StdEncoding, which the kubelet uses, requires the padding).
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Channel and payload → the message to send: its type and bytes. */
export function encodeChannelMessage(
  p: ChannelProtocol,
  channel: number,
  data: Buffer,
): { type: 'binary' | 'text'; data: Buffer } {
  if (p.base64) {
    if (channel > 9) throw new ChannelFrameError(`${p.name} cannot carry channel ${channel}`);
    const b64 = data.toString('base64');
    const out = Buffer.allocUnsafe(1 + b64.length);
    out[0] = 48 + channel;
    out.write(b64, 1, 'latin1');
    return { type: 'text', data: out };
  }
  const out = Buffer.allocUnsafe(1 + data.length);
  out[0] = channel;
  data.copy(out, 1);
  return { type: 'binary', data: out };
}
