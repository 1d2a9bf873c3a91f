// Translation between the channel protocol versions an agent and an API
// server may speak, and reading the session's Status.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ChannelProtocol, protocolNamed } from './channel-protocol.ts';
import { parseStatus, statusForAgent, toAgent, toUpstream } from './translate.ts';

const p = (name: string): ChannelProtocol => {
  const found = protocolNamed(name);
  assert.ok(found, name);
  return found;
};
const V5 = p('v5.channel.k8s.io');
const V4 = p('v4.channel.k8s.io');
const V1 = p('channel.k8s.io');

const EXIT_3 = Buffer.from(
  '{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}',
);

describe('toUpstream', () => {
  it('passes stdin and resizes between any versions', () => {
    for (const [a, u] of [
      [V5, V4],
      [V4, V5],
      [V1, V4],
    ] as const) {
      const m = { channel: 0, data: Buffer.from('ls\n') };
      assert.deepEqual(toUpstream(a, u, m), { kind: 'forward', message: m });
      const r = { channel: 4, data: Buffer.from('{"Width":80,"Height":24}') };
      assert.deepEqual(toUpstream(a, u, r), { kind: 'forward', message: r });
    }
  });

  it("passes v5's end of stdin to a v5 upstream, and reports it for a v4 one (which cannot carry it)", () => {
    const close = { channel: 255, data: Buffer.from([0]) };
    assert.deepEqual(toUpstream(V5, V5, close), { kind: 'forward', message: close });
    assert.deepEqual(toUpstream(V5, V4, close), { kind: 'stdin-end' });
    // Closing another stream means nothing to a v4 upstream; a v4 agent has no close signal.
    assert.deepEqual(toUpstream(V5, V4, { channel: 255, data: Buffer.from([1]) }), { kind: 'drop' });
    assert.deepEqual(toUpstream(V4, V4, close), { kind: 'drop' });
  });

  it('drops what an agent writes on channels the pod does not read', () => {
    for (const ch of [1, 2, 3, 7])
      assert.deepEqual(toUpstream(V5, V5, { channel: ch, data: Buffer.from('x') }), { kind: 'drop' });
  });
});

describe('toAgent', () => {
  it('passes output and a v4/v5 Status unchanged', () => {
    const out = { channel: 1, data: Buffer.from('hi') };
    assert.equal(toAgent(V4, V5, out), out);
    const status = { channel: 3, data: EXIT_3 };
    assert.equal(toAgent(V4, V5, status), status);
    assert.equal(toAgent(V5, V4, status), status);
  });

  it("gives a pre-v4 agent the Status's message alone, and nothing for a success", () => {
    assert.deepEqual(
      toAgent(V4, V1, { channel: 3, data: EXIT_3 })?.data.toString(),
      parseStatus(EXIT_3)?.message,
    );
    assert.equal(
      toAgent(V4, V1, { channel: 3, data: Buffer.from('{"metadata":{},"status":"Success"}') }),
      undefined,
    );
  });

  it('passes close signals only between v5 ends', () => {
    const close = { channel: 255, data: Buffer.from([1]) };
    assert.equal(toAgent(V5, V5, close), close);
    assert.equal(toAgent(V5, V4, close), undefined);
  });
});

describe('parseStatus', () => {
  it('reads the exit code of NonZeroExitCode and 0 of Success', () => {
    assert.equal(parseStatus(EXIT_3)?.exitCode, 3);
    assert.equal(parseStatus(Buffer.from('{"metadata":{},"status":"Success"}'))?.exitCode, 0);
    const forbidden = parseStatus(Buffer.from('{"status":"Failure","reason":"Forbidden","message":"no"}'));
    assert.deepEqual(forbidden, { status: 'Failure', reason: 'Forbidden', message: 'no' });
    assert.equal(parseStatus(Buffer.from('not json')), undefined);
  });

  it("writes the sidecar's own Status in the agent's version", () => {
    const s = {
      kind: 'Status',
      status: 'Failure',
      message: 'chaperone: denied',
      reason: 'Forbidden',
      code: 403,
    };
    assert.deepEqual(JSON.parse(String(statusForAgent(V5, s))), s);
    assert.equal(String(statusForAgent(V1, s)), 'chaperone: denied');
  });
});
