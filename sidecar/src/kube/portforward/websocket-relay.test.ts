// The WebSocket port-forward relay as bytes: agent frames (masked) re-framed
// for the API server (masked by the sidecar), the API server's for the agent,
// base64 translated, the port prefixes left out of the counts, pings
// answered where they came from, a close passed on and answered.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { protocolNamed } from '../exec/channel-protocol.ts';
import { FrameDecoder, OPCODE, type WebSocketMessage } from '../exec/frame-decoder.ts';
import { closePayload, encodeFrame, type Opcode } from '../exec/frame-encoder.ts';
import { WebSocketPortForwardRelay } from './websocket-relay.ts';

const V4 = protocolNamed('v4.channel.k8s.io')!;
const V4_BASE64 = protocolNamed('v4.base64.channel.k8s.io')!;

const frame = (opcode: Opcode, payload: Buffer, masked: boolean) =>
  Buffer.concat(encodeFrame(opcode, payload, masked));
const binary = (channel: number, data: string | Buffer, masked: boolean) =>
  frame(OPCODE.binary, Buffer.concat([Buffer.from([channel]), Buffer.from(data)]), masked);
const portPrefix = (port: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(port);
  return b;
};

/** Reads what one side was sent: the agent reads unmasked frames, the API server masked ones. */
function read(bytes: Buffer[], side: 'agent' | 'upstream'): WebSocketMessage[] {
  return new FrameDecoder({ role: side === 'agent' ? 'client' : 'server', maxMessageBytes: 1 << 20 }).push(
    Buffer.concat(bytes),
  );
}

describe('WebSocket port-forward relay', () => {
  it('relays each port’s channels both ways and counts payload without the port prefixes', () => {
    const r = new WebSocketPortForwardRelay({ agentProtocol: V4, upstreamProtocol: V4, ports: [8080, 9090] });
    // The kubelet starts every channel with its port, then the connection's bytes.
    const fromUp = r.fromUpstream(
      Buffer.concat([
        binary(0, portPrefix(8080), false),
        binary(1, portPrefix(8080), false),
        binary(2, portPrefix(9090), false),
        binary(3, portPrefix(9090), false),
        binary(0, 'HTTP/1.0 200 OK\r\n', false),
      ]),
    );
    const seen = read(fromUp.toAgent, 'agent');
    assert.equal(seen.length, 5);
    assert.deepEqual(seen[4], { type: 'binary', data: Buffer.from('\x00HTTP/1.0 200 OK\r\n') });
    const fromAgent = r.fromAgent(Buffer.concat([binary(0, 'GET /', true), binary(2, 'x', true)]));
    assert.deepEqual(
      read(fromAgent.toUpstream, 'upstream').map((m) => (m.type === 'binary' ? m.data.toString() : m.type)),
      ['\x00GET /', '\x02x'],
    );
    assert.deepEqual(r.usage, [
      { port: 8080, connections: 1, refused: 0, bytesToPod: 5, bytesToAgent: 17 },
      { port: 9090, connections: 1, refused: 0, bytesToPod: 1, bytesToAgent: 0 },
    ]);
  });

  it('translates base64 framing to binary and back', () => {
    const r = new WebSocketPortForwardRelay({ agentProtocol: V4_BASE64, upstreamProtocol: V4, ports: [80] });
    const up = r.fromAgent(frame(OPCODE.text, Buffer.from(`0${Buffer.from('hi').toString('base64')}`), true));
    assert.deepEqual(read(up.toUpstream, 'upstream'), [{ type: 'binary', data: Buffer.from('\x00hi') }]);
    const down = r.fromUpstream(binary(0, Buffer.concat([portPrefix(80), Buffer.from('yo')]), false));
    const [m] = read(down.toAgent, 'agent');
    assert.equal(m?.type, 'text');
    assert.equal(
      Buffer.from(String(m?.type === 'text' && m.data).slice(1), 'base64').toString('latin1'),
      '\x50\x00yo',
    );
  });

  it('answers pings on the side they came from and passes a close on, answered', () => {
    const r = new WebSocketPortForwardRelay({ agentProtocol: V4, upstreamProtocol: V4, ports: [80] });
    const ping = r.fromAgent(frame(OPCODE.ping, Buffer.from('p'), true));
    assert.deepEqual(read(ping.toAgent, 'agent'), [{ type: 'pong', data: Buffer.from('p') }]);
    assert.deepEqual(ping.toUpstream, []);
    const close = r.fromUpstream(frame(OPCODE.close, closePayload(1000, 'bye'), false));
    assert.equal(close.end, true);
    assert.deepEqual(read(close.toAgent, 'agent'), [{ type: 'close', code: 1000, reason: 'bye' }]);
    assert.deepEqual(read(close.toUpstream, 'upstream'), [{ type: 'close', code: 1000, reason: '' }]);
  });

  it('tells both sides when one breaks the protocol or goes away', () => {
    const r = new WebSocketPortForwardRelay({ agentProtocol: V4, upstreamProtocol: V4, ports: [80] });
    // An unmasked frame from a client (RFC 6455 §5.1).
    assert.throws(() => r.fromAgent(binary(0, 'x', false)));
    const out = r.broken('agent', new Error('x'));
    assert.equal(read(out.toUpstream, 'upstream')[0]?.type, 'close');
    assert.deepEqual(read(r.gone('upstream').toAgent, 'agent'), [{ type: 'close', code: 1011, reason: '' }]);
  });
});
