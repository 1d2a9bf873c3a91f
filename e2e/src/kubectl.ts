/**
 * The real kubectl, run against a kubeconfig. Uses the system's kubectl; when
 * there is none, Debian's kubernetes-client is installed.
 */
import { spawnSync } from 'node:child_process';
import { DependencyError } from '@chaperone/shared';
import { ensurePackages } from './system-packages.ts';

export interface KubectlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

let checked = false;

export function kubectlPath(): string {
  if (!checked) {
    if (spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status !== 0) {
      ensurePackages(['kubernetes-client'], 'kubectl for the end-to-end tests', () => {});
    }
    checked = true;
  }
  return 'kubectl';
}

export function kubectl(
  kubeconfig: string,
  args: readonly string[],
  opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): KubectlResult {
  const r = spawnSync(kubectlPath(), args, {
    encoding: 'utf8',
    input: opts.input,
    timeout: opts.timeoutMs ?? 60_000,
    env: { ...process.env, KUBECONFIG: kubeconfig, ...(opts.env ?? {}) },
  });
  if (r.error) throw new DependencyError(`kubectl ${args.join(' ')} could not run: ${r.error.message}`);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** kubectl that must succeed; returns parsed JSON stdout. */
export function kubectlJson(kubeconfig: string, args: readonly string[], input?: string): unknown {
  const r = kubectl(kubeconfig, args, input === undefined ? {} : { input });
  if (r.code !== 0)
    throw new DependencyError(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}
