/**
 * Assembles the `chaperone` CLI from the packages' command registrations and
 * maps failures to exit codes: 0 success, 1 runtime failure, 2 usage error
 * (unknown command or flag, missing argument, invalid configuration).
 */
import { register as registerCollector } from '@chaperone/collector/cli';
import { register as registerE2e } from '@chaperone/e2e/cli';
import { register as registerInjector } from '@chaperone/injector/cli';
import { type CliContext, type RegisterCommands, toChaperoneError } from '@chaperone/shared';
import { register as registerSidecar } from '@chaperone/sidecar/cli';
import { Command, CommanderError } from 'commander';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const REGISTRATIONS: readonly RegisterCommands[] = [
  registerInjector,
  registerSidecar,
  registerCollector,
  registerE2e,
];

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('chaperone')
    .description('Guardrails, recording and audit for AI agents that run in Kubernetes')
    .version(ctx.version, '-V, --version')
    .showSuggestionAfterError(true)
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortSubcommands: false });
  for (const register of REGISTRATIONS) register(program, ctx);
  // Every (sub)command throws instead of exiting, so exit codes are decided here.
  const override = (cmd: Command) => {
    cmd.exitOverride();
    for (const sub of cmd.commands) override(sub);
  };
  override(program);
  return program;
}

export async function runCli(argv: readonly string[], ctx: CliContext): Promise<number> {
  const program = buildProgram(ctx);
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
