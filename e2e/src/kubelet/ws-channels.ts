/**
 * The channel.k8s.io protocols over WebSocket, as a 1.20 kubelet speaks them
 * (k8s.io/apiserver pkg/util/wsstream/conn.go, kubelet
 * pkg/kubelet/cri/streaming/remotecommand/websocket.go and portforward/websocket.go):
 *
 * - Negotiation: the first protocol in the *client's* offer that the server
 *   supports wins; no Sec-WebSocket-Protocol at all counts as the offer [""].
 *   Nothing in common → the handshake fails with 403 Forbidden and an empty body.
 * - exec/attach support "", channel.k8s.io, base64.channel.k8s.io,
 *   v4.channel.k8s.io and v4.base64.channel.k8s.io. Not v2/v3 (those exist for
 *   SPDY only) and not v5.channel.k8s.io (added in 1.30): a v5-only offer gets 403.
 * - port-forward supports "", v4.channel.k8s.io and v4.base64.channel.k8s.io.
 * - Binary protocols: each message is one channel byte + payload. base64
 *   protocols: text messages, an ASCII channel digit + base64 payload. A message
 *   for a channel the session does not have is ignored; so is an empty message.
 */

export const EXEC_WEBSOCKET_PROTOCOLS: readonly string[] = [
  '',
  'channel.k8s.io',
  'base64.channel.k8s.io',
  'v4.channel.k8s.io',
  'v4.base64.channel.k8s.io',
];

export const PORT_FORWARD_WEBSOCKET_PROTOCOLS: readonly string[] = [
  '',
  'v4.channel.k8s.io',
  'v4.base64.channel.k8s.io',
];

/** wsstream's handshake: the client's order decides. Undefined when nothing matches. */
export function negotiateWebSocketProtocol(
  offered: readonly string[],
  supported: readonly string[],
): string | undefined {
  const offer = offered.length === 0 ? [''] : offered;
  return offer.find((p) => supported.includes(p));
}

export function isBase64Protocol(protocol: string): boolean {
  return protocol === 'base64.channel.k8s.io' || protocol === 'v4.base64.channel.k8s.io';
}

/** Whether the session writes the v4 JSON Status (otherwise the pre-v4 text). */
export function isV4Protocol(protocol: string): boolean {
  return protocol.startsWith('v4.');
}

const CHANNEL_BYTES = Array.from({ length: 256 }, (_, i) => Buffer.from([i]));

/** A message for one channel: the channel byte and the data as parts (binary), or the text (base64). */
export function encodeChannelMessage(channel: number, data: Buffer, base64: boolean): Buffer[] | string {
  if (base64) return String.fromCharCode(48 + channel) + data.toString('base64');
  return [CHANNEL_BYTES[channel]!, data];
}

/** The channel and payload of a client message; undefined for an empty one or invalid base64. */
export function decodeChannelMessage(
  message: Buffer,
  base64: boolean,
): { channel: number; data: Buffer } | undefined {
  if (message.length === 0) return undefined;
  if (!base64) return { channel: message[0]!, data: message.subarray(1) };
  const text = message.subarray(1).toString('latin1');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  return { channel: (message[0]! - 48) & 0xff, data: Buffer.from(text, 'base64') };
}
