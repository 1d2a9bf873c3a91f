import assert from 'node:assert/strict';
import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { GENESIS_HASH, verifyChain } from '@chaperone/shared';
import { testEvent as ev } from '@chaperone/shared/testing';
import { Spool } from './spool.ts';

describe('audit spool', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'spool-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('chains events and keeps the chain across reopen', () => {
    const s = Spool.open(dir, { maxBytes: 1 << 20 });
    const first = s.append(ev(1));
    assert.equal(first.chaperone.seq, 1);
    assert.equal(first.chaperone.prevHash, GENESIS_HASH);
    for (let i = 2; i <= 10; i++) s.append(ev(i));
    s.close();
    const again = Spool.open(dir, { maxBytes: 1 << 20 });
    assert.equal(again.head.seq, 10);
    const next = again.append(ev(11));
    assert.equal(next.chaperone.seq, 11);
    const all = again.read(0, 100);
    assert.equal(all.length, 11);
    assert.deepEqual(verifyChain(all).problems, []);
    again.close();
  });

  it('a torn last record is detected and cut off; nothing before it is lost', () => {
    const s = Spool.open(dir, { maxBytes: 1 << 20 });
    for (let i = 1; i <= 5; i++) s.append(ev(i));
    s.close();
    const [seg] = readdirSync(dir).filter((f) => f.startsWith('segment-'));
    const path = join(dir, seg as string);
    const full = statSync(path).size;
    // A crash mid-write: the last record loses its tail.
    truncateSync(path, full - 17);
    const reports: string[] = [];
    const r = Spool.open(dir, { maxBytes: 1 << 20, onRecovery: (w) => reports.push(w) });
    assert.equal(r.head.seq, 4);
    assert.equal(reports.length, 1);
    assert.match(reports[0] as string, /cut off \d+ bytes of a torn or corrupt record/);
    const after = r.append(ev(6));
    assert.equal(after.chaperone.seq, 5);
    const events = r.read(0, 100);
    assert.deepEqual(
      events.map((e) => e.auditID.slice(-1)),
      ['1', '2', '3', '4', '6'],
    );
    assert.deepEqual(verifyChain(events).problems, []);
    r.close();
  });

  it('garbage after the last record (a corrupt header) is cut off too', () => {
    const s = Spool.open(dir, { maxBytes: 1 << 20 });
    s.append(ev(1));
    s.close();
    const [seg] = readdirSync(dir).filter((f) => f.startsWith('segment-'));
    appendFileSync(join(dir, seg as string), Buffer.from([0, 0, 0, 50, 1, 2, 3, 4, 9, 9]));
    const r = Spool.open(dir, { maxBytes: 1 << 20 });
    assert.equal(r.head.seq, 1);
    assert.equal(r.append(ev(2)).chaperone.seq, 2);
    assert.equal(r.read(0, 10).length, 2);
    r.close();
  });

  it('acknowledged events are released and whole segments deleted', () => {
    const s = Spool.open(dir, { maxBytes: 1 << 20, segmentBytes: 2000 });
    for (let i = 1; i <= 30; i++) s.append(ev(i));
    const segmentsBefore = readdirSync(dir).filter((f) => f.startsWith('segment-')).length;
    assert.ok(segmentsBefore > 3);
    assert.equal(s.depth, 30);
    s.ack(25);
    assert.equal(s.depth, 5);
    assert.equal(readFileSync(join(dir, 'acked'), 'utf8').trim(), '25');
    const segmentsAfter = readdirSync(dir).filter((f) => f.startsWith('segment-')).length;
    assert.ok(segmentsAfter < segmentsBefore);
    assert.deepEqual(
      s.read(0, 100).map((e) => e.chaperone.seq),
      [26, 27, 28, 29, 30],
    );
    assert.deepEqual(
      s.read(27, 2).map((e) => e.chaperone.seq),
      [28, 29],
    );
    s.close();
    const r = Spool.open(dir, { maxBytes: 1 << 20, segmentBytes: 2000 });
    assert.equal(r.ackedSeq, 25);
    assert.equal(r.depth, 5);
    assert.equal(r.head.seq, 30);
    r.close();
  });

  it('reports when it is full', () => {
    const s = Spool.open(dir, { maxBytes: 3000 });
    let n = 0;
    while (s.hasCapacity()) s.append(ev(++n));
    assert.ok(n > 1);
    s.ack(n);
    assert.equal(s.hasCapacity(), true);
    s.close();
  });
});
