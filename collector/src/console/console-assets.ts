/**
 * The page's files, built at build time by `build-assets.ts` (esbuild) and
 * read into memory once at start: `index.html`, `app.js`, `app.css`. Only
 * these names are ever served. They are looked for beside the running code:
 * `collector/dist/console/` when the collector runs from its sources, and
 * `dist/console/` next to `dist/chunks/` in the production bundle.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ASSET_TYPES = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
} as const;
export type AssetName = keyof typeof ASSET_TYPES;

export type ConsoleAssets = ReadonlyMap<AssetName, Buffer>;

const CANDIDATES = [
  new URL('../../dist/console/', import.meta.url), // sources: collector/src/console/ → collector/dist/console/
  new URL('../console/', import.meta.url), // bundle: dist/chunks/ → dist/console/
];

/** The build's output folder, or undefined when the page was not built. */
export function findAssetsDir(): string | undefined {
  for (const u of CANDIDATES) {
    const dir = fileURLToPath(u);
    if (Object.keys(ASSET_TYPES).every((f) => existsSync(`${dir}${f}`))) return dir;
  }
  return undefined;
}

export function loadAssets(dir: string): ConsoleAssets {
  const out = new Map<AssetName, Buffer>();
  for (const name of Object.keys(ASSET_TYPES) as AssetName[]) out.set(name, readFileSync(`${dir}/${name}`));
  return out;
}

export const NOT_BUILT =
  "the console's page was not built: run `pnpm --filter @chaperone/collector build` in the checkout (the image's `pnpm run build` builds it too)";
