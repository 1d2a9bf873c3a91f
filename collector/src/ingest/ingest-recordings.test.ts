// Session recordings over the ingest protocol (chaperone.ingest.v2), against an in-process
// collector with the embedded store: a chunk is acknowledged with `recorded` only once stored,
// a resend is recognised by its offset, a hole or other bytes are refused, a chunk must be
// asciicast text within the limits, a sidecar records only sessions its own events name, and
// a v1 connection (an older sidecar) carries events only.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  CLOSE_CODES,
  encodeMessage,
  INGEST_SUBPROTOCOL,
  INGEST_SUBPROTOCOL_V1,
  MAX_RECORDING_CHUNK_BYTES,
  type NackMessage,
  type ServerMessage,
} from '@chaperone/shared';
import { ClosedError, type Connection, connectIngest } from '../testing/ingest-client.ts';
import { makeChain } from '../testing/test-events.ts';
import { type PodClaims, startTestCollector, type TestCollector } from '../testing/test-harness.ts';

type Open = Extract<Connection, { ok: true }>;

const POD_A: PodClaims & { sidecarId: string; pod: string } = {
  namespace: 'agents',
  pod: 'agent-0',
  podUID: 'uid-agent-0',
  serviceAccount: 'agent',
  sidecarId: 'agents/agent-0/uid-agent-0',
};
const POD_B: PodClaims & { sidecarId: string; pod: string } = {
  namespace: 'agents',
  pod: 'agent-1',
  podUID: 'uid-agent-1',
  serviceAccount: 'agent',
  sidecarId: 'agents/agent-1/uid-agent-1',
};
const HEADER = '{"version":2,"width":80,"height":24,"timestamp":1768467600}\n';
const LINE = '[0.25,"o","$ ls\\r\\n"]\n';

async function open(c: TestCollector, pod: typeof POD_A, subprotocol?: string): Promise<Open> {
  const conn = await connectIngest({
    url: c.url,
    token: await c.issuer.token(pod),
    ...(subprotocol ? { subprotocol } : {}),
  });
  assert.ok(conn.ok, conn.ok ? '' : `refused: ${conn.status} ${conn.body}`);
  conn.ws.send(encodeMessage({ type: 'hello', sidecarId: pod.sidecarId, schemaVersion: 1 }));
  assert.equal((await conn.messages.next()).type, 'welcome');
  return conn;
}

/** Sends the pod's chain, whose first event opens `sessionId`, and waits for its ack. */
async function openSession(conn: Open, pod: typeof POD_A, sessionId: string): Promise<void> {
  const events = makeChain(pod, 2, { spec: (i) => (i === 1 ? { sessionId, protocol: 'exec' } : {}) });
  conn.ws.send(encodeMessage({ type: 'batch', batchId: 1, events }));
  assert.equal((await conn.messages.next()).type, 'ack');
}

function send(
  conn: Open,
  batchId: number,
  sessionId: string,
  offset: number,
  data: string,
): Promise<ServerMessage> {
  conn.ws.send(encodeMessage({ type: 'recording', batchId, sessionId, offset, data }));
  return conn.messages.next();
}

const nack = (m: ServerMessage) => {
  assert.equal(m.type, 'nack', JSON.stringify(m));
  const n = m as NackMessage;
  return [n.batchId, n.code, n.retryable];
};

describe('ingest: session recordings', () => {
  let c: TestCollector;
  beforeEach(async () => {
    c = await startTestCollector();
  });
  afterEach(async () => {
    await c.close();
  });

  // Fails when `recorded` is sent before the commit or for a chunk that was not stored, when a
  // resend is stored twice, or when a hole is stored.
  it('stores a recording chunk by chunk, recognises a resend by its offset and refuses a hole', async () => {
    const conn = await open(c, POD_A);
    assert.equal(conn.ws.protocol, INGEST_SUBPROTOCOL);
    await openSession(conn, POD_A, 'sess-1');
    const size1 = Buffer.byteLength(HEADER);
    const size2 = size1 + Buffer.byteLength(LINE);
    assert.deepEqual(await send(conn, 2, 'sess-1', 0, HEADER), {
      type: 'recorded',
      batchId: 2,
      size: size1,
      duplicate: false,
    });
    assert.deepEqual(await send(conn, 3, 'sess-1', size1, LINE), {
      type: 'recorded',
      batchId: 3,
      size: size2,
      duplicate: false,
    });
    assert.deepEqual(await send(conn, 4, 'sess-1', size1, LINE), {
      type: 'recorded',
      batchId: 4,
      size: size2,
      duplicate: true,
    });
    assert.deepEqual(nack(await send(conn, 5, 'sess-1', size2 + 7, LINE)), [5, 'out_of_order', false]);
    assert.deepEqual(nack(await send(conn, 6, 'sess-1', size1, '[0.25,"o","$ rm\\r\\n"]\n')), [
      6,
      'recording_conflict',
      false,
    ]);
    assert.equal((await c.store.getRecording('sess-1'))?.content, HEADER + LINE);
    conn.ws.close();
  });

  // Fails when the session check is skipped (POD_B's chunk would be stored under POD_A's
  // session, or POD_A's recording of a session it never opened would be kept).
  it('records only sessions the chain’s own events name; another pod’s attempt is an alert', async () => {
    const a = await open(c, POD_A);
    await openSession(a, POD_A, 'sess-a');
    assert.equal((await send(a, 2, 'sess-a', 0, HEADER)).type, 'recorded');
    assert.deepEqual(nack(await send(a, 3, 'sess-never-opened', 0, HEADER)), [3, 'identity_mismatch', false]);
    const b = await open(c, POD_B);
    await openSession(b, POD_B, 'sess-b');
    const taken = await send(b, 2, 'sess-a', Buffer.byteLength(HEADER), LINE);
    assert.deepEqual(nack(taken), [2, 'identity_mismatch', false]);
    assert.match((taken as NackMessage).message, /belongs to another sidecar/);
    assert.equal((await c.store.getRecording('sess-a'))?.content, HEADER);
    const alerts = await c.store.listAlerts({ kind: 'identity_mismatch' }, 10);
    assert.ok(alerts.some((x) => x.pod === POD_B.pod && /sess-a/.test(x.message)));
    a.ws.close();
    b.ws.close();
  });

  // Fails when a chunk is stored without the asciicast check (asciinema could then not play
  // the recording) or a refusal does not name the message it answers.
  it('refuses chunks that are not asciicast text or too large, naming the message', async () => {
    const conn = await open(c, POD_A);
    await openSession(conn, POD_A, 'sess-1');
    const cases: [string, number, string, string][] = [
      ['sess-1', 0, '[0.1,"o","no header"]\n', 'invalid_recording'],
      ['sess-1', 0, '{"version":3,"term":{"cols":80,"rows":24}}\n', 'invalid_recording'],
      ['sess-1', 10, 'not json\n', 'invalid_recording'],
      ['sess-1', 10, '[0.1,"o","no newline"]', 'invalid_recording'],
      ['sess-1', 10, '[0.1,\r"o","raw CR"]\n', 'invalid_recording'],
      ['sess-1', 10, '[0.1,"o"]\n', 'invalid_recording'],
      ['../etc/passwd', 0, HEADER, 'invalid_recording'],
      ['sess-1', 10, `[0.1,"o","${'x'.repeat(MAX_RECORDING_CHUNK_BYTES)}"]\n`, 'too_large'],
    ];
    let id = 10;
    for (const [sessionId, offset, data, code] of cases) {
      const answer = await send(conn, ++id, sessionId, offset, data);
      assert.deepEqual(nack(answer), [id, code, false], `${sessionId} ${offset} ${data.slice(0, 40)}`);
    }
    assert.equal(await c.store.getRecording('sess-1'), undefined);
    conn.ws.close();
  });

  // Fails when the collector stops accepting v1 (older sidecars could no longer ship events) or
  // takes recordings on it.
  it('a v1 connection carries events; a recording on it ends the connection, naming v2', async () => {
    const conn = await open(c, POD_A, INGEST_SUBPROTOCOL_V1);
    assert.equal(conn.ws.protocol, INGEST_SUBPROTOCOL_V1);
    await openSession(conn, POD_A, 'sess-1');
    conn.ws.send(
      encodeMessage({ type: 'recording', batchId: 2, sessionId: 'sess-1', offset: 0, data: HEADER }),
    );
    const err = await conn.messages.next().then(
      (m) => assert.fail(`expected a close, got ${JSON.stringify(m)}`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ClosedError);
    assert.equal(err.code, CLOSE_CODES.protocolError);
    assert.match(err.reason, /recording messages need the subprotocol chaperone\.ingest\.v2/);
    assert.equal(await c.store.getRecording('sess-1'), undefined);
  });
});
