import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { SIDECAR_NODE_OPTIONS, SIDECAR_RUNTIME_ENV } from './node-options.ts';

/** A real node process started as the injected sidecar container starts one (NODE_OPTIONS and the runtime environment). */
function runAsSidecar(code: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, ['-e', code], {
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NODE_OPTIONS: SIDECAR_NODE_OPTIONS,
      ...SIDECAR_RUNTIME_ENV,
    },
  });
}

function flagValue(name: string): number {
  const m = new RegExp(`(?:^|\\s)--${name}=(\\d+)(?:\\s|$)`).exec(SIDECAR_NODE_OPTIONS);
  assert.ok(m, `SIDECAR_NODE_OPTIONS sets --${name}`);
  return Number(m[1]);
}

test('node starts with the sidecar options: every one of them is allowed in NODE_OPTIONS', () => {
  // Node refuses to start when NODE_OPTIONS holds a V8 flag it does not allow
  // there (e.g. --optimize-for-size, --single-threaded-gc): the sidecar would not run.
  const r = runAsSidecar('process.stdout.write("started")');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'started');
});

test('the young generation stays within the semi-space bound under allocation churn', () => {
  const semiMiB = flagValue('max-semi-space-size');
  // Keeps ~50k objects alive at a time while allocating millions: without the
  // bound V8 grows its young generation well past a few MiB.
  const r = runAsSidecar(`
    const v8 = require('node:v8');
    let live = [];
    let most = 0;
    for (let i = 0; i < 3e6; i++) {
      live.push({ i, s: 'x' + i });
      if (live.length > 5e4) live = [];
      if (i % 1e5 === 0) {
        const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
        most = Math.max(most, s.space_size);
      }
    }
    process.stdout.write(String(most));
  `);
  assert.equal(r.status, 0, r.stderr);
  const mostBytes = Number(r.stdout);
  assert.ok(mostBytes > 0, `new space size read: ${r.stdout}`);
  // Two semi-spaces of at most semiMiB each, plus pages V8 counts beside them
  // (3–6 MiB measured with a 1 MiB bound, on a loaded machine too); without the
  // bound it reaches 64 MiB here. The margin keeps the test from depending on load.
  assert.ok(mostBytes <= 16 * semiMiB * 2 ** 20, `new space grew to ${mostBytes} bytes`);
});

test('V8 runs as many background worker threads as the options say', () => {
  const pool = flagValue('v8-pool-size');
  const r = runAsSidecar(`
    const { readdirSync, readFileSync } = require('node:fs');
    const names = readdirSync('/proc/self/task').map((t) => readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim());
    process.stdout.write(String(names.filter((n) => n === 'V8Worker').length));
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(Number(r.stdout), pool);
});
