/**
 * Benchmark: the console's pages on a large store (the web console's issue:
 * "first page under 300 ms with 1,000,000 stored events").
 *
 *   node bench/src/console-pages.ts                 1,000,000 events, embedded and PostgreSQL; writes bench/results/console.md
 *   node bench/src/console-pages.ts --quick         20,000 events, embedded only, writes nothing
 *   options: --events N  --backend embedded|postgres|both  --runs N  --no-write
 *
 * Fill: N events from 150 pods (20 namespaces × 3 service accounts × 2–3
 * pods) spread evenly over the last 30 days — Kubernetes requests (65 %),
 * exec sessions (open, typed lines, end; 15 %) and PostgreSQL sessions
 * (20 %); 90 % allowed, 5 % denied, 3 % masked, 2 % held for review (half
 * approved). Each pod's events are chained as its sidecar chains them and
 * written through the store's own `commit` (batches of 250 events, 8 batches
 * a transaction), so the rows, the duplicate check and the rollups are those
 * ingest writes; the WebSocket and token checks are left out (their cost is
 * in the collector-ingest benchmark).
 *
 * Measure: a fresh collector process (`chaperone collector`) on that store;
 * each page's first request, then `--runs` more, through the real query API
 * (HTTP on 127.0.0.1, bearer token). Figures are the first request and the
 * median and maximum of the rest, in ms. No anchor: the target is the time
 * itself. The machine is shared with other work (see the load average).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AuditStore,
  type IncomingBatch,
  PostgresStore,
  prepareEvent,
  SqliteStore,
} from '@chaperone/collector';
import { sampleEvent } from '@chaperone/collector/testing';
import { type CollectorProcess, freePort, startCollectorProcess, startPostgres } from '@chaperone/e2e';
import { type AuditEvent, chainEvent, GENESIS_HASH, type UnchainedEvent } from '@chaperone/shared';
import { formatMachine, machineInfo } from './machine.ts';
import { writeResult } from './report.ts';
import { median, table } from './stats.ts';

const QUERY_TOKEN = 'bench-console-token-0123456789abcdef';
const DAY_MS = 86_400_000;
const BATCH = 250;
const BATCHES_PER_COMMIT = 8;

interface Options {
  events: number;
  backends: ('embedded' | 'postgres')[];
  runs: number;
  write: boolean;
}

function options(argv: readonly string[]): Options {
  const quick = argv.includes('--quick');
  const value = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const backend = value('--backend') ?? (quick ? 'embedded' : 'both');
  return {
    events: Number(value('--events') ?? (quick ? 20_000 : 1_000_000)),
    backends: backend === 'both' ? ['embedded', 'postgres'] : [backend as 'embedded' | 'postgres'],
    runs: Number(value('--runs') ?? 7),
    write: !quick && !argv.includes('--no-write'),
  };
}

/** Deterministic random numbers (mulberry32), so every run stores the same events. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Pod {
  readonly namespace: string;
  readonly pod: string;
  readonly podUID: string;
  readonly serviceAccount: string;
  readonly sidecarId: string;
  seq: number;
  prev: string;
  exec?: { id: string; argv: string[] };
  sql?: { id: string; left: number };
  pending: AuditEvent[];
}

function pods(): Pod[] {
  const out: Pod[] = [];
  for (let n = 0; n < 20; n++)
    for (let s = 0; s < 3; s++)
      for (let p = 0; p < 2 + ((n + s) % 2); p++) {
        const namespace = `team-${String(n).padStart(2, '0')}`;
        const pod = `agent-${s}-${p}`;
        const podUID = `uid-${n}-${s}-${p}`;
        out.push({
          namespace,
          pod,
          podUID,
          serviceAccount: `sa-${s}`,
          sidecarId: `${namespace}/${pod}/${podUID}`,
          seq: 0,
          prev: GENESIS_HASH,
          pending: [],
        });
      }
  return out;
}

const VERBS = ['get', 'get', 'list', 'list', 'watch', 'create', 'patch', 'delete'];
const RESOURCES = ['pods', 'configmaps', 'secrets', 'deployments', 'services', 'jobs'];
const COMMANDS = [
  ['sh'],
  ['ls', '-la'],
  ['cat', '/etc/hosts'],
  ['psql', '-c', 'select 1'],
  ['rm', '-rf', '/tmp/x'],
];
const TABLES = ['orders', 'customers', 'invoices', 'audit_log'];

/** The next event of `p` at `time`: a request, a step of an exec session, or a statement of a SQL session. */
function nextEvent(p: Pod, time: Date, r: () => number): UnchainedEvent {
  const seq = p.seq + 1;
  const roll = r();
  const decision = r();
  const action = decision < 0.9 ? 'allow' : decision < 0.95 ? 'deny' : decision < 0.98 ? 'mask' : 'review';
  const rule = action === 'allow' ? 'default' : `${action}-rule-${Math.floor(r() * 6)}`;
  let e: UnchainedEvent;
  if (roll < 0.65) {
    e = sampleEvent(p, seq, {
      verb: VERBS[Math.floor(r() * VERBS.length)] as string,
      resource: RESOURCES[Math.floor(r() * RESOURCES.length)] as string,
      action,
      rule,
      time,
    });
  } else if (roll < 0.8) {
    const opening = p.exec === undefined;
    const session = p.exec ?? {
      id: `x-${p.podUID}-${seq}`,
      argv: COMMANDS[Math.floor(r() * COMMANDS.length)] as string[],
    };
    p.exec = session;
    e = sampleEvent(p, seq, {
      protocol: 'exec',
      resource: 'pods',
      subresource: 'exec',
      argv: session.argv,
      sessionId: session.id,
      action: opening ? 'allow' : action,
      rule: opening ? 'default' : rule,
      time,
    });
    if (!opening && e.chaperone.exec) e.chaperone.exec.line = 'echo hello';
    if (!opening && r() < 0.15) {
      if (e.chaperone.exec) e.chaperone.exec.durationMs = 1000 + Math.floor(r() * 60_000);
      p.exec = undefined;
    }
  } else {
    const session =
      p.sql && p.sql.left > 0 ? p.sql : { id: `q-${p.podUID}-${seq}`, left: 20 + Math.floor(r() * 40) };
    session.left--;
    p.sql = session;
    e = sampleEvent(p, seq, { protocol: 'postgres', sessionId: session.id, action, rule, time });
    const table = TABLES[Math.floor(r() * TABLES.length)] as string;
    if (e.chaperone.sql) {
      const write = r() < 0.3;
      e.chaperone.sql.statements = [{ kind: write ? 'UpdateStmt' : 'SelectStmt', tables: [table] }];
      e.chaperone.sql.text = write
        ? `UPDATE ${table} SET x = $1 WHERE id = $2`
        : `SELECT * FROM ${table} WHERE id = $1`;
    }
  }
  if (action === 'review')
    e.chaperone.decision.approval = {
      state: r() < 0.5 ? 'approved' : 'denied',
      id: `req-${seq}`,
      by: 'alice',
    };
  if (action === 'mask') e.chaperone.maskedFields = 1 + Math.floor(r() * 4);
  return e;
}

/** Fills `store` with `total` events over the last 30 days; returns the id of an event halfway through. */
async function fill(
  store: AuditStore,
  total: number,
  nowMs: number,
  log: (s: string) => void,
): Promise<string> {
  const r = random(42);
  const all = pods();
  const startMs = nowMs - 30 * DAY_MS;
  let group: IncomingBatch[] = [];
  let middle = '';
  const started = Date.now();
  const flush = async () => {
    if (group.length === 0) return;
    const outcomes = await store.commit(group);
    for (const o of outcomes) if (o.kind !== 'stored') throw new Error(`a batch was refused: ${o.message}`);
    group = [];
  };
  const batchOf = (p: Pod): IncomingBatch => {
    const receivedUs = nowMs * 1000;
    const { namespace, pod, podUID, serviceAccount, sidecarId } = p;
    const b: IncomingBatch = {
      sidecarId,
      identity: { namespace, pod, podUID, serviceAccount },
      events: p.pending.map((e) => prepareEvent(e, receivedUs)),
      receivedUs,
      rejectLeadingGap: false,
    };
    p.pending = [];
    return b;
  };
  for (let i = 0; i < total; i++) {
    const p = all[Math.floor(r() * all.length)] as Pod;
    const time = new Date(startMs + Math.floor(((i + r()) / total) * 30 * DAY_MS));
    const e = chainEvent(nextEvent(p, time, r), p.seq + 1, p.prev);
    p.seq++;
    p.prev = e.chaperone.hash;
    p.pending.push(e);
    if (i === Math.floor(total / 2)) middle = e.auditID;
    if (p.pending.length >= BATCH) {
      group.push(batchOf(p));
      if (group.length >= BATCHES_PER_COMMIT) await flush();
    }
    if ((i + 1) % 100_000 === 0)
      log(`  ${i + 1} events stored (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }
  for (const p of all) if (p.pending.length) group.push(batchOf(p));
  await flush();
  log(`  filled ${total} events in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return middle;
}

interface Timing {
  readonly page: string;
  readonly first: number;
  readonly median: number;
  readonly max: number;
  readonly bytes: number;
}

async function timePages(queryUrl: string, middleId: string, runs: number): Promise<Timing[]> {
  const pages: [string, string][] = [
    ['events, first page', '/v1/events?limit=100'],
    ['events, one namespace', '/v1/events?namespace=team-07&limit=100'],
    ['events, decision deny', '/v1/events?decision=deny&limit=100'],
    ['events, namespace + deny', '/v1/events?namespace=team-07&decision=deny&limit=100'],
    ['overview, 24 h', '/v1/overview?since=24h'],
    ['overview, 30 d', '/v1/overview?since=30d'],
    ['sessions, first page', '/v1/sessions?limit=100'],
    ['sessions, one namespace', '/v1/sessions?namespace=team-07&limit=100'],
    ['report, 30 d (JSON)', '/v1/report?since=30d'],
    ['report, 30 d (CSV)', '/v1/report?since=30d&format=csv'],
    ['event chain (verified)', `/v1/events/${middleId}/chain`],
  ];
  const out: Timing[] = [];
  for (const [page, path] of pages) {
    const once = async () => {
      const t0 = performance.now();
      const res = await fetch(`${queryUrl}${path}`, { headers: { authorization: `Bearer ${QUERY_TOKEN}` } });
      const body = await res.arrayBuffer();
      if (!res.ok)
        throw new Error(`${path}: HTTP ${res.status} ${Buffer.from(body).toString().slice(0, 200)}`);
      return { ms: performance.now() - t0, bytes: body.byteLength };
    };
    const first = await once();
    const rest: number[] = [];
    for (let i = 0; i < runs; i++) rest.push((await once()).ms);
    out.push({ page, first: first.ms, median: median(rest), max: Math.max(...rest), bytes: first.bytes });
  }
  return out;
}

async function jwksServer() {
  const server = createServer((_q, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[]}'),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    close: () => server.close(),
  };
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const log = (s: string) => console.error(s);
  const load = [loadavg()[0] ?? 0];
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-console-bench-'));
  const jwks = await jwksServer();
  const results: Record<string, Timing[]> = {};
  const pgServer = o.backends.includes('postgres')
    ? await startPostgres({ durable: true, log: () => {} })
    : undefined;
  try {
    for (const backend of o.backends) {
      const nowMs = Date.now();
      log(`${backend}: filling ${o.events} events`);
      let storage: string[];
      let middle: string;
      if (backend === 'embedded') {
        const dataDir = join(dir, 'data');
        const store = new SqliteStore({ dataDir });
        middle = await fill(store, o.events, nowMs, log);
        await store.close();
        storage = ['--storage', 'embedded', '--data-dir', dataDir];
      } else {
        const url = await (pgServer as NonNullable<typeof pgServer>).createDatabase('console_bench');
        const store = await PostgresStore.open({ url, poolSize: 2 });
        middle = await fill(store, o.events, nowMs, log);
        await store.close();
        const keyFile = join(dir, 'checkpoint-key.pem');
        const { privateKey } = generateKeyPairSync('ed25519');
        writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, {
          mode: 0o600,
        });
        storage = ['--storage', 'postgres', '--postgres-url', url, '--checkpoint-key-file', keyFile];
        storage.push('--checkpoint-log', join(dir, 'checkpoints.log'));
      }
      const collector: CollectorProcess = await startCollectorProcess({
        name: `collector-${backend}`,
        port: await freePort(),
        logDir: dir,
        args: ['--jwks-url', jwks.url, '--query-token', QUERY_TOKEN, '--log-level', 'warn', ...storage],
      });
      try {
        results[backend] = await timePages(collector.queryUrl, middle, o.runs);
      } finally {
        await collector.stop();
      }
      for (const t of results[backend] ?? [])
        log(
          `  ${t.page.padEnd(28)} first ${t.first.toFixed(1)} ms, median ${t.median.toFixed(1)} ms, max ${t.max.toFixed(1)} ms`,
        );
    }
  } finally {
    load.push(loadavg()[0] ?? 0);
    await pgServer?.stop();
    jwks.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const names = Object.keys(results);
  const pages = results[names[0] as string] ?? [];
  const ms = (v: number) => v.toFixed(1);
  const text = [
    '## Console pages on a large store',
    '',
    `Machine: ${formatMachine(machineInfo())}. Script: \`node bench/src/console-pages.ts\`.`,
    '',
    `${o.events.toLocaleString('en')} events from 150 pods over the last 30 days (Kubernetes requests, exec and`,
    "PostgreSQL sessions; 90 % allowed, 5 % denied, 3 % masked, 2 % reviewed), written through the store's own",
    '`commit` (the rows, duplicate check and rollups of ingest). Then a fresh `chaperone collector` process on',
    `that store; each page's first request, then ${o.runs} more, over HTTP on 127.0.0.1 with a bearer token. ms:`,
    'first request / median / max of the rest. The overview, sessions and report read the rollups; the event',
    'pages read the events table by its indexes; the chain page re-hashes the event and its neighbours (this',
    'process is given no checkpoint key, so no checkpoint segment is re-hashed).',
    `1-minute load average when the run started and ended: ${load.map((l) => l.toFixed(1)).join(' and ')}`,
    '(the machine is shared: above 2 means other processes competed for the 2 cores).',
    '',
    table(
      ['page', ...names.map((n) => `${n}: first / median / max ms`), 'bytes'],
      pages.map((p, i) => [
        p.page,
        ...names.map((n) => {
          const t = results[n]?.[i];
          return t ? `${ms(t.first)} / ${ms(t.median)} / ${ms(t.max)}` : '—';
        }),
        p.bytes.toLocaleString('en'),
      ]),
    ),
  ].join('\n');
  console.log(text);
  if (o.write) {
    const [file, doc] = writeResult('console', text);
    log(`wrote ${file} and ${doc}`);
  }
}

await main();
