/**
 * Benchmark: collector ingest (issue 6, "Performance").
 *
 *   node bench/src/collector-ingest.ts            full run (3 rounds), writes bench/results/collector.md
 *   node bench/src/collector-ingest.ts --quick    short smoke run, writes nothing (--no-write: full run, writes nothing)
 *   options: --rounds N  --events N (per sidecar)  --sidecars N
 *
 * Sustained ingest: a real collector process (`chaperone collector`, fresh
 * for every run) takes N sidecars' pre-chained events over the ingest
 * protocol (batches of 500, at most 4 in flight per sidecar, each ack only
 * after the commit is fsynced); events/s from the first hello to the last ack.
 * The sidecar clients run in this process and share the 2 cores with the
 * collector and PostgreSQL, so their batch messages are encoded before the
 * measured window and sent with masking key 0: while measuring they only
 * send bytes and read acks (the anchor has no generator at all).
 * Backends: embedded (node:sqlite) and PostgreSQL (a durable local server:
 * fsync on, synchronous_commit on).
 *
 * Anchor, in the same run, on the same PostgreSQL: the same rows inserted
 * straight into the collector's own schema (same table, same indexes) with
 * `pg`, one COPY of 500 rows per transaction (the collector's own
 * `insertEvents`, so both write rows the same way), one
 * connection, sequentially — what a database client with no protocol,
 * authentication, validation or hash checking costs. Anchor and collector
 * alternate order each round, each in a fresh database.
 *
 * End-to-end lag: one sidecar creates events at 1,000/s, sending every 20 ms
 * what it has (as a sidecar draining its spool does); a reader polls the
 * query API in commit order every 20 ms. Lag = first seen in a query − created.
 *
 * Authentication: sidecars present RS256 tokens with Kubernetes' claims,
 * verified by the collector against a JWKS served locally (--jwks-url).
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { insertEvents, POSTGRES_MIGRATIONS, toEventRow } from '@chaperone/collector';
import {
  connectIngest,
  makeChain,
  sampleEvent,
  streamEvents,
  TestIssuer,
} from '@chaperone/collector/testing';
import {
  type CollectorProcess,
  freePort,
  type PostgresServer,
  startCollectorProcess,
  startPostgres,
} from '@chaperone/e2e';
import { type AuditEvent, chainEvent, encodeMessage, GENESIS_HASH } from '@chaperone/shared';
import pg from 'pg';
import { formatMachine, machineInfo } from './machine.ts';
import { writeReport } from './report.ts';
import { childPids, cpuMicros, cpuOf } from './sidecar-load.ts';
import { median, percentile, ratio, table } from './stats.ts';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const noWrite = quick || argv.includes('--no-write');
const arg = (name: string, fallback: number) => {
  const i = argv.indexOf(name);
  return i === -1 ? fallback : Number(argv[i + 1]);
};
const ROUNDS = arg('--rounds', quick ? 1 : 3);
const SIDECARS = arg('--sidecars', 4);
const PER_SIDECAR = arg('--events', quick ? 5_000 : 25_000);
const BATCH = 500;
const LAG_RATE = 1000;
const LAG_SECONDS = quick ? 3 : 10;
const QUERY_TOKEN = 'bench-query-token-0123456789abcdef';
const RESULTS = fileURLToPath(new URL('../results/collector.md', import.meta.url));

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

interface Sidecar {
  sidecarId: string;
  token: string;
  events: AuditEvent[];
  /** Batch message i (batchId i, events i·BATCH …), encoded before anything is measured. */
  frames: Buffer[];
}

/** Masking key 0: the generator sends its pre-built frames as they are (the collector still unmasks). */
const zeroMask = (mask: Buffer) => {
  mask.fill(0);
};

async function serveJwks(issuer: TestIssuer): Promise<{ url: string; close(): void }> {
  const server = createServer((_req, res) => {
    res
      .writeHead(200, { 'content-type': 'application/jwk-set+json' })
      .end(JSON.stringify({ keys: [issuer.jwk] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/openid/v1/jwks`,
    close: () => server.close(),
  };
}

/** PostgreSQL storage signs checkpoints with a key of the operator's (it generates none). */
function checkpointArgs(dir: string): string[] {
  const keyFile = join(dir, 'checkpoint-key.pem');
  if (!existsSync(keyFile)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  }
  return ['--checkpoint-key-file', keyFile, '--checkpoint-log', join(dir, 'checkpoints.log')];
}

async function startCollector(dir: string, jwksUrl: string, storage: string[]): Promise<CollectorProcess> {
  return startCollectorProcess({
    name: 'collector',
    port: await freePort(),
    logDir: dir,
    args: ['--jwks-url', jwksUrl, '--query-token', QUERY_TOKEN, '--log-level', 'warn', ...storage],
  });
}

interface RunResult {
  rate: number;
  /** CPU µs per event of the collector process (or the anchor's client) and of PostgreSQL. */
  appCpu: number;
  dbCpu: number;
}

const pgCpu = (pg: PostgresServer | undefined) => (pg ? cpuOf(childPids(pg.pid)) : 0);

async function ingestRun(
  url: string,
  sidecars: readonly Sidecar[],
  collectorPid: number,
  pgServer: PostgresServer | undefined,
): Promise<RunResult> {
  const c0 = cpuMicros(collectorPid);
  const d0 = pgCpu(pgServer);
  const t0 = performance.now();
  await Promise.all(
    sidecars.map((s) =>
      streamEvents({
        url,
        token: () => s.token,
        sidecarId: s.sidecarId,
        events: s.events,
        batchSize: BATCH,
        deadlineMs: 600_000,
        encoded: (batchId, from, count) =>
          from === batchId * BATCH && (count === BATCH || from + count === s.events.length)
            ? s.frames[batchId]
            : undefined,
        generateMask: zeroMask,
      }),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  const n = sidecars.length * PER_SIDECAR;
  return { rate: n / seconds, appCpu: (cpuMicros(collectorPid) - c0) / n, dbCpu: (pgCpu(pgServer) - d0) / n };
}

async function anchorRun(
  dbUrl: string,
  sidecars: readonly Sidecar[],
  pgServer: PostgresServer,
): Promise<RunResult> {
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(POSTGRES_MIGRATIONS[0] as string);
    await client.query('COMMIT');
    // Rows are prepared before timing: the anchor measures the database alone.
    const received = Date.now() * 1000;
    const batches = sidecars.flatMap((s) => {
      const out = [];
      for (let i = 0; i < s.events.length; i += BATCH)
        out.push(s.events.slice(i, i + BATCH).map((e) => toEventRow(e, received)));
      return out;
    });
    const a0 = process.cpuUsage();
    const d0 = pgCpu(pgServer);
    const t0 = performance.now();
    for (const rows of batches) {
      await client.query('BEGIN');
      await insertEvents(client, rows);
      await client.query('COMMIT');
    }
    const seconds = (performance.now() - t0) / 1000;
    const a = process.cpuUsage(a0);
    const dbCpu = pgCpu(pgServer) - d0;
    const n = Number((await client.query('SELECT count(*) AS n FROM events')).rows[0].n);
    if (n !== sidecars.length * PER_SIDECAR) throw new Error(`anchor stored ${n} rows`);
    return { rate: n / seconds, appCpu: (a.user + a.system) / n, dbCpu: dbCpu / n };
  } finally {
    await client.end();
  }
}

/** Events created at LAG_RATE/s and sent every 20 ms; returns lag samples in ms. */
async function lagRun(url: string, queryUrl: string, issuer: TestIssuer): Promise<number[]> {
  const source = {
    namespace: 'bench',
    pod: 'lag-0',
    podUID: 'uid-lag',
    serviceAccount: 'agent',
    sidecarId: 'bench/lag-0/uid-lag',
  };
  const token = await issuer.token(source);
  const conn = await connectIngest({ url, token });
  if (!conn.ok) throw new Error(`the collector refused the lag client: ${conn.status} ${conn.body}`);
  const { ws, messages } = conn;
  ws.send(encodeMessage({ type: 'hello', sidecarId: source.sidecarId, schemaVersion: 1 }));
  if ((await messages.next()).type !== 'welcome') throw new Error('no welcome');
  const created = new Map<string, number>();
  const lags: number[] = [];
  let seq = 0;
  let prev = GENESIS_HASH;
  let batchId = 0;
  let pending: AuditEvent[] = [];
  const total = LAG_RATE * LAG_SECONDS;
  const start = performance.now();
  let cursor: string | undefined;
  let reading = true;
  const reader = (async () => {
    while (reading || created.size > 0) {
      const p = new URLSearchParams({ order: 'arrival', limit: '1000', sidecarId: source.sidecarId });
      if (cursor) p.set('cursor', cursor);
      const res = await fetch(`${queryUrl}/v1/events?${p}`, {
        headers: { authorization: `Bearer ${QUERY_TOKEN}` },
      });
      const body = (await res.json()) as { items: AuditEvent[]; nextCursor: string };
      const now = performance.now();
      for (const e of body.items) {
        const t = created.get(e.auditID);
        if (t !== undefined) {
          lags.push(now - t);
          created.delete(e.auditID);
        }
      }
      cursor = body.nextCursor;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  while (seq < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * LAG_RATE));
    while (seq < due) {
      seq++;
      const e = chainEvent(sampleEvent(source, seq, { time: new Date() }), seq, prev);
      prev = e.chaperone.hash;
      created.set(e.auditID, performance.now());
      pending.push(e);
    }
    if (pending.length) {
      ws.send(encodeMessage({ type: 'batch', batchId: batchId++, events: pending }));
      pending = [];
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  reading = false;
  await reader;
  ws.close();
  return lags.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const machine = machineInfo();
  const loadBefore = loadavg()[0] ?? 0;
  log(`machine: ${formatMachine(machine)}`);
  const issuer = await TestIssuer.create();
  const jwks = await serveJwks(issuer);
  log(`preparing ${SIDECARS} × ${PER_SIDECAR} chained events`);
  const sidecars: Sidecar[] = [];
  for (let i = 0; i < SIDECARS; i++) {
    const source = {
      namespace: 'bench',
      pod: `agent-${i}`,
      podUID: `uid-${i}`,
      serviceAccount: 'agent',
      sidecarId: `bench/agent-${i}/uid-${i}`,
    };
    const events = makeChain(source, PER_SIDECAR, {
      spec: (seq) =>
        seq % 7 === 0
          ? {
              protocol: 'exec',
              argv: ['sh', '-c', `cat /var/log/app-${seq}.log | tail -n 20`],
              sessionId: `s-${i}-${seq >> 6}`,
            }
          : seq % 11 === 0
            ? {
                protocol: 'postgres',
                sqlText: `SELECT id, total FROM orders WHERE customer_id = $1 LIMIT ${seq % 50}`,
              }
            : seq % 13 === 0
              ? { action: 'deny', rule: 'no-secret-writes', verb: 'patch', resource: 'secrets' }
              : {},
    });
    const frames: Buffer[] = [];
    for (let from = 0; from < events.length; from += BATCH)
      frames.push(
        Buffer.from(
          encodeMessage({ type: 'batch', batchId: frames.length, events: events.slice(from, from + BATCH) }),
        ),
      );
    sidecars.push({ sidecarId: source.sidecarId, token: await issuer.token(source), events, frames });
  }
  const pgServer: PostgresServer = await startPostgres({ durable: true, log });
  const work = mkdtempSync(join(tmpdir(), 'chaperone-bench-collector-'));
  const results: Record<'embedded' | 'postgres' | 'anchor', RunResult[]> = {
    embedded: [],
    postgres: [],
    anchor: [],
  };
  const lag: Record<'embedded' | 'postgres', number[]> = { embedded: [], postgres: [] };
  let dbCount = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const order: ('embedded' | 'postgres' | 'anchor')[] =
        round % 2 === 0 ? ['anchor', 'postgres', 'embedded'] : ['embedded', 'postgres', 'anchor'];
      for (const what of order) {
        const dir = mkdtempSync(join(work, `${what}-`));
        if (what === 'anchor') {
          const name = `anchor_${dbCount++}`;
          const url = await pgServer.createDatabase(name);
          const r = await anchorRun(url, sidecars, pgServer);
          await pgServer.dropDatabase(name);
          results.anchor.push(r);
          log(
            `round ${round + 1}: anchor (raw COPY) ${Math.round(r.rate)} events/s, CPU/event: client ${r.appCpu.toFixed(0)} µs, PostgreSQL ${r.dbCpu.toFixed(0)} µs`,
          );
          continue;
        }
        const dbName = what === 'postgres' ? `collector_${dbCount++}` : undefined;
        const storage = dbName
          ? [
              '--storage',
              'postgres',
              '--postgres-url',
              await pgServer.createDatabase(dbName),
              ...checkpointArgs(dir),
            ]
          : ['--storage', 'embedded', '--data-dir', join(dir, 'data')];
        const c = await startCollector(dir, jwks.url, storage);
        try {
          const r = await ingestRun(
            c.url,
            sidecars,
            c.process.pid,
            what === 'postgres' ? pgServer : undefined,
          );
          results[what].push(r);
          log(
            `round ${round + 1}: ${what} ${Math.round(r.rate)} events/s, CPU/event: collector ${r.appCpu.toFixed(0)} µs, PostgreSQL ${r.dbCpu.toFixed(0)} µs`,
          );
          if (round === 0) {
            lag[what] = await lagRun(c.url, c.queryUrl, issuer);
            log(
              `${what} lag p50 ${percentile(lag[what], 50).toFixed(1)} ms, p99 ${percentile(lag[what], 99).toFixed(1)} ms`,
            );
          }
        } finally {
          await c.stop();
          if (dbName) await pgServer.dropDatabase(dbName);
        }
        rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await pgServer.stop();
    jwks.close();
    rmSync(work, { recursive: true, force: true });
  }
  const med = (rs: readonly RunResult[], k: keyof RunResult) => median(rs.map((r) => r[k]));
  const loadAfter = loadavg()[0] ?? 0;
  const anchor = med(results.anchor, 'rate');
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const cpu = (rs: readonly RunResult[]) => [
    med(rs, 'appCpu').toFixed(0),
    rs === results.embedded ? '—' : med(rs, 'dbCpu').toFixed(0),
    (med(rs, 'appCpu') + (rs === results.embedded ? 0 : med(rs, 'dbCpu'))).toFixed(0),
  ];
  const rows = (['postgres', 'embedded'] as const).map((b) => [
    b === 'postgres' ? 'collector, PostgreSQL' : 'collector, embedded (node:sqlite)',
    fmt(med(results[b], 'rate')),
    results[b].map((r) => fmt(r.rate)).join(' / '),
    b === 'postgres' ? ratio(med(results[b], 'rate'), anchor) : '—',
    ...cpu(results[b]),
  ]);
  rows.push([
    'anchor: raw COPY into the same PostgreSQL',
    fmt(anchor),
    results.anchor.map((r) => fmt(r.rate)).join(' / '),
    '1.00×',
    ...cpu(results.anchor),
  ]);
  const lagRows = (['postgres', 'embedded'] as const).map((b) => [
    b,
    lag[b].length,
    percentile(lag[b], 50).toFixed(1),
    percentile(lag[b], 90).toFixed(1),
    percentile(lag[b], 99).toFixed(1),
    (lag[b].at(-1) ?? Number.NaN).toFixed(1),
  ]);
  const text = [
    '## Collector ingest',
    '',
    `Machine: ${formatMachine(machine)}. Script: \`node bench/src/collector-ingest.ts\`.`,
    '',
    `Sustained ingest: ${SIDECARS} sidecars × ${PER_SIDECAR.toLocaleString('en-US')} chained events over the ingest protocol`,
    `(batches of ${BATCH}, ≤ 4 in flight, token-authenticated, every event validated, hash-chain checked, an ack only after`,
    'the commit is fsynced), a fresh collector process per run. Anchor: the same rows inserted straight into the',
    `collector's schema on the same PostgreSQL with \`pg\` (one COPY of ${BATCH} rows per transaction, sequential; the`,
    "collector's own `insertEvents`, so both write rows the same way).",
    `Medians of ${ROUNDS} rounds, order alternating, fresh database each time; PostgreSQL 15 with fsync on.`,
    `1-minute load average when the run started and ended: ${loadBefore.toFixed(1)} and ${loadAfter.toFixed(1)}`,
    '(above 2 means other processes competed for the 2 cores; the CPU-per-event columns are not affected by that).',
    '',
    table(
      ['what', 'events/s (median)', 'rounds', 'vs anchor', 'CPU µs/event: app', 'PostgreSQL', 'total'],
      rows,
    ),
    '',
    'CPU per event is user+system time from /proc: the collector process, all its threads (the anchor: its own client), and',
    'every PostgreSQL server process. The load generator (sidecar clients) runs in the benchmark process and',
    'is not counted; it competes for the same 2 cores, so it encodes every batch message before the measured',
    'window and sends them with masking key 0 (the collector still validates, unmasks and hashes everything):',
    'while measuring it only sends bytes and reads acks. The embedded store works inside the collector process.',
    '',
    `End-to-end lag, spool to query: one sidecar creating ${LAG_RATE} events/s for ${LAG_SECONDS} s, sending every 20 ms;`,
    'a reader polling the query API in commit order every 20 ms (so up to ~20 ms of each figure is polling).',
    '',
    table(['backend', 'events', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'], lagRows),
    '',
  ].join('\n');
  process.stdout.write(`${text}\n`);
  if (!noWrite) {
    writeFileSync(RESULTS, text);
    log(`wrote ${RESULTS} and ${writeReport()}`);
  }
}

await main();
