/**
 * How the sidecar container's Node runs (the injector sets these in its
 * environment; the sidecar benchmark runs the sidecar the same way). Measured
 * in bench/results/footprint.notes.md ("V8 and allocator settings").
 *
 * Only flags Node allows in NODE_OPTIONS may go here: V8-only flags such as
 * --optimize-for-size or --single-threaded-gc make node refuse to start.
 *
 * - `--max-semi-space-size=1`: a 1 MiB young generation (V8's default is 16
 *   MiB per semi-space): ~2 MiB less private memory idle than with 2 MiB.
 * - `--v8-pool-size=1`: one V8 background thread instead of four (GC and
 *   compile helpers): fewer threads, stacks and malloc arenas (~0.2 MiB).
 *
 * No --max-old-space-size: Node sizes V8's heap from the container's memory
 * limit (256Mi unless configured), and under 256 MB V8 also grows the heap
 * least between full collections (~1.3× its live size; 4× with no limit on a
 * large node). A fixed bound would not follow a raised limit.
 */
export const SIDECAR_NODE_OPTIONS = '--max-semi-space-size=1 --v8-pool-size=1';

/**
 * V8 flags Node refuses in NODE_OPTIONS, so the image's `chaperone` command
 * passes them on its first line (scripts/build.ts writes `#!/usr/bin/env -S
 * node …`), for every command.
 *
 * - `--liftoff-only`: WebAssembly (the SQL parser, libpg-query) stays in V8's
 *   baseline compiler and is never recompiled by the optimizing one. Measured
 *   on this machine after 30,000 parses of distinct statements: 21.6 MiB
 *   private against 70–120 MiB by default (the optimized code and its
 *   compilation), at 29.2 against 27.9 µs per parse; the guard's caches
 *   leave the parser out of most statements' path. JavaScript is unaffected.
 * - `--no-sparkplug`: no baseline machine code; functions run in the
 *   interpreter until V8's optimizing compilers take the hot ones. The baseline
 *   code was ~0.9 MB of an idle sidecar's heap (its code space 1.3 → 0.25 MB);
 *   without it, idle private memory was 1.1–1.3 MiB lower in each of 5 rounds
 *   and the peak lower in 4 of them, with CPU per request inside the rounds'
 *   spread (medians per masked LIST 801 against 958 µs, per GET 327 against
 *   323; bench/results/footprint.notes.md, "Compiled code at idle").
 * - `--expose-gc`: the sidecar gives memory back once it is quiet after
 *   start-up or a burst (sidecar/src/memory-release.ts): a collection that
 *   aims at memory, which V8 runs only on request. After the benchmark's
 *   loads it took a sidecar's private memory from ~53 to ~36 MiB, and ~2.7
 *   MiB off the idle figure after start-up.
 */
export const SIDECAR_V8_FLAGS = '--liftoff-only --no-sparkplug --expose-gc';

/**
 * Environment the sidecar container runs with beside NODE_OPTIONS.
 * MALLOC_ARENA_MAX=2: glibc makes at most two malloc arenas instead of one per
 * thread that contends (up to 8 per core): ~1 MiB less private memory idle.
 * MALLOC_MMAP_THRESHOLD_=4096: blocks of 4 KiB and more (Buffers: bodies, TLS
 * reads) get pages of their own, returned to the node when freed, instead of
 * a place in glibc's heap, which freed Buffers left fragmented and never
 * shrank after a burst. With the sidecar's memory release
 * (sidecar/src/memory-release.ts), private memory 12 s after the benchmark's
 * loads was 28.6–30.9 MiB against 34.8–40.8 without it, in the same rounds.
 * Its cost: an mmap and a munmap per such block. On a paravirtualised machine
 * (later runs) the masked LIST took 25–45% more CPU with it than without
 * (bench/results/footprint.notes.md, "The masked LIST's dear processes"); on
 * the machine it was chosen on, CPU stayed within the rounds' spread.
 */
export const SIDECAR_RUNTIME_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '4096',
};
