/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by
 * function, inclusive time by function (each function counted once per
 * sample, so recursion is not double-counted), and time by category (TLS,
 * node http, undici, streams, promises, JSON, audit, policy, …).
 *
 *   node bench/src/sidecar-profile.ts <file.cpuprofile> [requests]
 *   node bench/src/sidecar-profile.ts <file.cpuprofile> --callers <regexp>   (call paths to a hot function)
 *
 * With `requests` (how many requests the profiled process served), times are
 * also given in µs per request.
 */
import { existsSync, readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly busyMs: number;
  readonly self: readonly { name: string; ms: number }[];
  readonly inclusive: readonly { name: string; ms: number }[];
  readonly categories: readonly { name: string; ms: number }[];
}

function shortUrl(url: string): string {
  if (!url) return '';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    const pkg = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
    return `${pkg}:${rest.slice(-1)[0]}`;
  }
  const ws = url.indexOf('/work/main/');
  if (ws !== -1) return url.slice(ws + '/work/main/'.length);
  return url.replace(/^file:\/\//, '');
}

function label(f: CallFrame): string {
  const fn = f.functionName || '(anonymous)';
  const u = shortUrl(f.url);
  return u ? `${fn} ${u}:${f.lineNumber + 1}` : fn;
}

const AUDIT = /sidecar\/src\/audit\/|shared\/src\/canonical-json|shared\/src\/audit-event/;
const RULES: readonly [RegExp, string][] = [
  [/\/undici\//, 'undici (upstream client)'],
  [/internal\/http2/, 'node:http2 (undici negotiates HTTP/2 upstream)'],
  [/^node:(_tls|tls)|internal\/tls/, 'TLS (node:tls JS side)'],
  [/^node:(_http_|http$|https$)|internal\/http/, 'HTTP server/parser (node:http)'],
  [/internal\/streams|^node:stream/, 'streams (node:stream)'],
  [/^node:net$|stream_base_commons|internal\/net/, 'sockets (node:net)'],
  [
    /task_queues|internal\/process\/|async_hooks|internal\/timers|^node:timers/,
    'promises / nextTick / timers',
  ],
  [
    /sidecar\/src\/kube\/guards\/decide|shared\/src\/policy|sidecar\/src\/kube\/request-info/,
    'policy: parse path + evaluate',
  ],
  [/sidecar\/src\/kube\/(mask|line-splitter)/, 'masking'],
  [/shared\/src\/metrics|sidecar\/src\/metrics/, 'metrics'],
  [/sidecar\/src\/kube\/headers/, 'sidecar: header copying'],
  [/sidecar\/src\/|shared\/src\//, 'sidecar: other own code'],
  [/^node:(crypto|internal\/crypto)|internal\/crypto/, 'crypto (JS side)'],
  [/^node:|^internal\//, 'other node internals'],
];

export interface ProfileWindow {
  /** CLOCK_MONOTONIC µs (process.hrtime.bigint() / 1000n in any process on the machine). */
  readonly fromUs: number;
  readonly toUs: number;
}

export function summariseProfile(path: string, window?: ProfileWindow): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) byId.set(n.id, n);
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const cats = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  const stackCache = new Map<number, { labels: string[]; category: string }>();

  const classify = (id: number): { labels: string[]; category: string } => {
    const cached = stackCache.get(id);
    if (cached) return cached;
    const frames: CallFrame[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (n) frames.push(n.callFrame);
    }
    const leaf = frames[0] as CallFrame;
    let category = 'native / unattributed';
    if (leaf.functionName === '(garbage collector)') category = 'GC';
    else if (leaf.functionName === '(idle)') category = 'idle';
    else if (leaf.functionName === '(program)')
      category = '(program): native outside JS (libuv, OpenSSL record layer, parser)';
    else if (frames.some((f) => AUDIT.test(f.url))) category = 'audit: event build, hash chain, spool write';
    else if (!leaf.url && /^(parse|stringify)$/.test(leaf.functionName)) category = 'JSON parse/stringify';
    else {
      for (const f of frames) {
        const u = shortUrl(f.url);
        const rule = RULES.find(([re]) => re.test(u) || re.test(f.url));
        if (rule) {
          category = rule[1];
          break;
        }
      }
    }
    const labels = [...new Set(frames.map(label))];
    const r = { labels, category };
    stackCache.set(id, r);
    return r;
  };

  let total = 0;
  let idle = 0;
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] as number;
    at += p.timeDeltas[i] ?? 0;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const node = byId.get(id);
    if (!node) continue;
    const { labels, category } = classify(id);
    add(self, label(node.callFrame), dt);
    add(cats, category, dt);
    if (category === 'idle') {
      idle += dt;
      continue;
    }
    for (const l of labels) add(incl, l, dt);
  }
  const sorted = (m: Map<string, number>) =>
    [...m.entries()].map(([name, ms]) => ({ name, ms })).sort((a, b) => b.ms - a.ms);
  return {
    totalMs: total,
    busyMs: total - idle,
    self: sorted(self).filter((e) => e.name !== '(idle)'),
    inclusive: sorted(incl).filter((e) => e.name !== '(root)'),
    categories: sorted(cats).filter((e) => e.name !== 'idle'),
  };
}

/** The most common call paths (leaf first, `depth` frames) leading to samples whose leaf matches `pattern`. */
export function callersOf(path: string, pattern: RegExp, depth = 8, top = 5, window?: ProfileWindow): string {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) byId.set(n.id, n);
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const paths = new Map<string, number>();
  let at = p.startTime;
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    const id = p.samples[i] as number;
    const leaf = byId.get(id);
    if (!leaf || !pattern.test(label(leaf.callFrame))) continue;
    const frames: string[] = [];
    for (
      let cur: number | undefined = id;
      cur !== undefined && frames.length < depth;
      cur = parent.get(cur)
    ) {
      const n = byId.get(cur);
      if (n) frames.push(label(n.callFrame));
    }
    const key = frames.join('\n      ← ');
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    paths.set(key, (paths.get(key) ?? 0) + dt);
  }
  const lines = [`callers of ${pattern} (${total.toFixed(0)} ms):`];
  for (const [k, ms] of [...paths.entries()].sort((a, b) => b[1] - a[1]).slice(0, top))
    lines.push(`  ${ms.toFixed(0).padStart(5)} ms  ${k}`);
  return lines.join('\n');
}

export function formatSummary(s: ProfileSummary, requests?: number, top = 25): string {
  const per = (ms: number) => (requests ? `  ${((ms * 1000) / requests).toFixed(1).padStart(6)} µs/req` : '');
  const pct = (ms: number) => `${((100 * ms) / s.busyMs).toFixed(1).padStart(5)}%`;
  const lines: string[] = [];
  lines.push(
    `profile: ${(s.totalMs / 1000).toFixed(1)} s wall, ${(s.busyMs / 1000).toFixed(1)} s busy (not idle)${requests ? `, ${requests} requests → ${((s.busyMs * 1000) / requests).toFixed(1)} µs busy per request` : ''}`,
  );
  lines.push('', 'by category (share of busy time):');
  for (const c of s.categories) lines.push(`  ${pct(c.ms)}${per(c.ms)}  ${c.name}`);
  lines.push('', `top ${top} by self time:`);
  for (const e of s.self.slice(0, top)) lines.push(`  ${pct(e.ms)}${per(e.ms)}  ${e.name}`);
  lines.push('', `top ${top} by inclusive time:`);
  for (const e of s.inclusive.slice(0, top)) lines.push(`  ${pct(e.ms)}${per(e.ms)}  ${e.name}`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node bench/src/sidecar-profile.ts <file.cpuprofile> [requests]\n');
    process.exit(2);
  }
  // The benchmark's --profile mode leaves <file>.window.json: the measured window and its request count.
  let window: ProfileWindow | undefined;
  let requests = process.argv[3] && !process.argv[3].startsWith('--') ? Number(process.argv[3]) : undefined;
  if (existsSync(`${file}.window.json`)) {
    const w = JSON.parse(readFileSync(`${file}.window.json`, 'utf8')) as ProfileWindow & { requests: number };
    window = { fromUs: w.fromUs, toUs: w.toUs };
    requests ??= w.requests;
  }
  const callers = process.argv.indexOf('--callers');
  if (callers !== -1) {
    console.log(callersOf(file, new RegExp(process.argv[callers + 1] ?? '.'), 10, 6, window));
  } else {
    console.log(formatSummary(summariseProfile(file, window), requests, 30));
  }
}
