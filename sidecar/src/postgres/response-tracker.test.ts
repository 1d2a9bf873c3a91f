import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackendDecoder, type BackendMessage } from './backend-decoder.ts';
import * as enc from './encode.ts';
import { ResponseTracker, type Run } from './response-tracker.ts';

const decode = (...bufs: Buffer[]): BackendMessage[] =>
  new BackendDecoder({ maxMessageBytes: 1 << 20 }).push(Buffer.concat(bufs));

function tracker() {
  const done: [string, object][] = [];
  const parsed: [string, boolean][] = [];
  const mismatches: string[] = [];
  const t = new ResponseTracker<string>(
    {
      done: (run, outcome) => done.push([run.about, outcome]),
      parsed: (name, ok) => parsed.push([name, ok]),
      mismatch: (what) => mismatches.push(what),
    },
    () => 0n,
  );
  return { t, done, parsed, mismatches };
}

const run = (about: string): Run<string> => ({ about, startNs: 0n });
const error = (code: string) => enc.errorMessage('ERROR', code, 'failed');

describe('ResponseTracker', () => {
  it('ends the statements of a simple query one CommandComplete at a time', () => {
    const { t, done, mismatches } = tracker();
    t.expect({ t: 'query', runs: [run('select'), run('insert'), run('empty-ok')], next: 0 });
    for (const m of decode(
      enc.rowDescription([]),
      enc.dataRow([]),
      enc.commandComplete('SELECT 1'),
      enc.commandComplete('INSERT 0 3'),
      enc.emptyMessage('I'),
      enc.readyForQuery('I'),
    ))
      t.backend(m);
    assert.deepEqual(done, [
      ['select', { tag: 'SELECT 1' }],
      ['insert', { tag: 'INSERT 0 3' }],
      ['empty-ok', {}],
    ]);
    assert.equal(t.pending, 0);
    assert.deepEqual(mismatches, []);
  });

  it('after an error in a simple query, the statements after it did not run', () => {
    const { t, done } = tracker();
    t.expect({ t: 'query', runs: [run('a'), run('b'), run('c')], next: 0 });
    for (const m of decode(enc.commandComplete('SELECT 1'), error('22012'), enc.readyForQuery('I')))
      t.backend(m);
    assert.deepEqual(done, [
      ['a', { tag: 'SELECT 1' }],
      ['b', { sqlstate: '22012' }],
      ['c', { notRun: 'an earlier statement of the same query failed' }],
    ]);
  });

  it('in the extended protocol an error skips everything up to Sync, as the server does', () => {
    const { t, done, parsed } = tracker();
    t.expect({ t: 'parse', name: 's1' });
    t.expect({ t: 'bind' });
    t.expect({ t: 'execute', run: run('first') });
    t.expect({ t: 'parse', name: 's2' });
    t.expect({ t: 'bind' });
    t.expect({ t: 'execute', run: run('second') });
    t.expect({ t: 'sync' });
    t.expect({ t: 'parse', name: 's3' });
    t.expect({ t: 'sync' });
    for (const m of decode(
      enc.emptyMessage('1'),
      enc.emptyMessage('2'),
      enc.commandComplete('UPDATE 2'),
      error('42P01'), // Parse of s2 failed: its Bind and Execute are discarded
      enc.readyForQuery('E'),
      enc.emptyMessage('1'),
      enc.readyForQuery('E'),
    ))
      t.backend(m);
    assert.deepEqual(parsed, [
      ['s1', true],
      ['s2', false],
      ['s3', true],
    ]);
    assert.deepEqual(done, [
      ['first', { tag: 'UPDATE 2' }],
      [
        'second',
        { notRun: 'the server discarded it after an earlier error in the same pipeline', sqlstate: '42P01' },
      ],
    ]);
    assert.equal(t.pending, 0);
  });

  // Fails if a simple Query sent after a failed extended-protocol message (before the Sync) were
  // expected to be answered: every later statement's event would take the answer of the one before.
  it('after an error in the extended protocol a simple Query before the Sync is discarded too', () => {
    const { t, done, mismatches } = tracker();
    t.expect({ t: 'parse', name: '' });
    t.expect({ t: 'query', runs: [run('discarded-before')], next: 0 });
    for (const m of decode(error('42P01'))) t.backend(m);
    // Sent after the error was read, still before the Sync: discarded as well.
    t.expect({ t: 'query', runs: [run('discarded-after')], next: 0 });
    t.expect({ t: 'sync' });
    t.expect({ t: 'query', runs: [run('delete')], next: 0 });
    for (const m of decode(enc.readyForQuery('I'), enc.commandComplete('DELETE 1'), enc.readyForQuery('I')))
      t.backend(m);
    const discarded = 'the server discarded it after an earlier error in the same pipeline';
    assert.deepEqual(done, [
      ['discarded-before', { notRun: discarded, sqlstate: '42P01' }],
      ['discarded-after', { notRun: discarded }],
      ['delete', { tag: 'DELETE 1' }],
    ]);
    assert.deepEqual(mismatches, []);
    assert.equal(t.pending, 0);
  });

  it("a refused statement's error and ReadyForQuery are the sidecar's own", () => {
    const { t, done, mismatches } = tracker();
    t.expect({ t: 'refused' });
    t.expect({ t: 'refused-parse' });
    t.expect({ t: 'bind' });
    t.expect({ t: 'sync' });
    for (const m of decode(error('42601'), enc.readyForQuery('T'), error('42601'), enc.readyForQuery('E')))
      t.backend(m);
    assert.deepEqual(done, []);
    assert.deepEqual(mismatches, []);
    assert.equal(t.pending, 0);
  });

  it('statements still waiting when the connection ends are recorded as not run', () => {
    const { t, done } = tracker();
    t.expect({ t: 'query', runs: [run('slow')], next: 0 });
    t.abandon('the connection ended');
    assert.deepEqual(done, [['slow', { notRun: 'the connection ended' }]]);
  });

  // session.ts waits on these: a ReadyForQuery still to come (client_encoding is reported before
  // it), and a server discarding until Sync (a request sent then gets no answer).
  it('tells whether a ReadyForQuery is still to come, and whether the server is discarding', () => {
    const { t } = tracker();
    t.expect({ t: 'bind' });
    t.expect({ t: 'execute', run: run('select') });
    assert.equal(t.awaitsReady, false, 'no Sync yet: nothing will report');
    t.expect({ t: 'sync' });
    assert.equal(t.awaitsReady, true);
    for (const m of decode(enc.emptyMessage('2'), error('22012'))) t.backend(m);
    assert.equal(t.discarding, false, 'the Sync is already sent: what follows is answered');
    for (const m of decode(enc.readyForQuery('I'))) t.backend(m);
    assert.equal(t.awaitsReady, false);
    t.expect({ t: 'execute', run: run('again') });
    for (const m of decode(error('22012'))) t.backend(m);
    assert.equal(t.discarding, true, 'after an error with no Sync sent, the server discards');
    t.expect({ t: 'sync' });
    assert.equal(t.discarding, false);
  });

  // Fails if a refused or discarded Bind went untold: the session would keep the portal bound to a
  // statement the server never bound it to (session.ts #sendBind).
  it("tells a Bind's sender whether the server bound it, refused it, or discarded it", () => {
    const { t } = tracker();
    const told: [string, boolean][] = [];
    const bind = (name: string) => ({ t: 'bind' as const, settle: (ok: boolean) => told.push([name, ok]) });
    t.expect(bind('bound'));
    t.expect(bind('refused'));
    t.expect(bind('discarded'));
    t.expect({ t: 'sync' });
    for (const m of decode(enc.emptyMessage('2'), error('42P03'), enc.readyForQuery('I'))) t.backend(m);
    t.expect({ t: 'execute', run: run('fails') });
    for (const m of decode(error('22012'))) t.backend(m);
    t.expect(bind('after the error'));
    assert.deepEqual(told, [
      ['bound', true],
      ['refused', false],
      ['discarded', false],
      ['after the error', false],
    ]);
  });

  // Fails if a ReadyForQuery were not paired with the Sync or Query it answers (session.ts
  // #portalsEnded would forget portals of batches whose transaction has not ended).
  it('tells which Sync or Query a ReadyForQuery answered, past a Query the server discarded', () => {
    const { t } = tracker();
    t.expect({ t: 'parse', name: 'p' });
    t.expect({ t: 'query', runs: [run('discarded')], next: 0, batch: 1 });
    t.expect({ t: 'sync', batch: 2 });
    t.expect({ t: 'query', runs: [run('next')], next: 0, batch: 3 });
    for (const m of decode(error('42P01'), enc.readyForQuery('I'))) t.backend(m);
    assert.equal(t.readied?.batch, 2);
    for (const m of decode(enc.commandComplete('SELECT 1'), enc.readyForQuery('I'))) t.backend(m);
    assert.equal(t.readied?.batch, 3);
  });
});
