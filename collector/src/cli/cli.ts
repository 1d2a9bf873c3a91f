/**
 * The collector's commands in the one `chaperone` CLI:
 *   chaperone collector                     run the collector
 *   chaperone audit query [filters]         search events (table, json, jsonl)
 *   chaperone audit tail [-f] [filters]     the newest events, then follow
 *   chaperone audit alerts                  integrity alerts
 *   chaperone audit report                  the access review (csv, json, markdown)
 *   chaperone audit verify                  re-check the whole store offline, per sidecar
 *   chaperone replay <session>              a session's events in order, then its recording played
 *   chaperone recording export <session>    the recording as an asciicast v2 file for asciinema
 *   chaperone approvals list|show|approve|deny, grants list|revoke   approvers' verbs
 * Registering is cheap: the collector and the store (node:sqlite, pg, jose) are
 * imported by the actions that use them.
 */
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AuditEvent,
  ChaperoneError,
  type CliContext,
  type ConfigOf,
  type RegisterCommands,
  string,
  UsageError,
  url,
  withConfigOptions,
} from '@chaperone/shared';
import { type Command, Option } from 'commander';
import { COLLECTOR_SCHEMA, inClusterApiServer } from '../config.ts';
import type { FILTER_PARAMS } from '../events/event-filter.ts';
import { rfc3339ToMicros } from '../events/time.ts';
import type { ChainReport } from '../integrity/audit-verify.ts';
import { type ApiClient, createApiClient } from './api-client.ts';
import { registerApprovalCommands } from './approval-commands.ts';
import { castDuration, parseCast, playCast } from './asciicast-play.ts';
import { summary, TABLE_HEADER, tableRows } from './event-format.ts';
import { safeJson, visible } from './terminal-safe.ts';

const CLIENT_SCHEMA = {
  collectorUrl: url({
    description: "Base URL of the collector's query listener (--query-listen-port, not the ingest port)",
    default: 'http://127.0.0.1:8444',
    protocols: ['http', 'https'],
  }),
  token: string({ description: 'Bearer token for the query API', secret: true }),
  tokenFile: string({ description: 'File holding the bearer token for the query API' }),
  caFile: string({ description: 'CA certificate for an https collector URL' }),
} as const;

const VERIFY_SCHEMA = {
  storage: COLLECTOR_SCHEMA.storage,
  dataDir: COLLECTOR_SCHEMA.dataDir,
  postgresUrl: COLLECTOR_SCHEMA.postgresUrl,
  checkpointPublicKey: string({
    description: 'Ed25519 public key (PEM) that checkpoints of the chain heads are signed with',
  }),
  checkpointKeyFile: COLLECTOR_SCHEMA.checkpointKeyFile,
  checkpointLog: COLLECTOR_SCHEMA.checkpointLog,
} as const;

/**
 * Environment for a command: settings of the collector's other commands in the
 * environment (e.g. inside the collector's pod, or an operator's shell) are not
 * errors there.
 */
function envFor(ctx: CliContext, schema: object): CliContext {
  const own = new Set(Object.keys(schema));
  const foreign = new Set(
    [...Object.keys(COLLECTOR_SCHEMA), ...Object.keys(CLIENT_SCHEMA)]
      .filter((k) => !own.has(k))
      .map((k) => `CHAPERONE_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`),
  );
  return { ...ctx, env: Object.fromEntries(Object.entries(ctx.env).filter(([k]) => !foreign.has(k))) };
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** Filter flags → query parameters (same names as the HTTP API). */
const FILTER_FLAGS: readonly [flag: string, param: (typeof FILTER_PARAMS)[number], help: string][] = [
  ['--namespace <ns>', 'namespace', 'pod namespace (repeatable)'],
  ['--pod <name>', 'pod', 'pod name (repeatable)'],
  ['--service-account <name>', 'serviceAccount', 'service account (repeatable)'],
  ['--protocol <p>', 'protocol', 'kubernetes, exec, postgres or system (repeatable)'],
  ['--verb <verb>', 'verb', 'request verb, e.g. get, delete, create (repeatable)'],
  ['--resource <r>', 'resource', 'resource, e.g. secrets or pods/exec (repeatable)'],
  ['--decision <action>', 'decision', 'allow, deny, mask or review (repeatable)'],
  ['--rule <name>', 'rule', 'rule that decided (repeatable)'],
  ['--session <id>', 'sessionId', 'session id (repeatable)'],
  ['--sidecar <id>', 'sidecarId', 'sidecar chain id (repeatable)'],
  ['--user <name>', 'user', 'requesting user (repeatable)'],
];

function addFilterOptions(cmd: Command): Command {
  for (const [flag, , help] of FILTER_FLAGS) cmd.option(flag, help, collect, []);
  return cmd
    .option('--since <time>', 'from this time: RFC 3339 or a duration ago (15m, 2h, 7d)')
    .option('--until <time>', 'before this time: RFC 3339 or a duration ago')
    .option('--search <text>', 'case-insensitive text in the request URI, command line or SQL');
}

function filterParams(opts: Record<string, unknown>): URLSearchParams {
  const p = new URLSearchParams();
  for (const [flag, param] of FILTER_FLAGS) {
    const key = flag
      .replace(/^--/, '')
      .split(' ')[0]
      ?.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as string;
    for (const v of (opts[key] as string[] | undefined) ?? []) p.append(param, v);
  }
  if (typeof opts.since === 'string') p.set('since', opts.since);
  if (typeof opts.until === 'string') p.set('until', opts.until);
  if (typeof opts.search === 'string') p.set('q', opts.search);
  return p;
}

const outputOption = () =>
  new Option('-o, --output <format>', 'table, json or jsonl')
    .choices(['table', 'json', 'jsonl'])
    .default('table');

/** Prints a line of text; control characters in it are shown, not sent to the terminal (terminal-safe.ts). */
function print(line: string): void {
  process.stdout.write(`${visible(line)}\n`);
}

/** Prints a value as JSON with nothing in it a terminal would act on. */
function printJson(value: unknown, indent?: number): void {
  process.stdout.write(`${safeJson(value, indent)}\n`);
}

function positiveInt(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a whole number of at least 1`);
  return n;
}

interface EventsPage {
  items: AuditEvent[];
  nextCursor?: string;
}

export const register: RegisterCommands = (program, ctx) => {
  // --- chaperone collector -------------------------------------------------
  const collectorCmd = program
    .command('collector')
    .description('Central audit store: authenticated ingest, query API, session replay, forwarding, metrics');
  const apiServer = inClusterApiServer(ctx.env);
  const collectorCtx: CliContext =
    apiServer && !ctx.env.CHAPERONE_KUBE_API_SERVER
      ? { ...ctx, env: { ...ctx.env, CHAPERONE_KUBE_API_SERVER: apiServer } }
      : ctx;
  const collectorConfig = withConfigOptions(collectorCmd, COLLECTOR_SCHEMA, collectorCtx);
  collectorCmd.action(async (opts: Record<string, unknown>) => {
    const config = collectorConfig(opts);
    const [{ createLogger }, { createRegistry }, { startCollector }, { installLastResortNet }] =
      await Promise.all([
        import('@chaperone/shared/logger'),
        import('@chaperone/shared/metrics'),
        import('../collector.ts'),
        import('../last-resort.ts'),
      ]);
    const logger = createLogger({
      name: 'collector',
      level: config.logLevel,
      base: { version: ctx.version },
    });
    installLastResortNet(logger);
    const registry = createRegistry({ component: 'collector' });
    const running = await startCollector(config, { logger, registry, env: ctx.env });
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        logger.info({ signal }, 'shutting down: closing connections, committing queued batches');
        running.close().then(resolve, resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    logger.info('collector stopped');
  });

  // --- chaperone audit ... -------------------------------------------------
  const audit = program.command('audit').description('Search, follow and verify the audit log');

  const query = addFilterOptions(
    audit.command('query').description('Search events, newest first (same filters as the query API)'),
  )
    .option('--limit <n>', 'print at most this many events', '50')
    .option('--all', 'page through every matching event')
    .addOption(outputOption());
  const queryConfig = withConfigOptions(query, CLIENT_SCHEMA, envFor(ctx, CLIENT_SCHEMA));
  query.action(async (opts: Record<string, unknown>) => {
    const api = createApiClient(queryConfig(opts));
    const want = opts.all ? Number.POSITIVE_INFINITY : positiveInt('--limit', String(opts.limit));
    const params = filterParams(opts);
    const output = String(opts.output);
    const events: AuditEvent[] = [];
    let cursor: string | undefined;
    if (output === 'table') print(TABLE_HEADER);
    do {
      const p = new URLSearchParams(params);
      p.set('limit', String(Math.min(1000, want - events.length)));
      if (cursor) p.set('cursor', cursor);
      const page = await api.get<EventsPage>('/v1/events', p);
      if (output === 'table') for (const line of tableRows(page.items)) print(line);
      if (output === 'jsonl') for (const e of page.items) printJson(e);
      events.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor && events.length < want);
    if (output === 'json') printJson(events, 2);
  });

  const tail = addFilterOptions(
    audit
      .command('tail')
      .description('Print the newest events; with -f keep printing new ones as they are stored'),
  )
    .option('-n, --lines <n>', 'how many of the newest events to print first', '10')
    .option('-f, --follow', 'keep following new events')
    .option('--interval <ms>', 'poll interval while following', '1000')
    .addOption(
      new Option('-o, --output <format>', 'table or jsonl').choices(['table', 'jsonl']).default('table'),
    );
  const tailConfig = withConfigOptions(tail, CLIENT_SCHEMA, envFor(ctx, CLIENT_SCHEMA));
  tail.action(async (opts: Record<string, unknown>) => {
    const api = createApiClient(tailConfig(opts));
    const params = filterParams(opts);
    const table = opts.output === 'table';
    const show = (events: readonly AuditEvent[]) => {
      if (table) for (const line of tableRows(events)) print(line);
      else for (const e of events) printJson(e);
    };
    const seen = new Set<string>();
    const remember = (id: string) => {
      seen.add(id);
      if (seen.size > 20_000) seen.delete(seen.values().next().value as string);
    };
    /** Events committed after `cursor` ('end': from the current end of the store), in commit order. */
    const arrivals = (cursor: string) => {
      const p = new URLSearchParams(params);
      p.set('order', 'arrival');
      p.set('cursor', cursor);
      p.set('limit', '1000');
      return api.get<{ items: AuditEvent[]; nextCursor: string }>('/v1/events', p);
    };
    // Mark the end of the store first, so nothing committed after the snapshot below is missed.
    const start = await arrivals('end');
    const first = new URLSearchParams(params);
    first.set('limit', String(positiveInt('--lines', String(opts.lines))));
    const newest = (await api.get<EventsPage>('/v1/events', first)).items.reverse();
    if (table) print(TABLE_HEADER);
    show(newest);
    for (const e of newest) remember(e.auditID);
    if (!opts.follow) return;
    const interval = positiveInt('--interval', String(opts.interval));
    let pending = start.items;
    let cursor = start.nextCursor;
    let stopped = false;
    process.once('SIGINT', () => {
      stopped = true;
    });
    while (!stopped) {
      const fresh = pending.filter((e) => !seen.has(e.auditID));
      show(fresh);
      for (const e of fresh) remember(e.auditID);
      const page = await arrivals(cursor);
      pending = page.items;
      cursor = page.nextCursor;
      if (pending.length === 0) await sleep(interval);
    }
  });

  const alerts = audit
    .command('alerts')
    .description('List integrity alerts (tampering, gaps, reordering, forged identities), newest first')
    .option('--sidecar <id>', 'only this chain')
    .option('--namespace <ns>', 'only this namespace')
    .option('--kind <kind>', 'only this kind')
    .option('--since <time>', 'RFC 3339 or a duration ago')
    .option('--limit <n>', 'at most this many', '100')
    .addOption(
      new Option('-o, --output <format>', 'table or json').choices(['table', 'json']).default('table'),
    );
  const alertsConfig = withConfigOptions(alerts, CLIENT_SCHEMA, envFor(ctx, CLIENT_SCHEMA));
  alerts.action(async (opts: Record<string, unknown>) => {
    const api = createApiClient(alertsConfig(opts));
    const p = new URLSearchParams({ limit: String(positiveInt('--limit', String(opts.limit))) });
    if (opts.sidecar) p.set('sidecarId', String(opts.sidecar));
    if (opts.namespace) p.set('namespace', String(opts.namespace));
    if (opts.kind) p.set('kind', String(opts.kind));
    if (opts.since) p.set('since', String(opts.since));
    const res = await api.get<{
      items: {
        detectedAt: string;
        kind: string;
        namespace: string;
        pod: string;
        sidecarId: string;
        message: string;
      }[];
    }>('/v1/alerts', p);
    if (opts.output === 'json') {
      printJson(res.items, 2);
      return;
    }
    for (const a of res.items)
      print(`${a.detectedAt}  ${a.kind.padEnd(20)}  ${a.namespace}/${a.pod}  ${a.message}`);
    if (res.items.length === 0) print('no integrity alerts');
  });

  const report = audit
    .command('report')
    .description(
      'The access review: per identity (namespace/service account), what it read, changed, was denied, had approved or masked, by whole UTC days',
    )
    .option('--since <time>', 'from this time: RFC 3339 or a duration ago (7d, 30d)', '30d')
    .option('--until <time>', 'before this time: RFC 3339 or a duration ago')
    .option('--namespace <ns>', 'only this namespace (repeatable)', collect, [])
    .option('--service-account <name>', 'only this service account (repeatable)', collect, [])
    .addOption(
      new Option('--format <format>', 'csv, json or markdown')
        .choices(['csv', 'json', 'markdown'])
        .default('markdown'),
    );
  const reportConfig = withConfigOptions(report, CLIENT_SCHEMA, envFor(ctx, CLIENT_SCHEMA));
  report.action(async (opts: Record<string, unknown>) => {
    const api = createApiClient(reportConfig(opts));
    const p = new URLSearchParams({ since: String(opts.since), format: String(opts.format) });
    if (typeof opts.until === 'string') p.set('until', opts.until);
    for (const ns of opts.namespace as string[]) p.append('namespace', ns);
    for (const sa of opts.serviceAccount as string[]) p.append('serviceAccount', sa);
    if (opts.format === 'json') {
      printJson(await api.get('/v1/report', p), 2);
      return;
    }
    const text = await api.text('/v1/report', p);
    // Line by line, each shown and not interpreted (terminal-safe.ts): resources and verbs are the agents' words.
    for (const line of text.replace(/\r?\n$/, '').split(/\r?\n/)) print(line);
  });

  const verify = audit
    .command('verify')
    .description('Re-check every stored hash chain offline (reads the store directly), per sidecar')
    .addOption(
      new Option('-o, --output <format>', 'table or json').choices(['table', 'json']).default('table'),
    );
  const verifyConfig = withConfigOptions(verify, VERIFY_SCHEMA, envFor(ctx, VERIFY_SCHEMA));
  verify.action(async (opts: Record<string, unknown>) => {
    const c = verifyConfig(opts) as ConfigOf<typeof VERIFY_SCHEMA>;
    const [{ openStore }, { verifyStore }, { loadCheckpoints }] = await Promise.all([
      import('../collector.ts'),
      import('../integrity/audit-verify.ts'),
      import('../integrity/checkpoints-verify.ts'),
    ]);
    const store = await openStore({ ...c, postgresPoolSize: 2 } as unknown as Parameters<
      typeof openStore
    >[0]);
    const reports: ChainReport[] = [];
    let invalidCheckpoints = 0;
    try {
      const checkpoints = await loadCheckpoints(c, store);
      const note = opts.output === 'table' ? print : (l: string) => process.stderr.write(`${l}\n`);
      for (const w of checkpoints.warnings) note(`warning: ${w}`);
      const cs = checkpoints.check?.summary();
      if (cs) {
        note(
          `checkpoints: ${cs.verified} verified with key ${cs.kid} (${cs.fromLog} from the log, ${cs.fromStore} more in the store), ${cs.chains} chains${cs.otherKey ? `, ${cs.otherKey} signed by other keys (not used)` : ''}`,
        );
        for (const m of cs.invalid) note(`CHECKPOINT INVALID: ${m}`);
        invalidCheckpoints = cs.invalid.length;
      }
      for await (const r of verifyStore(store, checkpoints.check)) {
        reports.push(r);
        if (opts.output === 'table') {
          const o = r.owner;
          print(
            `${r.status.toUpperCase().padEnd(8)}  ${r.sidecarId}  ${o.namespace}/${o.pod}  ${r.events} events, head seq ${r.head.seq}`,
          );
          for (const p of r.problems)
            print(
              `          ${p.recordedAtIngest ? 'recorded at ingest' : 'CHANGED AFTER INGEST'}: ${p.kind}: ${p.message}`,
            );
        }
      }
    } finally {
      await store.close();
    }
    if (opts.output === 'json') printJson(reports, 2);
    const tampered = reports.filter((r) => r.status === 'tampered').length;
    const withAlerts = reports.filter((r) => r.status === 'alerts').length;
    if (opts.output === 'table')
      print(
        `${reports.length} chains: ${reports.length - tampered - withAlerts} intact, ${withAlerts} with alerts recorded at ingest, ${tampered} changed after ingest`,
      );
    if (invalidCheckpoints > 0 && tampered === 0)
      throw new ChaperoneError(
        'validation_failed',
        `${invalidCheckpoints} checkpoint${invalidCheckpoints === 1 ? ' does' : 's do'} not verify: the store or the checkpoint log has been tampered with`,
      );
    if (tampered > 0)
      throw new ChaperoneError(
        'validation_failed',
        `${tampered} chain${tampered === 1 ? ' was' : 's were'} changed after ingest: the store has been tampered with`,
      );
  });

  // --- chaperone replay <session> -------------------------------------------
  const replay = program
    .command('replay')
    .description(
      'Replay a session: its events in order, then its exec recording (asciicast v2) played in this terminal',
    )
    .argument('<session>', 'session id')
    .option('--speed <n>', 'play this many times faster (0.5 plays at half speed)', '1')
    .option('--max-idle <seconds>', 'shorten every pause in the recording to at most this long')
    .option('--cat', 'print the recording at once instead of in real time')
    .option('--no-wait', 'the same as --cat')
    .option('--recording <file>', 'save the recording to this file instead of playing it (asciicast v2)')
    .addOption(new Option('-o, --output <format>', 'text or json').choices(['text', 'json']).default('text'))
    .addHelpText(
      'after',
      `
The recording is the agent's terminal output. Colours, cursor movement, erasing and
full-screen programs replay as the agent saw them; what could act beyond the replay is
not passed to this terminal and is counted at the end: sequences that make a terminal
answer (status and attribute reports), window titles, the clipboard, hyperlinks and
every other OSC/DCS/APC string, keyboard, mouse and paste modes, resets, erasing the
scrollback, C0 controls other than BS, HT, LF and CR, and C1 controls. Modes the replay
may leave set (colours, the alternate screen, scroll region, hidden cursor) are undone
at the end. 'chaperone recording export' writes the recording exactly as stored;
'asciinema play' replays it raw, escape sequences included.

When standard output is not a terminal, the recording is printed at once.`,
    );
  const replayConfig = withConfigOptions(replay, CLIENT_SCHEMA, envFor(ctx, CLIENT_SCHEMA));
  replay.action(async (session: string, opts: Record<string, unknown>) => {
    const speed = positiveNumber('--speed', String(opts.speed), 1000);
    const maxIdle =
      opts.maxIdle === undefined ? undefined : positiveNumber('--max-idle', String(opts.maxIdle), 86_400);
    const api = createApiClient(replayConfig(opts));
    const id = encodeURIComponent(session);
    const s = await api.get<{ sessionId: string; recording: boolean; events: AuditEvent[] }>(
      `/v1/sessions/${id}`,
    );
    if (opts.output === 'json') printJson(s, 2);
    else {
      const t0 = rfc3339ToMicros(s.events[0]?.requestReceivedTimestamp ?? '1970-01-01T00:00:00Z');
      const first = s.events[0]?.chaperone.source;
      print(`session ${s.sessionId}: ${s.events.length} events from ${first?.namespace}/${first?.pod}`);
      for (const e of s.events) {
        const dt = ((rfc3339ToMicros(e.requestReceivedTimestamp) - t0) / 1e6).toFixed(3);
        const d = e.chaperone.decision;
        print(
          `+${dt.padStart(9)}s  ${d.action.padEnd(6)}  ${summary(e)}${d.action === 'allow' ? '' : `  [${d.rule}]`}`,
        );
      }
      if (!s.recording) print('recording: none');
    }
    if (!s.recording) {
      if (opts.recording) throw new ChaperoneError('not_found', `session ${session} has no recording`);
      return;
    }
    const text = await fetchRecording(api, session);
    if (opts.recording) {
      writeFileSync(String(opts.recording), text);
      if (opts.output !== 'json')
        print(`recording saved to ${String(opts.recording)}: asciinema play ${String(opts.recording)}`);
      return;
    }
    if (opts.output === 'json') return;
    const cast = parseCast(text);
    const realTime = !opts.cat && opts.wait !== false && process.stdout.isTTY === true;
    const maxIdleMs = maxIdle === undefined ? undefined : maxIdle * 1000;
    const seconds = castDuration(cast, maxIdleMs) / speed;
    print(
      `recording: ${cast.width}x${cast.height}, ${realTime ? `${seconds.toFixed(1)} s at speed ${speed} (--cat prints it at once)` : 'printed at once'}; controls that could act beyond the replay are not passed on (see --help)`,
    );
    print('--- recording ---');
    const stop = new AbortController();
    const interrupt = () => stop.abort();
    process.once('SIGINT', interrupt);
    let r: Awaited<ReturnType<typeof playCast>>;
    try {
      r = await playCast(cast, {
        realTime,
        speed,
        ...(maxIdleMs === undefined ? {} : { maxIdleMs }),
        write: (t) => process.stdout.write(t),
        signal: stop.signal,
      });
    } finally {
      process.off('SIGINT', interrupt);
    }
    if (!r.atLineStart) process.stdout.write('\r\n');
    const notes = [
      ...r.markers,
      ...(r.dropped > 0 ? [`${r.dropped} control sequences not passed to this terminal`] : []),
    ];
    print(
      `--- ${r.interrupted ? 'replay interrupted' : 'end of recording'}${notes.length ? `: ${notes.join('; ')}` : ''} ---`,
    );
    if (r.interrupted) process.exitCode = 130;
  });

  // --- chaperone recording export <session> ----------------------------------
  const recording = program.command('recording').description('Session recordings (asciicast v2)');
  const exportCmd = recording
    .command('export')
    .description("Write a session's recording as an asciicast v2 file, exactly as stored, for asciinema")
    .argument('<session>', 'session id')
    .requiredOption(
      '-o, --output <file>',
      'the .cast file to write (- for standard output, when it is not a terminal)',
    )
    .addHelpText(
      'after',
      `
'asciinema play FILE' and 'asciinema cat FILE' (asciinema 2.2 reads asciicast v1 and v2) write
the agent's terminal output to your terminal raw, escape sequences included: for a session
you do not trust, replay it with 'chaperone replay', which passes on only what is safe.`,
    );
  const exportConfig = withConfigOptions(exportCmd, CLIENT_SCHEMA, envFor(ctx, CLIENT_SCHEMA));
  exportCmd.action(async (session: string, opts: Record<string, unknown>) => {
    const out = String(opts.output);
    if (out === '-' && process.stdout.isTTY)
      throw new UsageError(
        "standard output is a terminal: the recording would act on it raw. Give a file (-o FILE), or use 'chaperone replay'",
      );
    const api = createApiClient(exportConfig(opts));
    const text = await fetchRecording(api, session);
    parseCast(text);
    if (out === '-') {
      process.stdout.write(text);
      return;
    }
    writeFileSync(out, text);
    print(`wrote ${Buffer.byteLength(text)} bytes to ${out} (asciicast v2): asciinema play ${out}`);
  });

  // --- chaperone approvals … / grants … ------------------------------------
  registerApprovalCommands(program, (cmd) =>
    withConfigOptions(cmd, CLIENT_SCHEMA, envFor(ctx, CLIENT_SCHEMA)),
  );
};

/** The session's recording, as the collector stores it. */
async function fetchRecording(api: ApiClient, session: string): Promise<string> {
  const res = await api.raw(`/v1/sessions/${encodeURIComponent(session)}/recording`);
  if (res.status === 404) throw new ChaperoneError('not_found', `session ${session} has no recording`);
  if (res.status !== 200)
    throw new ChaperoneError('unavailable', `fetching the recording: HTTP ${res.status}`);
  return res.body;
}

function positiveNumber(name: string, raw: string, max: number): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || n > max)
    throw new UsageError(`${name} must be a number above 0 and at most ${max}`);
  return n;
}
