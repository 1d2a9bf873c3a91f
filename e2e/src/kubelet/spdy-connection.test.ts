// The stand-in kubelet's SPDY session, driven over loopback by a client made
// of the frame encoders and decoder: stream accept and refusal, data and FIN
// both ways, PING echo, the close sequence (RST for open streams, GOAWAY), a
// protocol error, and flow control — none, as the kubelet's spdystream, or
// SPDY/3.1 windows for playing a strict peer.
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  type SpdyConnectionOptions,
  type SpdyFlowControl,
  SpdyServerConnection,
  type SpdyStream,
} from './spdy-connection.ts';
import {
  encodeDataFrame,
  encodePing,
  encodeSynStream,
  encodeWindowUpdate,
  GOAWAY_STATUS,
  RST_STATUS,
  type SpdyFrame,
  SpdyFrameDecoder,
} from './spdy-frames.ts';
import { SpdyHeaderDeflater, SpdyHeaderInflater } from './spdy-headers.ts';

interface Client {
  readonly socket: Socket;
  readonly frames: SpdyFrame[];
  readonly inflater: SpdyHeaderInflater;
  open(id: number, headers: [string, string][], fin?: boolean): void;
  send(frame: Buffer): void;
  /** Resolves with the frames so far once `done(frames)` holds. */
  until(done: (frames: readonly SpdyFrame[]) => boolean, what: string): Promise<readonly SpdyFrame[]>;
  closed: Promise<void>;
}

let server: Server;
let nextSession: (socket: Socket) => void = () => {};
/** Both ends of every connection, destroyed at the end even when a test failed half-way. */
const sockets = new Set<Socket>();

before(async () => {
  server = createServer((s) => {
    sockets.add(s);
    nextSession(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
});
after(() => {
  for (const s of sockets) s.destroy();
  server.close();
});

/** A server session with `opts`, and a client connected to it. */
async function session(
  opts: Partial<SpdyConnectionOptions> & { flowControl?: SpdyFlowControl },
): Promise<{ client: Client; conn: Promise<SpdyServerConnection> }> {
  const conn = new Promise<SpdyServerConnection>((resolve) => {
    nextSession = (s) =>
      resolve(new SpdyServerConnection(s, Buffer.alloc(0), { onStream: () => undefined, ...opts }));
  });
  const port = (server.address() as { port: number }).port;
  const socket = connect({ host: '127.0.0.1', port });
  sockets.add(socket);
  await new Promise<void>((r) => socket.once('connect', () => r()));
  const decoder = new SpdyFrameDecoder();
  const deflater = new SpdyHeaderDeflater();
  const frames: SpdyFrame[] = [];
  const waiters = new Set<() => void>();
  socket.on('data', (d: Buffer) => {
    frames.push(...decoder.push(d));
    for (const w of waiters) w();
  });
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  const client: Client = {
    socket,
    frames,
    inflater: new SpdyHeaderInflater(),
    open: (id, headers, fin = false) => socket.write(encodeSynStream(id, deflater.encode(headers), { fin })),
    send: (frame) => socket.write(frame),
    until: (done, what) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (!done(frames)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(frames);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`timed out waiting for ${what}; frames: ${JSON.stringify(frames.map((f) => f.type))}`),
          );
        }, 5000);
        waiters.add(check);
        check();
      }),
    closed,
  };
  return { client, conn };
}

/** A session whose first stream the test gets hold of. */
async function sessionWithStream(opts: { flowControl?: SpdyFlowControl }) {
  let accept: (s: SpdyStream) => void = () => {};
  const stream = new Promise<SpdyStream>((r) => {
    accept = r;
  });
  const { client } = await session({
    ...opts,
    onStream: (s) => {
      accept(s);
      return undefined;
    },
  });
  return { client, stream };
}

const dataBytes = (frames: readonly SpdyFrame[], id: number) =>
  frames.reduce((n, f) => n + (f.type === 'data' && f.streamId === id ? f.data.length : 0), 0);

describe('SPDY server session', () => {
  it('accepts a stream with an empty SYN_REPLY, passes data and FIN both ways, echoes client PINGs', async () => {
    let stream: SpdyStream | undefined;
    const received: string[] = [];
    const { client } = await session({
      onStream: (s) => {
        stream = s;
        s.onData = (d) => received.push(d.toString());
        s.onEnd = () => received.push('<end>');
        return undefined;
      },
    });
    client.open(1, [['streamtype', 'stdin']]);
    const [reply] = await client.until((f) => f.some((x) => x.type === 'syn_reply'), 'SYN_REPLY');
    assert.equal(reply?.type === 'syn_reply' && reply.streamId, 1);
    assert.deepEqual(reply?.type === 'syn_reply' && client.inflater.decode(reply.headerBlock), new Map());
    assert.equal(stream?.header('streamType'), 'stdin');

    client.send(encodeDataFrame(1, Buffer.from('abc'), true));
    client.send(encodePing(7));
    client.send(encodePing(8)); // even: an answer to a server ping, not echoed
    stream!.write(Buffer.from('xyz'));
    stream!.end();
    const frames = await client.until(
      (f) => f.some((x) => x.type === 'ping') && f.some((x) => x.type === 'data' && x.fin),
      'PING and FIN',
    );
    assert.deepEqual(received, ['abc', '<end>']);
    assert.deepEqual(
      frames.filter((f) => f.type === 'ping'),
      [{ type: 'ping', id: 7 }],
    );
    const data = frames.filter((f) => f.type === 'data');
    assert.deepEqual(
      data.map((f) => f.type === 'data' && [f.data.toString(), f.fin]),
      [
        ['xyz', false],
        ['', true],
      ],
    );
    client.socket.destroy();
  });

  it('refuses a stream with RST_STREAM CANCEL, and a stream id that does not grow with PROTOCOL_ERROR', async () => {
    const { client } = await session({
      onStream: (s) => (s.header('streamtype') === 'bad' ? 'no' : undefined),
    });
    client.open(1, [['streamtype', 'bad']]);
    client.open(3, [['streamtype', 'stdout']]);
    client.open(3, [['streamtype', 'stdout']]);
    const frames = await client.until(
      (f) => f.filter((x) => x.type === 'rst_stream').length === 2,
      'two resets',
    );
    assert.deepEqual(
      frames.filter((f) => f.type === 'rst_stream'),
      [
        { type: 'rst_stream', streamId: 1, status: RST_STATUS.cancel },
        { type: 'rst_stream', streamId: 3, status: RST_STATUS.protocolError },
      ],
    );
    assert.equal(frames.filter((f) => f.type === 'syn_reply').length, 1);
    client.socket.destroy();
  });

  it('closes as the kubelet does: RST for streams still open, then GOAWAY, then the socket', async () => {
    const { client, conn } = await session({});
    client.open(1, [['streamtype', 'error']]);
    client.open(3, [['streamtype', 'stdout']]);
    await client.until((f) => f.filter((x) => x.type === 'syn_reply').length === 2, 'two replies');
    (await conn).close();
    await client.closed;
    assert.deepEqual(
      client.frames.filter((f) => f.type === 'rst_stream' || f.type === 'goaway'),
      [
        { type: 'rst_stream', streamId: 1, status: RST_STATUS.cancel },
        { type: 'rst_stream', streamId: 3, status: RST_STATUS.cancel },
        { type: 'goaway', lastGoodStreamId: 3, status: GOAWAY_STATUS.ok },
      ],
    );
  });

  it('ends the session with GOAWAY PROTOCOL_ERROR on a broken frame', async () => {
    let error: Error | undefined;
    const { client } = await session({ onError: (e) => (error = e) });
    client.send(Buffer.from([0x80, 2, 0, 1, 0, 0, 0, 0])); // SPDY/2
    await client.closed;
    assert.deepEqual(
      client.frames.filter((f) => f.type === 'goaway'),
      [{ type: 'goaway', lastGoodStreamId: 0, status: GOAWAY_STATUS.protocolError }],
    );
    assert.match(String(error), /version 2/);
  });

  it('sends everything at once without flow control, as the kubelet (spdystream) does', async () => {
    const { client, stream } = await sessionWithStream({});
    client.open(1, [['streamtype', 'stdout']]);
    await client.until((f) => f.some((x) => x.type === 'syn_reply'), 'SYN_REPLY');
    (await stream).write(Buffer.alloc(200_000, 1));
    client.send(encodeDataFrame(1, Buffer.alloc(100_000)));
    await client.until((f) => dataBytes(f, 1) === 200_000, '200000 bytes');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(
      client.frames.filter((f) => f.type === 'window_update').length,
      0,
      'no WINDOW_UPDATE granted',
    );
    client.socket.destroy();
  });

  it('keeps to SPDY/3.1 windows when asked: 64 KiB, then what WINDOW_UPDATEs grant, stream and session', async () => {
    const { client, stream } = await sessionWithStream({ flowControl: 'spdy/3.1' });
    client.open(1, [['streamtype', 'stdout']]);
    await client.until((f) => f.some((x) => x.type === 'syn_reply'), 'SYN_REPLY');
    const s = await stream;
    s.write(Buffer.alloc(100_000, 1));
    s.end();
    await client.until((f) => dataBytes(f, 1) === 65_536, 'the initial window');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(dataBytes(client.frames, 1), 65_536, 'nothing beyond the window');

    client.send(encodeWindowUpdate(1, 50_000)); // the stream's window alone is not enough: the session's is empty
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(dataBytes(client.frames, 1), 65_536);
    client.send(encodeWindowUpdate(0, 50_000));
    const frames = await client.until((f) => f.some((x) => x.type === 'data' && x.fin), 'the rest and FIN');
    assert.equal(dataBytes(frames, 1), 100_000);

    // Receiving: each data frame is granted back, for the stream and the session.
    client.send(encodeDataFrame(1, Buffer.alloc(1000)));
    const granted = await client.until(
      (f) => f.filter((x) => x.type === 'window_update').length === 2,
      'grants',
    );
    assert.deepEqual(
      granted.filter((f) => f.type === 'window_update'),
      [
        { type: 'window_update', streamId: 1, delta: 1000 },
        { type: 'window_update', streamId: 0, delta: 1000 },
      ],
    );
    client.socket.destroy();
  });
});
