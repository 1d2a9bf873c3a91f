import assert from 'node:assert/strict';
import {
  appendFileSync,
  fdatasync,
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
import { readSpoolDir, readSpoolRecordings, Spool } from './spool.ts';

/** Waits (up to 5 s) for `ok`; fails the test if it never holds. */
async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), 'the condition was not met within 5 s');
}

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

  it('flushes within flushWithinMs of a write, and sets no timer while nothing is new', async () => {
    const s = Spool.open(dir, { maxBytes: 1 << 20, flushWithinMs: 50 });
    try {
      assert.equal(s.flushDue, false, 'an idle spool sets no timer');
      s.append(ev(1));
      s.append(ev(2));
      assert.equal(s.onDisk, false);
      assert.equal(s.flushDue, true, 'the first write arms one flush');
      await until(() => s.onDisk);
      assert.equal(s.flushDue, false, 'and no timer is left');
      s.append(ev(3));
      assert.equal(s.flushDue, true, 'a later write arms it again');
    } finally {
      s.close();
    }
    assert.equal(s.flushDue, false);
    assert.equal(readSpoolDir(dir).length, 3);
  });

  it('a background flush reaches every segment written since the last one, however many it rotated through', async () => {
    const synced = new Set<number>();
    const s = Spool.open(dir, {
      maxBytes: 1 << 20,
      segmentBytes: 2000,
      fdatasync: (fd, done) => {
        synced.add(fd);
        fdatasync(fd, done);
      },
    });
    try {
      for (let i = 1; i <= 30; i++) s.append(ev(i));
      const segments = readdirSync(dir).filter((n) => n.startsWith('segment-')).length;
      assert.ok(segments > 3, `the spool rotated through ${segments} segments`);
      s.syncInBackground();
      await until(() => s.onDisk);
      assert.equal(synced.size, segments, 'each segment was flushed');
    } finally {
      s.close();
    }
  });

  it('says when a background flush fails and flushes again; nothing is said once it is closed', async () => {
    const errors: string[] = [];
    let mode: 'fail' | 'real' | 'hold' = 'fail';
    let held: (() => void) | undefined;
    const s = Spool.open(dir, {
      maxBytes: 1 << 20,
      flushWithinMs: 20,
      onSyncError: (err) => errors.push(err.message),
      fdatasync: (fd, done) => {
        if (mode === 'fail') {
          mode = 'real';
          done(new Error('EIO: the disk failed'));
        } else if (mode === 'hold') held = () => done(new Error('EBADF: bad file descriptor'));
        else fdatasync(fd, done);
      },
    });
    s.append(ev(1));
    await until(() => s.onDisk);
    assert.deepEqual(errors, ['EIO: the disk failed']);
    // A flush still running when the spool closes: its failure (the file is closed) is not an error to report.
    mode = 'hold';
    s.append(ev(2));
    await until(() => held !== undefined);
    s.close();
    held?.();
    assert.deepEqual(errors, ['EIO: the disk failed']);
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

  const chunk = (sessionId: string, offset: number, data: string) => ({ sessionId, offset, data });

  // Fails when recording chunks are kept apart from the events' order (readRun would then not
  // interleave them), when a chunk is acknowledged with the events (ack(seq) releasing it), or
  // when acked-position is not kept (the reopened spool would offer chunk A again).
  it('keeps recording chunks beside events, in order, acknowledged one by one, across reopen', () => {
    const s = Spool.open(dir, { maxBytes: 1 << 20 });
    s.append(ev(1));
    const a = s.appendRecording(chunk('sess-1', 0, '{"version":2,"width":80,"height":24}\n'));
    s.append(ev(2));
    const b = s.appendRecording(chunk('sess-1', 37, '[0.5,"o","hi"]\n'));
    s.append(ev(3));
    assert.deepEqual([s.depth, s.pendingRecordings, s.pending], [3, 2, 5]);
    const kinds = (after: number) =>
      s.readRun(after, 100).map((r) => (r.kind === 'event' ? `e${r.event.chaperone.seq}` : r.chunk.offset));
    assert.deepEqual(kinds(0), ['e1']);
    assert.deepEqual(kinds(1), [0]);
    assert.equal(a, 2);
    assert.deepEqual(kinds(a), ['e2']);
    assert.deepEqual(kinds(b), ['e3']);
    // Events are acknowledged by seq: the chunks stay.
    s.ack(3);
    assert.deepEqual([s.depth, s.pendingRecordings], [0, 2]);
    assert.deepEqual(kinds(0), [0]);
    s.ackRecording(a);
    assert.deepEqual(kinds(0), [37]);
    assert.equal(s.pending, 1);
    s.close();
    // Only chunk B was unacknowledged, and only it comes back.
    const r = Spool.open(dir, { maxBytes: 1 << 20 });
    assert.deepEqual([r.depth, r.pendingRecordings, r.head.seq], [0, 1, 3]);
    const [again] = r.readRun(0, 100);
    assert.equal(again?.kind, 'recording');
    assert.deepEqual(again?.kind === 'recording' && again.chunk, chunk('sess-1', 37, '[0.5,"o","hi"]\n'));
    assert.equal(r.append(ev(4)).chaperone.seq, 4);
    r.close();
    // Inspection: events and chunks apart; the chain runs through the chunks unbroken.
    assert.deepEqual(
      readSpoolDir(dir).map((e) => e.chaperone.seq),
      [1, 2, 3, 4],
    );
    assert.deepEqual(verifyChain(readSpoolDir(dir)).problems, []);
    assert.deepEqual(
      readSpoolRecordings(dir).map((c) => c.offset),
      [0, 37],
    );
  });

  it('a torn recording chunk is cut off like a torn event', () => {
    const s = Spool.open(dir, { maxBytes: 1 << 20 });
    s.append(ev(1));
    s.appendRecording(chunk('sess-1', 0, '{"version":2,"width":80,"height":24}\n'));
    s.close();
    const [seg] = readdirSync(dir).filter((f) => f.startsWith('segment-'));
    const path = join(dir, seg as string);
    truncateSync(path, statSync(path).size - 5);
    const reports: string[] = [];
    const r = Spool.open(dir, { maxBytes: 1 << 20, onRecovery: (w) => reports.push(w) });
    assert.equal(reports.length, 1);
    assert.deepEqual([r.depth, r.pendingRecordings], [1, 0]);
    r.close();
  });

  // Fails when segments are deleted by event seq alone (a segment of unacknowledged chunks would
  // go) or when segment names repeat (two segments of chunks with no event between them).
  it('deletes a segment only when every record in it is acknowledged, whatever its kind', () => {
    const s = Spool.open(dir, { maxBytes: 1 << 24, segmentBytes: 1000 });
    s.append(ev(1));
    const positions: number[] = [];
    for (let i = 0; i < 30; i++)
      positions.push(s.appendRecording(chunk('sess-1', i * 100, `[${i},"o","${'x'.repeat(80)}"]\n`)));
    s.append(ev(2));
    const segments = () => readdirSync(dir).filter((f) => f.startsWith('segment-'));
    const before = segments();
    assert.ok(before.length > 3);
    assert.equal(new Set(before).size, before.length);
    s.ack(2);
    assert.deepEqual(segments(), before, 'unacknowledged chunks keep their segments');
    for (const p of positions.slice(0, 20)) s.ackRecording(p);
    const after = segments();
    assert.ok(after.length < before.length && after.length > 1);
    for (const p of positions.slice(20)) s.ackRecording(p);
    assert.equal(segments().length, 1);
    assert.equal(s.pending, 0);
    s.close();
    const r = Spool.open(dir, { maxBytes: 1 << 24, segmentBytes: 1000 });
    assert.deepEqual([r.pending, r.head.seq], [0, 2]);
    assert.equal(r.append(ev(3)).chaperone.seq, 3);
    r.close();
  });
});
