/**
 * The real kubectl, run against a kubeconfig. Uses the system's kubectl; when
 * there is none, Debian's kubernetes-client is installed.
 */
import { spawn, spawnSync } from 'node:child_process';
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

/**
 * kubectl without blocking the event loop: for tests whose own process serves
 * what kubectl reaches (the stand-in kubelet). Killed after `timeoutMs`.
 */
export function kubectlAsync(
  kubeconfig: string,
  args: readonly string[],
  opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(kubectlPath(), args, {
      env: { ...process.env, KUBECONFIG: kubeconfig, ...(opts.env ?? {}) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', (err) =>
      reject(new DependencyError(`kubectl ${args.join(' ')} could not run: ${err.message}`)),
    );
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** kubectl that must succeed; returns parsed JSON stdout. */
export function kubectlJson(kubeconfig: string, args: readonly string[], input?: string): unknown {
  const r = kubectl(kubeconfig, args, input === undefined ? {} : { input });
  if (r.code !== 0)
    throw new DependencyError(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}
