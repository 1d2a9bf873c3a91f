// `chaperone dev up` starts real servers; whatever happens to it, none may be
// left running: Ctrl-C (SIGINT) stops them in order, and if it is killed
// outright (SIGKILL, no cleanup code runs) the kernel stops them
// (parent-death signal). Each case starts its own short-lived servers.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { E2eState } from './environment.ts';
import { waitFor } from './process.ts';

const BIN = fileURLToPath(new URL('../../bin/chaperone.ts', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function devUp(args: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-cleanup-'));
  const stateFile = join(dir, 'state.json');
  const child = spawn(
    process.execPath,
    [BIN, 'dev', 'up', '--state-file', stateFile, '--pid-file', join(dir, 'pid'), ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout.on('data', (d) => {
    output += d;
  });
  child.stderr.on('data', (d) => {
    output += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const state = await waitFor(
    async () =>
      existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, 'utf8')) as E2eState) : undefined,
    { what: `chaperone dev up to be ready (output so far: ${output})`, timeoutMs: 120_000, intervalMs: 200 },
  );
  const pids = [...(state.kube?.pids ?? []), ...(state.postgres?.pids ?? [])];
  return {
    child,
    exited,
    pids,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
    output: () => output,
  };
}

describe('no stray processes', () => {
  it('Ctrl-C stops etcd, kube-apiserver, kube-controller-manager and postgres', {
    timeout: 180_000,
  }, async () => {
    const up = await devUp([]);
    try {
      assert.equal(up.pids.length, 4, up.output());
      for (const pid of up.pids) assert.ok(alive(pid), `pid ${pid} should be running`);
      up.child.kill('SIGINT');
      assert.equal(await up.exited, 0, up.output());
      for (const pid of up.pids) assert.equal(alive(pid), false, `pid ${pid} is still running`);
    } finally {
      up.child.kill('SIGKILL');
      up.cleanup();
    }
  });

  it('SIGKILL of the parent still stops every server (parent-death signal)', {
    timeout: 60_000,
  }, async () => {
    const up = await devUp(['--no-kube']);
    try {
      assert.equal(up.pids.length, 1);
      up.child.kill('SIGKILL');
      await up.exited;
      await waitFor(async () => up.pids.every((pid) => !alive(pid)), {
        what: 'postgres to exit after its parent was killed',
        timeoutMs: 10_000,
      });
    } finally {
      up.cleanup();
    }
  });
});
