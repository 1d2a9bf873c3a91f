/**
 * Benchmark: the sidecar's PostgreSQL guard (issue 17, "Performance") under
 * `pgbench -S` (select only, scale 10, 8 clients), in simple and in prepared
 * mode, against the same real PostgreSQL reached directly and through
 * PgBouncer (Debian's, session mode, trust from loopback as the sidecar is),
 * in the same run.
 *
 *   node bench/src/postgres-pgbench.ts              full run, writes bench/results/postgres.md
 *   node bench/src/postgres-pgbench.ts --quick      short smoke run, writes nothing
 *   options:
 *     --rounds N        rounds (default 3; 1 with --quick)
 *     --seconds N       length of each pgbench run (default 10; 3 with --quick)
 *     --no-write        full-length run that writes nothing
 *     --pipe            adds two diagnostic rows: a minimal Node relay (bytes piped, nothing decoded), and the
 *                       same relay writing one audit event per statement to a real spool before the answer
 *                       (postgres-pipe.ts --audit): the floor of any guard that keeps that guarantee
 *     --only a,b        just these targets (direct, pgbouncer, sidecar, pipe); no report
 *     --profile simple|prepared   runs the sidecar from its sources with --cpu-prof under that
 *                       mode and prints where its time goes (sidecar-profile.ts)
 *     --top N           functions listed by --profile (default 30)
 *     --no-docs         writes bench/results/postgres.md but does not rebuild docs/benchmarks.md
 *     --stall-only      only the parse-stall measurement (below), no report
 *
 * Parse stall: the parser runs on the sidecar's event loop, so a long query
 * string delays every other connection. One client sends VALUES lists of
 * growing size (the worst shape measured: a node per literal) while another
 * runs `SELECT 1` in a loop; the probe's longest wait is the stall. Strings
 * over --max-sql-parse-bytes (256 KiB) are refused unread.
 *   env BENCH_SIDECAR_SOURCES=1   run the sidecar from its TypeScript sources instead of the bundle
 *
 * Each round starts every proxy afresh and alternates the order of targets
 * and of modes; pgbench opens its connections afresh each run. Figures are
 * medians over rounds. The proxy's CPU per statement is read from /proc
 * (utime + stime) around each pgbench run; `-S` runs one statement per
 * transaction, so statements = transactions. Memory per connection: after
 * its pgbench runs, IDLE_CONNECTIONS more connections are opened to the proxy
 * (each runs one SELECT), and its RSS growth is divided by their number.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ControlPlane,
  freePort,
  type PostgresServer,
  startControlPlane,
  startPostgres,
  startProcess,
  waitFor,
} from '@chaperone/e2e';
import pg from 'pg';
import { formatMachine, machineInfo } from './machine.ts';
import { writeReport } from './report.ts';
import { cpuOf, memory } from './sidecar-load.ts';
import { formatSummary, summariseProfile } from './sidecar-profile.ts';
import { createFixtures, ensureTools, sidecarBase, startSidecar } from './sidecar-targets.ts';
import { median, ratio, table } from './stats.ts';

const SCALE = 10;
const CLIENTS = 8;
const THREADS = 2;
const MODES = ['simple', 'prepared'] as const;
type Mode = (typeof MODES)[number];
const TARGETS = ['direct', 'pgbouncer', 'sidecar', 'pipe', 'pipe-audit', 'pipe-audit-batched'] as const;
type TargetName = (typeof TARGETS)[number];

/** A realistic policy: statements are read and evaluated against rules that do not match a select. */
const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: bench }
spec:
  defaultAction: allow
  rules:
    - name: no-destructive-sql
      match: { protocols: [postgres], sql: { statements: [drop, truncate, delete-without-where, update-without-where] } }
      action: deny
      message: Destructive statements need a human.
    - name: no-system-functions
      match: { protocols: [postgres], sql: { functions: [pg_read_file, lo_import, dblink, pg_terminate_backend] } }
      action: deny
      message: Not from an agent.
`;

interface Running {
  readonly name: TargetName;
  readonly port: number;
  /** The proxy's processes (none for direct). */
  readonly pids: () => number[];
  /** Password pgbench needs (direct and the pipe authenticate with the server). */
  readonly password?: string;
  stop(): Promise<void>;
}

interface Sample {
  readonly tps: number;
  readonly statements: number;
  readonly failed: number;
  /** Proxy CPU per statement, µs (undefined for direct). */
  readonly cpuUs?: number;
}

const IDLE_CONNECTIONS = 48;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function pgbench(port: number, mode: Mode, seconds: number, db: PostgresServer, password?: string) {
  return new Promise<{ tps: number; statements: number; failed: number; out: string }>((resolve, reject) => {
    const p = spawn(
      'pgbench',
      [
        '-n',
        '-S',
        '-c',
        String(CLIENTS),
        '-j',
        String(THREADS),
        '-T',
        String(seconds),
        '-M',
        mode,
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        db.user,
        db.database,
      ],
      { env: { ...process.env, PGPASSWORD: password ?? '', PGSSLMODE: 'disable' } },
    );
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.on('error', reject);
    p.on('close', (code) => {
      const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1] ?? Number.NaN);
      const statements = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? 0);
      const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
      if (code !== 0 || Number.isNaN(tps))
        reject(new Error(`pgbench on port ${port} (${mode}) failed (exit ${code}):\n${out.trim()}`));
      else resolve({ tps, statements, failed, out });
    });
  });
}

async function waitAccepting(port: number, what: string, proc?: { running(): boolean }): Promise<void> {
  await waitFor(
    async () => spawnSync('pg_isready', ['-q', '-h', '127.0.0.1', '-p', String(port)]).status === 0,
    { what, timeoutMs: 20_000, intervalMs: 100, ...(proc ? { process: proc as never } : {}) },
  );
}

interface Env {
  readonly cp: ControlPlane;
  readonly db: PostgresServer;
  readonly root: string;
  readonly base: ReturnType<typeof sidecarBase>;
  readonly secretsDir: string;
  readonly nodeFlags: readonly string[];
}

async function startPgBouncer(env: Env): Promise<Running> {
  // Its own temp dir (the run's root is private to this user; PgBouncer runs as postgres when we are root).
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-bench-pgbouncer-'));
  const port = await freePort();
  const db = env.db;
  writeFileSync(join(dir, 'users.txt'), `"${db.user}" ""\n`);
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `${db.database} = host=127.0.0.1 port=${db.port} dbname=${db.database} user=${db.user} password=${db.password}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'users.txt')}`,
      'pool_mode = session',
      'max_client_conn = 200',
      'default_pool_size = 100',
      'ignore_startup_parameters = extra_float_digits',
      '',
    ].join('\n'),
  );
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    for (const f of ['', 'users.txt', 'pgbouncer.ini']) chownSync(join(dir, f), uid, gid);
  }
  const proc = startProcess({
    name: 'pgbouncer',
    command: '/usr/sbin/pgbouncer',
    args: [join(dir, 'pgbouncer.ini')],
    logFile: join(dir, 'pgbouncer.log'),
    // PgBouncer refuses to run as root.
    ...(asRoot ? { user: 'postgres' } : {}),
  });
  await waitAccepting(port, 'PgBouncer to accept connections', proc);
  return {
    name: 'pgbouncer',
    port,
    pids: () => [proc.pid],
    stop: () => proc.stop(5000).then(() => rmSync(dir, { recursive: true, force: true })),
  };
}

async function startGuard(env: Env): Promise<Running> {
  const port = await freePort();
  const s = await startSidecar(env.base, env.cp, {
    nodeFlags: env.nodeFlags,
    args: ['--databases', `${env.db.database}=${port}`, '--databases-dir', env.secretsDir],
  });
  await waitAccepting(port, 'the sidecar to accept database connections');
  return { name: 'sidecar', port, pids: s.pids, stop: s.stop };
}

const PIPE = fileURLToPath(new URL('./postgres-pipe.ts', import.meta.url));

/** The diagnostic relays (postgres-pipe.ts): the flag each runs with (none: bytes only), and its row's label. */
const RELAYS = {
  pipe: { flag: '', label: 'Node relay (diagnostic)' },
  'pipe-audit': { flag: '--audit', label: 'Node relay + one audit event per statement (floor)' },
  'pipe-audit-batched': {
    flag: '--audit-batched',
    label: 'the same, events written once per event-loop turn (floor)',
  },
} as const;
type RelayName = keyof typeof RELAYS;

/** A diagnostic relay (postgres-pipe.ts): bytes only, or with audit events written one by one or per turn. */
async function startPipe(env: Env, name: RelayName): Promise<Running> {
  const { flag } = RELAYS[name];
  const dir = mkdtempSync(join(env.root, 'pipe-'));
  const port = await freePort();
  const proc = startProcess({
    name: `node relay${flag}`,
    command: process.execPath,
    args: [PIPE, String(port), '127.0.0.1', String(env.db.port), ...(flag ? [flag, join(dir, 'spool')] : [])],
    logFile: join(dir, 'pipe.log'),
  });
  await waitAccepting(port, 'the Node relay to accept connections', proc);
  return {
    name,
    port,
    password: env.db.password,
    pids: () => [proc.pid],
    stop: () => proc.stop(5000).then(() => rmSync(dir, { recursive: true, force: true })),
  };
}

async function start(name: TargetName, env: Env): Promise<Running> {
  switch (name) {
    case 'direct':
      return {
        name,
        port: env.db.port,
        password: env.db.password,
        pids: () => [],
        stop: async () => {},
      };
    case 'pgbouncer':
      return startPgBouncer(env);
    case 'sidecar':
      return startGuard(env);
    case 'pipe':
    case 'pipe-audit':
    case 'pipe-audit-batched':
      return startPipe(env, name);
  }
}

async function measure(t: Running, mode: Mode, seconds: number, db: PostgresServer): Promise<Sample> {
  const pids = t.pids();
  const cpu0 = cpuOf(pids);
  const r = await pgbench(t.port, mode, seconds, db, t.password);
  const cpu1 = cpuOf(pids);
  if (pids.length === 0) return { tps: r.tps, statements: r.statements, failed: r.failed };
  return {
    tps: r.tps,
    statements: r.statements,
    failed: r.failed,
    cpuUs: (cpu1 - cpu0) / Math.max(1, r.statements),
  };
}

/** The proxy's RSS growth, KiB, per connection open through it (undefined for direct). */
async function memoryPerConnection(t: Running, db: PostgresServer): Promise<number | undefined> {
  const pids = t.pids();
  if (pids.length === 0) return undefined;
  const rss = () => pids.reduce((n, p) => n + memory(p).rssMiB, 0);
  const settle = () => new Promise((r) => setTimeout(r, 500));
  await settle();
  const before = rss();
  const clients = Array.from(
    { length: IDLE_CONNECTIONS },
    () =>
      new pg.Client({
        host: '127.0.0.1',
        port: t.port,
        database: db.database,
        user: db.user,
        password: t.password ?? '',
      }),
  );
  try {
    for (const c of clients) {
      await c.connect();
      await c.query('SELECT 1');
    }
    await settle();
    return ((rss() - before) * 1024) / IDLE_CONNECTIONS;
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }
}

/** `SELECT … FROM (VALUES (0,'v0'),(1,'v1'),…)` of about `bytes` bytes. */
function valuesQuery(bytes: number): string {
  const rows: string[] = [];
  let size = 40;
  for (let i = 0; size < bytes; i++) {
    const row = `(${i},'v${i}')`;
    rows.push(row);
    size += row.length + 1;
  }
  return `SELECT count(*) FROM (VALUES ${rows.join(',')}) AS v(a, b)`;
}

interface Stall {
  readonly bytes: number;
  readonly queryMs: number;
  readonly probeMaxMs: number;
  readonly outcome: string;
}

/** The longest wait of a `SELECT 1` loop on one connection while another sends a long query string. */
async function parseStall(
  port: number,
  db: PostgresServer,
  password: string | undefined,
  bytes: number,
): Promise<Stall> {
  const conn = () =>
    new pg.Client({
      host: '127.0.0.1',
      port,
      database: db.database,
      user: db.user,
      password: password ?? '',
    });
  const probe = conn();
  const big = conn();
  await probe.connect();
  await big.connect();
  try {
    const text = valuesQuery(bytes);
    let running = true;
    let probeMaxMs = 0;
    const loop = (async () => {
      while (running) {
        const t0 = performance.now();
        await probe.query('SELECT 1');
        probeMaxMs = Math.max(probeMaxMs, performance.now() - t0);
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    probeMaxMs = 0;
    const t0 = performance.now();
    let outcome = 'ran';
    try {
      await big.query(text);
    } catch (err) {
      outcome = `refused (${(err as { code?: string }).code ?? 'error'})`;
    }
    const queryMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
    running = false;
    await loop;
    return { bytes: Buffer.byteLength(text), queryMs, probeMaxMs, outcome };
  } finally {
    await probe.end();
    await big.end();
  }
}

const STALL_SIZES = [16 * 1024, 64 * 1024, 250 * 1024, 1024 * 1024];

async function stallTable(env: Env): Promise<string> {
  const rows: (string | number)[][] = [];
  for (const name of ['direct', 'sidecar'] as const) {
    const t = await start(name, env);
    try {
      for (const size of STALL_SIZES) {
        const s = await parseStall(t.port, env.db, t.password, size);
        log(
          `stall ${name} ${s.bytes} B: query ${s.queryMs.toFixed(0)} ms, probe max ${s.probeMaxMs.toFixed(0)} ms, ${s.outcome}`,
        );
        rows.push([
          name,
          `${(s.bytes / 1024).toFixed(0)} KiB`,
          s.outcome,
          s.queryMs.toFixed(0),
          s.probeMaxMs.toFixed(0),
        ]);
      }
    } finally {
      await t.stop();
    }
  }
  return table(
    ['target', 'query string', 'outcome', 'query ms', 'longest SELECT 1 on another connection, ms'],
    rows,
  );
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const rounds = Number(arg('--rounds') ?? (quick ? 1 : 3));
  const seconds = Number(arg('--seconds') ?? (quick ? 3 : 10));
  const only = arg('--only')?.split(',') as TargetName[] | undefined;
  const profile = arg('--profile') as Mode | undefined;
  const targets: TargetName[] =
    only ?? (process.argv.includes('--pipe') ? [...TARGETS] : ['direct', 'pgbouncer', 'sidecar']);
  const write = !quick && !only && !profile && !process.argv.includes('--no-write');
  ensureTools({ pgbench: 'postgresql-contrib', pgbouncer: 'pgbouncer' }, log);
  const machine = machineInfo();
  log(`machine: ${formatMachine(machine)}`);
  const pgbouncerVersion = spawnSync('/usr/sbin/pgbouncer', ['--version'], { encoding: 'utf8' })
    .stdout.split('\n')[0]
    ?.trim();
  const root = mkdtempSync(join(tmpdir(), 'chaperone-bench-pg-'));
  log('starting PostgreSQL and the control plane…');
  const db = await startPostgres({ log });
  const cp = await startControlPlane({ log });
  try {
    log(`PostgreSQL ${db.version}; pgbench -i -s ${SCALE}…`);
    const init = spawnSync(
      'pgbench',
      ['-i', '-q', '-s', String(SCALE), '-h', '127.0.0.1', '-p', String(db.port), '-U', db.user, db.database],
      { env: { ...process.env, PGPASSWORD: db.password }, encoding: 'utf8' },
    );
    if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
    const fx = createFixtures(cp);
    const base = sidecarBase(root, cp, fx);
    writeFileSync(base.policyFile, POLICY);
    const secretsDir = join(root, 'databases');
    mkdirSync(join(secretsDir, db.database), { recursive: true });
    writeFileSync(join(secretsDir, db.database, 'url'), db.url);
    const env: Env = { cp, db, root, base, secretsDir, nodeFlags: [] };

    if (process.argv.includes('--stall-only')) {
      console.log(await stallTable(env));
      return;
    }

    if (profile) {
      const profDir = join(root, 'profile');
      mkdirSync(profDir);
      const t = await startGuard({ ...env, nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] });
      const s = await measure(t, profile, seconds, db);
      await t.stop();
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (!file) throw new Error('the sidecar wrote no CPU profile');
      log(`${profile}: ${s.tps.toFixed(0)} tps, ${s.cpuUs?.toFixed(1)} µs CPU per statement`);
      console.log(
        formatSummary(summariseProfile(join(profDir, file)), s.statements, Number(arg('--top') ?? 30)),
      );
      return;
    }

    const samples = new Map<string, Sample[]>();
    const memories = new Map<string, number[]>();
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const name of order) {
        const t = await start(name, env);
        try {
          const modes = (round + targets.indexOf(name)) % 2 === 0 ? MODES : [...MODES].reverse();
          for (const mode of modes) {
            const s = await measure(t, mode, seconds, db);
            const key = `${name}/${mode}`;
            samples.set(key, [...(samples.get(key) ?? []), s]);
            log(
              `round ${round + 1} ${key}: ${s.tps.toFixed(0)} tps${s.cpuUs !== undefined ? `, ${s.cpuUs.toFixed(1)} µs CPU/statement` : ''}${s.failed ? `, ${s.failed} failed` : ''}`,
            );
          }
          const mem = await memoryPerConnection(t, db);
          if (mem !== undefined) memories.set(name, [...(memories.get(name) ?? []), mem]);
        } finally {
          await t.stop();
        }
      }
    }
    const med = (key: string, f: (s: Sample) => number | undefined) => {
      const v = (samples.get(key) ?? []).map(f).filter((x): x is number => x !== undefined);
      return v.length ? median(v) : Number.NaN;
    };
    const rows: (string | number)[][] = [];
    for (const mode of MODES) {
      const direct = med(`direct/${mode}`, (s) => s.tps);
      const bouncer = med(`pgbouncer/${mode}`, (s) => s.tps);
      for (const name of targets) {
        const key = `${name}/${mode}`;
        const tps = med(key, (s) => s.tps);
        const cpu = med(key, (s) => s.cpuUs);
        const mems = memories.get(name) ?? [];
        const mem = mems.length ? median(mems) : Number.NaN;
        rows.push([
          `\`-M ${mode}\``,
          name in RELAYS ? RELAYS[name as RelayName].label : name,
          tps.toFixed(0),
          ratio(tps, direct),
          Number.isNaN(bouncer) ? 'n/a' : ratio(tps, bouncer),
          Number.isNaN(cpu) ? '—' : cpu.toFixed(1),
          Number.isNaN(mem) ? '—' : mem.toFixed(0),
        ]);
      }
    }
    const header = [
      'mode',
      'target',
      'tps',
      'vs direct',
      'vs PgBouncer',
      'proxy CPU µs/statement',
      'proxy RSS KiB per connection',
    ];
    const result = table(header, rows);
    console.log(result);
    const target = (mode: Mode, goal: number) => {
      const r = med(`sidecar/${mode}`, (s) => s.tps) / med(`pgbouncer/${mode}`, (s) => s.tps);
      const floors = ['pipe-audit', 'pipe-audit-batched'].map((f) => med(`${f}/${mode}`, (s) => s.tps));
      const known = floors.filter((f) => !Number.isNaN(f));
      const floor = known.length ? Math.max(...known) / med(`pgbouncer/${mode}`, (s) => s.tps) : Number.NaN;
      const floorNote = Number.isNaN(floor)
        ? ''
        : ` (the better relay with one audit event per statement: ${floor.toFixed(2)}×${floor < goal ? ', under the target: out of reach for a guard that records every statement' : ''})`;
      return `${mode}: sidecar at ${r.toFixed(2)}× PgBouncer (target ≥ ${goal.toFixed(1)}×) — ${r >= goal ? 'met' : 'missed'}${floorNote}`;
    };
    const verdicts = [target('prepared', 1), target('simple', 0.8)];
    for (const v of verdicts) log(v);
    const stall = write ? await stallTable(env) : '';
    if (write) {
      const text = [
        '## PostgreSQL guard: pgbench -S',
        '',
        `Machine: ${formatMachine(machine)}. PostgreSQL ${db.version}, ${pgbouncerVersion ?? 'PgBouncer'} (session mode, trust from loopback), the sidecar bundle with a two-rule SQL policy and its audit spool. Anchor: the same server reached directly, and through PgBouncer, in the same run.`,
        '',
        `\`pgbench -n -S -c ${CLIENTS} -j ${THREADS} -T ${seconds}\`, scale ${SCALE}, ${rounds} rounds (targets and modes in alternating order, every proxy a fresh process each round), medians. One statement per transaction. Proxy CPU is utime + stime from /proc over the run, per statement; RSS per connection is the proxy's RSS growth, after its runs, when ${IDLE_CONNECTIONS} more connections are opened through it (one SELECT each), over ${IDLE_CONNECTIONS} (one figure per target, shown in both modes' rows).`,
        '',
        result,
        '',
        `Targets (issue 17): ${verdicts.join('; ')}.`,
        '',
        '### Parse stall',
        '',
        "The SQL parser runs on the event loop every connection of the pod shares. One connection sends `SELECT count(*) FROM (VALUES (0,'v0'),…)` strings of growing size (the worst shape: a parse-tree node per literal) while another runs `SELECT 1` in a loop; its longest wait is the stall. Strings over `--max-sql-parse-bytes` (256 KiB by default) are refused unread (SQLSTATE 54000).",
        '',
        stall,
        '',
        "The diagnostic rows are floors. The Node relay pipes bytes and decodes nothing. The relays with audit events do only what no guard may skip: for each statement, one audit event (a fixed statement event, placed in the hash chain and written to disk) before the server's answer goes on; they read nothing but the length prefixes of the server's messages. The first writes each event synchronously to a real audit spool, as the sidecar does; the second writes all the events of one event-loop turn together (a group commit) and lets the answers behind them go after that write. A guard that keeps one recorded event per statement cannot pass the better of the two on this machine.",
        '',
        'Reproduce: `node bench/src/postgres-pgbench.ts` (add `--pipe` for the diagnostic rows, `--profile simple|prepared` for a CPU profile of the sidecar, `--stall-only` for the parse stall alone).',
      ].join('\n');
      writeFileSync(fileURLToPath(new URL('../results/postgres.md', import.meta.url)), `${text}\n`);
      if (!process.argv.includes('--no-docs')) log(`wrote ${writeReport()}`);
    }
  } finally {
    await cp.stop();
    await db.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
