// Port-forward sessions through the whole pipeline, over real sockets, with
// an in-process stand-in for the API server's side (no kubelet can run in a
// unit test): it answers the SPDY upgrade and then plays a kubelet —
// inflating every header block the sidecar sends in one zlib stream, as Go's
// framer does, replying to each stream and echoing data. The agent's side is
// a raw socket speaking SPDY the way kubectl does. Real kubectl and the real
// API server: e2e/src/sidecar-portforward.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:https';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { type AuditEvent, validateAuditEvent } from '@chaperone/shared';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { readSpoolDir } from '../../audit/spool.ts';
import { startTestPipeline } from '../test-pipeline.ts';
import { readStreamHeaders, readSynStream, TYPE } from './spdy-frames.ts';
import type { HeaderPairs } from './spdy-header-codec.ts';
import {
  data,
  FrameReader,
  PeerDeflater,
  PeerInflater,
  streamHeaders,
  synReply,
  synStream,
  type WholeFrame,
} from './test-spdy.ts';

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: t }
spec:
  defaultAction: allow
  rules:
    - name: no-ssh
      match: { portForward: { ports: [22] } }
      action: deny
      message: no ssh
    - name: mask-masked
      match: { resources: [pods], names: [masked] }
      action: mask
`;

/** What the stand-in API server saw of one upgrade. */
interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  /** The headers of each stream the sidecar opened, read in one inflate context. */
  readonly streams: HeaderPairs[];
  readonly data: string[];
}

/** Plays the kubelet's SPDY side: a reply per stream, data echoed. */
function serveSpdy(socket: Duplex, seen: Seen): void {
  const reader = new FrameReader();
  const inflate = new PeerInflater();
  const deflate = new PeerDeflater();
  let queue = Promise.resolve();
  socket.on('data', (chunk: Buffer) => {
    const frames = reader.push(chunk);
    queue = queue.then(async () => {
      for (const f of frames) {
        if (f.kind === 'control' && f.type === TYPE.synStream) {
          const syn = readSynStream(f.body);
          seen.streams.push(await inflate.block(syn.block));
          socket.write(synReply(syn.streamId, await deflate.block([])));
        } else if (f.kind === 'data' && f.data.length > 0) {
          seen.data.push(f.data.toString());
          socket.write(data(f.streamId, `echo:${f.data}`));
        }
      }
    });
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    inflate.close();
    deflate.close();
  });
}

const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

/** A raw agent connection: the upgrade request, then frames both ways. */
class Agent {
  readonly socket: Socket;
  readonly #reader = new FrameReader();
  readonly #frames: WholeFrame[] = [];
  #bytes: Buffer = Buffer.alloc(0);
  #upgraded = false;
  #ended = false;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.#ended = true;
    });
    this.socket.on('data', (d: Buffer) => {
      if (this.#upgraded) this.#frames.push(...this.#reader.push(d));
      else this.#bytes = Buffer.concat([this.#bytes, d]);
    });
  }

  /** Sends an HTTP request: a 101 gives its head (frames follow); any other answer is read to the end. */
  async request(text: string): Promise<string> {
    this.socket.write(text);
    for (let i = 0; i < 300; i++) {
      const end = this.#bytes.indexOf('\r\n\r\n');
      const head = end >= 0 ? this.#bytes.subarray(0, end).toString('latin1') : '';
      if (head.startsWith('HTTP/1.1 101')) {
        this.#upgraded = true;
        this.#frames.push(...this.#reader.push(this.#bytes.subarray(end + 4)));
        return head;
      }
      // A plain answer: read until its length is in, or the connection ends.
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? Number.NaN);
      if (end >= 0 && (this.#ended || this.#bytes.length >= end + 4 + length))
        return this.#bytes.toString('utf8');
      await tick();
    }
    throw new Error(`no answer; got ${JSON.stringify(this.#bytes.toString('latin1'))}`);
  }

  /** The frames received after the 101, once `until` holds. */
  async frames(until: (f: readonly WholeFrame[]) => boolean): Promise<readonly WholeFrame[]> {
    for (let i = 0; i < 300; i++) {
      if (until(this.#frames)) return this.#frames;
      await tick();
    }
    throw new Error(`timed out; frames so far: ${JSON.stringify(this.#frames)}`);
  }
}

const SPDY_UPGRADE = (pod: string) =>
  `POST /api/v1/namespaces/a/pods/${pod}/portforward HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: SPDY/3.1\r\n` +
  'x-stream-protocol-version: portforward.k8s.io\r\nauthorization: Bearer placeholder\r\n\r\n';

describe('port-forward sessions through the pipeline', () => {
  const ca = createCA({ commonName: 'test' });
  const leaf = issueCertificate({ ca, commonName: 'api', ipAddresses: ['127.0.0.1'] });
  let dir: string;
  let upstream: ReturnType<typeof createServer>;
  let upstreamUrl = '';
  const seen: Seen[] = [];
  /** How the stand-in answers an upgrade: 'spdy' plays the kubelet, a number refuses with that code. */
  let answer: 'spdy' | number = 'spdy';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portforward-'));
    writeFileSync(join(dir, 'token'), 'real-token');
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    upstream = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
      // The sidecar reads the target pod to learn which ports lead to a sidecar: `guarded` has one
      // (under a name of its own: it is recognised by its environment), `unreadable` cannot be read.
      const pod = /^\/api\/v1\/namespaces\/a\/pods\/([^/?]+)$/.exec(req.url ?? '')?.[1];
      if (req.method === 'GET' && pod !== undefined && pod !== 'unreadable') {
        const containers: unknown[] = [{ name: 'app', ports: [{ containerPort: 8080 }] }];
        if (pod === 'guarded')
          containers.push({
            name: 'proxy',
            env: [
              { name: 'CHAPERONE_KUBE_PORT', value: '6443' },
              { name: 'CHAPERONE_METRICS_PORT', value: '9091' },
              { name: 'CHAPERONE_DATABASES', value: 'orders=15432,audit=15433' },
            ],
            ports: [{ containerPort: 9091 }],
          });
        if (pod === 'config-port')
          containers.push({
            name: 'proxy',
            env: [
              { name: 'CHAPERONE_KUBE_PORT', valueFrom: { configMapKeyRef: { name: 'ports', key: 'kube' } } },
            ],
          });
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({ kind: 'Pod', metadata: { name: pod, namespace: 'a' }, spec: { containers } }),
        );
        return;
      }
      res.statusCode = pod === 'unreadable' ? 404 : 400;
      res.end(pod === 'unreadable' ? '{"kind":"Status","code":404}' : 'not an upgrade');
    });
    upstream.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      const s: Seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        streams: [],
        data: [],
      };
      seen.push(s);
      if (answer !== 'spdy') {
        const body = JSON.stringify({
          kind: 'Status',
          status: 'Failure',
          message: 'pods "gone" not found',
          code: answer,
        });
        socket.end(
          `HTTP/1.1 ${answer} Nope\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        );
        return;
      }
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n',
      );
      serveSpdy(socket, s);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamUrl = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });
  after(() => {
    upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const pipeline = () =>
    startTestPipeline({ dir, upstreamUrl, ca: ca.cert, portForward: { closeTimeoutMs: 500 } });

  it('SPDY: an allowed port reaches the API server with the real token and the Audit-ID; a denied one never does; the session is recorded', async () => {
    answer = 'spdy';
    const sc = await pipeline();
    const agentOut = new PeerDeflater();
    const agentIn = new PeerInflater();
    try {
      const a = new Agent(Number(new URL(sc.base).port));
      const head = await a.request(SPDY_UPGRADE('p'));
      assert.match(head, /^HTTP\/1\.1 101 /);
      assert.match(head, /X-Stream-Protocol-Version: portforward\.k8s\.io/i);
      a.socket.write(
        Buffer.concat([
          synStream(1, await agentOut.block(streamHeaders('error', '22', 0))),
          synStream(3, await agentOut.block(streamHeaders('data', '22', 0))),
          data(3, 'to the denied port'),
          synStream(5, await agentOut.block(streamHeaders('error', '8080', 1))),
          synStream(7, await agentOut.block(streamHeaders('data', '8080', 1))),
          data(7, 'hello'),
        ]),
      );
      const frames = await a.frames((f) =>
        f.some((x) => x.kind === 'data' && x.data.toString() === 'echo:hello'),
      );
      // Every reply the agent got reads in its one inflate context: the sidecar's own and the kubelet's.
      const replies: number[] = [];
      for (const f of frames)
        if (f.kind === 'control' && f.type === TYPE.synReply) {
          const h = readStreamHeaders(f.body, 'SYN_REPLY');
          assert.deepEqual(await agentIn.block(h.block), []);
          replies.push(h.streamId);
        }
      assert.deepEqual(replies, [1, 3, 5, 7]);
      const refusal = frames.find((f) => f.kind === 'data' && f.streamId === 1 && f.data.length > 0);
      assert.match(
        String(refusal?.kind === 'data' && refusal.data),
        /^error forwarding port 22 to pod a\/p: chaperone: denied by rule "no-ssh": no ssh$/,
      );
      const s = seen.at(-1) as Seen;
      assert.equal(s.method, 'POST');
      assert.equal(s.url, '/api/v1/namespaces/a/pods/p/portforward');
      assert.equal(s.headers.authorization, 'Bearer real-token');
      assert.equal(s.headers['x-stream-protocol-version'], 'portforward.k8s.io');
      assert.deepEqual(s.streams, [streamHeaders('error', '8080', 1), streamHeaders('data', '8080', 1)]);
      assert.deepEqual(s.data, ['hello']);
      a.socket.end();
      const events = await waitForEnd(sc.spoolDir);
      // Each is a valid event as the collector reads it (the portForward part included).
      for (const e of events) validateAuditEvent(JSON.parse(JSON.stringify(e)));
      const opened = events.find((e) => e.stage === 'ResponseStarted');
      assert.equal(opened?.auditID, s.headers['audit-id']);
      assert.deepEqual(opened?.chaperone.portForward, { transport: 'spdy' });
      const decisions = events.filter((e) => e.chaperone.portForward?.port !== undefined);
      assert.deepEqual(
        decisions.map((e) => [
          e.chaperone.portForward?.port,
          e.chaperone.decision.action,
          e.responseStatus?.code,
        ]),
        [
          [22, 'deny', 403],
          [8080, 'allow', 200],
        ],
      );
      const end = events.at(-1);
      assert.equal(end?.chaperone.sessionId, opened?.auditID);
      assert.deepEqual(end?.chaperone.portForward?.used, [
        { port: 22, connections: 0, refused: 1, bytesToPod: 0, bytesToAgent: 0 },
        { port: 8080, connections: 1, refused: 0, bytesToPod: 5, bytesToAgent: 10 },
      ]);
    } finally {
      agentOut.close();
      agentIn.close();
      await sc.close();
    }
  });

  // Fails if the sidecar's ports of the target pod are not looked up (remove the lookUpSidecarPorts call
  // in session-guard.ts) or are let through: tried, 6443 then reaches the stand-in.
  it("refuses a sidecar's ports in the target pod whatever the policy says, and a pod it cannot read", async () => {
    answer = 'spdy';
    const sc = await pipeline();
    const agentOut = new PeerDeflater();
    try {
      const a = new Agent(Number(new URL(sc.base).port));
      assert.match(await a.request(SPDY_UPGRADE('guarded')), /^HTTP\/1\.1 101 /);
      // Client streams have odd ids: each connection an error stream (id % 4 === 1) and a data stream.
      let id = -1;
      const next = () => {
        id += 2;
        return id;
      };
      const open = async (port: string, n: number) =>
        Buffer.concat([
          synStream(next(), await agentOut.block(streamHeaders('error', port, n))),
          synStream(next(), await agentOut.block(streamHeaders('data', port, n))),
        ]);
      a.socket.write(
        Buffer.concat([
          await open('6443', 0),
          await open('15433', 1),
          await open('9091', 2),
          await open('8080', 3),
          data(id, 'hello'),
        ]),
      );
      const frames = await a.frames((f) =>
        f.some((x) => x.kind === 'data' && x.data.toString() === 'echo:hello'),
      );
      const refusals = frames
        .filter((f) => f.kind === 'data' && f.data.length > 0 && f.streamId % 4 === 1)
        .map((f) => (f.kind === 'data' ? f.data.toString() : ''));
      assert.equal(refusals.length, 3);
      for (const r of refusals)
        assert.match(r, /chaperone: denied by rule "chaperone-no-port-forward-to-sidecar"/);
      const s = seen.at(-1) as Seen;
      assert.deepEqual(
        s.streams.map((h) => h.find(([k]) => k === 'port')?.[1]),
        ['8080', '8080'],
        'only the application port reached the API server',
      );
      a.socket.end();
      const text = await new Agent(Number(new URL(sc.base).port)).request(SPDY_UPGRADE('unreadable'));
      assert.match(
        text,
        /^HTTP\/1\.1 404 [\s\S]*could not be read to learn which of its ports lead to a Chaperone sidecar/,
      );
      // Fails if a port given by valueFrom is skipped (the sidecar's listener would be reachable): the
      // ports cannot be known from the pod, so none of the pod's is forwarded.
      const unknown = await new Agent(Number(new URL(sc.base).port)).request(SPDY_UPGRADE('config-port'));
      assert.match(
        unknown,
        /^HTTP\/1\.1 403 [\s\S]*chaperone-no-port-forward-to-sidecar[\s\S]*sets CHAPERONE_KUBE_PORT from valueFrom/,
      );
    } finally {
      agentOut.close();
      await sc.close();
    }
  });

  it('answers the WebSocket tunnel, a request that does not upgrade, a WebSocket without ports and a mask decision itself', async () => {
    const sc = await pipeline();
    const before = seen.length;
    try {
      const ask = async (text: string) => new Agent(Number(new URL(sc.base).port)).request(text);
      const ws = (pod: string, query: string, protocol: string) =>
        `GET /api/v1/namespaces/a/pods/${pod}/portforward${query} HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n` +
        `sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-protocol: ${protocol}\r\n\r\n`;
      // Fails if the tunnel got a 101 (kubectl would then speak SPDY inside WebSocket messages to a relay that reads none).
      assert.match(
        await ask(ws('p', '', 'SPDY/3.1+portforward.k8s.io')),
        /^HTTP\/1\.1 400 [\s\S]*runs over SPDY/,
      );
      assert.match(
        await ask('GET /api/v1/namespaces/a/pods/p/portforward HTTP/1.1\r\nhost: x\r\n\r\n'),
        /^HTTP\/1\.1 400 [\s\S]*must be an upgrade/,
      );
      assert.match(await ask(ws('p', '', 'v4.channel.k8s.io')), /^HTTP\/1\.1 400 [\s\S]*add ports=/);
      assert.match(
        await ask(ws('p', '?ports=0x50', 'v4.channel.k8s.io')),
        /^HTTP\/1\.1 400 [\s\S]*is not a port/,
      );
      assert.match(
        await ask(ws('p', '?ports=8080,22', 'v4.channel.k8s.io')),
        /^HTTP\/1\.1 403 [\s\S]*no-ssh/,
      );
      assert.match(await ask(SPDY_UPGRADE('masked')), /^HTTP\/1\.1 403 [\s\S]*nothing in them can be masked/);
      assert.equal(seen.length, before, 'none of them reached the API server');
    } finally {
      await sc.close();
    }
  });

  // Fails if a port's decision goes unrecorded and the port is let through anyway.
  it('refuses a port whose decision the spool cannot take, and forwards nothing of it', async () => {
    answer = 'spdy';
    let full = false;
    const sc = await startTestPipeline({
      dir,
      upstreamUrl,
      ca: ca.cert,
      portForward: { closeTimeoutMs: 500 },
      spool: {
        write: (fd, buffer, offset, length, position) => {
          if (full) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
          return writeSync(fd, buffer, offset, length, position);
        },
      },
    });
    const agentOut = new PeerDeflater();
    try {
      const a = new Agent(Number(new URL(sc.base).port));
      assert.match(await a.request(SPDY_UPGRADE('p')), /^HTTP\/1\.1 101 /);
      full = true;
      a.socket.write(synStream(1, await agentOut.block(streamHeaders('error', '8080', 0))));
      const frames = await a.frames((f) => f.some((x) => x.kind === 'data' && x.data.length > 0));
      const refusal = frames.find((f) => f.kind === 'data' && f.data.length > 0);
      assert.match(
        String(refusal?.kind === 'data' && refusal.data),
        /could not be written to the audit spool/,
      );
      assert.deepEqual((seen.at(-1) as Seen).streams, []);
      a.socket.end();
    } finally {
      agentOut.close();
      await sc.close();
    }
  });

  it("passes the API server's refusal of the upgrade to the agent as it came", async () => {
    answer = 404;
    const sc = await pipeline();
    try {
      const text = await new Agent(Number(new URL(sc.base).port)).request(SPDY_UPGRADE('gone'));
      assert.match(text, /^HTTP\/1\.1 404 [\s\S]*pods \\"gone\\" not found/);
    } finally {
      answer = 'spdy';
      await sc.close();
    }
  });
});

async function waitForEnd(spoolDir: string): Promise<AuditEvent[]> {
  for (let i = 0; i < 200; i++) {
    const events = readSpoolDir(spoolDir) as AuditEvent[];
    if (events.some((e) => e.chaperone.portForward?.used)) return events;
    await tick(20);
  }
  throw new Error('the session did not end');
}
