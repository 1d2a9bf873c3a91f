/** Writes a file whole or not at all: readers never see a partial file. */
import { chmodSync, renameSync, writeFileSync } from 'node:fs';

export function writeAtomic(path: string, content: string, mode: number): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}
