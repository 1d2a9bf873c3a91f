/**
 * `chaperone local`: one guarded session on a workstation. Starts the
 * sidecar's guard in this process with the user's kubeconfig context as its
 * upstream (main.ts `runSidecar`, the same guard as in a pod), ships its
 * audit events to the embedded collector (or to `--collector-url`), writes
 * the agent's kubeconfig, runs the command with an environment that holds
 * none of the user's credentials, and prints what the guard decided when the
 * command ends.
 */
import { spawn } from 'node:child_process';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { ChaperoneError, ConfigError, parseConfig, type UserInfo } from '@chaperone/shared';
import { kubeconfigConnection } from '@chaperone/shared/kube';
import { createLogger } from '@chaperone/shared/logger';
import { readSpoolDir } from '../audit/spool.ts';
import { type SidecarConfig, sidecarSchema } from '../config.ts';
import type { Identity } from '../identity.ts';
import { runSidecar } from '../main.ts';
import { writeAtomic } from '../write-atomic.ts';
import { agentEnvironment } from './agent-env.ts';
import { agentKubeconfig } from './agent-kubeconfig.ts';
import { sessionEvents } from './audit-query.ts';
import { type EmbeddedCollector, startEmbeddedCollector } from './embedded-collector.ts';
import { freePort } from './free-port.ts';
import { checkHidingWorks, directoriesToHide, hiddenCommand } from './hide-kubeconfig.ts';
import { collectorTokenIdentity, localIdentity, upstreamUser } from './local-identity.ts';
import { createLocalIssuer } from './local-issuer.ts';
import { lookupUser, runAsCommand, runAsEnv } from './run-as.ts';
import { claimStateDir, endSessionRecord, writeSessionRecord } from './session-record.ts';
import { stateLayout } from './state-dir.ts';
import { formatSummary, type SessionSummary, summarize } from './summary.ts';
import { WORKSTATION_POLICY } from './workstation-policy.ts';

export interface LocalOptions {
  /** The command and its arguments; empty: the user's shell. */
  readonly command: readonly string[];
  readonly context?: string;
  /** A kubeconfig file to use instead of $KUBECONFIG / ~/.kube/config. */
  readonly kubeconfig?: string;
  readonly policyFile?: string;
  /** `name=postgresql://…` */
  readonly databases: readonly string[];
  readonly stateDir: string;
  readonly collectorUrl?: string;
  readonly collectorTokenFile?: string;
  readonly hideKubeconfig: boolean;
  /** Run the command as this user (chaperone local runs as root). */
  readonly runAs?: string;
  /** How to run `chaperone` for the embedded collector (Node.js arguments before the subcommand). */
  readonly cli: readonly string[];
  /** The user's environment. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Where messages for the user go (stderr). */
  readonly say: (line: string) => void;
}

export interface LocalResult {
  readonly exitCode: number;
  /** Undefined when events went to a collector this session cannot query. */
  readonly summary?: SessionSummary;
  readonly sidecarId: string;
}

/** The kubeconfig files kubectl would read. */
export function kubeconfigFiles(
  env: Readonly<Record<string, string | undefined>>,
  flag?: string,
): { files: string[]; fromEnv: boolean } {
  if (flag) return { files: [resolve(flag)], fromEnv: false };
  const list = (env.KUBECONFIG ?? '').split(delimiter).filter((p) => p.length > 0);
  if (list.length > 0) return { files: list.map((p) => resolve(p)), fromEnv: true };
  return { files: [join(env.HOME || homedir(), '.kube', 'config')], fromEnv: false };
}

interface DatabaseFlag {
  readonly name: string;
  readonly url: URL;
}

export function parseDatabaseFlags(entries: readonly string[]): DatabaseFlag[] {
  return entries.map((entry) => {
    const i = entry.indexOf('=');
    const name = i > 0 ? entry.slice(0, i) : '';
    let url: URL | undefined;
    try {
      url = new URL(entry.slice(i + 1));
    } catch {
      url = undefined;
    }
    if (!name || !url || !/^postgres(ql)?:$/.test(url.protocol))
      throw new ConfigError(
        `--database ${i > 0 ? `${name}=…` : '…'}: expected name=postgresql://user:password@host:port/dbname`,
      );
    return { name, url };
  });
}

/** The session's identity from the token a team's collector gave (`--collector-token-file`). */
function teamCollectorIdentity(file: string, user: UserInfo): Identity {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`--collector-token-file ${file}: ${(err as Error).message}`);
  }
  const identity = collectorTokenIdentity(token, user);
  if (!identity)
    throw new ConfigError(
      `--collector-token-file ${file}: the token names no pod; a collector files events under the pod its token is bound to (a service-account token with audience chaperone-collector, bound to a pod)`,
    );
  return identity;
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal
    ? ({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 }[signal as string] ?? 1)
    : 1;
  return 128 + n;
}

export async function runLocal(o: LocalOptions): Promise<LocalResult> {
  const { files, fromEnv } = kubeconfigFiles(o.env, o.kubeconfig);
  const connection = kubeconfigConnection(files, {
    env: o.env,
    ...(o.context ? { context: o.context } : {}),
    skipMissing: fromEnv,
  });
  const server = new URL(connection.server);
  if (server.pathname !== '/' && server.pathname !== '')
    throw new ConfigError(
      `the context's API server ${connection.server} has a path; chaperone local guards API servers reached at the root of their address only`,
    );
  if (server.protocol !== 'https:')
    throw new ConfigError(`the context's API server ${connection.server} is not https://`);
  const contextName = connection.context ?? 'default';
  const namespace = connection.namespace ?? 'default';
  const databases = parseDatabaseFlags(o.databases);
  if (o.collectorUrl && !o.collectorTokenFile)
    throw new ConfigError('--collector-url needs --collector-token-file (a token the collector accepts)');

  const state = stateLayout(o.stateDir);
  mkdirSync(state.root, { recursive: true, mode: 0o700 });
  claimStateDir(state.sessionFile, state.root);
  rmSync(state.sessionDir, { recursive: true, force: true });
  mkdirSync(state.sessionDir, { recursive: true, mode: 0o700 });

  const home = o.env.HOME || homedir();
  const who = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const hidden = o.hideKubeconfig
    ? directoriesToHide(
        files.filter((f) => existsSync(f)),
        { cwd: process.cwd(), stateDir: state.root, home },
      )
    : [];
  if (o.hideKubeconfig) checkHidingWorks(who);
  const runAs = o.runAs ? lookupUser(o.runAs, who.uid) : undefined;

  const logFile = join(state.root, 'local.log');
  const log = createLogger({
    name: 'chaperone-local',
    level: 'info',
    destination: createWriteStream(logFile, { flags: 'a', mode: 0o600 }),
  });
  // Last of all: the session's files go (the database URLs, the agent kubeconfig, the collector token).
  const cleanups: (() => Promise<void> | void)[] = [
    () => rmSync(state.sessionDir, { recursive: true, force: true }),
  ];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        log.warn({ err }, 'a clean-up step failed');
      }
    }
  };
  try {
    const user = await upstreamUser(connection, contextName);
    const identity = o.collectorTokenFile
      ? teamCollectorIdentity(o.collectorTokenFile, user)
      : localIdentity(namespace, user);
    const source = identity.source;
    const podUID = source.podUID as string;

    let collector: EmbeddedCollector | undefined;
    let collectorUrl = o.collectorUrl;
    let collectorTokenFile = o.collectorTokenFile;
    if (!collectorUrl) {
      const issuer = createLocalIssuer();
      mkdirSync(state.collectorDir, { recursive: true, mode: 0o700 });
      collector = await startEmbeddedCollector({ cli: o.cli, dir: state.collectorDir, issuer, env: o.env });
      cleanups.push(() => collector?.stop());
      collectorUrl = collector.url;
      collectorTokenFile = join(state.sessionDir, 'collector-token');
      const subject = {
        namespace: source.namespace,
        pod: source.pod,
        podUID,
        serviceAccount: source.serviceAccount,
      };
      const file = collectorTokenFile;
      // A day's token, renewed every hour: the shipper re-reads the file when it reconnects.
      const renew = () => writeAtomic(file, issuer.token(subject, 86_400), 0o600);
      renew();
      const timer = setInterval(renew, 3_600_000);
      timer.unref();
      cleanups.push(() => clearInterval(timer));
    }

    const policyFile = o.policyFile ? resolve(o.policyFile) : join(state.sessionDir, 'policy.yaml');
    if (!o.policyFile) writeAtomic(policyFile, WORKSTATION_POLICY, 0o600);
    else if (!existsSync(policyFile)) throw new ConfigError(`--policy ${policyFile}: no such file`);

    const databasesDir = join(state.sessionDir, 'databases');
    const declared: string[] = [];
    for (const d of databases) {
      mkdirSync(join(databasesDir, d.name), { recursive: true, mode: 0o700 });
      writeAtomic(join(databasesDir, d.name, 'url'), d.url.href, 0o600);
      declared.push(`${d.name}=${await freePort()}`);
    }
    const agentSaDir = join(state.sessionDir, 'agent');
    const spoolDir = join(state.root, 'spool', podUID);
    const flags: Record<string, string | boolean> = {
      podName: source.pod,
      podNamespace: namespace,
      podUid: podUID,
      serviceAccount: source.serviceAccount,
      listen: '127.0.0.1',
      kubePort: String(await freePort()),
      metricsAddress: '127.0.0.1',
      metricsPort: '0',
      tlsDir: state.tlsDir,
      agentSaDir,
      policyFile,
      // Outside the session directory: what the collector has not acknowledged is kept.
      spoolDir,
      collectorUrl,
      collectorTokenFile: collectorTokenFile as string,
      ...(declared.length ? { databases: declared.join(',') } : {}),
      databasesDir,
      logLevel: 'info',
    };
    const config: SidecarConfig = parseConfig(sidecarSchema, { env: {}, flags });
    const running = await runSidecar(config, log, {}, { connection, identity });
    let guardStopped = false;
    const stopGuard = async () => {
      if (guardStopped) return;
      guardStopped = true;
      await running.stop();
    };
    cleanups.push(stopGuard);

    const guard = `https://127.0.0.1:${running.kubePort}`;
    const caCert = readFileSync(join(agentSaDir, 'ca.crt'), 'utf8');
    // Another user cannot enter the state directory: its files (no secret among them) go where it can.
    const agentDir = runAs ? mkdtempSync(join(tmpdir(), 'chaperone-agent-')) : state.sessionDir;
    if (runAs) {
      chmodSync(agentDir, 0o755);
      cleanups.push(() => rmSync(agentDir, { recursive: true, force: true }));
    }
    const kubeconfigPath = join(agentDir, 'kubeconfig');
    const agentCa = join(agentDir, 'ca.crt');
    const agentFileMode = runAs ? 0o644 : 0o600;
    writeAtomic(
      kubeconfigPath,
      agentKubeconfig({ server: guard, caCert, namespace, contextName }),
      agentFileMode,
    );
    writeAtomic(agentCa, caCert, agentFileMode);
    const ports = Object.fromEntries(declared.map((d) => d.split('=') as [string, string]));
    const first = databases[0];
    const creds = await connection.credentials.current();
    const { env, stripped } = agentEnvironment(o.env, {
      kubeconfig: kubeconfigPath,
      ...(first
        ? {
            database: {
              host: '127.0.0.1',
              port: Number(ports[first.name]),
              sslrootcert: agentCa,
              ...(first.url.pathname.length > 1
                ? { dbname: decodeURIComponent(first.url.pathname.slice(1)) }
                : {}),
              ...(first.url.username ? { user: decodeURIComponent(first.url.username) } : {}),
            },
          }
        : {}),
      // The context's credentials, each database's password and the team collector's token:
      // a user variable holding any of them is not passed on.
      secrets: [
        creds.token,
        creds.clientKey,
        ...databases.map((d) => decodeURIComponent(d.url.password)),
        ...(o.collectorTokenFile ? [readFileSync(o.collectorTokenFile, 'utf8').trim()] : []),
      ].filter((s): s is string => Boolean(s)),
    });
    if (runAs) Object.assign(env, runAsEnv(runAs));
    writeSessionRecord(state.sessionFile, {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      context: contextName,
      apiServer: connection.server,
      namespace,
      guard,
      agentKubeconfig: kubeconfigPath,
      sidecarId: source.sidecarId,
      ...(collector ? { queryUrl: collector.queryUrl, queryTokenFile: collector.queryTokenFile } : {}),
      collectorUrl: collectorUrl as string,
      databases: Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, Number(v)])),
    });
    cleanups.push(() => endSessionRecord(state.sessionFile, state.lastSessionFile));

    const shell = o.command.length === 0;
    const command = shell ? [o.env.SHELL || '/bin/sh'] : [...o.command];
    o.say(
      [
        `chaperone: guarding context ${contextName} (${connection.server}, namespace ${namespace}) at ${guard}`,
        `  policy: ${o.policyFile ? policyFile : 'built-in workstation policy (no namespace or workload deletes, Secrets masked)'}`,
        `  audit: ${collector ? `embedded collector in ${state.collectorDir}` : collectorUrl}; this session is ${source.sidecarId}`,
        ...Object.entries(ports).map(([n, p]) => `  database ${n}: 127.0.0.1:${p}`),
        `  removed from the agent's environment: ${stripped.length ? stripped.join(' ') : 'nothing'}`,
        ...(hidden.length ? [`  hidden from the agent: ${hidden.join(' ')}`] : []),
        runAs
          ? `  the agent runs as ${runAs.name} (uid ${runAs.uid})`
          : hidden.length
            ? ''
            : '  the agent runs as you and can still read your own kubeconfig (see chaperone local --help)',
        shell ? '  a guarded shell: exit it to end the session' : `  running: ${command.join(' ')}`,
      ]
        .filter(Boolean)
        .join('\n'),
    );
    const asUser = runAs ? runAsCommand(runAs, command) : command;
    const argv = hidden.length ? hiddenCommand(hidden, asUser, who) : asUser;
    const exitCode = await new Promise<number>((done, fail) => {
      const child = spawn(argv[0] as string, argv.slice(1), { env, stdio: 'inherit' });
      // Ctrl-C reaches the command (it is in the terminal's foreground group); the guard outlives it.
      const ignore = () => {};
      const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
      const onTerm = forward('SIGTERM');
      const onHup = forward('SIGHUP');
      process.on('SIGINT', ignore);
      process.on('SIGTERM', onTerm);
      process.on('SIGHUP', onHup);
      const off = () => {
        process.off('SIGINT', ignore);
        process.off('SIGTERM', onTerm);
        process.off('SIGHUP', onHup);
      };
      child.once('error', (err) => {
        off();
        fail(new ChaperoneError('unavailable', `cannot run ${command[0]}: ${err.message}`));
      });
      child.once('exit', (code, signal) => {
        off();
        done(exitCodeOf(code, signal));
      });
    });

    // Every event is delivered before the guard stops (its drain), so the summary sees them all.
    await stopGuard();
    let summary: SessionSummary | undefined;
    if (collector) {
      const token = readFileSync(collector.queryTokenFile, 'utf8').trim();
      const events = await sessionEvents({ queryUrl: collector.queryUrl, token }, source.sidecarId);
      summary = summarize(events);
      o.say(formatSummary(summary));
      // The spool sends a chain in order: its last event stored means the ones before it are.
      const written = Math.max(0, ...readSpoolDir(spoolDir).map((e) => e.chaperone.seq));
      if (written === 0 || events.some((e) => e.chaperone.seq === written))
        rmSync(spoolDir, { recursive: true, force: true });
      else
        o.say(
          `chaperone: the collector has not stored every event of this session; they stay in ${spoolDir}`,
        );
    } else {
      o.say(`chaperone: the audit events of ${source.sidecarId} went to ${collectorUrl}`);
    }
    return { exitCode, sidecarId: source.sidecarId, ...(summary ? { summary } : {}) };
  } finally {
    await cleanup();
  }
}
