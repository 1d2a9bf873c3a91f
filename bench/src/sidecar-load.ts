/**
 * Load and measurement helpers for the sidecar benchmark: wrk (closed loop,
 * fixed connection count) with its output parsed, a small open-loop client
 * (fixed request rate, per-request latency), and CPU / memory readings of a
 * process from /proc.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { percentile } from './stats.ts';

// ---------------------------------------------------------------- /proc

const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64/arm64

/** utime and stime of one process, in µs (0 when it is gone). */
export function cpuSplit(pid: number): { user: number; sys: number } {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state): utime is field 14, stime field 15.
    return { user: (Number(rest[11]) * 1e6) / CLK_TCK, sys: (Number(rest[12]) * 1e6) / CLK_TCK };
  } catch {
    return { user: 0, sys: 0 };
  }
}

/** utime + stime of one process, in µs. 0 when it is gone. */
export function cpuMicros(pid: number): number {
  const c = cpuSplit(pid);
  return c.user + c.sys;
}

/** Children of a process (e.g. nginx workers), found by scanning /proc. */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === ppid) out.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** Summed CPU (µs) of a set of processes. */
export function cpuOf(pids: readonly number[]): number {
  return pids.reduce((sum, p) => sum + cpuMicros(p), 0);
}

/** Summed kernel-mode CPU (µs) of a set of processes. */
export function sysOf(pids: readonly number[]): number {
  return pids.reduce((sum, p) => sum + cpuSplit(p).sys, 0);
}

/** VmRSS and VmHWM (peak RSS) of a process, in MiB. */
export function memory(pid: number): { rssMiB: number; hwmMiB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? Number.NaN);
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
}

/** Samples the summed VmRSS of some processes every `everyMs` until stopped; returns the largest sample. */
export function sampleRss(pids: readonly number[], everyMs = 100): { stop(): number } {
  let peak = 0;
  const timer = setInterval(() => {
    try {
      peak = Math.max(
        peak,
        pids.reduce((sum, p) => sum + memory(p).rssMiB, 0),
      );
    } catch {
      // process gone
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

// ---------------------------------------------------------------- wrk

export interface WrkResult {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
  readonly socketErrors: number;
  readonly raw: string;
}

function toMs(value: string, unit: string): number {
  const v = Number(value);
  if (unit === 'us') return v / 1000;
  if (unit === 'ms') return v;
  if (unit === 's') return v * 1000;
  if (unit === 'm') return v * 60_000;
  return Number.NaN;
}

export function parseWrk(out: string): WrkResult {
  const lat = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? toMs(m[1] as string, m[2] as string) : Number.NaN;
  };
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (!total || !rps) throw new Error(`could not read wrk's output:\n${out}`);
  return {
    requests: Number(total[1]),
    seconds: toMs(total[2] as string, total[3] as string) / 1000,
    rps: Number(rps[1]),
    p50Ms: lat('50'),
    p99Ms: lat('99'),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: sock ? sock.slice(1).reduce((s, n) => s + Number(n), 0) : 0,
    raw: out,
  };
}

export interface WrkOptions {
  readonly url: string;
  readonly token: string;
  readonly connections: number;
  readonly seconds: number;
  readonly threads?: number;
}

/** Runs wrk (HTTPS, no certificate verification) and parses its report. */
export function wrk(opts: WrkOptions): Promise<WrkResult> {
  const args = [
    `-t${opts.threads ?? 1}`,
    `-c${opts.connections}`,
    `-d${opts.seconds}s`,
    '--latency',
    '--timeout',
    '10s',
    '-H',
    `Authorization: Bearer ${opts.token}`,
    '-H',
    'Accept: application/json',
    opts.url,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`wrk exited with ${code}: ${err}${out}`));
      else {
        try {
          resolve(parseWrk(out));
        } catch (e) {
          reject(e);
        }
      }
    });
  });
}

// ---------------------------------------------------------------- open loop

export interface FixedRateResult {
  readonly sent: number;
  readonly ok: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  /** Requests sent more than 2 ms behind schedule (the client's own timer jitter). */
  readonly late: number;
}

export interface FixedRateOptions {
  readonly origin: string;
  readonly path: string;
  readonly token: string;
  readonly rate: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly connections: number;
  /**
   * Measure this endpoint too, interleaved with the first in 1 s slices
   * (A B B A …, each at the same rate): both see the same background, so
   * their difference is the added latency even on a noisy machine.
   */
  readonly pairWith?: { readonly origin: string; readonly token: string };
}

export interface Acc {
  lat: number[];
  sent: number;
  ok: number;
  errors: number;
  late: number;
}

function client(origin: string, token: string, path: string, connections: number) {
  const pool = new Pool(origin, {
    connections,
    pipelining: 1,
    connect: { rejectUnauthorized: false },
    keepAliveTimeout: 60_000,
  });
  const headers = { authorization: `Bearer ${token}`, accept: 'application/json' };
  const one = async (): Promise<boolean> => {
    try {
      const r = await pool.request({ path, method: 'GET', headers });
      await r.body.arrayBuffer();
      return r.statusCode === 200;
    } catch {
      return false;
    }
  };
  return { one, close: () => pool.close() };
}

export async function phase(
  one: () => Promise<boolean>,
  rate: number,
  seconds: number,
  acc: Acc | undefined,
): Promise<void> {
  const intervalMs = 1000 / rate;
  const n = Math.round(seconds * rate);
  const inflight: Promise<void>[] = [];
  const t0 = performance.now() + 2;
  for (let i = 0; i < n; i++) {
    const due = t0 + i * intervalMs;
    const wait = due - performance.now();
    if (wait >= 1) await new Promise((r) => setTimeout(r, wait));
    const sentAt = performance.now();
    if (acc && sentAt - due > 2) acc.late++;
    inflight.push(
      one().then((good) => {
        const ms = performance.now() - sentAt;
        if (!acc) return;
        if (good) {
          acc.ok++;
          acc.lat.push(ms);
        } else acc.errors++;
      }),
    );
  }
  if (acc) acc.sent += n;
  await Promise.all(inflight);
}

export function summary(acc: Acc): FixedRateResult {
  const lat = [...acc.lat].sort((a, b) => a - b);
  return {
    sent: acc.sent,
    ok: acc.ok,
    errors: acc.errors,
    late: acc.late,
    p50Ms: percentile(lat, 50),
    p90Ms: percentile(lat, 90),
    p99Ms: percentile(lat, 99),
  };
}

/**
 * Open-loop load: requests are issued on a fixed schedule whether or not
 * earlier ones have finished (keep-alive, `connections` sockets), so a slow
 * response does not slow the client down. Latency is measured from the send
 * to the end of the response body; sends more than 2 ms behind schedule are
 * counted as `late` (the client's own timer jitter).
 */
export async function fixedRate(
  opts: FixedRateOptions,
): Promise<FixedRateResult & { pair?: FixedRateResult }> {
  const a = client(opts.origin, opts.token, opts.path, opts.connections);
  const b = opts.pairWith
    ? client(opts.pairWith.origin, opts.pairWith.token, opts.path, opts.connections)
    : undefined;
  const accA: Acc = { lat: [], sent: 0, ok: 0, errors: 0, late: 0 };
  const accB: Acc = { lat: [], sent: 0, ok: 0, errors: 0, late: 0 };
  try {
    // Open every connection (TLS handshakes happen here, not in the measurement).
    await Promise.all(Array.from({ length: opts.connections }, a.one));
    if (b) await Promise.all(Array.from({ length: opts.connections }, b.one));
    await phase(a.one, opts.rate, opts.warmupSeconds, undefined);
    if (!b) {
      await phase(a.one, opts.rate, opts.seconds, accA);
      return summary(accA);
    }
    await phase(b.one, opts.rate, opts.warmupSeconds, undefined);
    for (let slice = 0; slice < opts.seconds; slice++) {
      const [first, second] = slice % 2 === 0 ? [a, b] : [b, a];
      await phase(first.one, opts.rate, 1, first === a ? accA : accB);
      await phase(second.one, opts.rate, 1, second === a ? accA : accB);
    }
    return { ...summary(accA), pair: summary(accB) };
  } finally {
    await a.close();
    await b?.close();
  }
}

/** GET a path; status and body (no certificate verification: the benchmark's own targets). */
export async function getOnce(
  origin: string,
  path: string,
  token: string,
): Promise<{ status: number; body: string }> {
  const pool = new Pool(origin, { connect: { rejectUnauthorized: false } });
  try {
    const r = await pool.request({
      path,
      method: 'GET',
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    });
    return { status: r.statusCode, body: await r.body.text() };
  } finally {
    await pool.close();
  }
}

// ---------------------------------------------------------------- other tenants

/**
 * CPU used by processes that are not descendants of this one (other work on
 * a shared machine), so a measurement disturbed by it can be told apart and
 * repeated.
 */
export interface ForeignSnapshot {
  readonly atMs: number;
  /** user + nice + system of the whole machine, µs (irq/softirq left out: mostly our own loopback traffic). */
  readonly machineUs: number;
  /** Time the hypervisor gave our virtual CPUs to other machines (steal), µs. */
  readonly stealUs: number;
  /** CPU of this process, its reaped children, and each live descendant, µs. */
  readonly ours: ReadonlyMap<number, number>;
  readonly reapedUs: number;
}

export function foreignSnapshot(): ForeignSnapshot {
  const ppid = new Map<number, number>();
  const cpu = new Map<number, number>();
  let reapedUs = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      const pid = Number(name);
      ppid.set(pid, Number(rest[1]));
      cpu.set(pid, ((Number(rest[11]) + Number(rest[12])) * 1e6) / CLK_TCK);
      // cutime + cstime: children we have reaped (wrk, kubectl) are counted here.
      if (pid === process.pid) reapedUs = ((Number(rest[13]) + Number(rest[14])) * 1e6) / CLK_TCK;
    } catch {
      // exited while we looked
    }
  }
  const ours = new Map<number, number>();
  for (const [pid, used] of cpu) {
    for (let p: number | undefined = pid, depth = 0; p !== undefined && p > 1 && depth < 64; depth++) {
      if (p === process.pid) {
        ours.set(pid, used);
        break;
      }
      p = ppid.get(p);
    }
  }
  const v = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string)
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const machineUs = (((v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0)) * 1e6) / CLK_TCK;
  const stealUs = ((v[7] ?? 0) * 1e6) / CLK_TCK;
  return { atMs: performance.now(), machineUs, stealUs, ours, reapedUs };
}

/**
 * Share of the machine's CPU (0–1) that others used between two snapshots:
 * the machine's busy time minus ours (live descendants, including ones
 * started in between, and children reaped in between), plus the time the
 * hypervisor stole for other virtual machines.
 */
export function foreignShare(a: ForeignSnapshot, b: ForeignSnapshot, cores: number): number {
  let ours = b.reapedUs - a.reapedUs;
  for (const [pid, after] of b.ours) ours += Math.max(0, after - (a.ours.get(pid) ?? 0));
  const wallUs = (b.atMs - a.atMs) * 1000;
  const others = Math.max(0, b.machineUs - a.machineUs - ours) + (b.stealUs - a.stealUs);
  return wallUs > 0 ? others / (wallUs * cores) : 0;
}

/**
 * Waits (up to `maxMs`) for a second in which other processes use less than
 * `threshold` of the machine; returns the last share seen.
 */
export async function waitForQuiet(cores: number, threshold: number, maxMs: number): Promise<number> {
  const deadline = performance.now() + maxMs;
  let share = 1;
  while (performance.now() < deadline) {
    const a = foreignSnapshot();
    await new Promise((r) => setTimeout(r, 1000));
    share = foreignShare(a, foreignSnapshot(), cores);
    if (share < threshold) break;
  }
  return share;
}

/** Measured runs disturbed by other processes beyond this share of the machine are repeated. */
export const FOREIGN_LIMIT = 0.2;
export const MAX_ATTEMPTS = 3;

/**
 * Runs `measure` until other tenants of the machine used less than
 * FOREIGN_LIMIT of it during the measurement (at most MAX_ATTEMPTS times,
 * waiting up to `quietWaitMs` for a quiet second before each); keeps the
 * least disturbed attempt, with the share others took (`foreign`).
 */
export async function undisturbed<T>(
  what: string,
  measure: () => Promise<T>,
  opts: { readonly cores: number; readonly log: (line: string) => void; readonly quietWaitMs?: number },
): Promise<T & { foreign: number }> {
  let best: (T & { foreign: number }) | undefined;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    await waitForQuiet(opts.cores, FOREIGN_LIMIT, opts.quietWaitMs ?? 20_000);
    const a = foreignSnapshot();
    const r = await measure();
    const foreign = foreignShare(a, foreignSnapshot(), opts.cores);
    if (!best || foreign < best.foreign) best = { ...r, foreign };
    if (foreign < FOREIGN_LIMIT) break;
    opts.log(
      `  (${what}: others (processes, steal) took ${(100 * foreign).toFixed(0)}% of the machine during the run${attempt < MAX_ATTEMPTS ? '; repeating' : '; keeping the least disturbed attempt'})`,
    );
  }
  return best as T & { foreign: number };
}
