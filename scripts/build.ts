/**
 * The production build: `chaperone` as plain JavaScript in dist/, so a
 * deployed process runs no TypeScript (Node's type stripping alone costs about
 * 17 MiB of RSS) and loads only the code of the command it runs.
 *
 *   dist/chaperone.mjs     the entry: turns on the compile cache, then loads the CLI
 *   dist/chunks/cli.mjs    the CLI: command registration only
 *   dist/chunks/*.mjs      one chunk per lazily imported command, plus shared code
 *   dist/compile-cache/    V8's code for the chunks, made at build time
 *                          (scripts/warm-compile-cache.ts): a cold start compiles less
 *
 * Dependencies from node_modules are bundled too (node:* built-ins stay
 * external), so the runtime image needs no node_modules and each command loads
 * one file per chunk instead of hundreds of package files.
 *
 * Development keeps running the sources (`./chaperone`, the tests); this is for
 * images and for measuring the sidecar (bench/).
 *
 *   node scripts/build.ts [--metafile] [--outdir <dir>]   (--metafile also writes meta.json)
 */
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { builtinModules, createRequire } from 'node:module';
import { relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const outIdx = process.argv.indexOf('--outdir');
/** dist/ in the checkout, or --outdir <dir> (the bundle's smoke test builds into a temp dir). */
if (outIdx !== -1 && !process.argv[outIdx + 1]) {
  process.stderr.write('build: --outdir needs a directory\n');
  process.exit(2);
}
const OUT_DIR = outIdx !== -1 ? resolve(process.argv[outIdx + 1] as string) : `${ROOT}dist`;
// The output directory is emptied first: never the checkout or anything that holds it.
if (!relative(OUT_DIR, ROOT).startsWith('..')) {
  process.stderr.write(`build: refusing to empty ${OUT_DIR}, which holds the checkout\n`);
  process.exit(2);
}

let esbuild: typeof import('esbuild');
try {
  esbuild = await import('esbuild');
} catch (err) {
  process.stderr.write(
    `build: esbuild is not installed (${(err as Error).message}); run pnpm install in ${ROOT}\n`,
  );
  process.exit(1);
}

/**
 * The e2e commands (`demo`, `dev up`) find the checkout from their own file
 * (`new URL('../../', import.meta.url)`): give them their source location, so
 * they work from a bundle built in a checkout (they need one anyway).
 */
const sourceUrls: import('esbuild').Plugin = {
  name: 'e2e-source-urls',
  setup(build) {
    build.onLoad({ filter: /[\\/]e2e[\\/]src[\\/][^\\/]+\.ts$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const url = JSON.stringify(pathToFileURL(args.path).href);
      return { contents: text.replaceAll('import.meta.url', url), loader: 'ts' };
    });
  },
};

/**
 * Node built-ins through require() instead of `import`: importing a built-in
 * as ESM reads every export, lazy getters included, and node:http's
 * `WebSocket` getter alone loads Node's internal undici (about 12 MiB RSS).
 * require() leaves the getters alone; esbuild's interop reads a property only
 * when the code uses it.
 */
const BUILTINS = new Set(builtinModules.filter((m) => !m.startsWith('_')));
const builtinsViaRequire: import('esbuild').Plugin = {
  name: 'builtins-via-require',
  setup(build) {
    build.onResolve({ filter: /^[a-z0-9_:/]+$/ }, (args) => {
      const name = args.path.replace(/^node:/, '');
      if (args.namespace === 'builtin' || !(BUILTINS.has(name) || args.path.startsWith('node:'))) return;
      // A require() from CommonJS already does the right thing.
      if (args.kind === 'require-call') return { path: args.path, external: true };
      return { path: `node:${name}`, namespace: 'builtin' };
    });
    build.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

await rm(OUT_DIR, { recursive: true, force: true });
const result = await esbuild.build({
  absWorkingDir: ROOT,
  entryPoints: {
    // Loaded by dist/chaperone.mjs (written below) once the compile cache is on.
    'chunks/cli': 'bin/chaperone.ts',
    // The collector's parse worker is started from a file beside the chunk that starts it
    // (collector/src/ingest/ingest-parser.ts looks for ingest-parse-worker.mjs next to itself).
    'chunks/ingest-parse-worker': 'collector/src/ingest/ingest-parse-worker.ts',
  },
  outdir: OUT_DIR,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  // Less source text for V8 to keep; names stay readable in stack traces.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  sourcesContent: false,
  legalComments: 'none',
  // Only pg's optional native binding, which Chaperone never uses.
  external: ['pg-native'],
  // Bundled CommonJS packages (pino, prom-client, pg) call require(); libpg-query's
  // WebAssembly loader finds its .wasm through __dirname: the chunk's directory, where it is copied.
  banner: {
    js: "import { createRequire as __chaperoneRequire } from 'node:module'; const require = __chaperoneRequire(import.meta.url); const __chaperoneDirname = decodeURIComponent(new URL('.', import.meta.url).pathname);",
  },
  define: { __dirname: '__chaperoneDirname' },
  plugins: [sourceUrls, builtinsViaRequire],
  metafile: process.argv.includes('--metafile'),
  logLevel: 'warning',
});
if (result.metafile) {
  await writeFile(`${OUT_DIR}/meta.json`, JSON.stringify(result.metafile));
}
// The entry runs node with the V8 flags Node does not take from NODE_OPTIONS (shared/src/node-options.ts),
// and turns on the compile cache beside it before the CLI's chunks load: a module compiled before that
// would not use it, hence a file of its own that imports nothing statically. process.getBuiltinModule
// (not `import`) leaves node:module's other exports unread; on a Node without it the CLI says which
// Node it needs.
const { SIDECAR_V8_FLAGS } = await import('@chaperone/shared');
await writeFile(
  `${OUT_DIR}/chaperone.mjs`,
  `#!/usr/bin/env -S node ${SIDECAR_V8_FLAGS}
// chaperone: V8's code for the chunks, made when the bundle was built (scripts/warm-compile-cache.ts), then the CLI.
const cache = decodeURIComponent(new URL('./compile-cache', import.meta.url).pathname);
try {
  if (process.getBuiltinModule?.('node:fs').existsSync(cache))
    process.getBuiltinModule('node:module').enableCompileCache?.({ directory: cache, portable: true });
} catch {
  // Without the cache the chunks are compiled as usual.
}
await import('./chunks/cli.mjs');
`,
  { mode: 0o755 },
);
// The SQL parser's WebAssembly, beside the chunk that loads it (sidecar/src/postgres/sql-classifier.ts).
await copyFile(
  createRequire(`${ROOT}sidecar/package.json`).resolve('libpg-query/wasm/libpg-query.wasm'),
  `${OUT_DIR}/chunks/libpg-query.wasm`,
);
// The web console's page, beside the chunks that serve it (collector/src/console/console-assets.ts).
const { buildConsoleAssets } = await import('@chaperone/collector/build-console');
await buildConsoleAssets(`${OUT_DIR}/console`);
// Last, once every chunk is in place.
const { warmCompileCache } = await import('./warm-compile-cache.ts');
warmCompileCache(OUT_DIR);
process.stdout.write(`build: ${OUT_DIR}/chaperone.mjs\n`);
