/**
 * The WebSocket opening handshake (RFC 6455 §4) on both sides of an exec
 * session: reading the agent's upgrade request and answering it, and writing
 * the sidecar's own upgrade request to the API server and checking the answer.
 * Pure.
 */
import { createHash, randomBytes } from 'node:crypto';
import { droppedRequestField } from '../headers.ts';
import { listItems } from '../http1/framing.ts';
import {
  type ChannelProtocol,
  chooseProtocol,
  offeredProtocols,
  protocolNamed,
  UPSTREAM_PROTOCOLS,
} from './channel-protocol.ts';

/** §1.3: appended to the client's key before hashing. */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

/** A fresh Sec-WebSocket-Key: 16 random bytes, base64 (§4.1). */
export function newKey(): string {
  return randomBytes(16).toString('base64');
}

/** What the parts of the request the handshake reads look like. */
export interface UpgradeRequest {
  readonly method: string;
  /** Lower-cased names, repeated fields joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
}

/** A valid WebSocket upgrade offering a channel protocol the sidecar speaks. */
export interface WebSocketOffer {
  readonly key: string;
  readonly protocol: ChannelProtocol;
}

const KEY = /^[A-Za-z0-9+/]{22}==$/;

/** Whether the request asks to upgrade to WebSocket at all (`Upgrade: websocket`, any case). */
export function asksForWebSocket(req: UpgradeRequest): boolean {
  const upgrade = req.headers.upgrade;
  return upgrade !== undefined && listItems(upgrade).includes('websocket');
}

/** Whether the request asks to upgrade to SPDY (`Upgrade: SPDY/3.1`), as kubectl's fallback and older clients do. */
export function asksForSpdy(req: UpgradeRequest): boolean {
  const upgrade = req.headers.upgrade;
  return upgrade !== undefined && listItems(upgrade).some((p) => p.startsWith('spdy/'));
}

/**
 * Reads the agent's upgrade request (§4.2.1): a GET with `Upgrade: websocket`,
 * `Connection: Upgrade`, version 13 and a key of 16 bytes, offering at least one
 * channel protocol the sidecar speaks. Returns the offer, or why it is not one.
 */
export function readWebSocketOffer(req: UpgradeRequest): WebSocketOffer | { problem: string } {
  if (req.method !== 'GET') return { problem: `a WebSocket upgrade must be a GET, not ${req.method}` };
  if (!asksForWebSocket(req)) return { problem: 'the request does not ask to upgrade to WebSocket' };
  const connection = req.headers.connection;
  if (connection === undefined || !listItems(connection).includes('upgrade'))
    return { problem: 'the request has Upgrade: websocket without Connection: Upgrade' };
  if (req.headers['sec-websocket-version'] !== '13')
    return { problem: 'Sec-WebSocket-Version must be 13 (RFC 6455)' };
  const key = req.headers['sec-websocket-key'];
  if (key === undefined || !KEY.test(key))
    return { problem: 'Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455 §4.1)' };
  const offered = offeredProtocols(req.headers['sec-websocket-protocol']);
  const protocol = chooseProtocol(offered);
  if (protocol === undefined) {
    return {
      problem: `none of the offered subprotocols (${offered.length ? offered.join(', ') : 'none'}) is one the guard speaks: offer v5.channel.k8s.io or v4.channel.k8s.io`,
    };
  }
  return { key, protocol };
}

/** The 101 answer to an offer (§4.2.2). */
export function switchingProtocolsHead(offer: WebSocketOffer): string {
  return (
    'HTTP/1.1 101 Switching Protocols\r\n' +
    'upgrade: websocket\r\nconnection: Upgrade\r\n' +
    `sec-websocket-accept: ${acceptKey(offer.key)}\r\n` +
    `sec-websocket-protocol: ${offer.protocol.name}\r\n\r\n`
  );
}

export interface UpstreamUpgrade {
  /** Origin-form target. */
  readonly target: string;
  readonly host: string;
  readonly authorization: string;
  readonly auditID: string;
  readonly key: string;
  /** The agent's request fields, as received ([name, value, …]); those that do not cross the proxy are left out. */
  readonly agentFields: readonly string[];
}

/**
 * The sidecar's upgrade request to the API server: the agent's fields that
 * may cross the proxy (Impersonate-* among them: the policy decided on them),
 * the sidecar's credentials and Audit-ID, and its own WebSocket fields
 * offering the protocols it can translate, in one Sec-WebSocket-Protocol line
 * (golang.org/x/net/websocket, which the kubelet uses, reads only the first).
 */
export function upstreamUpgradeHead(u: UpstreamUpgrade): string {
  let head = `GET ${u.target} HTTP/1.1\r\nhost: ${u.host}\r\n`;
  const raw = u.agentFields;
  // Fields the agent's Connection header names are hop-by-hop too (RFC 9110 §7.6.1).
  const listed = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2)
    if ((raw[i] as string).toLowerCase() === 'connection')
      for (const n of listItems(raw[i + 1] as string)) listed.add(n);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (
      droppedRequestField(name) ||
      listed.has(name) ||
      name.startsWith('sec-websocket-') ||
      name === 'origin'
    )
      continue;
    head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return (
    `${head}authorization: ${u.authorization}\r\naudit-id: ${u.auditID}\r\n` +
    'connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n' +
    `sec-websocket-key: ${u.key}\r\n` +
    `sec-websocket-protocol: ${UPSTREAM_PROTOCOLS.map((p) => p.name).join(', ')}\r\n\r\n`
  );
}

/**
 * Checks a 101 answer to upstreamUpgradeHead (§4.1, the client's checks):
 * Upgrade and Connection, the accept key, and a protocol the sidecar offered.
 */
export function checkUpstreamAnswer(
  headers: Readonly<Record<string, string>>,
  key: string,
): ChannelProtocol | { problem: string } {
  const upgrade = headers.upgrade;
  if (upgrade === undefined || !listItems(upgrade).includes('websocket'))
    return { problem: 'the 101 answer lacks Upgrade: websocket' };
  const connection = headers.connection;
  if (connection === undefined || !listItems(connection).includes('upgrade'))
    return { problem: 'the 101 answer lacks Connection: Upgrade' };
  if (headers['sec-websocket-accept'] !== acceptKey(key))
    return { problem: 'the 101 answer has a wrong Sec-WebSocket-Accept' };
  const name = headers['sec-websocket-protocol'];
  const p = name === undefined ? undefined : protocolNamed(name);
  if (p === undefined || !UPSTREAM_PROTOCOLS.includes(p))
    return { problem: `the API server chose a subprotocol the sidecar did not offer (${name ?? 'none'})` };
  return p;
}
