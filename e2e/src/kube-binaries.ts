/**
 * Locates (building once if needed) the real kube-apiserver and
 * kube-controller-manager, and Debian's etcd. The build recipe lives in
 * `e2e/scripts/build-kube.sh`; it caches the binaries outside the repository
 * and returns in well under a second when the cache is warm.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DependencyError } from '@chaperone/shared';

export interface KubeBinaries {
  readonly apiserver: string;
  readonly controllerManager: string;
  readonly etcd: string;
  readonly cacheDir: string;
}

const SCRIPT = fileURLToPath(new URL('../scripts/build-kube.sh', import.meta.url));

/** Runs the build script, streaming its progress lines to `log`. */
export function kubeBinaries(log: (line: string) => void = () => {}): Promise<KubeBinaries> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderrTail: string[] = [];
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    let partial = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        stderrTail = [...stderrTail.slice(-40), line];
        if (line.trim()) log(line);
      }
    });
    child.once('error', (err) => reject(new DependencyError(`could not run ${SCRIPT}: ${err.message}`)));
    child.once('exit', (code) => {
      if (code !== 0) {
        reject(
          new DependencyError(
            `building the local control plane failed (exit ${code}); the build said:\n${stderrTail.join('\n')}`,
          ),
        );
        return;
      }
      const cacheDir = stdout.trim().split('\n').pop() ?? '';
      const bins = {
        apiserver: join(cacheDir, 'kube-apiserver'),
        controllerManager: join(cacheDir, 'kube-controller-manager'),
        etcd: '/usr/bin/etcd',
        cacheDir,
      };
      for (const [what, path] of Object.entries(bins)) {
        if (what !== 'cacheDir' && !existsSync(path)) {
          reject(new DependencyError(`${SCRIPT} finished but ${path} does not exist`));
          return;
        }
      }
      resolve(bins);
    });
  });
}
