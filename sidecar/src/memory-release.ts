/**
 * Gives memory back to the node once the sidecar is quiet after start-up or
 * after a burst of requests.
 *
 * V8 keeps the pages its heap grew into, and the garbage of a burst (the
 * Buffers of the bodies among it) until a full collection; an idle process
 * gets none by itself, so a sidecar that served one burst kept the private
 * memory of its peak for as long as it lived (measured in
 * bench/results/footprint.notes.md, "Memory after a burst"). Every `checkMs`
 * (2 s), when the process used less than `quietCpuMs` of CPU since the last
 * check (1% of the interval: a request now and then stays under it) and
 * its V8 heap with the memory it holds outside (Buffers) has grown by
 * `growthBytes` since the last release, one collection that aims at memory runs
 * (V8's "last resort": the heap compacted, its free pages returned). It takes
 * 15–50 ms on the main thread, which is why it waits for a quiet moment. The
 * first check after start-up releases what starting took.
 *
 * The first release also drops bytecode: for its collection V8 counts a
 * function's bytecode as old after one collection unused instead of six
 * (`--bytecode-old-age`), then goes back to six (or to the age node was
 * started with). Its collection is several in a row, so the bytecode of
 * every function not running then goes: the code only start-up runs (the
 * config, the policy's YAML, the local certificate, the command line) for
 * good, and what the first requests ran is compiled again by the next ones,
 * once. This took an idle sidecar's
 * private memory from 16.4–16.9 to 15.4 MiB in the same rounds, with CPU per
 * request under load after it unchanged (bench/results/footprint.notes.md,
 * "Start-up's bytecode"). Later releases leave V8's aging as it is.
 *
 * The collection is `globalThis.gc`, there when node runs with --expose-gc
 * (the image's `chaperone` command passes it: shared/src/node-options.ts);
 * without it nothing is released.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import type { Logger } from '@chaperone/shared';

/** What `globalThis.gc` takes under --expose-gc. */
type Collect = (opts: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

export interface MemoryReleaseOptions {
  /** The collection (default: `globalThis.gc`, if node exposes it). */
  readonly collect?: Collect | undefined;
  /** How often the process is looked at, in ms. */
  readonly checkMs?: number;
  /** CPU used since the last check under which the process counts as quiet, in ms (default: 1% of `checkMs`). */
  readonly quietCpuMs?: number;
  /** Growth of the heap and the memory it holds outside since the last release that is worth one, in bytes. */
  readonly growthBytes?: number;
  /** Sets V8 flags at run time (default: v8.setFlagsFromString): the first release's bytecode age. */
  readonly setV8Flags?: (flags: string) => void;
  /** Told of each release (what it took, what it gave back). */
  readonly onRelease?: (r: { readonly ms: number; readonly freedBytes: number }) => void;
  readonly log?: Logger;
  /** For tests: CPU used so far (µs), and the heap with what it holds outside (bytes). */
  readonly cpuUs?: () => number;
  readonly heldBytes?: () => number;
  readonly now?: () => number;
}

export interface MemoryRelease {
  /** Whether releases can happen (node exposes the collection). */
  readonly enabled: boolean;
  /** Looks at the process once, as the timer does; true when it released memory. */
  check(): boolean;
  stop(): void;
}

/**
 * V8's own `--bytecode-old-age` in Node 24 (how many collections a function's
 * bytecode stays unused before it is dropped; `node --v8-options`, held by a
 * test), and the first release's.
 */
export const V8_BYTECODE_OLD_AGE = 6;
const START_UP_BYTECODE_OLD_AGE = 1;

/** The bytecode age node runs with: one given on its command line (V8 flags cannot be in NODE_OPTIONS), else V8's own. */
export function bytecodeOldAge(execArgv: readonly string[] = process.execArgv): number {
  let age = V8_BYTECODE_OLD_AGE;
  execArgv.forEach((arg, i) => {
    const m = /^--bytecode[-_]old[-_]age(?:=(\d+))?$/.exec(arg);
    const value = m ? (m[1] ?? execArgv[i + 1]) : undefined;
    if (value !== undefined && /^\d+$/.test(value)) age = Number(value);
  });
  return age;
}

function exposedCollect(): Collect | undefined {
  const gc = (globalThis as { gc?: unknown }).gc;
  return typeof gc === 'function' ? (gc as Collect) : undefined;
}

function cpuUsedUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** V8's heap as committed, with the memory it holds outside it (ArrayBuffer backing stores and the like). */
function heapAndExternalBytes(): number {
  const h = getHeapStatistics();
  return h.total_heap_size + h.external_memory;
}

export function startMemoryRelease(opts: MemoryReleaseOptions = {}): MemoryRelease {
  const collect = 'collect' in opts ? opts.collect : exposedCollect();
  const checkMs = opts.checkMs ?? 2000;
  const quietUs = (opts.quietCpuMs ?? checkMs / 100) * 1000;
  const growth = opts.growthBytes ?? 2 * 1024 * 1024;
  const cpuUs = opts.cpuUs ?? cpuUsedUs;
  const held = opts.heldBytes ?? heapAndExternalBytes;
  const now = opts.now ?? (() => performance.now());
  const setV8Flags = opts.setV8Flags ?? setFlagsFromString;
  /** What the first release puts back. */
  const oldAge = bytecodeOldAge();
  let lastCpu = cpuUs();
  /** What the heap held after the last release; none yet: the first quiet check releases start-up's. */
  let base = Number.NEGATIVE_INFINITY;
  const check = (): boolean => {
    const cpu = cpuUs();
    const quiet = cpu - lastCpu < quietUs;
    lastCpu = cpu;
    if (!collect || !quiet) return false;
    const before = held();
    if (before < base + growth) return false;
    const first = base === Number.NEGATIVE_INFINITY;
    const t0 = now();
    if (first) setV8Flags(`--bytecode-old-age=${START_UP_BYTECODE_OLD_AGE}`);
    try {
      collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    } finally {
      if (first) setV8Flags(`--bytecode-old-age=${oldAge}`);
    }
    const ms = now() - t0;
    base = held();
    // The collection's own CPU is not the process's work: the next check starts after it.
    lastCpu = cpuUs();
    const freedBytes = Math.max(0, before - base);
    opts.log?.debug({ ms: Math.round(ms), freedBytes }, 'memory released after a quiet moment');
    opts.onRelease?.({ ms, freedBytes });
    return true;
  };
  const timer = collect ? setInterval(check, checkMs) : undefined;
  timer?.unref();
  return {
    enabled: collect !== undefined,
    check,
    stop: () => clearInterval(timer),
  };
}
