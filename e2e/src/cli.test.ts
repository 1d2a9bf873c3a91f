// Drives the real `chaperone` binary as a user would: exit codes and messages.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/chaperone.ts', import.meta.url));

function chaperone(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('chaperone CLI', () => {
  it('--help lists the components', () => {
    const r = chaperone('--help');
    assert.equal(r.code, 0, r.err);
    for (const c of ['injector', 'sidecar', 'collector'])
      assert.match(r.out, new RegExp(`^\\s+${c}\\b`, 'm'));
  });

  it('<command> --help works', () => {
    const r = chaperone('sidecar', '--help');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Usage: chaperone sidecar/);
  });

  it('an unknown flag exits 2 with a clear message', () => {
    const r = chaperone('--bogus');
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown option '--bogus'/);
  });

  it('an unknown command exits 2 and suggests the closest one', () => {
    const r = chaperone('sidcar');
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown command 'sidcar'/);
    assert.match(r.err, /Did you mean sidecar\?/);
  });

  it('--version prints the version', () => {
    const r = chaperone('--version');
    assert.equal(r.code, 0);
    assert.match(r.out, /^\d+\.\d+\.\d+/);
  });
});
