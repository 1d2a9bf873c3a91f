/**
 * Rewrites docs/benchmarks.md from the sections the benchmarks wrote to
 * bench/results/*.md (one file per benchmark, each starting with a `## `
 * heading and naming its machine and anchor; a hand-kept `<name>.notes.md`
 * sorts right after its benchmark's file and continues that section). Run after any benchmark:
 *   node bench/src/report.ts
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));
const target = fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url));

export function writeReport(): string {
  const sections = readdirSync(resultsDir)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => readFileSync(`${resultsDir}${f}`, 'utf8').trim());
  const text = [
    '# Benchmarks',
    '',
    'Every figure below was measured by a script in `bench/` with its anchor (the',
    'thing it is compared against) in the same run, on the machine named in its',
    'section. Medians over alternating runs in fresh processes. Regenerate a section',
    'by running its benchmark; this page is rebuilt from `bench/results/*.md` by',
    '`node bench/src/report.ts`.',
    '',
    ...(sections.length ? sections.flatMap((s) => [s, '']) : ['No benchmark has been run yet.', '']),
  ].join('\n');
  writeFileSync(target, text);
  return target;
}

/** Writes one benchmark's section to bench/results/<name>.md and rebuilds docs/benchmarks.md; returns both paths. */
export function writeResult(name: string, text: string): [string, string] {
  const file = `${resultsDir}${name}.md`;
  writeFileSync(file, `${text}\n`);
  return [file, writeReport()];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`wrote ${writeReport()}`);
}
