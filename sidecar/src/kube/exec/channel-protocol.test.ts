// Channel framing (binary and base64 protocols), subprotocol negotiation and
// the handshake's keys.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytes } from '../http1/test-streams.ts';
import {
  AGENT_PROTOCOLS,
  ChannelFrameError,
  chooseProtocol,
  decodeChannelMessage,
  encodeChannelMessage,
  offeredProtocols,
  protocolNamed,
  UPSTREAM_PROTOCOLS,
} from './channel-protocol.ts';
import { acceptKey, checkUpstreamAnswer, readWebSocketOffer, upstreamUpgradeHead } from './handshake.ts';

describe('channel messages', () => {
  it('decode what they encode, in every protocol', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...AGENT_PROTOCOLS),
        fc.integer({ min: 0, max: 4 }),
        bytes(300),
        (p, ch, data) => {
          const m = encodeChannelMessage(p, ch, data);
          assert.equal(m.type, p.base64 ? 'text' : 'binary');
          const back = decodeChannelMessage(p, m.type, m.data);
          assert.equal(back?.channel, ch);
          assert.deepEqual(back?.data, data);
        },
      ),
    );
  });

  it('write base64 messages as the kubelet does: an ASCII channel digit, then padded base64', () => {
    const p = protocolNamed('v4.base64.channel.k8s.io');
    assert.ok(p);
    assert.equal(encodeChannelMessage(p, 1, Buffer.from('hi')).data.toString(), '1aGk=');
    assert.deepEqual(decodeChannelMessage(p, 'text', Buffer.from('0aGk=')), {
      channel: 0,
      data: Buffer.from('hi'),
    });
  });

  it('refuse messages that do not fit the protocol, and skip empty ones', () => {
    const b64 = protocolNamed('base64.channel.k8s.io');
    const bin = protocolNamed('v5.channel.k8s.io');
    assert.ok(b64 && bin);
    assert.throws(() => decodeChannelMessage(b64, 'binary', Buffer.from('0aGk=')), ChannelFrameError);
    assert.throws(() => decodeChannelMessage(b64, 'text', Buffer.from('xaGk=')), /channel digit/);
    assert.throws(() => decodeChannelMessage(b64, 'text', Buffer.from('0a*k=')), /not base64/);
    assert.throws(() => decodeChannelMessage(bin, 'text', Buffer.from('\x00hi')), ChannelFrameError);
    assert.equal(decodeChannelMessage(bin, 'binary', Buffer.alloc(0)), undefined);
  });

  it("choose the client's first offered protocol the guard speaks, as the kubelet does", () => {
    // kubectl from 1.31.
    assert.equal(chooseProtocol(offeredProtocols('v5.channel.k8s.io'))?.name, 'v5.channel.k8s.io');
    // @kubernetes/client-node.
    assert.equal(
      chooseProtocol(
        offeredProtocols('v4.channel.k8s.io, v3.channel.k8s.io,v2.channel.k8s.io, channel.k8s.io'),
      )?.name,
      'v4.channel.k8s.io',
    );
    assert.equal(
      chooseProtocol(offeredProtocols('v3.channel.k8s.io, base64.channel.k8s.io'))?.name,
      'base64.channel.k8s.io',
    );
    assert.equal(chooseProtocol(offeredProtocols('v6.channel.k8s.io')), undefined);
    assert.deepEqual(
      UPSTREAM_PROTOCOLS.map((p) => p.name),
      ['v5.channel.k8s.io', 'v4.channel.k8s.io'],
    );
  });
});

describe('WebSocket handshake', () => {
  it('computes the accept key of RFC 6455 §1.3', () => {
    assert.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  const headers = (over: Record<string, string | undefined>) =>
    Object.fromEntries(
      Object.entries({
        upgrade: 'websocket',
        connection: 'Upgrade',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-protocol': 'v5.channel.k8s.io',
        ...over,
      }).filter((e): e is [string, string] => e[1] !== undefined),
    );

  it('reads a valid offer and says what is wrong with others', () => {
    const ok = readWebSocketOffer({ method: 'GET', headers: headers({}) });
    assert.ok(!('problem' in ok));
    assert.equal(ok.protocol.name, 'v5.channel.k8s.io');
    const problem = (method: string, over: Record<string, string | undefined>) => {
      const r = readWebSocketOffer({ method, headers: headers(over) });
      return 'problem' in r ? r.problem : '';
    };
    assert.match(problem('POST', {}), /must be a GET/);
    assert.match(problem('GET', { connection: 'keep-alive' }), /Connection: Upgrade/);
    assert.match(problem('GET', { 'sec-websocket-version': '8' }), /must be 13/);
    assert.match(problem('GET', { 'sec-websocket-key': 'short' }), /16 bytes/);
    assert.match(problem('GET', { 'sec-websocket-protocol': undefined }), /offer v5.channel.k8s.io or v4/);
  });

  it("offers upstream v5 then v4 on one line, with the sidecar's credentials and none of the agent's", () => {
    const head = upstreamUpgradeHead({
      target: '/api/v1/namespaces/a/pods/p/exec?command=ls',
      host: 'api:6443',
      authorization: 'Bearer real',
      auditID: 'id-1',
      key: 'k',
      agentFields: [
        'Authorization',
        'Bearer placeholder',
        'Sec-WebSocket-Protocol',
        'v5.channel.k8s.io',
        'Sec-WebSocket-Key',
        'agent-key',
        'X-Forwarded-For',
        '10.0.0.1',
        'Impersonate-User',
        'bob',
        'User-Agent',
        'kubectl/v1.32.4',
        'Connection',
        'Upgrade, X-Hop',
        'X-Hop',
        'hop-secret',
      ],
    });
    assert.match(head, /^GET \/api\/v1\/namespaces\/a\/pods\/p\/exec\?command=ls HTTP\/1\.1\r\n/);
    assert.match(head, /\r\nsec-websocket-protocol: v5\.channel\.k8s\.io, v4\.channel\.k8s\.io\r\n/);
    assert.match(head, /\r\nauthorization: Bearer real\r\n/);
    assert.match(head, /\r\naudit-id: id-1\r\n/);
    assert.match(head, /\r\nImpersonate-User: bob\r\n/);
    assert.doesNotMatch(head, /placeholder|agent-key|10\.0\.0\.1|hop-secret/);
  });

  it('accepts only a 101 that names a protocol it offered, with the right accept key', () => {
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    const good = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-accept': acceptKey(key) };
    assert.equal(
      (
        checkUpstreamAnswer({ ...good, 'sec-websocket-protocol': 'v4.channel.k8s.io' }, key) as {
          name: string;
        }
      ).name,
      'v4.channel.k8s.io',
    );
    assert.match(
      String(
        (
          checkUpstreamAnswer({ ...good, 'sec-websocket-protocol': 'channel.k8s.io' }, key) as {
            problem: string;
          }
        ).problem,
      ),
      /did not offer/,
    );
    assert.match(
      String(
        (
          checkUpstreamAnswer(
            { ...good, 'sec-websocket-accept': 'x', 'sec-websocket-protocol': 'v4.channel.k8s.io' },
            key,
          ) as { problem: string }
        ).problem,
      ),
      /Accept/,
    );
  });
});
