/**
 * Benchmark: what each agent pod pays for its sidecar (issue 22) — private
 * memory, start-up time and CPU per request — against the Node.js floor in
 * the same run (an empty `node` process; the raw TLS pass-through,
 * bench/src/sidecar-rawproxy.ts), and the injector's admission latency at a
 * steady rate against the do-nothing webhook.
 *
 *   node bench/src/sidecar-footprint.ts            full run (3 rounds, 10 cold starts), writes bench/results/footprint.md
 *   node bench/src/sidecar-footprint.ts --quick    smoke run (1 round, 3 cold starts, short loads), writes nothing
 *   node bench/src/sidecar-footprint.ts --startup-only   only the cold starts beside the empty-node floor, writes nothing
 *   options: --rounds N, --starts N, --no-write,
 *            --alt-flags "<node flags>"   the sidecar also run with these flags added, in the same rounds
 *                                         (with --startup-only: cold starts interleaved with the sidecar's);
 *                                         repeatable; a NAME=value token goes to its environment instead
 *                                         (NODE_DISABLE_COMPILE_CACHE=1: without the bundle's compile cache)
 *            --alt-bundle <dist/chaperone.mjs>   another build of the sidecar (e.g. the base of a change,
 *                                         built with `node scripts/build.ts --outdir DIR`), run like an
 *                                         --alt-flags set; repeatable
 *            --memory-only   only the floors, the sidecar and the --alt-flags sets (memory, CPU per
 *                            request), a summary printed, nothing written (an ablation)
 *   env BENCH_SIDECAR_NODE_FLAGS="…"   extra node flags for the sidecar (after SIDECAR_NODE_OPTIONS)
 * The sidecar runs with its NODE_OPTIONS and environment (shared/src/node-options.ts) and the heap
 * bound V8 derives from its container's default memory limit (CONTAINER_LIMIT_FLAGS);
 * --alt-flags "--max-old-space-size=4096" shows a pod without a limit on a large node.
 *
 * Memory: private = RssAnon + RssShmem (/proc/<pid>/status), beside VmRSS and
 * PSS (/proc/<pid>/smaps_rollup); idle after 20 requests and 7 quiet seconds,
 * peak = the largest 100 ms sample across the GET and masked LIST loads
 * (wrk). Configurations: no database declared; one real PostgreSQL declared
 * and queried once through the sidecar; an exec TTY session open through the
 * sidecar to the stand-in kubelet (a test double: this control plane has no
 * kubelet). Each round starts every process afresh and rotates their order.
 * Measured runs that other tenants disturbed (≥ 20% of the machine) are
 * repeated, keeping the least disturbed; "others %" records it.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  type ControlPlane,
  createBoundPod,
  freePort,
  type PostgresServer,
  registerNode,
  startControlPlane,
  startKubeletStandin,
  startPostgres,
  startProcess,
} from '@chaperone/e2e';
import { SIDECAR_RUNTIME_ENV } from '@chaperone/shared';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import pg from 'pg';
import { Agent, Pool, WebSocket } from 'undici';
import { admissionReview, injectorArgs } from './admission-review.ts';
import { type Footprint, footprint, samplePeak } from './footprint-memory.ts';
import { formatMachine, machineInfo } from './machine.ts';
import { writeResult } from './report.ts';
import {
  type Acc,
  cpuOf,
  FOREIGN_LIMIT,
  foreignShare,
  foreignSnapshot,
  getOnce,
  MAX_ATTEMPTS,
  phase,
  summary,
  undisturbed as undisturbedRun,
  waitForQuiet,
  wrk,
} from './sidecar-load.ts';
import {
  benchRoot,
  createFixtures,
  ensureTools,
  type Fixtures,
  NAMESPACE,
  nginxBase,
  SIDECAR_NODE_FLAGS,
  type SidecarBase,
  sidecarBase,
  sidecarEntry,
  startPassthrough,
  startSidecar,
  type Target,
} from './sidecar-targets.ts';
import { median, table } from './stats.ts';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const startupOnly = argv.includes('--startup-only');
const noWrite = quick || startupOnly || argv.includes('--memory-only') || argv.includes('--no-write');
const num = (flag: string, fallback: number) => {
  const i = argv.indexOf(flag);
  return i !== -1 ? Number(argv[i + 1]) : fallback;
};
const ROUNDS = num('--rounds', quick ? 1 : 3);
const STARTS = num('--starts', quick ? 3 : 10);
const CONNECTIONS = 16;
const WARM_S = quick ? 1 : 2;
const RUN_S = quick ? 3 : 8;
const REVIEW_RATE = 200;
const REVIEW_S = quick ? 3 : 10;
const KEYS = 40;
/**
 * How long after the loads the memory a pod keeps is sampled: long enough for the sidecar's release
 * after a burst (sidecar/src/memory-release.ts looks every 2 s and waits for a quiet interval).
 */
const AFTER_LOAD_S = quick ? 6 : 12;
/** How long an idle process is watched for its CPU and wake-ups. */
const IDLE_S = quick ? 2 : 5;
const CORES = machineInfo().cores;
const POD = 'footprint-exec';
const CONTAINER = 'main';

const log = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number | undefined, digits = 0) =>
  n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : '–';

const undisturbed = <T>(what: string, measure: () => Promise<T>) =>
  undisturbedRun(what, measure, { cores: CORES, log, quietWaitMs: 10_000 });

// ---------------------------------------------------------------- memory and CPU per request

/**
 * Node sizes V8's heap from the container's memory limit (the cgroup's); the
 * injected sidecar's default limit is 256Mi, from which V8 makes a 256 MB old
 * generation, its smallest (and grows the heap least between full
 * collections). This benchmark runs without a limit, so it gives the sidecar
 * that bound, as a pod with the default limit has it.
 */
const CONTAINER_LIMIT_FLAGS = ['--max-old-space-size=256'];
const FLAGS = [...SIDECAR_NODE_FLAGS, ...CONTAINER_LIMIT_FLAGS];

/** `alt<N>`: the sidecar (no database) with the N-th --alt-flags set added, in the same rounds (an experiment). */
type Config = 'node' | 'rawproxy' | 'sidecar' | `alt${number}` | 'sidecar-db' | 'sidecar-exec';
/**
 * --alt-flags "<node flags>" (repeatable): each set is one more configuration
 * of the sidecar without a database. A NAME=value token is set in the
 * sidecar's environment instead (e.g. MALLOC_ARENA_MAX=2).
 */
interface AltSet {
  readonly flags: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly text: string;
  /** --alt-bundle: this build's entry instead of the current sources' bundle. */
  readonly entry?: string;
}
const ALT_SETS: readonly AltSet[] = argv.flatMap((a, i): AltSet[] => {
  if (a === '--alt-bundle') {
    const entry = argv[i + 1] ?? '';
    if (!existsSync(entry))
      throw new Error(
        `--alt-bundle ${entry}: no such file (build one with node scripts/build.ts --outdir DIR)`,
      );
    return [{ flags: [], env: {}, text: `the build at ${entry}`, entry }];
  }
  if (a !== '--alt-flags') return [];
  const tokens = (argv[i + 1] ?? '').split(/\s+/).filter(Boolean);
  const isEnv = (t: string) => /^[A-Z_][A-Z0-9_]*=/.test(t);
  const env = Object.fromEntries(
    tokens.filter(isEnv).map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)]),
  );
  return [{ flags: tokens.filter((t) => !isEnv(t)), env, text: tokens.join(' ') }];
});
const altOf = (c: Config): AltSet | undefined =>
  c.startsWith('alt') ? ALT_SETS[Number(c.slice(3))] : undefined;
const ALTS = ALT_SETS.map((_, i) => `alt${i}` as const);
/** --memory-only: the floors, the sidecar and its --alt-flags sets (memory and CPU per request), nothing else; writes nothing. */
const memoryOnly = argv.includes('--memory-only');
const CONFIGS: readonly Config[] = [
  'node',
  'rawproxy',
  'sidecar',
  ...ALTS,
  ...(memoryOnly ? [] : (['sidecar-db', 'sidecar-exec'] as const)),
];
type Scenario = 'get' | 'list';

interface LoadSample {
  readonly rps: number;
  readonly cpuUsPerReq: number;
  readonly foreign: number;
}

/** What an idle process costs while nothing happens: CPU and how often its main thread wakes. */
interface IdleCost {
  readonly cpuMsPerS: number;
  readonly wakeupsPerS: number;
}

interface ConfigRound {
  readonly idle: Footprint;
  readonly idleCost?: IdleCost;
  readonly peak?: Footprint;
  /** AFTER_LOAD_S after the loads ended, nothing sent meanwhile. */
  readonly afterLoad?: Footprint;
  readonly load?: Record<Scenario, LoadSample>;
  readonly foreign: number;
  /** With a database: idle before the first connection to it. */
  readonly declared?: Footprint;
}

interface Env {
  readonly cp: ControlPlane;
  readonly fx: Fixtures;
  readonly root: string;
  readonly base: SidecarBase;
  readonly nginx: ReturnType<typeof nginxBase>;
  readonly db: PostgresServer;
  readonly databasesDir: string;
  /** sidecar-rawproxy.ts with its types stripped ahead of time: run as JavaScript, like the sidecar's bundle. */
  readonly rawproxyJs: string;
}

async function measureLoad(t: Target, path: string): Promise<LoadSample> {
  const url = `${t.origin}${path}`;
  await wrk({ url, token: t.token, connections: CONNECTIONS, seconds: WARM_S });
  return undisturbed(`${t.name} ${path}`, async () => {
    const c0 = cpuOf(t.pids());
    const r = await wrk({ url, token: t.token, connections: CONNECTIONS, seconds: RUN_S });
    const c1 = cpuOf(t.pids());
    if (r.non2xx > 0 || r.socketErrors > 0)
      log(`  warning: ${t.name} ${path}: ${r.non2xx} non-2xx, ${r.socketErrors} socket errors`);
    return { rps: r.rps, cpuUsPerReq: (c1 - c0) / r.requests };
  });
}

/**
 * How long a process is left alone after its first 20 GETs before its idle memory is sampled: what a
 * pod settles to, the sidecar's release of what start-up took included (sidecar/src/memory-release.ts
 * looks every 2 s once it is ready, and releases at the first look that finds it quiet).
 */
const IDLE_SETTLE_S = 7;

async function idleAfterWarmup(t: Target, fx: Fixtures): Promise<Footprint> {
  for (let i = 0; i < 20; i++) {
    const r = await getOnce(t.origin, fx.getPath, t.token);
    if (r.status !== 200) throw new Error(`${t.name}: GET answered ${r.status}: ${r.body.slice(0, 200)}`);
  }
  await sleep(IDLE_SETTLE_S * 1000);
  return footprint(t.pid as number);
}

/** Voluntary and involuntary context switches of a process's main thread (each one a wake-up or a preemption). */
function mainThreadSwitches(pid: number): number {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const n = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? Number.NaN);
  return n('voluntary_ctxt_switches') + n('nonvoluntary_ctxt_switches');
}

/**
 * Time on CPU of all of a process's threads, in ns (/proc/<pid>/task/<tid>/schedstat): an idle
 * process runs for microseconds at a time, far below the 10 ms ticks of utime and stime.
 */
function onCpuNs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns;
}

/** CPU and main-thread wake-ups of an idle process over IDLE_S seconds (no requests, timers only). */
async function idleCost(pid: number): Promise<IdleCost> {
  const c0 = onCpuNs(pid);
  const w0 = mainThreadSwitches(pid);
  const t0 = performance.now();
  await sleep(IDLE_S * 1000);
  const s = (performance.now() - t0) / 1000;
  return { cpuMsPerS: (onCpuNs(pid) - c0) / 1e6 / s, wakeupsPerS: (mainThreadSwitches(pid) - w0) / s };
}

async function loaded(t: Target, fx: Fixtures, order: readonly Scenario[]): Promise<ConfigRound> {
  const idle = await idleAfterWarmup(t, fx);
  const cost = await idleCost(t.pid as number);
  const sampler = samplePeak(t.pid as number);
  const load = {} as Record<Scenario, LoadSample>;
  for (const s of order) load[s] = await measureLoad(t, s === 'get' ? fx.getPath : fx.listPath);
  const peak = sampler.stop();
  await sleep(AFTER_LOAD_S * 1000);
  return {
    idle,
    idleCost: cost,
    peak,
    afterLoad: footprint(t.pid as number),
    load,
    foreign: Math.max(load.get.foreign, load.list.foreign),
  };
}

/** One query through the sidecar's PostgreSQL listener (the parser and session code load here). */
async function queryThrough(port: number, db: PostgresServer): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: db.user, database: db.database });
  await client.connect();
  try {
    const r = await client.query('SELECT count(*) AS n FROM pg_class WHERE relkind = $1', ['r']);
    if (!r.rows[0]) throw new Error('the query through the sidecar returned no row');
  } finally {
    await client.end();
  }
}

/** A TTY exec session running `cat` through the sidecar; KEYS keystrokes, each until its echo. */
async function openExec(origin: string, token: string): Promise<{ close(): Promise<void> }> {
  const q = new URLSearchParams({ container: CONTAINER, stdin: 'true', stdout: 'true', tty: 'true' });
  q.append('command', 'cat');
  const agent = new Agent({ connect: { rejectUnauthorized: false } });
  const ws = new WebSocket(
    `${origin.replace('https:', 'wss:')}/api/v1/namespaces/${NAMESPACE}/pods/${POD}/exec?${q}`,
    {
      protocols: ['v5.channel.k8s.io', 'v4.channel.k8s.io'],
      headers: { Authorization: `Bearer ${token}` },
      dispatcher: agent,
    },
  );
  ws.binaryType = 'arraybuffer';
  let waiting: { key: number; resolve: () => void } | undefined;
  ws.addEventListener('message', (ev) => {
    const data = new Uint8Array(ev.data as ArrayBuffer);
    if (data[0] === 1 && waiting && data.subarray(1).includes(waiting.key)) {
      const w = waiting;
      waiting = undefined;
      w.resolve();
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve(), { once: true });
    ws.addEventListener('error', () => reject(new Error('the exec WebSocket through the sidecar failed')), {
      once: true,
    });
  });
  await sleep(300);
  for (let i = 0; i < KEYS; i++) {
    const key = 0x61 + (i % 26);
    const echoed = new Promise<void>((resolve) => {
      waiting = { key, resolve };
    });
    ws.send(new Uint8Array([0, key]));
    const late = await Promise.race([echoed.then(() => false), sleep(5000).then(() => true)]);
    if (late) throw new Error(`exec through the sidecar: no echo of key ${i + 1} within 5 s`);
  }
  return {
    async close() {
      ws.send(new Uint8Array([0, 0x0d]));
      await sleep(50);
      ws.send(new Uint8Array([0, 0x04]));
      await Promise.race([new Promise((r) => ws.addEventListener('close', r)), sleep(2000)]);
      ws.close();
      await agent.close();
    },
  };
}

async function runConfig(c: Config, env: Env, order: readonly Scenario[]): Promise<ConfigRound> {
  if (c === 'node') {
    const dir = mkdtempSync(join(env.root, 'node-'));
    const proc = startProcess({
      name: 'empty node',
      command: process.execPath,
      args: ['-e', 'setInterval(() => {}, 1 << 30)'],
      logFile: join(dir, 'node.log'),
    });
    try {
      await sleep(1000);
      return { idle: footprint(proc.pid), idleCost: await idleCost(proc.pid), foreign: 0 };
    } finally {
      await proc.stop(2000);
    }
  }
  if (c === 'rawproxy') {
    const t = await startPassthrough(env.nginx, env.cp, env.fx, 'raw', [], env.rawproxyJs);
    try {
      return await loaded(t, env.fx, order);
    } finally {
      await t.stop();
    }
  }
  const dbPort = c === 'sidecar-db' ? await freePort() : 0;
  const t = await startSidecar(env.base, env.cp, {
    nodeFlags: [...FLAGS, ...(altOf(c)?.flags ?? [])],
    env: altOf(c)?.env,
    entry: altOf(c)?.entry,
    ...(c === 'sidecar-db'
      ? { args: ['--databases', `${env.db.database}=${dbPort}`, '--databases-dir', env.databasesDir] }
      : {}),
  });
  try {
    if (c === 'sidecar-db') {
      // Declared but not yet used, then after one query (the SQL parser loads at the first connection).
      const declared = await idleAfterWarmup(t, env.fx);
      await queryThrough(dbPort, env.db);
      return { ...(await loaded(t, env.fx, order)), declared };
    }
    if (c !== 'sidecar-exec') return await loaded(t, env.fx, order);
    const idle = await idleAfterWarmup(t, env.fx);
    const sampler = samplePeak(t.pid as number, 20);
    const session = await openExec(t.origin, t.token);
    await sleep(500);
    const open = footprint(t.pid as number);
    await session.close();
    const peak = sampler.stop();
    return {
      idle: open,
      peak: { ...peak, privateMiB: Math.max(peak.privateMiB, idle.privateMiB) },
      foreign: 0,
    };
  } finally {
    await t.stop();
  }
}

function idleText(c: IdleCost | undefined): string {
  return c ? `; idle ${fmt(c.cpuMsPerS, 1)} ms CPU/s, ${fmt(c.wakeupsPerS)} wake-ups/s` : '';
}

/** --memory-only: each configuration's medians over rounds, CPU per request against the sidecar as configured. */
function ablationSummary(mem: ReadonlyMap<Config, readonly ConfigRound[]>): string {
  const rounds = (c: Config) => mem.get(c) ?? [];
  const med = (c: Config, f: (r: ConfigRound) => number | undefined) =>
    median(rounds(c).map((r) => f(r) ?? Number.NaN));
  const each = (c: Config, f: (r: ConfigRound) => number | undefined, digits = 0) =>
    rounds(c)
      .map((r) => fmt(f(r), digits))
      .join(' / ');
  const vs = (c: Config, s: Scenario) => {
    const x = med(c, (r) => r.load?.[s].cpuUsPerReq) / med('sidecar', (r) => r.load?.[s].cpuUsPerReq);
    return Number.isFinite(x) ? `${x >= 1 ? '+' : ''}${fmt(100 * (x - 1))}%` : '–';
  };
  const rows = CONFIGS.map((c) => [
    c === 'node' || c === 'rawproxy' || c === 'sidecar' ? c : `sidecar + ${altOf(c)?.text ?? c}`,
    `${fmt(
      med(c, (r) => r.idle.privateMiB),
      1,
    )} (${each(c, (r) => r.idle.privateMiB, 1)})`,
    `${fmt(Math.max(...rounds(c).map((r) => r.peak?.privateMiB ?? Number.NaN)), 1)} (${each(c, (r) => r.peak?.privateMiB, 1)})`,
    `${fmt(
      med(c, (r) => r.afterLoad?.privateMiB),
      1,
    )} (${each(c, (r) => r.afterLoad?.privateMiB, 1)})`,
    `${fmt(
      med(c, (r) => r.idleCost?.cpuMsPerS),
      1,
    )} / ${fmt(med(c, (r) => r.idleCost?.wakeupsPerS))}`,
    `${fmt(med(c, (r) => r.load?.get.cpuUsPerReq))} (${each(c, (r) => r.load?.get.cpuUsPerReq)})`,
    vs(c, 'get'),
    `${fmt(med(c, (r) => r.load?.list.cpuUsPerReq))} (${each(c, (r) => r.load?.list.cpuUsPerReq)})`,
    vs(c, 'list'),
    fmt(med(c, (r) => 100 * r.foreign)),
  ]);
  return table(
    [
      'Process',
      'private idle MiB (rounds)',
      'private peak MiB (rounds)',
      `private ${AFTER_LOAD_S} s after the loads MiB (rounds)`,
      'idle CPU ms/s / wake-ups/s',
      'CPU µs/GET (rounds)',
      'GET vs sidecar',
      'CPU µs/LIST (rounds)',
      'LIST vs sidecar',
      'others %',
    ],
    rows,
  );
}

// ---------------------------------------------------------------- start-up

interface StartSample {
  readonly ms: number;
  /** Spawn to the injected pod's startup probe (GET /healthz on the metrics port) passing. */
  readonly probeMs: number;
  readonly foreign: number;
}

/** Process start to the first request answered through the sidecar: a fresh local certificate each time. */
async function coldStart(base: SidecarBase, cp: ControlPlane, alt?: AltSet): Promise<StartSample> {
  await waitForQuiet(CORES, FOREIGN_LIMIT, 5000);
  const tlsDir = mkdtempSync(join(base.dir, 'tls-'));
  const a = foreignSnapshot();
  const t0 = performance.now();
  const t = await startSidecar({ ...base, tlsDir }, cp, {
    nodeFlags: [...FLAGS, ...(alt?.flags ?? [])],
    readyPollMs: 5,
    probePollMs: 5,
    ...(alt ? { env: alt.env, entry: alt.entry } : {}),
  });
  const ms = performance.now() - t0;
  const probeMs = t.probePassedAt === undefined ? Number.NaN : t.probePassedAt - t0;
  // Any child process the sidecar ran and reaped while starting: its CPU is ours, not others'.
  const childUs = childrenCpuUs(t.pid as number);
  const foreign = Math.max(0, foreignShare(a, foreignSnapshot(), CORES) - childUs / (ms * 1000 * CORES));
  await t.stop();
  rmSync(tlsDir, { recursive: true, force: true });
  return { ms, probeMs, foreign };
}

/** Cold starts alternating with the empty-node floor. */
async function coldStarts(
  base: SidecarBase,
  cp: ControlPlane,
  /** Run beside each start, before it in odd starts and after it in even ones (--startup-only's --alt-flags). */
  beside?: () => Promise<void>,
): Promise<{ starts: StartSample[]; nodeStarts: number[] }> {
  const starts: StartSample[] = [];
  const nodeStarts: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    if (i % 2 === 1) {
      nodeStarts.push(emptyNodeMs());
      await beside?.();
    }
    starts.push(await coldStart(base, cp));
    if (i % 2 === 0) {
      nodeStarts.push(emptyNodeMs());
      await beside?.();
    }
    log(
      `  cold start ${i + 1}/${STARTS}: ${fmt(starts[i]?.ms, 1)} ms, startup probe passed at ${fmt(starts[i]?.probeMs, 1)} ms (others ${fmt(100 * (starts[i]?.foreign ?? 0))}%)`,
    );
  }
  return { starts, nodeStarts };
}

/**
 * --startup-only: the control plane and the cold starts alone (a quick check of start-up work);
 * with --alt-flags, each set's cold starts too, interleaved with the sidecar's as it ships.
 */
async function startupOnlyRun(): Promise<void> {
  const cp = await startControlPlane({ log });
  const root = benchRoot();
  try {
    const base = sidecarBase(root, cp, createFixtures(cp));
    sidecarEntry(FLAGS); // the bundle is built before the first start, not during it
    const alts = new Map<AltSet, number[]>(ALT_SETS.map((a) => [a, []]));
    const { starts, nodeStarts } = await coldStarts(base, cp, async () => {
      for (const [alt, times] of alts) times.push((await coldStart(base, cp, alt)).ms);
    });
    const ms = starts.map((s) => s.ms);
    log(
      `sidecar spawn → first answered request: median ${fmt(median(ms))} ms (max ${fmt(Math.max(...ms))}); each: ${ms.map((m) => fmt(m)).join(' / ')}`,
    );
    const probes = starts.map((s) => s.probeMs);
    log(
      `sidecar spawn → the injected pod's startup probe passes: median ${fmt(median(probes))} ms (max ${fmt(Math.max(...probes))})`,
    );
    for (const [alt, times] of alts)
      log(
        `  with ${alt.text}: median ${fmt(median(times))} ms (max ${fmt(Math.max(...times))}); each: ${times.map((m) => fmt(m)).join(' / ')}`,
      );
    log(
      `floor \`node -e ""\`: median ${fmt(median(nodeStarts))} ms; others took a median ${fmt(100 * median(starts.map((s) => s.foreign)))}% during the starts`,
    );
    log('(--startup-only: results not written)');
  } finally {
    await cp.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

/** CPU (µs) of a process's children that have exited and been reaped (cutime + cstime). */
function childrenCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(rest[13]) + Number(rest[14])) * 1e6) / 100; // CLK_TCK
}

/** The floor: `node -e ""` from spawn to exit. */
function emptyNodeMs(): number {
  const t0 = performance.now();
  spawnSync(process.execPath, ['-e', ''], { stdio: 'ignore' });
  return performance.now() - t0;
}

// ---------------------------------------------------------------- injector

type Webhook = 'injector' | 'no-op webhook';

interface WebhookRound {
  readonly firstMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly cpuUsPerReview: number;
  readonly foreign: number;
}

async function runWebhook(
  name: Webhook,
  files: { cert: string; key: string; ca: string },
  body: string,
  root: string,
): Promise<WebhookRound> {
  const port = await freePort();
  const args =
    name === 'injector'
      ? [sidecarEntry([]), ...injectorArgs(port, files)]
      : [
          fileURLToPath(new URL('./injector-noop-webhook.ts', import.meta.url)),
          String(port),
          files.cert,
          files.key,
        ];
  const proc = startProcess({
    name,
    command: process.execPath,
    args,
    logFile: join(mkdtempSync(join(root, 'webhook-')), 'webhook.log'),
  });
  const pool = new Pool(`https://127.0.0.1:${port}`, {
    connections: 8,
    connect: { ca: files.ca, servername: 'localhost' },
  });
  const one = async (): Promise<boolean> => {
    try {
      const r = await pool.request({
        path: '/mutate',
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      });
      const text = await r.body.text();
      return r.statusCode === 200 && text.includes('"allowed":true');
    } catch {
      return false;
    }
  };
  try {
    const deadline = performance.now() + 30_000;
    for (;;) {
      const h = await getOnce(`https://127.0.0.1:${port}`, '/healthz', '').catch(() => undefined);
      if (h?.status === 200) break;
      if (performance.now() > deadline) throw new Error(`${name} did not come up`);
      await sleep(20);
    }
    // The first review after start: a new connection, nothing compiled yet.
    const t0 = performance.now();
    if (!(await one())) throw new Error(`${name} did not admit the first review`);
    const firstMs = performance.now() - t0;
    await phase(one, REVIEW_RATE, 2, undefined);
    return await undisturbed(name, async () => {
      const acc: Acc = { lat: [], sent: 0, ok: 0, errors: 0, late: 0 };
      const c0 = cpuOf([proc.pid]);
      await phase(one, REVIEW_RATE, REVIEW_S, acc);
      const c1 = cpuOf([proc.pid]);
      const s = summary(acc);
      return {
        firstMs,
        p50Ms: s.p50Ms,
        p99Ms: s.p99Ms,
        errors: s.errors,
        cpuUsPerReview: (c1 - c0) / s.sent,
      };
    });
  } finally {
    await pool.close();
    await proc.stop(5000);
  }
}

// ---------------------------------------------------------------- main

function rotate<T>(items: readonly T[], round: number): T[] {
  const r = round % items.length;
  const rotated = [...items.slice(r), ...items.slice(0, r)];
  return round % 2 === 1 ? rotated.reverse() : rotated;
}

async function main(): Promise<void> {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => process.exit(130));
  const machine = machineInfo();
  log(`machine: ${formatMachine(machine)}`);
  if (startupOnly) return startupOnlyRun();
  ensureTools({ wrk: 'wrk' }, log);
  const git = (args: string[]) =>
    spawnSync('git', args, {
      encoding: 'utf8',
      cwd: fileURLToPath(new URL('../../', import.meta.url)),
    }).stdout.trim();
  const commit = git(['rev-parse', '--short', 'HEAD']);
  const dirty = git(['status', '--porcelain', '--', 'sidecar', 'shared', 'injector']) !== '';
  const codeLine = `commit ${commit || 'unknown'}${dirty ? ' with uncommitted changes in sidecar/, shared/ or injector/' : ''}`;
  log('starting PostgreSQL, the control plane and the stand-in kubelet…');
  const db = await startPostgres({ log });
  const cp = await startControlPlane({ log });
  const standin = await startKubeletStandin({ lifetimeMs: 3600_000, log });
  const root = benchRoot();
  const started = Date.now();
  try {
    const fx = createFixtures(cp);
    const node = registerNode(cp.kubeconfigPath, { port: standin.port });
    await createBoundPod(cp.kubeconfigPath, {
      namespace: NAMESPACE,
      name: POD,
      node: node.name,
      containers: [{ name: CONTAINER }, { name: 'chaperone-sidecar' }],
    });
    const databasesDir = join(root, 'databases');
    mkdirSync(join(databasesDir, db.database), { recursive: true });
    writeFileSync(join(databasesDir, db.database, 'url'), db.url);
    const rawproxyJs = join(root, 'sidecar-rawproxy.mjs');
    const rawSource = fileURLToPath(new URL('./sidecar-rawproxy.ts', import.meta.url));
    writeFileSync(rawproxyJs, stripTypeScriptTypes(readFileSync(rawSource, 'utf8')));
    const env: Env = {
      rawproxyJs,
      cp,
      fx,
      root,
      base: sidecarBase(root, cp, fx),
      nginx: nginxBase(root, cp),
      db,
      databasesDir,
    };

    // Memory and CPU per request.
    const mem = new Map<Config, ConfigRound[]>(CONFIGS.map((c) => [c, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = rotate(CONFIGS, round);
      const scenarios: Scenario[] = round % 2 === 0 ? ['get', 'list'] : ['list', 'get'];
      log(`round ${round + 1}/${ROUNDS}: ${order.join(' → ')}`);
      for (const c of order) {
        const r = await runConfig(c, env, scenarios);
        (mem.get(c) as ConfigRound[]).push(r);
        const load = r.load
          ? `  GET ${fmt(r.load.get.rps)} req/s ${fmt(r.load.get.cpuUsPerReq)} µs/req, LIST ${fmt(r.load.list.rps)} req/s ${fmt(r.load.list.cpuUsPerReq)} µs/req`
          : '';
        log(
          `  ${c.padEnd(12)} private ${fmt(r.idle.privateMiB, 1)} MiB idle${r.peak ? `, ${fmt(r.peak.privateMiB, 1)} peak` : ''}; RSS ${fmt(r.idle.rssMiB, 1)}; PSS ${fmt(r.idle.pssMiB, 1)}${idleText(r.idleCost)}${load}; others ${fmt(100 * r.foreign)}%`,
        );
      }
    }

    if (memoryOnly) {
      log(`\n${ablationSummary(mem)}\n(--memory-only: results not written)`);
      return;
    }

    const { starts, nodeStarts } = await coldStarts(env.base, cp);

    // The injector against the do-nothing webhook.
    const ca = createCA({ commonName: 'bench webhook CA' });
    const leaf = issueCertificate({
      ca,
      commonName: 'localhost',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
    });
    const files = { cert: join(root, 'webhook.crt'), key: join(root, 'webhook.key'), ca: ca.cert };
    writeFileSync(files.cert, leaf.cert);
    writeFileSync(files.key, leaf.key, { mode: 0o600 });
    const body = admissionReview();
    const hooks = new Map<Webhook, WebhookRound[]>([
      ['injector', []],
      ['no-op webhook', []],
    ]);
    for (let round = 0; round < ROUNDS; round++) {
      const order: Webhook[] =
        round % 2 === 0 ? ['injector', 'no-op webhook'] : ['no-op webhook', 'injector'];
      for (const w of order) {
        const r = await runWebhook(w, files, body, root);
        (hooks.get(w) as WebhookRound[]).push(r);
        log(
          `  ${w.padEnd(14)} first ${fmt(r.firstMs, 1)} ms; at ${REVIEW_RATE}/s p50 ${fmt(r.p50Ms, 2)} ms p99 ${fmt(r.p99Ms, 2)} ms, ${fmt(r.cpuUsPerReview)} µs CPU/review, ${r.errors} errors; others ${fmt(100 * r.foreign)}%`,
        );
      }
    }
    const minutes = ((Date.now() - started) / 60_000).toFixed(1);

    // ---------------------------------------------------------------- report
    const rs = (c: Config) => mem.get(c) as ConfigRound[];
    const med = (c: Config, f: (r: ConfigRound) => number | undefined) =>
      median(rs(c).map((r) => f(r) ?? Number.NaN));
    /** Peaks: the largest over rounds (when the heap grows varies from run to run). */
    const max = (c: Config, f: (r: ConfigRound) => number | undefined) =>
      Math.max(...rs(c).map((r) => f(r) ?? Number.NaN));
    const label: Partial<Record<Config, string>> = {
      node: 'floor: empty `node` process',
      rawproxy: 'floor: raw TLS pass-through (sidecar-rawproxy.ts, types stripped ahead, run as JavaScript)',
      sidecar: 'sidecar, no database declared',
      'sidecar-db': 'sidecar, one PostgreSQL declared (queried once)',
      'sidecar-exec': 'sidecar, one exec TTY session open (idle = during the session)',
    };
    const labelOf = (c: Config) =>
      label[c] ?? `sidecar, no database declared, with ${altOf(c)?.text} added (experiment)`;
    const memRows = CONFIGS.map((c) => [
      labelOf(c),
      fmt(
        med(c, (r) => r.idle.privateMiB),
        1,
      ),
      fmt(
        max(c, (r) => r.peak?.privateMiB),
        1,
      ),
      fmt(
        med(c, (r) => r.afterLoad?.privateMiB),
        1,
      ),
      fmt(
        med(c, (r) => r.idle.rssMiB),
        1,
      ),
      fmt(
        max(c, (r) => r.peak?.rssMiB),
        1,
      ),
      fmt(
        med(c, (r) => r.idle.pssMiB),
        1,
      ),
      fmt(
        max(c, (r) => r.peak?.pssMiB),
        1,
      ),
      fmt(med(c, (r) => 100 * r.foreign)),
    ]);
    const cpu = (c: Config, s: Scenario) => med(c, (r) => r.load?.[s].cpuUsPerReq);
    const rps = (c: Config, s: Scenario) => med(c, (r) => r.load?.[s].rps);
    const cpuRows = (['get', 'list'] as const).flatMap((s) =>
      CONFIGS.filter((c) => c !== 'node' && c !== 'sidecar-exec').map((c) => [
        s === 'get' ? 'GET ConfigMap' : 'LIST Secrets (masked through the sidecar)',
        labelOf(c),
        fmt(rps(c, s)),
        fmt(cpu(c, s)),
        rs(c)
          .map((r) => fmt(r.load?.[s].cpuUsPerReq))
          .join(' / '),
        `${(cpu(c, s) / cpu('rawproxy', s)).toFixed(2)}×`,
        fmt(med(c, (r) => (r.load ? 100 * r.load[s].foreign : undefined))),
      ]),
    );
    const startMs = starts.map((s) => s.ms);
    const startMed = median(startMs);
    const startMax = Math.max(...startMs);
    const probeMs = starts.map((s) => s.probeMs);
    const hk = (w: Webhook, f: (r: WebhookRound) => number) =>
      median((hooks.get(w) as WebhookRound[]).map(f));
    const hookRows = (['injector', 'no-op webhook'] as const).map((w) => [
      w === 'injector'
        ? '`chaperone injector` (production bundle)'
        : 'do-nothing webhook (injector-noop-webhook.ts)',
      fmt(
        hk(w, (r) => r.p50Ms),
        2,
      ),
      fmt(
        hk(w, (r) => r.p99Ms),
        2,
      ),
      fmt(
        hk(w, (r) => r.firstMs),
        1,
      ),
      fmt(hk(w, (r) => r.cpuUsPerReview)),
      fmt(hk(w, (r) => 100 * r.foreign)),
    ]);
    const idlePriv = med('sidecar', (r) => r.idle.privateMiB);
    const peakPriv = max('sidecar', (r) => r.peak?.privateMiB);
    const getX = cpu('sidecar', 'get') / cpu('rawproxy', 'get');
    const listX = cpu('sidecar', 'list') / cpu('rawproxy', 'list');
    const injP99 = hk('injector', (r) => r.p99Ms);
    const injFirst = hk('injector', (r) => r.firstMs);
    const mark = (ok: boolean) => (ok ? '✓' : '✗');
    const targetRows = [
      [
        'Private memory idle, no database',
        '≤ 16 MiB',
        `${fmt(idlePriv, 1)} MiB (empty node: ${fmt(
          med('node', (r) => r.idle.privateMiB),
          1,
        )})`,
        mark(idlePriv <= 16),
      ],
      [
        'Private memory peak, no database',
        '≤ 40 MiB',
        `${fmt(peakPriv, 1)} MiB (raw pass-through: ${fmt(
          max('rawproxy', (r) => r.peak?.privateMiB),
          1,
        )})`,
        mark(peakPriv <= 40),
      ],
      [
        'Start-up to first answered request (median)',
        '≤ 250 ms',
        `${fmt(startMed)} ms (max ${fmt(startMax)})`,
        mark(startMed <= 250),
      ],
      ['CPU per GET', '≤ 2.0× raw pass-through', `${getX.toFixed(2)}×`, mark(getX <= 2)],
      ['CPU per masked LIST', '≤ 2.0× raw pass-through', `${listX.toFixed(2)}×`, mark(listX <= 2)],
      [`Injector p99 at ${REVIEW_RATE} reviews/s`, '≤ 5 ms', `${fmt(injP99, 2)} ms`, mark(injP99 <= 5)],
      ['Injector first review', '≤ 50 ms', `${fmt(injFirst, 1)} ms`, mark(injFirst <= 50)],
    ];
    const allForeign = [
      ...CONFIGS.flatMap((c) => rs(c).map((r) => r.foreign)),
      ...starts.map((s) => s.foreign),
      ...[...hooks.values()].flat().map((r) => r.foreign),
    ];
    const text = [
      '## Sidecar footprint per pod',
      '',
      `Machine: ${formatMachine(machine)}. Upstream: a real kube-apiserver ${cp.version.gitVersion} (+ etcd), PostgreSQL ${db.version}, and the stand-in kubelet (a test double: no kubelet on this control plane), all on loopback on the same machine. Measured at ${codeLine}. Sidecar: the production bundle with node ${SIDECAR_NODE_FLAGS.join(' ') || '(no flags)'} (its NODE_OPTIONS) and ${CONTAINER_LIMIT_FLAGS.join(' ')} (what V8 derives from the container's default 256Mi memory limit; this run has no limit)${Object.entries(
        SIDECAR_RUNTIME_ENV,
      )
        .map(([k, v]) => `, ${k}=${v}`)
        .join('')}.`,
      '',
      `Method: \`node bench/src/sidecar-footprint.ts\`. ${ROUNDS} rounds; each starts every process afresh, in a rotated (odd rounds reversed) order, and alternates the order of the GET and masked LIST loads; figures are medians over rounds. Private memory = RssAnon + RssShmem from /proc/<pid>/status (what one more pod adds on a node once the image's files are in the page cache), beside VmRSS and PSS (/proc/<pid>/smaps_rollup). Idle: after 20 GETs and ${IDLE_SETTLE_S} quiet seconds (what a pod settles to; the sidecar gives back what start-up took at its first quiet look, every 2 s). Peak: largest 100 ms sample across wrk's GET and LIST loads, the largest over rounds (1 thread, ${CONNECTIONS} connections, ${WARM_S} s warm-up, ${RUN_S} s measured each); for the exec row, across the session (20 ms samples). After the loads: ${AFTER_LOAD_S} s after the last load ended, nothing sent meanwhile (what a pod keeps after a burst). CPU per request: utime + stime of the proxy from /proc over the measured run. Start-up: ${STARTS} cold starts, from spawning the sidecar to the first request answered through it (a fresh local certificate each time, policy loaded, upstream reached; readiness polled every 5 ms), and to the injected pod's startup probe passing (GET /healthz on the metrics port, which listens last; polled every 5 ms from the spawn); the floor beside it is \`node -e ""\` from spawn to exit. Injector: the production bundle (certificates from files, no cluster calls on the request path) and the do-nothing webhook (same server code, run from its TypeScript source), fresh processes in alternating order; the first AdmissionReview after start (new connection), then an open-loop client (undici, 8 keep-alive connections) at a steady ${REVIEW_RATE} reviews/s for ${REVIEW_S} s after 2 s of warm-up. A measurement during which other processes or steal took ≥ ${100 * FOREIGN_LIMIT}% of the machine was repeated (up to ${MAX_ATTEMPTS} times, keeping the least disturbed); "others %" is that share. Others took a median ${fmt(100 * median(allForeign))}% (max ${fmt(100 * Math.max(...allForeign))}%) over the kept measurements. Run took ${minutes} min.`,
      '',
      '### Memory (MiB)',
      '',
      table(
        [
          'Process',
          'private idle',
          'private peak',
          `private ${AFTER_LOAD_S} s after the loads`,
          'RSS idle',
          'RSS peak',
          'PSS idle',
          'PSS peak',
          'others %',
        ],
        memRows,
      ),
      '',
      `With the database declared but no connection made yet, the sidecar's private memory was ${fmt(
        med('sidecar-db', (r) => r.declared?.privateMiB),
        1,
      )} MiB (RSS ${fmt(
        med('sidecar-db', (r) => r.declared?.rssMiB),
        1,
      )}); the row above is after one query through it and the loads.`,
      '',
      '### Idle: CPU and wake-ups while nothing happens',
      '',
      `Over ${IDLE_S} s after the idle memory sample (no requests; the process's timers only): CPU per second (time on CPU of all its threads, /proc/<pid>/task/*/schedstat), and how often its main thread was switched in (voluntary and involuntary context switches per second, from /proc/<pid>/status). What every idle pod costs its node.`,
      '',
      table(
        ['Process', 'CPU ms/s', 'rounds', 'wake-ups/s', 'rounds'],
        CONFIGS.filter((c) => c !== 'sidecar-exec').map((c) => [
          labelOf(c),
          fmt(
            med(c, (r) => r.idleCost?.cpuMsPerS),
            2,
          ),
          rs(c)
            .map((r) => fmt(r.idleCost?.cpuMsPerS, 2))
            .join(' / '),
          fmt(med(c, (r) => r.idleCost?.wakeupsPerS)),
          rs(c)
            .map((r) => fmt(r.idleCost?.wakeupsPerS))
            .join(' / '),
        ]),
      ),
      '',
      '### CPU per request against the raw TLS pass-through',
      '',
      table(
        ['Scenario', 'Process', 'req/s', 'CPU µs/req', 'rounds', 'vs raw pass-through', 'others %'],
        cpuRows,
      ),
      '',
      '### Start-up',
      '',
      table(
        ['Process', 'median ms', 'max ms', 'each start'],
        [
          [
            'sidecar: spawn → first request answered through it',
            fmt(startMed),
            fmt(startMax),
            startMs.map((m) => fmt(m)).join(' / '),
          ],
          [
            "sidecar: spawn → the injected pod's startup probe passes (GET /healthz on the metrics port; polled every 5 ms here, every 1 s by the kubelet)",
            fmt(median(probeMs)),
            fmt(Math.max(...probeMs)),
            probeMs.map((m) => fmt(m)).join(' / '),
          ],
          [
            'floor: `node -e ""`, spawn → exit',
            fmt(median(nodeStarts)),
            fmt(Math.max(...nodeStarts)),
            nodeStarts.map((m) => fmt(m)).join(' / '),
          ],
        ],
      ),
      '',
      `### Injector admission at ${REVIEW_RATE} reviews/s (open loop)`,
      '',
      table(['Webhook', 'p50 ms', 'p99 ms', 'first review ms', 'CPU µs/review', 'others %'], hookRows),
      '',
      '### Targets (issue 22)',
      '',
      table(['Target', 'Goal', 'Measured', ''], targetRows),
      '',
    ].join('\n');
    log('');
    log(text);
    if (noWrite) log('\n(--quick / --no-write: results not written)');
    else for (const file of writeResult('footprint', text)) log(`wrote ${file}`);
  } finally {
    await standin.stop();
    await cp.stop();
    await db.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
