/**
 * Injector admission benchmark: AdmissionReviews per second and latency of
 * `chaperone injector` against a do-nothing webhook served the same way
 * (bench/src/injector-noop-webhook.ts), in the same run.
 *
 *   node bench/src/injector-admission.ts [--rounds 5] [--seconds 10]
 *
 * Method: wrk (1 thread, 16 keep-alive HTTPS connections — the API server
 * reuses its connections to a webhook) POSTs the AdmissionReview the API
 * server sends for a Deployment's pod (token volume, defaults, owner
 * reference; ~4 KB). Each round starts both servers as fresh processes, in
 * alternating order (ABBA), warms each up, then measures. Reported: medians
 * over rounds of req/s and wrk's p50/p99, server CPU per request from /proc,
 * the first (cold) request's latency after start-up, and the throughput
 * ratio. The injector runs with the production code path: certificates from
 * files, no cluster needed (--no-manage-webhook --no-network-policies
 * --sidecar-mode classic), metrics on, log level warn.
 *
 * Writes bench/results/injector.md and regenerates docs/benchmarks.md.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { CHAPERONE_BIN, childEnv, freePort, postToWebhook } from '@chaperone/e2e';
import { type AdmissionRequest, decide, injectionConfigFrom, injectorSchema } from '@chaperone/injector';
import { parseConfig } from '@chaperone/shared';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { admissionReview, injectorArgs } from './admission-review.ts';
import { formatMachine, machineInfo } from './machine.ts';
import { writeReport } from './report.ts';
import { median, ratio } from './stats.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RESULTS = fileURLToPath(new URL('../results/injector.md', import.meta.url));
const CONNECTIONS = 16;

/**
 * With two CPUs or more and taskset (util-linux), the server under test runs
 * on CPU 0 and wrk on CPU 1, so neither migrates or shares a core with the
 * other: the CPU per request is the server's own, not its scheduling luck.
 */
const PIN = availableParallelism() >= 2 && spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0;
function pinned(cpu: number, command: string, args: string[]): [string, string[]] {
  return PIN ? ['taskset', ['-c', String(cpu), command, ...args]] : [command, args];
}
const WARM_S = 3;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i === -1 ? undefined : Number(process.argv[i + 1]);
  return v !== undefined && Number.isFinite(v) && v > 0 ? v : def;
}
const ROUNDS = arg('rounds', 5);
const RUN_S = arg('seconds', 10);
const log = (s: string) => process.stderr.write(`${s}\n`);
const signed = (n: number) => `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(0)}`;

// ------------------------------------------------------------------ /proc

const CLK_TCK = 100;
function cpuMicros(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
  } catch {
    return 0;
  }
}
/** Busy and total jiffies of the whole machine. */
function machineJiffies(): { busy: number; total: number } {
  const cpu =
    readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const total = cpu.reduce((a, b) => a + b, 0);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  return { busy: total - idle, total };
}

// ------------------------------------------------------------------ servers

type ServerName = 'no-op webhook' | 'injector' | 'no-op + same-size patch';

interface Server {
  readonly name: ServerName;
  readonly proc: ChildProcess;
  readonly url: string;
  readonly coldMs: number;
  /** Size of the JSON patch it answered with. */
  readonly patchBytes: number;
}

async function waitHealthy(url: string, ca: string, proc: ChildProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`);
    try {
      const ok = await new Promise<boolean>((resolve) => {
        const req = request(url.replace('/mutate', '/healthz'), { ca, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        });
        req.on('error', () => resolve(false));
        req.end();
      });
      if (ok) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not come up`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startServer(
  name: ServerName,
  files: { cert: string; key: string; ca: string },
  body: string,
  patchBytes: number,
): Promise<Server> {
  const port = await freePort();
  const args =
    name === 'injector'
      ? [CHAPERONE_BIN, ...injectorArgs(port, files)]
      : [
          join(ROOT, 'bench/src/injector-noop-webhook.ts'),
          String(port),
          files.cert,
          files.key,
          ...(name === 'no-op + same-size patch' ? [String(patchBytes)] : []),
        ];
  // taskset execs node in place: the pid is the server's.
  const [command, argv] = pinned(0, process.execPath, args);
  const proc = spawn(command, argv, { env: childEnv(), stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `https://127.0.0.1:${port}/mutate`;
  const ca = readFileSync(files.ca, 'utf8');
  await waitHealthy(url, ca, proc);
  // Cold: the first AdmissionReview after start-up (new connection, nothing JIT-compiled yet).
  const t0 = performance.now();
  const first = await postToWebhook(url, ca, body);
  const coldMs = performance.now() - t0;
  const review = JSON.parse(first.body) as { response?: { allowed?: boolean; patch?: string } };
  if (first.status !== 200 || review.response?.allowed !== true)
    throw new Error(`${name} answered ${first.status}: ${first.body}`);
  if (name === 'injector' && !review.response.patch)
    throw new Error('the injector returned no patch: it is not injecting');
  if (name === 'no-op webhook' && review.response.patch)
    throw new Error('the no-op webhook returned a patch');
  return {
    name,
    proc,
    url,
    coldMs,
    patchBytes: review.response.patch ? Buffer.from(review.response.patch, 'base64').length : 0,
  };
}

async function stopServer(s: Server): Promise<void> {
  if (s.proc.exitCode !== null) return;
  const exited = new Promise((r) => s.proc.once('exit', r));
  s.proc.kill('SIGTERM');
  const timer = setTimeout(() => s.proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

// ------------------------------------------------------------------ wrk

interface WrkResult {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

function wrk(url: string, script: string, seconds: number): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const [command, args] = pinned(1, 'wrk', [
      '-t1',
      `-c${CONNECTIONS}`,
      `-d${seconds}s`,
      '--latency',
      '-s',
      script,
      url,
    ]);
    const p = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      out += d;
    });
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk failed (${code}):\n${out}`));
      const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
      if (non2xx) return reject(new Error(`wrk saw ${non2xx[1]} error responses:\n${out}`));
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
      const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
      const p50 = toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
      const p99 = toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
      if (!Number.isFinite(rps) || !Number.isFinite(p50))
        return reject(new Error(`cannot read wrk output:\n${out}`));
      resolve({ rps, p50Ms: p50, p99Ms: p99, requests });
    });
  });
}

// ------------------------------------------------------------------ in-process

/**
 * The same work without a server around it, in a tight loop in this process:
 * JSON.parse of the review (which the do-nothing webhook does too), and the
 * injector's decision on top (mutate, RFC 6902 diff, patch text, base64), with
 * the injector's default settings in classic mode, as the server runs. For
 * scale against the per-request CPU the servers show; best of 3 passes.
 */
function inProcess(body: string): { parseUs: number; decideUs: number } {
  const version = '0.0.0-bench';
  const config = injectionConfigFrom(parseConfig(injectorSchema(version), { env: {} }), version, false);
  const bytes = Buffer.from(body);
  const N = 20_000;
  const best = (f: () => void): number => {
    for (let i = 0; i < N / 4; i++) f();
    let min = Number.POSITIVE_INFINITY;
    for (let pass = 0; pass < 3; pass++) {
      const t0 = performance.now();
      for (let i = 0; i < N; i++) f();
      min = Math.min(min, ((performance.now() - t0) * 1000) / N);
    }
    return min;
  };
  const parse = () => (JSON.parse(bytes.toString('utf8')) as { request: AdmissionRequest }).request;
  const parseUs = best(() => {
    if (parse().uid === '') throw new Error('no uid');
  });
  const bothUs = best(() => {
    if (decide(parse(), config).result !== 'injected') throw new Error('the bench pod was not injected');
  });
  // A difference of two timings: never below 0.1 µs, so ratios to it stay finite.
  return { parseUs, decideUs: Math.max(0.1, bothUs - parseUs) };
}

// ------------------------------------------------------------------ main

/** A markdown table with padded columns (the layout Biome's formatter keeps). */
function alignedTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(3, ...all.map((r) => [...(r[i] ?? '')].length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => c + ' '.repeat((widths[i] ?? 0) - [...c].length)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

interface Sample {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly coldMs: number;
  readonly cpuUsPerReq: number;
  readonly othersBusy: number;
}

async function measure(
  name: ServerName,
  files: { cert: string; key: string; ca: string },
  body: string,
  script: string,
  patchBytes: number,
): Promise<Sample> {
  const s = await startServer(name, files, body, patchBytes);
  try {
    await wrk(s.url, script, WARM_S);
    const pid = s.proc.pid as number;
    const cpu0 = cpuMicros(pid);
    const m0 = machineJiffies();
    const r = await wrk(s.url, script, RUN_S);
    const cpu = cpuMicros(pid) - cpu0;
    const m1 = machineJiffies();
    // Machine busy time not spent by the server: wrk itself plus anything else running.
    const othersBusy =
      Math.max(0, (m1.busy - m0.busy) / CLK_TCK - cpu / 1e6) / ((m1.total - m0.total) / CLK_TCK || 1);
    return {
      rps: r.rps,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      coldMs: s.coldMs,
      cpuUsPerReq: cpu / r.requests,
      othersBusy,
    };
  } finally {
    await stopServer(s);
  }
}

async function main(): Promise<void> {
  if (spawnSync('wrk', ['-v'], { encoding: 'utf8' }).error) {
    throw new Error('wrk is needed (Debian: apt-get install wrk)');
  }
  const machine = machineInfo();
  log(`machine: ${formatMachine(machine)}`);
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-bench-injector-'));
  try {
    const ca = createCA({ commonName: 'bench-ca' });
    const leaf = issueCertificate({ ca, commonName: 'bench', ipAddresses: ['127.0.0.1'] });
    const files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') };
    writeFileSync(files.cert, leaf.cert);
    writeFileSync(files.key, leaf.key);
    writeFileSync(files.ca, ca.cert);
    const body = admissionReview();
    const tight = inProcess(body);
    log(
      `in-process: parse ${tight.parseUs.toFixed(1)} µs, decide ${tight.decideUs.toFixed(1)} µs per review`,
    );
    const bodyFile = join(dir, 'review.json');
    writeFileSync(bodyFile, body);
    const script = join(dir, 'post.lua');
    writeFileSync(
      script,
      [
        'local f = io.open(os.getenv("REVIEW_FILE"), "rb")',
        'wrk.method = "POST"',
        'wrk.body = f:read("*all")',
        'f:close()',
        'wrk.headers["Content-Type"] = "application/json"',
        '',
      ].join('\n'),
    );
    process.env.REVIEW_FILE = bodyFile;

    // The injector's patch for this pod, for the size-matched anchor.
    const probe = await startServer('injector', files, body, 0);
    const patchBytes = probe.patchBytes;
    await stopServer(probe);
    log(`the injector's JSON patch for this pod: ${patchBytes} bytes`);

    const names: ServerName[] = ['no-op webhook', 'injector', 'no-op + same-size patch'];
    const samples: Record<ServerName, Sample[]> = {
      'no-op webhook': [],
      injector: [],
      'no-op + same-size patch': [],
    };
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate, and reverse every other round, so no server always runs first or last.
      const rotated = names.map((_, i) => names[(i + round) % names.length] as ServerName);
      const order = round % 2 === 0 ? rotated : rotated.reverse();
      for (const name of order) {
        const s = await measure(name, files, body, script, patchBytes);
        samples[name].push(s);
        log(
          `round ${round + 1}/${ROUNDS} ${name.padEnd(23)} ${s.rps.toFixed(0).padStart(6)} req/s  p50 ${s.p50Ms.toFixed(2)} ms  p99 ${s.p99Ms.toFixed(2)} ms  ${s.cpuUsPerReq.toFixed(0)} µs CPU/req  cold ${s.coldMs.toFixed(1)} ms  others busy ${(100 * s.othersBusy).toFixed(0)}%`,
        );
      }
    }

    const med = (name: ServerName, f: (x: Sample) => number) => median(samples[name].map(f));
    const row = (name: ServerName) => [
      name,
      med(name, (x) => x.rps).toFixed(0),
      med(name, (x) => x.p50Ms).toFixed(2),
      med(name, (x) => x.p99Ms).toFixed(2),
      med(name, (x) => x.cpuUsPerReq).toFixed(0),
      med(name, (x) => x.coldMs).toFixed(1),
    ];
    const inj = med('injector', (x) => x.rps);
    const noop = med('no-op webhook', (x) => x.rps);
    const sized = med('no-op + same-size patch', (x) => x.rps);
    const cpu = (n: ServerName) => med(n, (x) => x.cpuUsPerReq);
    const share = inj / noop;
    const noopUs = cpu('no-op webhook');
    const carryUs = cpu('no-op + same-size patch') - noopUs;
    const computeUs = cpu('injector') - cpu('no-op + same-size patch');
    // The target's CPU per review, above the do-nothing webhook, and what is left of it after carrying the patch.
    const headroomUs = noopUs / 0.8 - noopUs;
    const leftUs = headroomUs - carryUs;
    const others = median(names.flatMap((n) => samples[n].map((x) => x.othersBusy)));
    const wrkVersion = /wrk (\S+)/.exec(spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout)?.[1] ?? 'wrk';
    const section = [
      '## Injector admission',
      '',
      `Machine: ${formatMachine(machine)}.`,
      '',
      `\`node bench/src/injector-admission.ts\`: wrk ${wrkVersion} (1 thread, ${CONNECTIONS} keep-alive HTTPS connections) POSTs`,
      `the AdmissionReview the API server sends for a Deployment's pod (${(body.length / 1024).toFixed(1)} KB) to`,
      '`chaperone injector` (certificates from files, no cluster calls on the request path, metrics on) and to',
      'its anchor, a do-nothing webhook on the same HTTPS server code with the same server metrics',
      '(bench/src/injector-noop-webhook.ts). A third',
      `server, the do-nothing webhook answering with a constant patch as large as the injector's (${patchBytes} bytes of JSON,`,
      'base64 in the response), separates the cost of carrying the patch from the cost of computing it.',
      `${ROUNDS} rounds, fresh processes, rotating order, ${WARM_S} s warm-up then ${RUN_S} s measured; medians.`,
      '"Cold" is the first AdmissionReview after start-up (new connection, nothing compiled yet); the rest is warm.',
      '',
      alignedTable(
        ['webhook', 'req/s', 'p50 ms', 'p99 ms', 'server CPU µs/req', 'cold first request ms'],
        names.map(row),
      ),
      '',
      `Injector throughput = **${ratio(inj, noop)}** the do-nothing webhook's (target ≥ 0.80×: ${share >= 0.8 ? 'met' : '**not met**'}).`,
      `Carrying the patch alone takes the do-nothing webhook to ${ratio(sized, noop)} (${signed(carryUs)} µs CPU/req);`,
      `computing it (mutate, RFC 6902 diff, serialisation, metrics) costs the rest: ${signed(computeUs)} µs CPU/req, injector = ${ratio(inj, sized)} the size-matched anchor.`,
      `In a tight loop in one process (same run, best of 3 passes of 20,000), reading the review (UTF-8 decoding and JSON.parse) takes ${tight.parseUs.toFixed(1)} µs and the injector's`,
      `decision on it (mutate, diff, patch text, base64) ${tight.decideUs.toFixed(1)} µs; the injector's CPU over the size-matched anchor (${computeUs.toFixed(0)} µs, which also covers its metrics) is ${(computeUs / tight.decideUs).toFixed(1)}× that.`,
      ...(PIN
        ? [
            `With the server alone on its CPU, throughput is the inverse of its CPU per request: the target allows the injector ${(noopUs + headroomUs).toFixed(0)} µs per review (the do-nothing webhook's ${noopUs.toFixed(0)} ÷ 0.8),`,
            `${headroomUs.toFixed(0)} µs more than the do-nothing webhook; carrying a patch this size takes ${carryUs.toFixed(0)} of them, which leaves ${leftUs > 0 ? `${leftUs.toFixed(0)} µs` : 'nothing'} in the server for computing the patch.`,
          ]
        : []),
      PIN
        ? `The server under test ran on CPU 0 and wrk on CPU 1 (taskset); other processes (wrk included) kept a median ${(100 * others).toFixed(0)} % of the machine busy.`
        : `wrk and the servers share the cores (no taskset); other processes (wrk included) kept a median ${(100 * others).toFixed(0)} % of the machine busy.`,
      '',
    ].join('\n');
    writeFileSync(RESULTS, section);
    log(section);
    log(`wrote ${RESULTS} and ${writeReport()}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
