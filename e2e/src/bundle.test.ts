// The production bundle (scripts/build.ts: what the image runs) built into a
// temp dir and used as a user would: the CLI, a lazily loaded command, the
// collector's parse worker, and the sidecar guarding real kubectl requests.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SIDECAR_V8_FLAGS } from '@chaperone/shared';
import { createNamespace, type TestNamespace } from './environment.ts';
import { kubectl } from './kubectl.ts';
import { waitFor } from './process.ts';
import { type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';

const BUILD = fileURLToPath(new URL('../../scripts/build.ts', import.meta.url));
/** Where the build runs: the metafile's output paths are relative to it. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const POLICY_EXAMPLE = fileURLToPath(new URL('../../deploy/examples/guardrail-policy.yaml', import.meta.url));
const CANARY = 'bundle-canary-value';
const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: bundle }
spec:
  defaultAction: allow
  rules:
    - { name: mask-secrets, match: { resources: [secrets] }, action: mask }
`;

describe('the production bundle', () => {
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-bundle-'));
  const entry = join(dir, 'chaperone.mjs');
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [entry, ...args], { encoding: 'utf8', timeout: 30_000 });

  before(() => {
    const r = spawnSync(process.execPath, [BUILD, '--outdir', dir, '--metafile'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, `node scripts/build.ts failed: ${r.stderr}`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  // Fails if the entry lost the V8 flags Node refuses in NODE_OPTIONS (scripts/build.ts): the image
  // runs the file itself, and the SQL parser would take 50–100 MiB more per pod.
  it('runs node with the V8 flags of shared/src/node-options.ts, as an executable', () => {
    const first = readFileSync(entry, 'utf8').split('\n', 1)[0];
    assert.equal(first, `#!/usr/bin/env -S node ${SIDECAR_V8_FLAGS}`);
    const r = spawnSync(entry, ['--version'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
  });

  // Fails if the entry stopped turning the cache on before the chunks load, or if the build's warm-up ran
  // node with other V8 flags than the entry's (Node keeps a cache per flag set): every chunk the CLI loads
  // would then be compiled from its source at each start (docs/benchmarks.md, start-up).
  it('starts from the compile cache made at build time, for every chunk it loads', () => {
    const r = spawnSync(entry, ['--version'], {
      encoding: 'utf8',
      timeout: 30_000,
      // No NODE_OPTIONS from the caller: V8 flags there would ask for another cache than the one built.
      env: { ...process.env, NODE_OPTIONS: '', NODE_DEBUG_NATIVE: 'COMPILE_CACHE' },
    });
    assert.equal(r.status, 0, r.stderr);
    const verdicts = [
      ...r.stderr.matchAll(/V8 code cache for ESM \S+\/(chunks\/[^/\s]+\.mjs) was (\w+(?: \w+)?)/g),
    ];
    assert.ok(
      verdicts.some(([, f, v]) => f === 'chunks/cli.mjs' && v === 'accepted'),
      `chunks/cli.mjs from the cache:\n${r.stderr.slice(0, 2000)}`,
    );
    assert.deepEqual(
      verdicts.filter(([, , v]) => v !== 'accepted').map(([, f, v]) => `${f}: ${v}`),
      [],
    );
  });

  it('runs the CLI and loads a command only when it runs', () => {
    const help = run('--help');
    assert.equal(help.status, 0, help.stderr);
    for (const c of ['injector', 'sidecar', 'collector'])
      assert.match(help.stdout, new RegExp(`^\\s+${c}\\b`, 'm'));
    const lint = run('policy', 'lint', POLICY_EXAMPLE);
    assert.equal(lint.status, 0, lint.stderr);
    const test = run('policy', 'test', POLICY_EXAMPLE, '--request', 'delete namespaces agents');
    assert.match(test.stdout, /^DENY\s+rule=chaperone-protect-namespaces/);
  });

  it("ships the collector's parse worker beside the code that starts it", () => {
    // It is looked up beside its caller's own file: missing there, the work falls back in-process
    // (the collector would parse on its main thread).
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as {
      outputs: Record<string, { readonly inputs: Record<string, unknown> }>;
    };
    for (const [caller, worker] of [
      ['collector/src/ingest/ingest-parser.ts', 'ingest-parse-worker.mjs'],
    ] as const) {
      const out = Object.entries(meta.outputs).find(([, o]) => caller in o.inputs)?.[0];
      assert.ok(out, `the metafile has ${caller}`);
      assert.ok(existsSync(join(dirname(resolve(ROOT, out)), worker)), `${worker} beside ${out}`);
    }
  });

  it('keeps code the sidecar never runs out of what it loads: node-forge, prom-client’s cluster and Pushgateway, the other commands’ CLI code; and exec and port-forward session code until the first session', () => {
    interface Output {
      readonly entryPoint?: string;
      readonly inputs: Record<string, unknown>;
      readonly imports: readonly { readonly path: string; readonly kind: string }[];
    }
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as {
      outputs: Record<string, Output>;
    };
    const outputs = Object.entries(meta.outputs);
    const root = outputs.find(([, o]) => o.entryPoint === 'bin/chaperone.ts');
    const sidecar = outputs.find(([, o]) => o.entryPoint === 'sidecar/src/main.ts');
    assert.ok(root && sidecar, 'the metafile names the CLI and the sidecar chunk');
    // What `chaperone sidecar` loads: both chunks and everything they import statically.
    const loaded = new Set<string>();
    const visit = (file: string) => {
      if (loaded.has(file)) return;
      loaded.add(file);
      for (const i of meta.outputs[file]?.imports ?? []) if (i.kind === 'import-statement') visit(i.path);
    };
    visit(root[0]);
    visit(sidecar[0]);
    const inputs = [...loaded].flatMap((f) => Object.keys(meta.outputs[f]?.inputs ?? {}));
    assert.ok(
      inputs.some((i) => i.includes('sidecar/src/kube/')),
      'the walk reached the proxy',
    );
    const unwanted = inputs.filter(
      (i) =>
        /\/node-forge\/|\/prom-client\/(index|lib\/cluster|lib\/pushgateway)\.js$/.test(i) ||
        /^(collector|injector)\/src\/cli\/|^e2e\/src\/cli\.ts$/.test(i) ||
        /sidecar\/src\/kube\/(exec\/(session|session-guard|text-hooks|asciicast)|portforward\/(session-guard|spdy-relay|websocket-relay))\.ts$/.test(
          i,
        ),
    );
    assert.deepEqual(unwanted, []);
  });

  it("ships the collector's parse worker beside its chunks, and it answers", async () => {
    const file = join(dir, 'chunks', 'ingest-parse-worker.mjs');
    assert.ok(existsSync(file), 'dist/chunks/ingest-parse-worker.mjs');
    const worker = new Worker(file);
    try {
      const reply = await new Promise<unknown>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.postMessage({ id: 1, text: '{"type":"nope"}', receivedUs: 0 });
      });
      assert.match(JSON.stringify(reply), /unknown message type/);
    } finally {
      await worker.terminate();
    }
  });

  describe('sidecar from the bundle', () => {
    let ns: TestNamespace;
    let sc: SidecarUnderTest;
    before(async () => {
      ns = await createNamespace('bundle');
      sc = await startSidecar({ namespace: ns.name, policy: POLICY, entry });
    });
    after(async () => {
      await sc?.stop();
      await ns?.delete();
    });

    it('guards kubectl: reads pass, Secret values are masked', () => {
      const agent = (args: string[]) =>
        kubectl(sc.agentKubeconfig, [...args, '--cache-dir', join(sc.dir, 'kube-cache')]);
      const created = agent(['create', 'secret', 'generic', 'db', `--from-literal=password=${CANARY}`]);
      assert.equal(created.code, 0, created.stderr);
      const pods = agent(['get', 'pods']);
      assert.equal(pods.code, 0, pods.stderr);
      const secret = agent(['get', 'secret', 'db', '-o', 'json']);
      assert.equal(secret.code, 0, secret.stderr);
      assert.equal(secret.stdout.includes(Buffer.from(CANARY).toString('base64')), false);
      assert.match(secret.stdout, /"password": "KiptYXNrZWQqKg=="/);
    });

    // Fails if the image's node lost --expose-gc (shared/src/node-options.ts) or the sidecar stopped
    // giving back what start-up took once quiet: a pod would keep its peak memory for as long as it lives.
    it('gives memory back once quiet (the collection its V8 flags expose)', async () => {
      const released = await waitFor(
        async () => {
          const text = await (await fetch(sc.metricsUrl)).text();
          const m = /^chaperone_sidecar_memory_releases_total\{[^}]*\} (\d+)/m.exec(text);
          return m && Number(m[1]) >= 1 ? text : undefined;
        },
        // Scraped every 2 s: scrapes every 100 ms would keep it from ever being quiet.
        { what: 'a memory release after start-up', timeoutMs: 30_000, intervalMs: 2000 },
      );
      assert.match(released, /^chaperone_sidecar_memory_released_bytes_total\{[^}]*\} [1-9]/m);
    });
  });
});
