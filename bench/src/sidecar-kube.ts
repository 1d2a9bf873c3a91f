/**
 * Benchmark: the chaperone sidecar on the Kubernetes API path (issue 5,
 * "Performance"), against the same real kube-apiserver reached directly and
 * through nginx (Debian's, tuned as a TLS reverse proxy), in the same run.
 *
 *   node bench/src/sidecar-kube.ts              full run (3 rounds), writes bench/results/sidecar.md
 *   node bench/src/sidecar-kube.ts --quick      short smoke run, writes nothing
 *   options:
 *     --rounds N                 rounds (default 3; 1 with --quick)
 *     --no-write                 full-length run that writes nothing
 *     --passthrough              adds minimal Node pass-throughs (undici HTTP/2 and HTTP/1.1 upstream, raw TLS sockets) as diagnostic rows
 *     --only a,b                 just these targets (direct, nginx, sidecar, passthrough, passthrough-h1, rawproxy); per-round lines, no report
 *     --profile get|list|rate    runs the sidecar with --cpu-prof under wrk load (get, list) or at the fixed
 *                                rate (rate) and prints where its time goes (see sidecar-profile.ts)
 *     --perf get|list            the same load under Linux perf (native view: kernel, OpenSSL, libuv, JIT)
 *     --perf-rawproxy            with --perf: the raw TLS pass-through instead of the sidecar (the floor, same view)
 *   env BENCH_SIDECAR_NODE_FLAGS="--max-semi-space-size=4 …"   extra node flags for the sidecar (experiments;
 *                                after SIDECAR_NODE_OPTIONS, which the injected sidecar runs with)
 *   env BENCH_SIDECAR_SOURCES=1   run the sidecar from its TypeScript sources instead of the bundle
 *
 * Each round starts every proxy afresh and alternates the order of targets
 * (and of scenarios); figures are medians over rounds. Closed-loop load is
 * wrk (1 thread, 16 connections, HTTPS); added latency is measured with an
 * open-loop client at a fixed 200 requests/s. The proxy's CPU per request is
 * read from /proc (utime + stime, nginx master + worker) around each wrk run.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ControlPlane, startControlPlane } from '@chaperone/e2e';
import { formatMachine, machineInfo } from './machine.ts';
import { writeResult } from './report.ts';
import {
  cpuMicros,
  cpuOf,
  type FixedRateResult,
  FOREIGN_LIMIT,
  fixedRate,
  getOnce,
  MAX_ATTEMPTS,
  memory,
  sampleRss,
  sysOf,
  undisturbed as undisturbedRun,
  type WrkResult,
  wrk,
} from './sidecar-load.ts';
import { callersOf, formatSummary, summariseProfile } from './sidecar-profile.ts';
import {
  benchRoot,
  createFixtures,
  directTarget,
  ensureTools,
  type Fixtures,
  nginxBase,
  SECRET_COUNT,
  SIDECAR_NODE_FLAGS,
  sidecarBase,
  startNginx,
  startPassthrough,
  startSidecar,
  type Target,
} from './sidecar-targets.ts';
import { median, table } from './stats.ts';

type TargetName = Target['name'];
type Scenario = 'get' | 'list';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const noWrite = quick || argv.includes('--no-write');
const withPassthrough = argv.includes('--passthrough');
const profileIdx = argv.indexOf('--profile');
const profileMode = profileIdx !== -1;
const profileScenario: Scenario | 'rate' =
  argv[profileIdx + 1] === 'list' ? 'list' : argv[profileIdx + 1] === 'rate' ? 'rate' : 'get';
const perfIdx = argv.indexOf('--perf');
const perfMode = perfIdx !== -1;
const perfScenario: Scenario = argv[perfIdx + 1] === 'list' ? 'list' : 'get';
const perfRaw = argv.includes('--perf-rawproxy');
const onlyIdx = argv.indexOf('--only');
const only = onlyIdx !== -1 ? (argv[onlyIdx + 1] ?? '').split(',') : undefined;
const roundsIdx = argv.indexOf('--rounds');
const ROUNDS = roundsIdx !== -1 ? Number(argv[roundsIdx + 1]) : quick ? 1 : 3;
const CONNECTIONS = 16;
const WARM_S = quick ? 1 : 2;
const RUN_S = quick ? 3 : 8;
const RATE = 200;
const RATE_S = quick ? 3 : 10;
const RATE_WARM_S = quick ? 1 : 2;
const RATE_CONNECTIONS = 8;

const log = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface LoadSample {
  wrk: WrkResult;
  /** CLOCK_MONOTONIC µs around the measured run. */
  fromUs: number;
  toUs: number;
  proxyCpuUsPerReq: number;
  /** Share of the proxy's CPU spent in the kernel (syscalls, loopback TCP). */
  proxySysShare: number;
  apiCpuUsPerReq: number;
  machineBusy: number;
  /** Share of the machine others (other processes, hypervisor steal) took during the run. */
  foreign: number;
}

interface RoundResult {
  load: Record<Scenario, LoadSample>;
  /** For proxies, `pair` is direct measured in interleaved slices of the same run. */
  fixed: FixedRateResult & { pair?: FixedRateResult; foreign: number; proxyCpuUsPerReq: number };
  idleRssMiB?: number;
  peakRssMiB?: number;
  hwmMiB?: number;
  overheadUs?: number;
  spoolBytesPerEvent?: number;
}

/** Share of the machine's CPU that was busy between two /proc/stat readings. */
function cpuTotals(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] as string;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function metricValue(text: string, name: string): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      found = true;
    }
  }
  return found ? sum : Number.NaN;
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir)) n += statSync(join(dir, f)).size;
  return n;
}

async function warmRequests(t: Target, path: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await getOnce(t.origin, path, t.token);
    if (r.status !== 200)
      throw new Error(`${t.name}: GET ${path} answered ${r.status}: ${r.body.slice(0, 300)}`);
  }
}

function checkBodies(t: Target, fx: Fixtures, list: string): void {
  const items = (JSON.parse(list) as { items?: unknown[] }).items ?? [];
  if (items.length < SECRET_COUNT) throw new Error(`${t.name}: LIST returned ${items.length} secrets`);
  const leaked = fx.secretValues.filter((v) => list.includes(v)).length;
  if (t.name === 'sidecar' && leaked > 0) throw new Error(`sidecar: ${leaked} secret values were not masked`);
  if (t.name !== 'sidecar' && leaked !== fx.secretValues.length)
    throw new Error(`${t.name}: expected the unmasked secret values`);
}

const CORES = machineInfo().cores;
const undisturbed = <T>(what: string, measure: () => Promise<T>) =>
  undisturbedRun(what, measure, { cores: CORES, log });

async function measureLoad(
  t: Target,
  path: string,
  apiPid: number,
  /** Started right before the measured run; its result is awaited after it (profilers). */
  during?: () => Promise<void>,
): Promise<LoadSample> {
  const url = `${t.origin}${path}`;
  await wrk({ url, token: t.token, connections: CONNECTIONS, seconds: WARM_S });
  const pids = t.pids();
  return undisturbed(`${t.name} ${path}`, async () => {
    const side = during?.();
    const c0 = cpuOf(pids);
    const s0 = sysOf(pids);
    const a0 = cpuMicros(apiPid);
    const m0 = cpuTotals();
    const fromUs = Number(process.hrtime.bigint() / 1000n);
    const r = await wrk({ url, token: t.token, connections: CONNECTIONS, seconds: RUN_S });
    const toUs = Number(process.hrtime.bigint() / 1000n);
    await side;
    const c1 = cpuOf(pids);
    const s1 = sysOf(pids);
    const a1 = cpuMicros(apiPid);
    const m1 = cpuTotals();
    if (r.non2xx > 0 || r.socketErrors > 0)
      log(`  warning: ${t.name} ${path}: ${r.non2xx} non-2xx responses, ${r.socketErrors} socket errors`);
    return {
      wrk: r,
      fromUs,
      toUs,
      proxyCpuUsPerReq: pids.length ? (c1 - c0) / r.requests : Number.NaN,
      proxySysShare: pids.length ? (s1 - s0) / (c1 - c0) : Number.NaN,
      apiCpuUsPerReq: (a1 - a0) / r.requests,
      machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total),
    };
  });
}

async function startTarget(
  name: TargetName,
  env: { cp: ControlPlane; fx: Fixtures; root: string },
  bases: { nginx: ReturnType<typeof nginxBase>; sidecar: ReturnType<typeof sidecarBase> },
): Promise<Target & { spoolDir?: string }> {
  if (name === 'direct') return directTarget(env.cp, env.fx);
  if (name === 'nginx') return startNginx(bases.nginx, env.cp, env.fx);
  if (name === 'passthrough') return startPassthrough(bases.nginx, env.cp, env.fx, 'h2');
  if (name === 'passthrough-h1') return startPassthrough(bases.nginx, env.cp, env.fx, 'h1');
  if (name === 'rawproxy') return startPassthrough(bases.nginx, env.cp, env.fx, 'raw');
  return startSidecar(bases.sidecar, env.cp, { nodeFlags: SIDECAR_NODE_FLAGS });
}

async function runTarget(
  t: Target & { spoolDir?: string },
  fx: Fixtures,
  direct: { origin: string; token: string },
  apiPid: number,
  scenarioOrder: readonly Scenario[],
): Promise<RoundResult> {
  await warmRequests(t, fx.getPath, 20);
  checkBodies(t, fx, (await getOnce(t.origin, fx.listPath, t.token)).body);
  await sleep(1000);
  const procs = t.pids();
  const rssSum = () => procs.reduce((sum, p) => sum + memory(p).rssMiB, 0);
  const idleRssMiB = procs.length ? rssSum() : undefined;
  const sampler = procs.length ? sampleRss(procs) : undefined;
  const load = {} as Record<Scenario, LoadSample>;
  for (const s of scenarioOrder) {
    load[s] = await measureLoad(t, s === 'get' ? fx.getPath : fx.listPath, apiPid);
    log(
      `  ${t.name.padEnd(11)} ${s.padEnd(4)} ${load[s].wrk.rps.toFixed(0).padStart(6)} req/s  p50 ${load[s].wrk.p50Ms.toFixed(2)} ms  p99 ${load[s].wrk.p99Ms.toFixed(2)} ms  proxy CPU ${Number.isNaN(load[s].proxyCpuUsPerReq) ? '-' : `${load[s].proxyCpuUsPerReq.toFixed(0)} µs/req (${(100 * load[s].proxySysShare).toFixed(0)}% sys)`}  apiserver ${load[s].apiCpuUsPerReq.toFixed(0)} µs/req  machine ${(100 * load[s].machineBusy).toFixed(0)}% busy, others ${(100 * load[s].foreign).toFixed(0)}%`,
    );
  }
  const fixed = await undisturbed(`${t.name} ${RATE}/s`, async () => {
    const procs = t.pids();
    const c0 = cpuOf(procs);
    const r = await fixedRate({
      origin: t.origin,
      path: fx.getPath,
      token: t.token,
      rate: RATE,
      seconds: RATE_S,
      warmupSeconds: RATE_WARM_S,
      connections: RATE_CONNECTIONS,
      ...(t.name === 'direct' ? {} : { pairWith: direct }),
    });
    // Warm-up and measured requests, plus the connection-opening ones (the paired direct ones skip the proxy).
    const served = r.sent + Math.round(RATE_WARM_S * RATE) + RATE_CONNECTIONS;
    return { ...r, proxyCpuUsPerReq: procs.length ? (cpuOf(procs) - c0) / served : Number.NaN };
  });
  log(
    `  ${t.name.padEnd(11)} ${RATE}/s GET: p50 ${fixed.p50Ms.toFixed(3)} ms  p90 ${fixed.p90Ms.toFixed(3)} ms  p99 ${fixed.p99Ms.toFixed(3)} ms  proxy CPU ${fmt(fixed.proxyCpuUsPerReq)} µs/req${fixed.pair ? `; interleaved direct p50 ${fixed.pair.p50Ms.toFixed(3)} ms → added ${(fixed.p50Ms - fixed.pair.p50Ms).toFixed(3)} ms` : ''} (${fixed.ok}/${fixed.sent} ok, ${fixed.late} sent late; others ${(100 * fixed.foreign).toFixed(0)}%)`,
  );
  const out: RoundResult = { load, fixed };
  if (sampler) {
    out.idleRssMiB = idleRssMiB;
    out.peakRssMiB = sampler.stop();
    out.hwmMiB = procs.reduce((sum, p) => sum + memory(p).hwmMiB, 0);
  }
  if (t.metricsUrl) {
    const text = await (await fetch(t.metricsUrl)).text();
    const sum = metricValue(text, 'chaperone_proxy_overhead_seconds_sum');
    const count = metricValue(text, 'chaperone_proxy_overhead_seconds_count');
    out.overheadUs = (sum / count) * 1e6;
    if (t.spoolDir) {
      const events = metricValue(text, 'chaperone_requests_total');
      out.spoolBytesPerEvent = dirBytes(t.spoolDir) / events;
    }
    log(
      `  sidecar     RSS idle ${out.idleRssMiB?.toFixed(1)} MiB, peak sampled ${out.peakRssMiB?.toFixed(1)} MiB, VmHWM ${out.hwmMiB?.toFixed(1)} MiB; self-measured overhead ${out.overheadUs.toFixed(0)} µs/req; spool ${out.spoolBytesPerEvent?.toFixed(0)} B/event`,
    );
  }
  return out;
}

/** Latin-square orders, then reversed, so each target runs first, middle and last. */
function orderFor(round: number, names: readonly TargetName[]): TargetName[] {
  const n = names.length;
  const rotated = names.map((_, i) => names[(i + round) % n] as TargetName);
  return Math.floor(round / n) % 2 === 1 ? rotated.reverse() : rotated;
}

const fmt = (v: number | undefined, digits = 0) =>
  v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits);

async function profile(
  env: { cp: ControlPlane; fx: Fixtures; root: string },
  scenario: Scenario | 'rate',
): Promise<void> {
  const base = sidecarBase(env.root, env.cp, env.fx);
  const dir = mkdtempSync(join(env.root, 'cpuprof-'));
  const t = await startSidecar(base, env.cp, {
    nodeFlags: [...SIDECAR_NODE_FLAGS, '--cpu-prof', `--cpu-prof-dir=${dir}`],
  });
  await warmRequests(t, env.fx.getPath, 20);
  const apiPid = env.cp.processes.find((p) => p.name === 'kube-apiserver')?.pid as number;
  let window: { fromUs: number; toUs: number };
  let requests: number;
  if (scenario === 'rate') {
    const c0 = cpuOf(t.pids());
    const fromUs = Number(process.hrtime.bigint() / 1000n);
    const r = await fixedRate({
      origin: t.origin,
      path: env.fx.getPath,
      token: t.token,
      rate: RATE,
      seconds: RATE_S,
      warmupSeconds: RATE_WARM_S,
      connections: RATE_CONNECTIONS,
    });
    window = { fromUs, toUs: Number(process.hrtime.bigint() / 1000n) };
    requests = r.sent + Math.round(RATE_WARM_S * RATE) + RATE_CONNECTIONS;
    log(
      `profiled sidecar at ${RATE} req/s GET: p50 ${r.p50Ms.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(3)} ms, ${((cpuOf(t.pids()) - c0) / requests).toFixed(0)} µs CPU/req (with the profiler on)`,
    );
  } else {
    const s = await measureLoad(t, scenario === 'get' ? env.fx.getPath : env.fx.listPath, apiPid);
    window = { fromUs: s.fromUs, toUs: s.toUs };
    requests = s.wrk.requests;
    log(
      `profiled sidecar ${scenario}: ${s.wrk.rps.toFixed(0)} req/s, ${s.proxyCpuUsPerReq.toFixed(0)} µs CPU/req (with the profiler on)`,
    );
  }
  // Requests served: warm-up wrk + measured wrk + 20 (+ /version polls); read from metrics.
  const text = await (await fetch(t.metricsUrl as string)).text();
  const served = metricValue(text, 'chaperone_requests_total');
  await t.stop();
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile in ${dir}: did the sidecar exit cleanly?`);
  const out = join('/tmp', `chaperone-sidecar-${scenario}-${Date.now()}.cpuprofile`);
  writeFileSync(out, readFileSync(join(dir, file)));
  writeFileSync(`${out}.window.json`, JSON.stringify({ ...window, requests }));
  log(`profile: ${out} (${served} requests in all; ${requests} in the measured window)`);
  log('measured window only:');
  log(formatSummary(summariseProfile(out, window), requests, 30));
  for (const hot of ['^writev$', '^DOMException', '^\\(garbage collector\\)', '^fdatasync', '^\\(program\\)'])
    log(`\n${callersOf(out, new RegExp(hot), 9, 4, window)}`);
}

/**
 * Native view of the same load: `perf record` (cpu-clock, call graphs) on the
 * sidecar during one measured wrk run, with JIT symbols from
 * --perf-basic-prof-only-functions; prints time by shared object and the top
 * symbols (kernel, OpenSSL and libuv inside the node binary, JIT code).
 */
async function perfProfile(
  env: { cp: ControlPlane; fx: Fixtures; root: string },
  scenario: Scenario,
): Promise<void> {
  const { spawn, spawnSync } = await import('node:child_process');
  if (spawnSync('perf', ['--version'], { stdio: 'ignore' }).status !== 0)
    ensureTools({ perf: 'linux-perf' }, log);
  const t = perfRaw
    ? await startPassthrough(nginxBase(env.root, env.cp), env.cp, env.fx, 'raw', [
        '--perf-basic-prof-only-functions',
      ])
    : await startSidecar(sidecarBase(env.root, env.cp, env.fx), env.cp, {
        nodeFlags: [...SIDECAR_NODE_FLAGS, '--perf-basic-prof-only-functions'],
      });
  try {
    await warmRequests(t, env.fx.getPath, 20);
    const apiPid = env.cp.processes.find((p) => p.name === 'kube-apiserver')?.pid as number;
    const data = join(env.root, 'perf.data');
    const during = () =>
      new Promise<void>((resolve) => {
        const p = spawn(
          'perf',
          [
            'record',
            '-q',
            '-e',
            'cpu-clock',
            '-F',
            '1999',
            '-g',
            '-p',
            String(t.pid),
            '-o',
            data,
            '--',
            'sleep',
            String(RUN_S),
          ],
          { stdio: 'ignore' },
        );
        p.once('exit', () => resolve());
      });
    const s = await measureLoad(t, scenario === 'get' ? env.fx.getPath : env.fx.listPath, apiPid, during);
    log(
      `perf on the ${t.name}, ${scenario}: ${s.wrk.rps.toFixed(0)} req/s, ${s.proxyCpuUsPerReq.toFixed(0)} µs CPU/req (${(100 * s.proxySysShare).toFixed(0)}% sys)`,
    );
    const report = (sort: string, limit: string) =>
      spawnSync(
        'perf',
        [
          'report',
          '-i',
          data,
          '--no-children',
          '--sort',
          sort,
          '--stdio',
          '-g',
          'none',
          '--percent-limit',
          limit,
        ],
        {
          encoding: 'utf8',
          maxBuffer: 64 * 1024 * 1024,
        },
      )
        .stdout.split('\n')
        .filter((l) => l.trim() && !l.startsWith('#'))
        .join('\n');
    log('\nby shared object (self):');
    log(report('dso', '0.5'));
    // The main thread versus V8's background threads (concurrent compilers, GC helpers) and libuv's pool.
    log('\nby thread (self):');
    log(report('comm', '0.5'));
    // Group every symbol: kernel networking vs scheduling, V8 GC / builtins / JIT code, OpenSSL, node's glue.
    const groups: [RegExp, string][] = [
      [/\[k\] .*(tcp|ip_|ipv4|skb|sock|net_|napi|loopback|__dev|inet|nf_)/i, 'kernel: TCP/IP loopback'],
      [
        /\[k\] .*(switch|sched|schedule|irq|_raw_spin|wake|futex|hrtimer|timer|tick|enqueue|dequeue|update_)/i,
        'kernel: scheduling, wakeups, irq',
      ],
      [/\[k\] .*(epoll|ep_)/i, 'kernel: epoll'],
      [/\[k\]/, 'kernel: other (syscalls, memory, fs)'],
      [
        /v8::internal::(Scaveng|Heap|MarkCompact|Sweep|Marking|ConcurrentMarking|Evacuat|MemoryAllocator|PagedSpace|NewSpace|SemiSpace|MinorMark|GCTracer|RememberedSet|SlotSet)/,
        'V8: garbage collection',
      ],
      [
        /\[JIT\]|\[\.\] (LazyCompile|Function|JS|InterpretedFunction|Builtin:)?.*(\.ts|\.js|node:)/,
        'V8: JIT-compiled JavaScript',
      ],
      [/Builtins_/, 'V8: builtins (property ICs, calls, promises, strings)'],
      // Only symbols in V8 itself: node's bindings take v8:: arguments (node::StreamBase::WriteBuffer(v8::…)).
      [/\[\.\] (v8::|Runtime_|_ZN2v8)/, 'V8: runtime (other)'],
      [
        /aes|gcm|ghash|sha256|sha512|sha1_|EVP_|ossl_|SSL_|ssl3_|tls1|tls13|BIO_|CRYPTO_|OPENSSL|bn_|x25519|chacha|poly1305|ERR_|OBJ_|OSSL_/i,
        'OpenSSL (TLS records, AES-GCM)',
      ],
      [/node::crypto::/, 'node: TLS glue (TLSWrap)'],
      [/llhttp|node::.*Parser/, 'node: HTTP parser (llhttp)'],
      [/uv_|uv__/, 'libuv'],
      [/node::/, 'node: other C++ (streams, buffers, bindings)'],
      [/malloc|free|memmove|memcpy|memset|calloc|realloc|_int_|cfree/, 'libc: malloc / memcpy'],
    ];
    const lines = report('dso,sym', '0').split('\n');
    const totals = new Map<string, number>();
    const members = new Map<string, [string, number][]>();
    for (const line of lines) {
      const m = /^\s*([\d.]+)%\s+(.*)$/.exec(line);
      if (!m) continue;
      const pct = Number(m[1]);
      const rest = m[2] as string;
      const g = groups.find(([re]) => re.test(rest))?.[1] ?? 'other';
      totals.set(g, (totals.get(g) ?? 0) + pct);
      const list = members.get(g) ?? [];
      list.push([rest.replace(/\s+/g, ' ').slice(0, 110), pct]);
      members.set(g, list);
    }
    log(`\ngrouped (share of the ${t.name}'s CPU; µs per request), with each large group's top symbols:`);
    for (const [g, pct] of [...totals.entries()].sort((a, b) => b[1] - a[1])) {
      log(
        `  ${pct.toFixed(1).padStart(5)}%  ${((pct / 100) * s.proxyCpuUsPerReq).toFixed(0).padStart(4)} µs  ${g}`,
      );
      for (const [sym, share] of (members.get(g) ?? []).slice(0, pct >= 3 ? 4 : 0))
        log(`                     ${share.toFixed(2).padStart(5)}%  ${sym}`);
    }
    log('\ntop symbols (self):');
    log(report('dso,sym', '0.7'));
  } finally {
    await t.stop();
    // The JIT symbol map node wrote for perf.
    rmSync(`/tmp/perf-${t.pid}.map`, { force: true });
  }
}

async function main(): Promise<void> {
  // Stopped from outside: exit normally so e2e's exit hook kills every process
  // group we started (nginx's worker is not covered by the parent-death signal).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => process.exit(130));
  ensureTools({ wrk: 'wrk', nginx: 'nginx' }, log);
  const machine = machineInfo();
  log(`machine: ${formatMachine(machine)}`);
  const nginxVersion = (await import('node:child_process'))
    .spawnSync('nginx', ['-v'], { encoding: 'utf8' })
    .stderr.trim()
    .replace('nginx version: nginx/', '');
  const wrkVersion = ((await import('node:child_process'))
    .spawnSync('wrk', ['-v'], { encoding: 'utf8' })
    .stdout.match(/wrk (\S+)/) ?? [])[1];
  const cp0 = await import('node:child_process');
  const git = (args: string[]) =>
    cp0
      .spawnSync('git', args, { encoding: 'utf8', cwd: fileURLToPath(new URL('../../', import.meta.url)) })
      .stdout.trim();
  const commit = git(['rev-parse', '--short', 'HEAD']);
  const dirty = git(['status', '--porcelain', '--', 'sidecar', 'shared']) !== '';
  const codeLine = `sidecar code: commit ${commit || 'unknown'}${dirty ? ' with uncommitted changes in sidecar/ or shared/' : ''}`;
  log(codeLine);
  log('starting the control plane (etcd, kube-apiserver, controller-manager)…');
  const cp = await startControlPlane({ log });
  const root = benchRoot();
  try {
    log(`kube-apiserver ${cp.version.gitVersion} at ${cp.server}`);
    const fx = createFixtures(cp);
    const env = { cp, fx, root };
    if (profileMode) {
      await profile(env, profileScenario);
      return;
    }
    if (perfMode) {
      await perfProfile(env, perfScenario);
      return;
    }
    const apiPid = cp.processes.find((p) => p.name === 'kube-apiserver')?.pid as number;
    const bases = { nginx: nginxBase(root, cp), sidecar: sidecarBase(root, cp, fx) };
    const names: TargetName[] = [
      'direct',
      'nginx',
      'sidecar',
      ...(withPassthrough || only ? (['passthrough', 'passthrough-h1', 'rawproxy'] as const) : []),
    ];
    if (only) names.splice(0, names.length, ...names.filter((n) => only.includes(n)));
    const results = new Map<TargetName, RoundResult[]>(names.map((n) => [n, []]));
    // Body sizes, for the report.
    const sizes = {
      get: (await getOnce(cp.server, fx.getPath, fx.token)).body.length,
      list: (await getOnce(cp.server, fx.listPath, fx.token)).body.length,
      listMasked: 0,
      listItems: 0,
    };
    sizes.listItems = (
      JSON.parse((await getOnce(cp.server, fx.listPath, fx.token)).body) as { items: unknown[] }
    ).items.length;
    const started = Date.now();
    for (let round = 0; round < ROUNDS; round++) {
      const order = orderFor(round, names);
      const scenarios: Scenario[] = round % 2 === 0 ? ['get', 'list'] : ['list', 'get'];
      log(`round ${round + 1}/${ROUNDS}: ${order.join(' → ')} (scenarios ${scenarios.join(', ')})`);
      for (const name of order) {
        const t = await startTarget(name, env, bases);
        try {
          if (name === 'sidecar' && sizes.listMasked === 0)
            sizes.listMasked = (await getOnce(t.origin, fx.listPath, t.token)).body.length;
          (results.get(name) as RoundResult[]).push(
            await runTarget(t, fx, { origin: cp.server, token: fx.token }, apiPid, scenarios),
          );
        } finally {
          await t.stop();
        }
      }
    }
    const minutes = ((Date.now() - started) / 60_000).toFixed(1);
    if (only) {
      log(`(--only: ${minutes} min; per-round figures above, no report)`);
      return;
    }

    // ---------------------------------------------------------------- report
    const rs = (n: TargetName) => results.get(n) as RoundResult[];
    const med = (n: TargetName, f: (r: RoundResult) => number | undefined) =>
      median(rs(n).map((r) => f(r) ?? Number.NaN));
    const rps = (n: TargetName, s: Scenario) => med(n, (r) => r.load[s].wrk.rps);
    const label: Record<TargetName, string> = {
      direct: 'direct to kube-apiserver',
      nginx: `nginx ${nginxVersion} (reverse proxy)`,
      sidecar: `chaperone sidecar (policy + audit)${SIDECAR_NODE_FLAGS.length ? ` with node ${SIDECAR_NODE_FLAGS.join(' ')}` : ''}`,
      passthrough: '(diagnostic) minimal node:https + undici pass-through, undici default (HTTP/2 upstream)',
      'passthrough-h1': '(diagnostic) the same with allowH2: false (HTTP/1.1 upstream)',
      rawproxy: '(diagnostic) raw TLS sockets, HTTP/1.1 framed by hand, bytes copied through',
    };
    const loadRows: (string | number)[][] = [];
    for (const s of ['get', 'list'] as const) {
      for (const n of names) {
        loadRows.push([
          s === 'get'
            ? `GET ConfigMap (${sizes.get} B)`
            : `LIST ${sizes.listItems} Secrets (${sizes.list} B${n === 'sidecar' ? `, ${sizes.listMasked} B masked` : ''})`,
          label[n],
          fmt(rps(n, s)),
          rs(n)
            .map((r) => fmt(r.load[s].wrk.rps))
            .join(' / '),
          n === 'nginx' ? '1.00×' : `${(rps(n, s) / rps('nginx', s)).toFixed(2)}×`,
          `${(rps(n, s) / rps('direct', s)).toFixed(2)}×`,
          fmt(
            med(n, (r) => r.load[s].wrk.p50Ms),
            2,
          ),
          fmt(
            med(n, (r) => r.load[s].wrk.p99Ms),
            2,
          ),
          fmt(med(n, (r) => r.load[s].proxyCpuUsPerReq)),
          fmt(med(n, (r) => r.load[s].apiCpuUsPerReq)),
          fmt(med(n, (r) => 100 * r.load[s].foreign)),
        ]);
      }
    }
    const p50 = (n: TargetName) => med(n, (r) => r.fixed.p50Ms);
    /** Added latency: the target minus direct measured in interleaved slices of the same run, median over rounds. */
    const addedP = (n: TargetName, f: (x: FixedRateResult) => number) =>
      med(n, (r) => (r.fixed.pair ? f(r.fixed) - f(r.fixed.pair) : Number.NaN));
    const fixedRows = names.map((n) => [
      label[n],
      fmt(p50(n), 3),
      fmt(
        med(n, (r) => r.fixed.p90Ms),
        3,
      ),
      fmt(
        med(n, (r) => r.fixed.p99Ms),
        3,
      ),
      n === 'direct'
        ? '–'
        : fmt(
            med(n, (r) => r.fixed.pair?.p50Ms),
            3,
          ),
      n === 'direct'
        ? '–'
        : fmt(
            addedP(n, (x) => x.p50Ms),
            3,
          ),
      n === 'direct'
        ? '–'
        : fmt(
            addedP(n, (x) => x.p99Ms),
            3,
          ),
      fmt(med(n, (r) => r.fixed.proxyCpuUsPerReq)),
      fmt(med(n, (r) => 100 * r.fixed.foreign)),
    ]);
    const sc = rs('sidecar');
    const idle = med('sidecar', (r) => r.idleRssMiB);
    const peak = Math.max(...sc.map((r) => Math.max(r.hwmMiB ?? 0, r.peakRssMiB ?? 0)));
    const nginxIdle = med('nginx', (r) => r.idleRssMiB);
    const nginxPeak = Math.max(...rs('nginx').map((r) => Math.max(r.hwmMiB ?? 0, r.peakRssMiB ?? 0)));

    const disturbances = names.flatMap((n) =>
      rs(n).flatMap((r) => [r.load.get.foreign, r.load.list.foreign, r.fixed.foreign]),
    );
    const disturbance = `The machine (a VM) is shared with other work; a measurement during which other processes or steal took ≥ ${100 * FOREIGN_LIMIT}% of it was repeated (up to ${MAX_ATTEMPTS} times, keeping the least disturbed). Others took a median ${(100 * median(disturbances)).toFixed(0)}% (max ${(100 * Math.max(...disturbances)).toFixed(0)}%) of the machine during the kept measurements.`;
    const getRatio = rps('sidecar', 'get') / rps('nginx', 'get');
    const listRatio = rps('sidecar', 'list') / rps('nginx', 'list');
    const cpuGet = med('sidecar', (r) => r.load.get.proxyCpuUsPerReq);
    const added = addedP('sidecar', (x) => x.p50Ms);
    const mark = (ok: boolean) => (ok ? '✓' : '✗');
    const targetRows = [
      ['Throughput, GET', '≥ 0.90× nginx', `${getRatio.toFixed(2)}×`, mark(getRatio >= 0.9)],
      ['Throughput, masked LIST', '≥ 0.80× nginx', `${listRatio.toFixed(2)}×`, mark(listRatio >= 0.8)],
      ['Proxy CPU per GET', '≤ 120 µs', `${cpuGet.toFixed(0)} µs`, mark(cpuGet <= 120)],
      [`Added p50 at ${RATE} req/s`, '≤ 0.5 ms', `${added.toFixed(3)} ms`, mark(added <= 0.5)],
      ['RSS idle', '≤ 60 MiB', `${idle.toFixed(1)} MiB`, mark(idle <= 60)],
      ['RSS under load (peak)', '≤ 100 MiB', `${peak.toFixed(1)} MiB`, mark(peak <= 100)],
    ];

    const text = [
      '## Sidecar: Kubernetes API path',
      '',
      `Machine: ${formatMachine(machine)}. Upstream: a real kube-apiserver ${cp.version.gitVersion} (+ etcd) on loopback, on the same machine. Load: wrk ${wrkVersion ?? ''}. Measured ${codeLine.replace('sidecar code: ', 'at ')}.`,
      '',
      `Method: \`node bench/src/sidecar-kube.ts\`. Three targets in front of the same API server, in the same run: direct (the real bound ServiceAccount token), nginx ${nginxVersion} as a TLS reverse proxy (worker_processes 1, upstream keepalive, HTTP/1.1 upstream, upstream certificate verified, token injected with proxy_set_header) and the chaperone sidecar (${process.env.BENCH_SIDECAR_SOURCES === '1' ? 'run from its TypeScript sources (BENCH_SIDECAR_SOURCES=1)' : 'run as in production from the JavaScript bundle, built from the current sources into a temp dir by `node scripts/build.ts --outdir` before it first starts'}; its bound token read from a file, a policy with a mask rule for Secrets and two deny rules, every request audited to the disk spool, which is fsynced every 200 ms). ${ROUNDS} rounds; each starts every proxy afresh, runs the targets in a rotated/reversed order and alternates the order of the two scenarios; figures are medians over rounds (the "rounds" column lists each round; "others %" is the share of the machine other processes, and the hypervisor's steal for other VMs, took during the measurement). Closed loop: wrk, 1 thread, ${CONNECTIONS} connections, HTTPS, ${WARM_S} s warm-up then ${RUN_S} s measured. CPU per request: utime + stime of the proxy process (nginx: master + worker) and of kube-apiserver from /proc, over the measured run, divided by requests. Added latency: an open-loop client (undici, ${RATE_CONNECTIONS} keep-alive connections) sending GETs at a fixed ${RATE} req/s for ${RATE_S} s after a ${RATE_WARM_S} s warm-up; for a proxy, the same client also sends to the API server directly in interleaved 1 s slices (A B B A …), and the added latency is the proxy's percentile minus direct's from those slices (median over rounds), so both see the same background. RSS: VmRSS after start and 20 requests (idle), and the largest of VmHWM and 100 ms VmRSS samples across all load (peak). Everything — load generator, proxies, kube-apiserver, etcd — shares the ${machine.cores} cores, so a proxy's CPU comes straight out of the API server's share. ${disturbance} Run took ${minutes} min.`,
      '',
      `### Throughput and latency under load (wrk, ${CONNECTIONS} connections)`,
      '',
      table(
        [
          'Scenario',
          'Target',
          'req/s',
          'rounds',
          'vs nginx',
          'vs direct',
          'p50 ms',
          'p99 ms',
          'proxy CPU µs/req',
          'kube-apiserver CPU µs/req',
          'others %',
        ],
        loadRows,
      ),
      '',
      `### Latency at a fixed ${RATE} req/s (GET ConfigMap, open loop)`,
      '',
      table(
        [
          'Target',
          'p50 ms',
          'p90 ms',
          'p99 ms',
          'interleaved direct p50 ms',
          'added p50 ms',
          'added p99 ms',
          'proxy CPU µs/req',
          'others %',
        ],
        fixedRows,
      ),
      '',
      '### Memory',
      '',
      table(
        ['Process', 'RSS idle MiB', 'RSS peak under load MiB'],
        [
          ['chaperone sidecar', fmt(idle, 1), fmt(peak, 1)],
          ['nginx master + worker', fmt(nginxIdle, 1), fmt(nginxPeak, 1)],
          ...names
            .filter((n) => n.startsWith('passthrough'))
            .map((n) => [
              label[n],
              fmt(
                med(n, (r) => r.idleRssMiB),
                1,
              ),
              fmt(Math.max(...rs(n).map((r) => Math.max(r.hwmMiB ?? 0, r.peakRssMiB ?? 0))), 1),
            ]),
        ],
      ),
      '',
      `The sidecar's own overhead histogram (\`chaperone_proxy_overhead_seconds\`: the decision, header handling and masking; not TLS, socket I/O or the audit record) averaged ${fmt(med('sidecar', (r) => r.overheadUs))} µs per request over a run; each audit event takes ${fmt(med('sidecar', (r) => r.spoolBytesPerEvent))} bytes of spool.`,
      '',
      '### Targets (issue 5)',
      '',
      table(['Target', 'Goal', 'Measured', ''], targetRows),
      '',
    ].join('\n');
    log('');
    log(text);
    if (noWrite) log('\n(--quick / --no-write: results not written)');
    else for (const file of writeResult('sidecar', text)) log(`wrote ${file}`);
  } finally {
    await cp.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
