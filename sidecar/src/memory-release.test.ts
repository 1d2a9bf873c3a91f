import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { bytecodeOldAge, startMemoryRelease, V8_BYTECODE_OLD_AGE } from './memory-release.ts';

const MiB = 1024 * 1024;

/** A process whose CPU and heap the test moves by hand, and a collection that records its calls. */
function fakeProcess() {
  const p = { cpuUs: 0, held: 30 * MiB, collections: 0, afterCollect: 20 * MiB, calls: [] as string[] };
  const release = startMemoryRelease({
    setV8Flags: (flags) => p.calls.push(flags),
    collect: (o) => {
      assert.deepEqual(o, { type: 'major', execution: 'sync', flavor: 'last-resort' });
      p.calls.push('collect');
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

  it("drops start-up's unused bytecode at the first release only, then puts V8's bytecode age back", () => {
    const { p, release } = fakeProcess();
    try {
      assert.equal(release.check(), true);
      assert.deepEqual(p.calls, [
        '--bytecode-old-age=1',
        'collect',
        `--bytecode-old-age=${V8_BYTECODE_OLD_AGE}`,
      ]);
      p.held = 30 * MiB;
      p.calls.length = 0;
      assert.equal(release.check(), true);
      assert.deepEqual(p.calls, ['collect']);
    } finally {
      release.stop();
    }
  });

  it("puts back V8's own bytecode age (node --v8-options)", () => {
    const out = spawnSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    const m = /--bytecode-old-age \(.*\)\s+type: int\s+default: --bytecode-old-age=(\d+)/.exec(out.stdout);
    assert.ok(m, 'node --v8-options lists --bytecode-old-age');
    assert.equal(Number(m[1]), V8_BYTECODE_OLD_AGE);
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

  it('puts back the bytecode age node was started with, if any', () => {
    assert.equal(bytecodeOldAge([]), V8_BYTECODE_OLD_AGE);
    assert.equal(bytecodeOldAge(['--expose-gc', '--bytecode-old-age=3']), 3);
    assert.equal(bytecodeOldAge(['--bytecode_old_age', '4', '--no-sparkplug']), 4);
    assert.equal(bytecodeOldAge(['--bytecode-old-age']), V8_BYTECODE_OLD_AGE);
  });

  it('drops the bytecode of code run before the first release, which runs again after, in a real node', () => {
    // Two children, the same start-up (300 functions, each run once), one with the first release's
    // bytecode age and one without it. After the release, the functions run again: compiled anew
    // (V8's bytecode space grows by theirs) when their bytecode was dropped, as they were otherwise.
    const run = (flush: boolean) => {
      const code = `
        import { startMemoryRelease } from ${JSON.stringify(new URL('./memory-release.ts', import.meta.url).href)};
        const { getHeapSpaceStatistics } = await import('node:v8');
        const bytecode = () => getHeapSpaceStatistics().find((s) => s.space_name === 'trusted_space').space_used_size;
        const fns = [];
        for (let i = 0; i < 300; i++)
          fns.push(new Function('a', 'let s = 0; for (let j = 0; j < a; j++) { s += j * ' + i + '; if (s > 1e9) s -= 7; } return s + ' + i + ';'));
        const run = () => fns.reduce((sum, f) => sum + f(3), 0);
        const first = run();
        const r = startMemoryRelease({ checkMs: 3_600_000, quietCpuMs: 1e9, ...(${flush} ? {} : { setV8Flags: () => {} }) });
        r.check();
        r.stop();
        const after = bytecode();
        const again = run();
        console.log(JSON.stringify({ grew: bytecode() - after, same: again === first }));
      `;
      const out = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(out.status, 0, out.stderr);
      return JSON.parse(out.stdout) as { grew: number; same: boolean };
    };
    const flushed = run(true);
    const kept = run(false);
    assert.equal(flushed.same, true, 'the functions give the same results compiled anew');
    // 300 small functions' bytecode: ~50 kB.
    assert.ok(flushed.grew >= 30_000, `their bytecode made again: ${flushed.grew} bytes`);
    assert.ok(kept.grew < 10_000, `kept without the first release's age: ${kept.grew} bytes made again`);
  });
});
