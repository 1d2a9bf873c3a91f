// The shipper against an in-process server that speaks the collector's side
// of the ingest protocol (a test double for the collector, so that acks,
// nacks, disconnects and resumption can be staged precisely).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type AuditEvent,
  createLogger,
  encodeMessage,
  INGEST_SUBPROTOCOL,
  parseClientMessage,
  verifyChain,
} from '@chaperone/shared';
import { testEvent as ev } from '@chaperone/shared/testing';
import { WebSocketServer } from 'ws';
import { Shipper } from './shipper.ts';
import { Spool } from './spool.ts';

/** Stores events by id like the collector; can drop connections after N batches. */
class FakeCollector {
  readonly wss: WebSocketServer;
  readonly stored = new Map<string, AuditEvent>();
  readonly tokens: string[] = [];
  dropAfterBatches = Number.POSITIVE_INFINITY;
  batches = 0;
  constructor() {
    this.wss = new WebSocketServer({
      port: 0,
      host: '127.0.0.1',
      handleProtocols: (p) => (p.has(INGEST_SUBPROTOCOL) ? INGEST_SUBPROTOCOL : false),
    });
    this.wss.on('connection', (ws, req) => {
      this.tokens.push(String(req.headers.authorization));
      ws.on('message', (data) => {
        const msg = parseClientMessage(String(data));
        if (msg.type === 'hello') {
          const all = [...this.stored.values()].sort((a, b) => a.chaperone.seq - b.chaperone.seq);
          const last = all.at(-1);
          ws.send(
            encodeMessage({
              type: 'welcome',
              head: { seq: last?.chaperone.seq ?? 0, hash: last?.chaperone.hash ?? '0'.repeat(64) },
            }),
          );
          return;
        }
        this.batches++;
        if (this.batches > this.dropAfterBatches) {
          ws.terminate(); // the batch is lost in transit, never acknowledged
          this.dropAfterBatches = Number.POSITIVE_INFINITY;
          return;
        }
        let dup = 0;
        for (const e of msg.events) {
          if (this.stored.has(e.auditID)) dup++;
          else this.stored.set(e.auditID, e);
        }
        const upTo = msg.events.at(-1)?.chaperone.seq ?? 0;
        ws.send(
          encodeMessage({
            type: 'ack',
            batchId: msg.batchId,
            upToSeq: upTo,
            stored: msg.events.length - dup,
            duplicates: dup,
          }),
        );
      });
    });
  }
  get url(): string {
    return `http://127.0.0.1:${(this.wss.address() as AddressInfo).port}`;
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('shipper', () => {
  let dir: string;
  let collector: FakeCollector;
  const log = createLogger({ name: 'test', level: 'silent' });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shipper-'));
    writeFileSync(join(dir, 'token'), 'collector-token-1');
    collector = new FakeCollector();
    await new Promise((resolve) => collector.wss.once('listening', resolve));
  });
  after(() => {
    collector.wss.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('delivers every event exactly once across a lost batch and a sidecar restart, and empties the spool', async () => {
    const spoolDir = join(dir, 'spool');
    let spool = Spool.open(spoolDir, { maxBytes: 1 << 24 });
    for (let i = 1; i <= 250; i++) spool.append(ev(i));
    collector.dropAfterBatches = 1;
    let shipper = new Shipper({
      url: collector.url,
      tokenFile: join(dir, 'token'),
      sidecarId: 'a/p/uid',
      spool,
      log,
      flushDelayMs: 1,
    });
    shipper.start();
    await until(() => collector.stored.size >= 100, 'some events to arrive');
    await shipper.stop();
    spool.close();

    // Restart: new events are appended while the old ones are still being delivered.
    spool = Spool.open(spoolDir, { maxBytes: 1 << 24 });
    writeFileSync(join(dir, 'token'), 'collector-token-2');
    shipper = new Shipper({
      url: collector.url,
      tokenFile: join(dir, 'token'),
      sidecarId: 'a/p/uid',
      spool,
      log,
      flushDelayMs: 1,
    });
    shipper.start();
    for (let i = 251; i <= 400; i++) spool.append(ev(i));
    await until(() => spool.depth === 0, 'the spool to drain');
    await shipper.stop();
    spool.close();

    assert.equal(collector.stored.size, 400);
    const events = [...collector.stored.values()].sort((a, b) => a.chaperone.seq - b.chaperone.seq);
    assert.deepEqual(verifyChain(events).problems, []);
    assert.ok(collector.tokens.includes('Bearer collector-token-1'));
    assert.ok(
      collector.tokens.includes('Bearer collector-token-2'),
      'the token file is re-read on reconnect',
    );
  });
});
