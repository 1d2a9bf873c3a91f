/**
 * What the sidecar's start-up code loads: the code of features a pod may
 * never use (exec and port-forward sessions, the value detectors of pod logs
 * and reviews, holds for review, the PostgreSQL guard) stays out until the
 * first request that needs it (see kube/lazy-guard.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = new URL('./main.ts', import.meta.url).href;
const SRC = fileURLToPath(new URL('./', import.meta.url));

/** The sidecar's own source files a fresh node process loads when it imports main.ts (nothing is run). */
function loadedAtStartUp(): string[] {
  const record = `
    import { registerHooks } from 'node:module';
    registerHooks({
      load(url, context, next) {
        if (url.startsWith('file:')) process.stdout.write(url + '\\n');
        return next(url, context);
      },
    });
  `;
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      `data:text/javascript,${encodeURIComponent(record)}`,
      '--input-type=module',
      '-e',
      `await import(${JSON.stringify(MAIN)});`,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .split('\n')
    .filter((u) => u.startsWith('file:'))
    .map((u) => fileURLToPath(u))
    .filter((p) => p.startsWith(SRC))
    .map((p) => p.slice(SRC.length));
}

test('start-up loads no session, detector, hold or PostgreSQL code', () => {
  const loaded = loadedAtStartUp();
  // The recording itself works: main.ts and the request pipeline are there.
  assert.ok(loaded.includes('main.ts'), loaded.join('\n'));
  assert.ok(loaded.includes('kube/pipeline.ts'), loaded.join('\n'));
  const lazy = [
    /^exec-text\//,
    /^kube\/exec\/session-guard\.ts$/,
    /^kube\/exec\/text-hooks\.ts$/,
    /^kube\/portforward\/session-guard\.ts$/,
    /^review\/(kube-hold|held-action|held-body|detected-secrets|after-approval)\.ts$/,
    /^postgres\//,
  ];
  const early = loaded.filter((f) => lazy.some((re) => re.test(f)));
  assert.deepEqual(early, [], `loaded at start-up: ${early.join(', ')}`);
});
