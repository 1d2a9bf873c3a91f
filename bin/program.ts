/**
 * Assembles the `chaperone` CLI from the packages' command registrations and
 * maps failures to exit codes: 0 success, 1 runtime failure, 2 usage error
 * (unknown command or flag, missing argument, invalid configuration).
 */
import { type CliContext, type RegisterCommands, toChaperoneError } from '@chaperone/shared';
import { Command, CommanderError } from 'commander';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * Each package's registration, loaded when needed, with the top-level commands
 * it is known to register: a run of one of those loads that package's CLI
 * alone (the sidecar starts without parsing the collector's, the injector's
 * and the demo's code). The lists only pick what to load first: a command
 * missing from them loads every package, as help and suggestions do.
 */
const PACKAGES: readonly { readonly commands: readonly string[]; load(): Promise<RegisterCommands> }[] = [
  {
    commands: ['injector', 'check-inject', 'wait-for-sidecar'],
    load: async () => (await import('@chaperone/injector/cli')).register,
  },
  {
    commands: ['sidecar', 'policy', 'local'],
    load: async () => (await import('@chaperone/sidecar/cli')).register,
  },
  { commands: ['collector'], load: async () => (await import('@chaperone/collector/cli')).register },
  { commands: ['demo', 'dev'], load: async () => (await import('@chaperone/e2e/cli')).register },
];

/** The registrations a run of `argv` needs: its command's package, or every package. */
async function registrationsFor(argv: readonly string[]): Promise<RegisterCommands[]> {
  const first = argv[0];
  const pkg = first === undefined ? undefined : PACKAGES.find((p) => p.commands.includes(first));
  return Promise.all((pkg ? [pkg] : PACKAGES).map((p) => p.load()));
}

export function buildProgram(ctx: CliContext, registrations: readonly RegisterCommands[]): Command {
  const program = new Command('chaperone')
    .description('Guardrails, recording and audit for AI agents that run in Kubernetes')
    .version(ctx.version, '-V, --version')
    .showSuggestionAfterError(true)
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortSubcommands: false });
  for (const register of registrations) register(program, ctx);
  // Every (sub)command throws instead of exiting, so exit codes are decided here.
  const override = (cmd: Command) => {
    cmd.exitOverride();
    for (const sub of cmd.commands) override(sub);
  };
  override(program);
  return program;
}

export async function runCli(argv: readonly string[], ctx: CliContext): Promise<number> {
  let program = buildProgram(ctx, await registrationsFor(argv));
  // A command the lists place wrongly: everything, as for an unknown command.
  const first = argv[0];
  if (
    first &&
    !first.startsWith('-') &&
    !program.commands.some((c) => c.name() === first || c.aliases().includes(first))
  )
    program = buildProgram(ctx, await registrationsFor([]));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    // A command may have reported a failure without throwing (e.g. a lint finding).
    const set = process.exitCode;
    return typeof set === 'number' && set !== 0 ? set : EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed its message (with suggestions) to stderr.
      if (
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.code === 'commander.help'
      ) {
        return EXIT_OK;
      }
      return EXIT_USAGE;
    }
    const e = toChaperoneError(err);
    process.stderr.write(`chaperone: ${e.message}\n`);
    return e.code === 'usage' || e.code === 'config_invalid' ? EXIT_USAGE : EXIT_FAILURE;
  }
}
