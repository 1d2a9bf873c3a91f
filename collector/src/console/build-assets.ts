/**
 * Builds the console's page into a folder the collector serves
 * (console-assets.ts): `page/main.ts` bundled by esbuild into `app.js` (with
 * the chart library uPlot and the asciinema player from node_modules), their
 * style sheets and `page/app.css` bundled into `app.css`, and `page/index.html`
 * copied. Everything the page needs is in these three files: no CDN, nothing
 * fetched at run time.
 *
 *   node src/console/build-assets.ts [--outdir <dir>]   (default: collector/dist/console)
 *
 * `pnpm --filter @chaperone/collector build` runs it; the production bundle
 * (scripts/build.ts) calls buildConsoleAssets for dist/console.
 */
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PAGE = fileURLToPath(new URL('./page/', import.meta.url));
const CSS_IMPORTS = [
  'uplot/dist/uPlot.min.css',
  'asciinema-player/dist/bundle/asciinema-player.css',
  './app.css',
];
export const DEFAULT_OUT_DIR = fileURLToPath(new URL('../../dist/console/', import.meta.url));

export async function buildConsoleAssets(outDir: string): Promise<void> {
  const esbuild = await import('esbuild');
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  await esbuild.build({
    entryPoints: [`${PAGE}main.ts`],
    outfile: `${outDir}/app.js`,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox115', 'safari16'],
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  // The libraries' style sheets first, so the console's own rules win.
  await esbuild.build({
    stdin: {
      contents: CSS_IMPORTS.map((f) => `@import ${JSON.stringify(f)};`).join('\n'),
      resolveDir: PAGE,
      loader: 'css',
      sourcefile: 'styles.css',
    },
    outfile: `${outDir}/app.css`,
    bundle: true,
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  await copyFile(`${PAGE}index.html`, `${outDir}/index.html`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--outdir');
  const out = i === -1 ? DEFAULT_OUT_DIR : resolve(process.argv[i + 1] ?? '');
  await buildConsoleAssets(out);
  process.stdout.write(`console assets: ${out}\n`);
}
