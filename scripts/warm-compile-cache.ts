/**
 * Fills a bundle's compile cache (`<dist>/compile-cache`, which the bundle's
 * entry hands to Node before anything else loads): V8's code for every chunk,
 * made by importing each one in a `node` run with the entry's V8 flags. Node
 * keeps the cache per Node version, V8 flag set and user id, and finds a
 * module's entry by its path relative to the cache (portable), so the bundle
 * can be moved; the image warms it as the user its pods run as
 * (deploy/Dockerfile). A cache that does not match is ignored by Node.
 *
 *   node scripts/warm-compile-cache.ts <dist>
 *
 * Measured in docs/benchmarks.md (sidecar footprint, start-up).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SIDECAR_V8_FLAGS } from '@chaperone/shared';

/** Chunks that are started as workers, not imported: their top level expects a parent thread. */
const WORKERS = /worker/;

export function warmCompileCache(dist: string): void {
  const cache = join(dist, 'compile-cache');
  mkdirSync(cache, { recursive: true });
  const chunks = readdirSync(join(dist, 'chunks'))
    .filter((f) => f.endsWith('.mjs') && !WORKERS.test(f))
    .sort()
    .map((f) => pathToFileURL(join(dist, 'chunks', f)).href);
  const code = [
    `const m = process.getBuiltinModule('node:module');`,
    `const r = m.enableCompileCache({ directory: ${JSON.stringify(cache)}, portable: true });`,
    `if (r.status !== m.constants.compileCacheStatus.ENABLED) throw new Error('compile cache: ' + (r.message ?? r.status));`,
    `for (const c of ${JSON.stringify(chunks)}) await import(c);`,
    'm.flushCompileCache();',
    'process.exit(0);',
  ].join('\n');
  const r = spawnSync(
    process.execPath,
    [...SIDECAR_V8_FLAGS.split(/\s+/).filter(Boolean), '--input-type=module', '-e', code],
    { encoding: 'utf8', timeout: 120_000, env: { ...process.env, NODE_OPTIONS: '' } },
  );
  if (r.status !== 0)
    throw new Error(`warming the compile cache in ${cache} failed (${r.status ?? r.signal}): ${r.stderr}`);
}

if (import.meta.main) {
  const dist = process.argv[2];
  if (!dist) {
    process.stderr.write('usage: node scripts/warm-compile-cache.ts <dist>\n');
    process.exit(2);
  }
  warmCompileCache(resolve(dist));
}
