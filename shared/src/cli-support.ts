/**
 * What every package needs to contribute subcommands to the one `chaperone`
 * CLI: a typed registration hook, and a command whose flags come from a
 * config schema (so `--help` lists them and parseConfig validates them).
 */
import { type Command, Option } from 'commander';
import { type ConfigOf, describeConfig, parseConfig, type Schema, toFlag } from './config.ts';

export interface CliContext {
  /** The environment to read configuration from (process.env in main). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Version of this build. */
  readonly version: string;
}

/** Each package exports one of these from its `./cli` entry point. */
export type RegisterCommands = (program: Command, ctx: CliContext) => void;

/**
 * Adds one option per config field to `cmd`, with the env var named in the
 * help text, and returns a function that turns commander's parsed options into
 * the validated, frozen config.
 */
export function withConfigOptions<S extends Schema>(
  cmd: Command,
  schema: S,
  ctx: CliContext,
): (opts: Record<string, unknown>) => ConfigOf<S> {
  for (const [key, spec] of Object.entries(schema)) {
    const flag = toFlag(key);
    const option =
      spec.kind === 'boolean'
        ? new Option(flag, spec.description)
        : new Option(`${flag} ${spec.placeholder}`, spec.description);
    cmd.addOption(option);
    if (spec.kind === 'boolean') cmd.addOption(new Option(`--no-${flag.slice(2)}`).hideHelp());
  }
  cmd.addHelpText(
    'after',
    `\nEvery flag can also be set by its environment variable:\n${describeConfig(schema)}\n`,
  );
  return (opts) => {
    const flags: Record<string, string | boolean | undefined> = {};
    for (const key of Object.keys(schema)) {
      const v = opts[key];
      if (v !== undefined) flags[key] = v as string | boolean;
    }
    return parseConfig(schema, { env: ctx.env, flags });
  };
}
