/**
 * Installs missing Debian packages for the servers the tests run, or explains
 * exactly what to install when that is not possible here.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { DependencyError } from '@chaperone/shared';

export function isInstalled(pkg: string): boolean {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

function canRunAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Ensures every package is installed, running apt-get when some are missing.
 * `why` ends up in messages: "PostgreSQL for the end-to-end tests".
 */
export function ensurePackages(packages: readonly string[], why: string, log: (line: string) => void): void {
  const missing = packages.filter((p) => !isInstalled(p));
  if (missing.length === 0) return;
  const hint = `apt-get install -y ${missing.join(' ')}`;
  if (!canRunAsRoot()) {
    throw new DependencyError(`${why} needs Debian packages ${missing.join(', ')}; run as root: ${hint}`);
  }
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new DependencyError(
      `${why} needs ${missing.join(', ')} and this system has no apt-get; install them yourself`,
    );
  }
  log(`installing ${missing.join(' ')} with apt-get (${why})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Test files run in parallel and may install at the same time: wait for dpkg's lock
  // (as e2e/scripts/build-kube.sh does) instead of failing on "Could not get lock".
  const lock = ['-o', 'DPkg::Lock::Timeout=600'];
  const install = () =>
    spawnSync('apt-get', [...lock, 'install', '-y', '--no-install-recommends', ...missing], {
      env,
      encoding: 'utf8',
    });
  let r = install();
  if (r.status !== 0) {
    execFileSync('apt-get', [...lock, 'update', '-q'], { env, stdio: 'ignore' });
    r = install();
  }
  if (r.status !== 0) {
    const tail = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-15).join('\n');
    throw new DependencyError(`could not install ${missing.join(', ')} (${why}); "${hint}" said:\n${tail}`);
  }
}
