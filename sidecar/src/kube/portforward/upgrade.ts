/**
 * How an agent asks to forward ports, and the handshakes on both sides. Pure.
 *
 * - SPDY (kubectl, after its WebSocket attempt): `Upgrade: SPDY/3.1` with
 *   `X-Stream-Protocol-Version: portforward.k8s.io`, a POST (GET is served
 *   too). Upstream the sidecar sends the same upgrade with its own
 *   credentials; the 101 must name SPDY/3.1 and portforward.k8s.io.
 * - WebSocket (@kubernetes/client-node): an RFC 6455 upgrade offering
 *   `v4.channel.k8s.io` or `v4.base64.channel.k8s.io` — the protocols a
 *   kubelet forwards ports over — with the ports in `ports=`.
 * - The WebSocket tunnel (kubectl from 1.31 first offers only
 *   `SPDY/3.1+portforward.k8s.io`: SPDY frames inside WebSocket messages):
 *   not served; answered with an HTTP error, on which kubectl falls back to
 *   SPDY (any answer but 101 does).
 */

import { type ChannelProtocol, offeredProtocols, protocolNamed } from '../exec/channel-protocol.ts';
import {
  asksForSpdy,
  readWebSocketOffer,
  type UpgradeRequest,
  type WebSocketOffer,
} from '../exec/handshake.ts';
import { crossingFieldLines } from '../headers.ts';
import { listItems } from '../http1/framing.ts';

export const PORT_FORWARD_PROTOCOL = 'portforward.k8s.io';
/** What kubectl's tunnelling dialer offers: the SPDY stream protocol behind this prefix. */
export const TUNNEL_PREFIX = 'spdy/3.1+';

/** The channel protocols a kubelet forwards ports over, in the order the sidecar prefers them. */
const WEBSOCKET_PROTOCOLS: readonly ChannelProtocol[] = ['v4.channel.k8s.io', 'v4.base64.channel.k8s.io'].map(
  (n) => protocolNamed(n) as ChannelProtocol,
);

export type PortForwardUpgrade =
  | { readonly kind: 'spdy' }
  | { readonly kind: 'websocket'; readonly offer: WebSocketOffer }
  | { readonly kind: 'tunnel' }
  /** Not an upgrade the guard forwards ports over: why. */
  | { readonly kind: 'none'; readonly problem: string };

/** Reads how the request asks to forward ports. */
export function readPortForwardUpgrade(req: UpgradeRequest): PortForwardUpgrade {
  if (asksForSpdy(req)) {
    const upgrade = listItems(req.headers.upgrade ?? '');
    if (!upgrade.includes('spdy/3.1'))
      return {
        kind: 'none',
        problem: `the request asks for ${req.headers.upgrade}; the guard speaks SPDY/3.1`,
      };
    const versions = listItems(req.headers['x-stream-protocol-version'] ?? '');
    if (!versions.includes(PORT_FORWARD_PROTOCOL))
      return {
        kind: 'none',
        problem: `a SPDY port-forward must offer X-Stream-Protocol-Version: ${PORT_FORWARD_PROTOCOL}`,
      };
    return { kind: 'spdy' };
  }
  const offered = offeredProtocols(req.headers['sec-websocket-protocol']);
  if (offered.some((p) => p.toLowerCase().startsWith(TUNNEL_PREFIX)) && !offered.some(isPortForwardProtocol))
    return { kind: 'tunnel' };
  const offer = readWebSocketOffer(req);
  if ('problem' in offer) {
    return {
      kind: 'none',
      problem:
        'port-forward must be an upgrade: SPDY/3.1 with X-Stream-Protocol-Version: portforward.k8s.io (kubectl), or a WebSocket offering v4.channel.k8s.io with the ports in ports=',
    };
  }
  const chosen = WEBSOCKET_PROTOCOLS.find((p) => offered.includes(p.name));
  if (!chosen)
    return {
      kind: 'none',
      problem: `port-forward over WebSocket speaks v4.channel.k8s.io or v4.base64.channel.k8s.io, and the client offered ${offered.join(', ')}`,
    };
  return { kind: 'websocket', offer: { key: offer.key, protocol: chosen } };
}

function isPortForwardProtocol(name: string): boolean {
  return WEBSOCKET_PROTOCOLS.some((p) => p.name === name);
}

export interface SpdyUpgrade {
  /** Origin-form target. */
  readonly target: string;
  readonly host: string;
  readonly authorization: string;
  readonly auditID: string;
  /** The agent's request fields, as received ([name, value, …]). */
  readonly agentFields: readonly string[];
}

/** The sidecar's SPDY upgrade request to the API server. */
export function spdyUpgradeHead(u: SpdyUpgrade): string {
  return (
    `POST ${u.target} HTTP/1.1\r\nhost: ${u.host}\r\n` +
    crossingFieldLines(
      u.agentFields,
      (name) => name === 'x-stream-protocol-version' || name.startsWith('sec-websocket-'),
    ) +
    `authorization: ${u.authorization}\r\naudit-id: ${u.auditID}\r\n` +
    `connection: Upgrade\r\nupgrade: SPDY/3.1\r\nx-stream-protocol-version: ${PORT_FORWARD_PROTOCOL}\r\n\r\n`
  );
}

/** Checks the API server's (the kubelet's) 101 to spdyUpgradeHead. */
export function checkSpdyAnswer(headers: Readonly<Record<string, string>>): true | { problem: string } {
  if (!listItems(headers.upgrade ?? '').includes('spdy/3.1'))
    return { problem: 'the 101 answer does not upgrade to SPDY/3.1' };
  if (!listItems(headers.connection ?? '').includes('upgrade'))
    return { problem: 'the 101 answer lacks Connection: Upgrade' };
  const version = headers['x-stream-protocol-version'];
  if (version !== PORT_FORWARD_PROTOCOL)
    return {
      problem: `the 101 answer chose the stream protocol ${version ?? '(none)'}, not ${PORT_FORWARD_PROTOCOL}`,
    };
  return true;
}

/** The 101 to the agent's SPDY upgrade, once the API server's came. */
export const SPDY_SWITCHING_PROTOCOLS =
  'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
  `X-Stream-Protocol-Version: ${PORT_FORWARD_PROTOCOL}\r\n\r\n`;
