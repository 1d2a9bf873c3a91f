/**
 * `chaperone local -- <command>`, `chaperone local status`, `chaperone local
 * audit`. Registering is cheap: each action imports what it runs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { type RegisterCommands, UsageError } from '@chaperone/shared';
import { Option } from 'commander';
import { STRIPPED_NAMES } from './agent-env.ts';
import { localStateDir, stateLayout } from './state-dir.ts';

/** `words` joined into lines of at most `width` characters, each indented by `indent`. */
function wrap(words: readonly string[], indent: string, width = 78): string {
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && indent.length + line.length + 1 + w.length > width) {
      lines.push(indent + line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(indent + line);
  return lines.join('\n');
}

const HELP_AFTER = `
Without "--" and a command, a guarded shell starts; hand it to any tool.

What the agent gets: KUBECONFIG pointing at the guard on 127.0.0.1 (the
guard's own CA, a placeholder token, the context's namespace), PGHOST/PGPORT
for the first --database, and your environment without these variables:
${wrap([...STRIPPED_NAMES, 'CHAPERONE_*,', 'and', 'any', 'variable', 'holding', 'the', "context's", 'token', 'or', 'client', 'key.'], '  ')}

Honest limits: the agent runs as you. Your kubeconfig stays readable by it
(so does anything else your user can read: ~/.aws, ~/.config/gcloud, token
caches), and with it the agent could reach the API server directly, around
the guard. It can also change the state directory, the embedded audit store
included: that store records mistakes, not an agent set on erasing its trail
(ship to --collector-url for that). What reduces that:
  --hide-kubeconfig  runs the command in a private mount namespace with an
                     empty tmpfs over your kubeconfig's directory (needs
                     util-linux unshare: as root, or where unprivileged user
                     namespaces are allowed; otherwise the session does not
                     start, and says why). Files the kubeconfig names
                     elsewhere (token files, plugin caches) stay readable.
  --run-as USER      runs the command as another user, one that cannot read
                     your files (chaperone local itself then runs as root, and
                     starts the command with setpriv; the agent's kubeconfig,
                     which holds no credential, is put where that user can
                     read it).
The guard protects what goes through it; it is not a sandbox.

Audit: an embedded collector in the state directory ($XDG_STATE_HOME/chaperone
or ~/.local/state/chaperone; --state-dir), or --collector-url with
--collector-token-file (a token for that collector bound to a pod: the
session's events are filed under that pod). At the end a summary of what was
allowed, denied, masked and held is printed.
`;

function collectList(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export const registerLocal: RegisterCommands = (program, ctx) => {
  const local = program
    .command('local')
    .description(
      'Guard an agent on a workstation: its kubectl and psql go through the guard, with your kubeconfig',
    )
    .usage('[options] [-- <command...>]')
    .argument('[command...]', 'the agent command (after --); a guarded shell when absent')
    .option('--context <name>', 'the kubeconfig context to guard (default: the current one)')
    .option('--kubeconfig <file>', 'the kubeconfig to read (default: $KUBECONFIG, ~/.kube/config)')
    .option('--policy <file>', 'a GuardrailPolicy to use instead of the built-in workstation policy')
    .option(
      '--database <name=url>',
      'guard a PostgreSQL database: name=postgresql://user:password@host:port/db (repeatable)',
      collectList,
      [],
    )
    .option('--state-dir <dir>', 'where the CA, the embedded collector and the session live')
    .option('--collector-url <url>', 'ship audit events to this collector instead of the embedded one')
    .option('--collector-token-file <file>', 'the token --collector-url accepts')
    .option('--hide-kubeconfig', "hide your kubeconfig's directory from the command (see below)")
    .option('--run-as <user>', 'run the command as this user (chaperone local itself runs as root)')
    .addOption(new Option('--summary-file <file>', 'also write the summary as JSON').hideHelp())
    .addHelpText('after', HELP_AFTER)
    .action(
      async (
        command: string[],
        opts: {
          context?: string;
          kubeconfig?: string;
          policy?: string;
          database: string[];
          stateDir?: string;
          collectorUrl?: string;
          collectorTokenFile?: string;
          hideKubeconfig?: boolean;
          runAs?: string;
          summaryFile?: string;
        },
      ) => {
        const { runLocal } = await import('./local-session.ts');
        const result = await runLocal({
          command,
          ...(opts.context ? { context: opts.context } : {}),
          ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}),
          ...(opts.policy ? { policyFile: opts.policy } : {}),
          databases: opts.database,
          stateDir: localStateDir(ctx.env, opts.stateDir),
          ...(opts.collectorUrl ? { collectorUrl: opts.collectorUrl } : {}),
          ...(opts.collectorTokenFile ? { collectorTokenFile: opts.collectorTokenFile } : {}),
          hideKubeconfig: opts.hideKubeconfig === true,
          ...(opts.runAs ? { runAs: opts.runAs } : {}),
          cli: cli(),
          env: ctx.env,
          say: (line) => process.stderr.write(`${line}\n`),
        });
        if (opts.summaryFile)
          writeFileSync(
            opts.summaryFile,
            `${JSON.stringify({ sidecarId: result.sidecarId, exitCode: result.exitCode, summary: result.summary }, null, 2)}\n`,
          );
        process.exitCode = result.exitCode;
      },
    );

  // `--state-dir` is read by `local` wherever it is given (chaperone local status --state-dir X).
  const stateDirFlag = (): string | undefined => (local.opts() as { stateDir?: string }).stateDir;
  /** How to run this chaperone again (the embedded collector, replay): Node.js's arguments and the CLI's file. */
  const cli = (): string[] => {
    const entry = process.argv[1];
    if (!entry) throw new UsageError('cannot tell how this chaperone was started (no script path)');
    return [...process.execArgv, entry];
  };
  const stored = async <T>(
    fn: (q: import('./stored-sessions.ts').QueryAccess, layout: ReturnType<typeof stateLayout>) => Promise<T>,
  ): Promise<T> => {
    const { withStoredSessions } = await import('./stored-sessions.ts');
    const layout = stateLayout(localStateDir(ctx.env, stateDirFlag()));
    return withStoredSessions(layout, { cli: cli(), env: ctx.env }, (q) => fn(q, layout));
  };
  const eventsOf = async (q: { queryUrl: string; queryTokenFile: string }, sidecarId: string) => {
    const { sessionEvents } = await import('./audit-query.ts');
    const token = readFileSync(q.queryTokenFile, 'utf8').trim();
    return sessionEvents({ queryUrl: q.queryUrl, token }, sidecarId);
  };

  local
    .command('status')
    .description('What the running local session guards, and what its guard has decided so far')
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (opts: { output: string }) => {
      const { readSessionRecord } = await import('./session-record.ts');
      const layout = stateLayout(localStateDir(ctx.env, stateDirFlag()));
      const record = readSessionRecord(layout.sessionFile);
      if (!record)
        throw new UsageError(`no chaperone local session is running (state directory ${layout.root})`);
      const { summarize, formatSummary } = await import('./summary.ts');
      const summary = record.queryUrl
        ? summarize(await stored((q) => eventsOf(q, record.sidecarId)))
        : undefined;
      if (opts.output === 'json') {
        process.stdout.write(`${JSON.stringify({ session: record, summary }, null, 2)}\n`);
        return;
      }
      const lines = [
        `session ${record.sidecarId} (pid ${record.pid}, since ${record.startedAt})`,
        `context ${record.context}: ${record.apiServer}, namespace ${record.namespace}`,
        `guard ${record.guard}; agent kubeconfig ${record.agentKubeconfig}`,
        ...Object.entries(record.databases).map(([n, p]) => `database ${n}: 127.0.0.1:${p}`),
        `audit: ${record.queryUrl ? `embedded collector, query API ${record.queryUrl} (token: ${record.queryTokenFile})` : record.collectorUrl}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n${summary ? `${formatSummary(summary)}\n` : ''}`);
    });

  local
    .command('audit')
    .description('A local session’s audit events, oldest first: the running one, else the last one')
    .option('--session <id>', 'another session (its id as the summary printed it)')
    .option('--decision <action>', 'only allow, deny, mask or review')
    .option('-o, --output <format>', 'text or jsonl', 'text')
    .action(async (opts: { session?: string; decision?: string; output: string }) => {
      const [{ describeRequest }, { readLastSession }] = await Promise.all([
        import('./summary.ts'),
        import('./session-record.ts'),
      ]);
      const all = await stored((q, layout) => {
        const id = opts.session ?? q.running?.sidecarId ?? readLastSession(layout.lastSessionFile)?.sidecarId;
        if (!id)
          throw new UsageError(`no chaperone local session has ended in ${layout.root}; give --session`);
        return eventsOf(q, id);
      });
      for (const e of all) {
        if (opts.decision && e.chaperone.decision.action !== opts.decision) continue;
        if (opts.output === 'jsonl') process.stdout.write(`${JSON.stringify(e)}\n`);
        else
          process.stdout.write(
            `${e.requestReceivedTimestamp}  ${e.chaperone.decision.action.padEnd(6)}  ${e.chaperone.decision.rule}  ${e.responseStatus?.code ?? ''}  ${describeRequest(e)}\n`,
          );
      }
    });

  local
    .command('replay')
    .description('Replay a recorded exec session of a local session (as chaperone replay does)')
    .argument('<session>', 'the exec session id, as the summary printed it')
    .option('--cat', 'print the recording at once instead of in real time')
    .action(async (session: string, opts: { cat?: boolean }) => {
      const { spawn } = await import('node:child_process');
      process.exitCode = await stored(
        (q) =>
          new Promise<number>((resolve, reject) => {
            const args = [...cli(), 'replay', session, '--collector-url', q.queryUrl];
            const child = spawn(
              process.execPath,
              [...args, '--token-file', q.queryTokenFile, ...(opts.cat ? ['--cat'] : [])],
              {
                stdio: 'inherit',
              },
            );
            child.once('error', reject);
            child.once('exit', (code) => resolve(code ?? 1));
          }),
      );
    });
};
