/**
 * node:test global setup for the end-to-end suite: one control plane and one
 * PostgreSQL for the whole run, described to the test processes through a
 * state file named in CHAPERONE_E2E_STATE; both stopped at the end.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STATE_ENV } from './environment.ts';
import { type Stack, startStack } from './stack.ts';

let stack: Stack | undefined;
let stateDir: string | undefined;

export async function globalSetup(): Promise<void> {
  const t0 = Date.now();
  const log = (line: string) => process.stderr.write(`e2e: ${line}\n`);
  stack = await startStack({ log });
  stateDir = mkdtempSync(join(tmpdir(), 'chaperone-e2e-'));
  const path = join(stateDir, 'state.json');
  writeFileSync(path, JSON.stringify(stack.state, null, 2), { mode: 0o600 });
  process.env[STATE_ENV] = path;
  const kube = stack.state.kube;
  log(
    `ready in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${
      kube ? `kube-apiserver ${kube.version.gitVersion} at ${kube.server} (${kube.mode})` : 'no control plane'
    }, PostgreSQL ${stack.state.postgres?.version ?? 'not started'}`,
  );
}

export async function globalTeardown(): Promise<void> {
  await stack?.stop();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
}
