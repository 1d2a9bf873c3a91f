// The SPDY port-forward relay, driven the way kubectl and a kubelet drive a
// session: real zlib streams compress and read the header blocks on both
// ends, so a block the relay dropped, added or wrote in the wrong context
// shows up as an inflate failure or wrong headers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { splitAt } from '../http1/test-streams.ts';
import { readPort } from './ports-query.ts';
import { SpdyProtocolError } from './spdy-frame-decoder.ts';
import {
  FLAG_FIN,
  readStreamHeaders,
  readStreamValue,
  readSynStream,
  TYPE,
  windowUpdateFrame,
} from './spdy-frames.ts';
import { HeaderBlockWriter, writeHeaderPairs } from './spdy-header-codec.ts';
import { SpdyPortForwardRelay } from './spdy-relay.ts';
import {
  data,
  PeerDeflater,
  PeerInflater,
  streamHeaders,
  synReply,
  synStream,
  wholeFrames,
} from './test-spdy.ts';

const DENIED = 22;
const refusal = (port: number) =>
  `error forwarding port ${port} to pod ns/web: chaperone: denied by rule "no-ssh": no`;

function relay(decided: number[] = []) {
  return new SpdyPortForwardRelay({
    decide: (port) => {
      decided.push(port);
      return port === DENIED ? { allowed: false, message: refusal(port) } : { allowed: true };
    },
  });
}

/** Both peers' compression contexts, as kubectl (agent) and the kubelet (upstream) keep them. */
function peers() {
  const p = {
    agentOut: new PeerDeflater(),
    agentIn: new PeerInflater(),
    upstreamOut: new PeerDeflater(),
    upstreamIn: new PeerInflater(),
    close() {
      for (const z of [p.agentOut, p.agentIn, p.upstreamOut, p.upstreamIn]) z.close();
    },
  };
  return p;
}

describe('SPDY port-forward relay', () => {
  it('passes an allowed connection on with its headers recompressed, and answers a denied one itself', async () => {
    const decided: number[] = [];
    const r = relay(decided);
    const p = peers();
    try {
      // kubectl: error stream, then data stream, for port 8080 (request 0) and port 22 (request 1).
      const opened = [
        synStream(1, await p.agentOut.block(streamHeaders('error', '8080', 0))),
        synStream(3, await p.agentOut.block(streamHeaders('data', '8080', 0))),
        synStream(5, await p.agentOut.block(streamHeaders('error', '22', 1))),
        synStream(7, await p.agentOut.block(streamHeaders('data', '22', 1))),
        data(3, 'GET / HTTP/1.0\r\n\r\n'),
        data(7, 'never upstream'),
        // After the refused blocks: the API server's inflater must still read this one (it would not if
        // the relay passed the agent's blocks on as they were, having dropped some).
        synStream(9, await p.agentOut.block(streamHeaders('error', '8080', 2))),
      ];
      const a = r.fromAgent(Buffer.concat(opened));
      assert.deepEqual(decided, [8080, 8080, 22, 22, 8080]);

      // Upstream: the allowed streams only, headers as sent, data byte for byte.
      const up = wholeFrames(Buffer.concat(a.toUpstream));
      assert.deepEqual(
        up.map((f) => (f.kind === 'control' ? `control ${f.type}` : `data ${f.streamId}`)),
        ['control 1', 'control 1', 'data 3', 'control 1'],
      );
      for (const [i, type] of [
        [0, 'error'],
        [1, 'data'],
      ] as const) {
        const f = up[i];
        assert.ok(f?.kind === 'control');
        const syn = readSynStream(f.body);
        assert.deepEqual(await p.upstreamIn.block(syn.block), streamHeaders(type, '8080', 0));
      }
      assert.equal(up[2]?.kind === 'data' && up[2].data.toString(), 'GET / HTTP/1.0\r\n\r\n');
      const late = up[3];
      assert.ok(late?.kind === 'control');
      assert.deepEqual(
        await p.upstreamIn.block(readSynStream(late.body).block),
        streamHeaders('error', '8080', 2),
      );

      // The agent: SYN_REPLY, the message and FIN on the error stream; SYN_REPLY and FIN on the data
      // stream; then the window of the dropped data given back.
      const toAgent = wholeFrames(Buffer.concat(a.toAgent));
      const described = [];
      for (const f of toAgent) {
        if (f.kind === 'data')
          described.push(`data ${f.streamId} ${f.flags & FLAG_FIN ? 'fin' : ''} ${f.data}`);
        else if (f.type === TYPE.synReply) {
          const h = readStreamHeaders(f.body, 'SYN_REPLY');
          assert.deepEqual(await p.agentIn.block(h.block), []);
          described.push(`reply ${h.streamId}`);
        } else if (f.type === TYPE.windowUpdate) {
          const w = readStreamValue(f.body, 'WINDOW_UPDATE');
          described.push(`window ${w.streamId} ${w.value}`);
        }
      }
      assert.deepEqual(described, [
        'reply 5',
        `data 5  ${refusal(22)}`,
        'data 5 fin ',
        'reply 7',
        'data 7 fin ',
        `window 0 ${'never upstream'.length}`,
      ]);

      // The kubelet replies to the allowed streams: its blocks reach kubectl rewritten, in the
      // context the sidecar's own replies used before them.
      const b = r.fromUpstream(
        Buffer.concat([
          synReply(1, await p.upstreamOut.block([])),
          synReply(3, await p.upstreamOut.block([['x-note', 'from the kubelet']])),
          data(3, 'HTTP/1.0 200 OK\r\n\r\nhello'),
          data(3, '', true),
        ]),
      );
      const back = wholeFrames(Buffer.concat(b.toAgent));
      assert.equal(back.length, 4);
      const reply3 = back[1];
      assert.ok(reply3?.kind === 'control');
      await p.agentIn.block(readStreamHeaders((back[0] as { body: Buffer }).body, 'SYN_REPLY').block);
      assert.deepEqual(await p.agentIn.block(readStreamHeaders(reply3.body, 'SYN_REPLY').block), [
        ['x-note', 'from the kubelet'],
      ]);
      assert.deepEqual(r.usage, [
        { port: 22, connections: 0, refused: 1, bytesToPod: 0, bytesToAgent: 0 },
        { port: 8080, connections: 1, refused: 0, bytesToPod: 18, bytesToAgent: 24 },
      ]);
    } finally {
      p.close();
    }
  });

  it('holds its own frames for the agent until the data frame being passed to it has ended', async () => {
    const r = relay();
    const p = peers();
    try {
      r.fromAgent(
        Buffer.concat([
          synStream(1, await p.agentOut.block(streamHeaders('error', '80', 0))),
          synStream(3, await p.agentOut.block(streamHeaders('data', '80', 0))),
        ]),
      );
      const big = data(3, Buffer.alloc(1000, 0x61));
      // Half of the kubelet's data frame is passed on…
      const first = r.fromUpstream(big.subarray(0, 500));
      // …then kubectl opens a denied connection: the refusal must not land inside that frame.
      const refused = r.fromAgent(synStream(5, await p.agentOut.block(streamHeaders('error', '22', 1))));
      assert.deepEqual(refused.toAgent, []);
      const rest = r.fromUpstream(big.subarray(500));
      const frames = wholeFrames(Buffer.concat([...first.toAgent, ...rest.toAgent]));
      assert.deepEqual(
        frames.map((f) => (f.kind === 'data' ? `data ${f.streamId} ${f.data.length}` : `control ${f.type}`)),
        ['data 3 1000', 'control 2', `data 5 ${refusal(22).length}`, 'data 5 0'],
      );
    } finally {
      p.close();
    }
  });

  it("takes its own messages' bytes off the agent's session window credit", async () => {
    const r = relay();
    const p = peers();
    try {
      r.fromAgent(synStream(1, await p.agentOut.block(streamHeaders('error', '22', 0))));
      const owed = refusal(22).length;
      // A counting agent credits the session for everything it read, the sidecar's message included.
      const a = r.fromAgent(windowUpdateFrame(0, owed + 100));
      const [w] = wholeFrames(Buffer.concat(a.toUpstream));
      assert.ok(w?.kind === 'control');
      assert.equal(readStreamValue(w.body, 'WINDOW_UPDATE').value, 100);
      // Paid off: later credit passes unchanged; stream credit for a refused stream does not pass.
      assert.deepEqual(r.fromAgent(windowUpdateFrame(0, 50)).toUpstream, [windowUpdateFrame(0, 50)]);
      assert.deepEqual(r.fromAgent(windowUpdateFrame(1, 50)).toUpstream, []);
    } finally {
      p.close();
    }
  });

  it('refuses a stream whose port the kubelet would not read, and never asks the policy', async () => {
    const decided: number[] = [];
    const r = relay(decided);
    const p = peers();
    try {
      for (const [id, port] of [
        [1, '0x50'],
        [3, '+80'],
        [5, '65536'],
        [7, ''],
      ] as const) {
        const out = r.fromAgent(synStream(id, await p.agentOut.block(streamHeaders('error', port, id))));
        assert.deepEqual(out.toUpstream, []);
        const msg = wholeFrames(Buffer.concat(out.toAgent)).find(
          (f) => f.kind === 'data' && f.data.length > 0,
        );
        assert.match(String(msg?.kind === 'data' && msg.data), /is not a port/);
      }
      assert.deepEqual(decided, []);
      assert.equal(readPort('08080'), 8080);
      assert.equal(readPort('1'), 1);
      assert.equal(readPort('0'), undefined);
      assert.equal(readPort(' 80'), undefined);
    } finally {
      p.close();
    }
  });

  it('stream ids the agent opens must increase and be odd', async () => {
    const p = peers();
    try {
      const r = relay();
      r.fromAgent(synStream(5, await p.agentOut.block(streamHeaders('error', '80', 0))));
      const again = synStream(3, await p.agentOut.block(streamHeaders('data', '80', 0)));
      assert.throws(() => r.fromAgent(again), SpdyProtocolError);
      const even = relay();
      assert.throws(
        () =>
          even.fromAgent(
            synStream(2, new HeaderBlockWriter().deflate(writeHeaderPairs(streamHeaders('data', '80', 0)))),
          ),
        (err: unknown) => err instanceof SpdyProtocolError,
      );
    } finally {
      p.close();
    }
  });

  it('gives the same bytes to the API server however the agent’s bytes are split', async () => {
    const p = peers();
    const frames: Buffer[] = [];
    for (let i = 0; i < 4; i++) {
      const port = i % 2 === 0 ? '8080' : String(DENIED);
      frames.push(synStream(4 * i + 1, await p.agentOut.block(streamHeaders('error', port, i))));
      frames.push(synStream(4 * i + 3, await p.agentOut.block(streamHeaders('data', port, i))));
      frames.push(data(4 * i + 3, Buffer.alloc(300 * i, 0x62)));
    }
    p.close();
    const stream = Buffer.concat(frames);
    const whole = relay().fromAgent(stream);
    const expectedUp = Buffer.concat(whole.toUpstream);
    const expectedAgent = Buffer.concat(whole.toAgent);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 10 }), (cuts) => {
        const r = relay();
        const up: Buffer[] = [];
        const agent: Buffer[] = [];
        for (const piece of splitAt(stream, cuts)) {
          const o = r.fromAgent(piece);
          up.push(...o.toUpstream);
          agent.push(...o.toAgent);
        }
        assert.deepEqual(Buffer.concat(up), expectedUp);
        // The window credit may come in several frames; everything else is the same.
        const credit = (b: Buffer) =>
          wholeFrames(b).reduce(
            (n, f) =>
              n +
              (f.kind === 'control' && f.type === TYPE.windowUpdate ? readStreamValue(f.body, 'w').value : 0),
            0,
          );
        const rest = (b: Buffer) =>
          wholeFrames(b).filter((f) => !(f.kind === 'control' && f.type === TYPE.windowUpdate));
        assert.equal(credit(Buffer.concat(agent)), credit(expectedAgent));
        assert.deepEqual(rest(Buffer.concat(agent)), rest(expectedAgent));
      }),
      { numRuns: 200 },
    );
  });
});
