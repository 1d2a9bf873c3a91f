/**
 * A worker or child-process entry file that sits beside the calling module:
 * its TypeScript source when running from sources, or the copy the bundle
 * build writes next to the bundle (`.mjs`/`.js`). Undefined when there is
 * none (a bundle that did not build it): callers then do the work in-process.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function siblingEntry(moduleUrl: string, stem: string): URL | undefined {
  for (const ext of ['.ts', '.mjs', '.js']) {
    const url = new URL(`./${stem}${ext}`, moduleUrl);
    if (url.protocol === 'file:' && existsSync(fileURLToPath(url))) return url;
  }
  return undefined;
}
