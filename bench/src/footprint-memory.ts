/**
 * What one process adds to a node's memory, read from /proc: private memory
 * (RssAnon + RssShmem: pages no other process shares once the image's files
 * are in the page cache), total RSS, and PSS (shared pages divided among the
 * processes mapping them, from smaps_rollup).
 */
import { readFileSync } from 'node:fs';

export interface Footprint {
  readonly privateMiB: number;
  readonly rssMiB: number;
  readonly pssMiB: number;
}

function kb(text: string, key: string): number {
  return Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
}

export function footprint(pid: number): Footprint {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  let pss = Number.NaN;
  try {
    pss = kb(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
  } catch {
    // kernels without smaps_rollup: PSS stays unknown
  }
  return {
    privateMiB: (kb(status, 'RssAnon') + kb(status, 'RssShmem')) / 1024,
    rssMiB: kb(status, 'VmRSS') / 1024,
    pssMiB: pss / 1024,
  };
}

/** Samples a process's footprint every `everyMs` until stopped; returns the largest of each figure. */
export function samplePeak(pid: number, everyMs = 100): { stop(): Footprint } {
  let peak: Footprint = { privateMiB: 0, rssMiB: 0, pssMiB: 0 };
  const take = () => {
    try {
      const f = footprint(pid);
      peak = {
        privateMiB: Math.max(peak.privateMiB, f.privateMiB),
        rssMiB: Math.max(peak.rssMiB, f.rssMiB),
        pssMiB: Math.max(peak.pssMiB, f.pssMiB),
      };
    } catch {
      // process gone
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return peak;
    },
  };
}
