import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { startMemoryRelease } from './memory-release.ts';

const MiB = 1024 * 1024;

/** A process whose CPU and heap the test moves by hand, and a collection that records its calls. */
function fakeProcess() {
  const p = { cpuUs: 0, held: 30 * MiB, collections: 0, afterCollect: 20 * MiB };
  const release = startMemoryRelease({
    collect: (o) => {
      assert.deepEqual(o, { type: 'major', execution: 'sync', flavor: 'last-resort' });
      p.collections++;
      p.held = p.afterCollect;
      p.cpuUs += 40_000; // the collection's own CPU
    },
    checkMs: 3_600_000, // the test calls check() itself
    quietCpuMs: 25,
    growthBytes: 2 * MiB,
    cpuUs: () => p.cpuUs,
    heldBytes: () => p.held,
  });
  return { p, release };
}

describe('memory release', () => {
  it('releases once the process is quiet after start-up, then only after the heap has grown again', () => {
    const { p, release } = fakeProcess();
    try {
      assert.equal(release.enabled, true);
      // Busy since the last look (start-up): nothing yet.
      p.cpuUs += 300_000;
      assert.equal(release.check(), false);
      // Quiet: what starting took is released.
      p.cpuUs += 1_000;
      assert.equal(release.check(), true);
      assert.equal(p.collections, 1);
      // The collection's CPU does not make the next look busy; nothing has grown, so nothing to do.
      assert.equal(release.check(), false);
      p.held += 1 * MiB;
      assert.equal(release.check(), false, 'less growth than is worth a collection');
      // A burst: busy, the heap grows; nothing happens while it lasts.
      p.held += 20 * MiB;
      p.cpuUs += 2_000_000;
      assert.equal(release.check(), false);
      p.cpuUs += 500_000;
      assert.equal(release.check(), false);
      assert.equal(p.collections, 1);
      // Quiet again: released.
      p.cpuUs += 2_000;
      assert.equal(release.check(), true);
      assert.equal(p.collections, 2);
      // A trickle of requests that leaves the heap as it is costs no collection.
      for (let i = 0; i < 5; i++) {
        p.cpuUs += 3_000;
        assert.equal(release.check(), false);
      }
      assert.equal(p.collections, 2);
    } finally {
      release.stop();
    }
  });

  it('does nothing without a collection to run (node without --expose-gc)', () => {
    const release = startMemoryRelease({ collect: undefined, checkMs: 10 });
    try {
      assert.equal(release.enabled, false);
      assert.equal(release.check(), false);
    } finally {
      release.stop();
    }
  });

  it('gives back the pages of a heap grown and left as garbage, in a real node with --expose-gc', () => {
    // A child process: the test runner's own node is not started with --expose-gc.
    const code = `
      import { startMemoryRelease } from ${JSON.stringify(new URL('./memory-release.ts', import.meta.url).href)};
      const { getHeapStatistics } = await import('node:v8');
      const committed = () => getHeapStatistics().total_heap_size;
      let keep = [];
      for (let i = 0; i < 200_000; i++) keep.push({ i, s: 'x'.repeat(i % 50) });
      keep = null;
      const before = committed();
      let freed = 0;
      const r = startMemoryRelease({ checkMs: 3_600_000, quietCpuMs: 1e9, onRelease: (x) => { freed = x.freedBytes; } });
      const released = r.check();
      r.stop();
      console.log(JSON.stringify({ enabled: r.enabled, released, before, after: committed(), freed }));
    `;
    const out = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(out.status, 0, out.stderr);
    const r = JSON.parse(out.stdout) as {
      enabled: boolean;
      released: boolean;
      before: number;
      after: number;
      freed: number;
    };
    assert.equal(r.enabled, true);
    assert.equal(r.released, true);
    assert.ok(r.after < r.before, `heap committed ${r.before} → ${r.after}`);
    assert.ok(r.freed > 0);
  });
});
