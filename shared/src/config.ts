/**
 * Configuration for every binary: one declarative schema, read once from
 * environment variables and command-line flags, validated completely at start,
 * returned frozen. Flags win over environment, environment over defaults.
 *
 * A field `listenPort` is set by `--listen-port` or `CHAPERONE_LISTEN_PORT`.
 * Unknown flags and unknown `CHAPERONE_*` variables are errors with a
 * "did you mean" suggestion: a typo must never silently fall back to a default.
 */
import { ConfigError } from './errors.ts';
import { didYouMean } from './suggest.ts';

export interface Field<T> {
  readonly kind: string;
  readonly description: string;
  readonly default?: T;
  readonly required?: boolean;
  /** Never echo the value in errors or `describe` output. */
  readonly secret?: boolean;
  /** The value placeholder shown in help, e.g. `<port>`. */
  readonly placeholder: string;
  parse(raw: string): T;
}

type FieldOptions<T> = {
  description: string;
  default?: T;
  required?: boolean;
  secret?: boolean;
};

export type Schema = Readonly<Record<string, Field<unknown>>>;

/** A field whose type also records whether it has a default or is required. */
export type Built<T, O> = Field<T> & {
  readonly default: O extends { default: infer D } ? D : undefined;
  readonly required: O extends { required: true } ? true : false;
};

export type ConfigOf<S extends Schema> = {
  readonly [K in keyof S]: S[K] extends Field<infer T>
    ? S[K] extends { required: true }
      ? T
      : undefined extends S[K]['default']
        ? T | undefined
        : T
    : never;
};

function field<T, O extends FieldOptions<T>>(
  kind: string,
  placeholder: string,
  opts: O,
  parse: (raw: string) => T,
): Built<T, O> {
  return Object.freeze({ kind, placeholder, ...opts, parse }) as unknown as Built<T, O>;
}

export function string<const O extends FieldOptions<string> & { pattern?: RegExp }>(
  opts: O,
): Built<string, O> {
  return field('string', '<value>', opts, (raw) => {
    if (opts.pattern && !opts.pattern.test(raw)) throw new Error(`must match ${opts.pattern}`);
    return raw;
  });
}

export function integer<const O extends FieldOptions<number> & { min?: number; max?: number }>(
  opts: O,
): Built<number, O> {
  return field('integer', '<n>', opts, (raw) => {
    if (!/^-?\d+$/.test(raw.trim())) throw new Error('must be a whole number');
    const n = Number(raw);
    if (opts.min !== undefined && n < opts.min) throw new Error(`must be at least ${opts.min}`);
    if (opts.max !== undefined && n > opts.max) throw new Error(`must be at most ${opts.max}`);
    return n;
  });
}

export function port<const O extends FieldOptions<number> & { allowZero?: boolean }>(
  opts: O,
): Built<number, O> {
  const inner = integer({ ...opts, min: opts.allowZero ? 0 : 1, max: 65535 });
  return Object.freeze({ ...inner, kind: 'port', placeholder: '<port>' }) as unknown as Built<number, O>;
}

export function boolean<const O extends FieldOptions<boolean>>(opts: O): Built<boolean, O> {
  return field('boolean', '', opts, (raw) => {
    const v = raw.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(v)) return true;
    if (['false', '0', 'no', 'off'].includes(v)) return false;
    throw new Error('must be true or false');
  });
}

export function oneOf<const V extends string, const O extends FieldOptions<V>>(
  values: readonly V[],
  opts: O,
): Built<V, O> {
  return field('enum', `<${values.join('|')}>`, opts, (raw) => {
    if ((values as readonly string[]).includes(raw)) return raw as V;
    throw new Error(`must be one of ${values.join(', ')}${didYouMean(raw, values)}`);
  });
}

export function list<const O extends FieldOptions<readonly string[]>>(opts: O): Built<readonly string[], O> {
  return field('list', '<a,b,...>', opts, (raw) =>
    Object.freeze(
      raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    ),
  );
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `250ms`, `30s`, `5m`, `1h30m`, `7d` into milliseconds. */
export function parseDuration(raw: string): number {
  const s = raw.trim();
  if (!/^(\d+(ms|s|m|h|d))+$/.test(s)) throw new Error('must be a duration like 500ms, 30s, 5m, 1h30m or 7d');
  let total = 0;
  for (const m of s.matchAll(/(\d+)(ms|s|m|h|d)/g))
    total += Number(m[1]) * (DURATION_UNITS[m[2] ?? 's'] ?? 0);
  return total;
}

/** A duration, held in milliseconds. */
export function duration<const O extends FieldOptions<number>>(opts: O): Built<number, O> {
  return field('duration', '<duration>', opts, parseDuration);
}

export function url<const O extends FieldOptions<string> & { protocols?: readonly string[] }>(
  opts: O,
): Built<string, O> {
  return field('url', '<url>', opts, (raw) => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new Error('must be an absolute URL');
    }
    if (opts.protocols && !opts.protocols.includes(u.protocol.replace(/:$/, ''))) {
      throw new Error(`must use ${opts.protocols.join(' or ')}`);
    }
    return raw;
  });
}

export const toFlag = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
export const toEnv = (key: string, prefix = 'CHAPERONE_'): string =>
  prefix + key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
const flagToKey = (flag: string): string =>
  flag.replace(/^--/, '').replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/**
 * CHAPERONE_* variables that belong to the development and test tooling, not
 * to any component's configuration; components do not reject them.
 */
export const TOOLING_ENV = [
  'CHAPERONE_CACHE_DIR',
  'CHAPERONE_KUBE_BUILD_DIR',
  'CHAPERONE_KEEP_BUILD',
  'CHAPERONE_FORCE_PINNED_NODE',
  'CHAPERONE_SKIP_INSTALL',
  'CHAPERONE_E2E_KUBECONFIG',
  'CHAPERONE_E2E_STATE',
] as const;

export interface ConfigSources {
  /** Usually `process.env`; only variables with the prefix are considered. */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * Flag values keyed by field name (as a flag parser such as commander
   * produces them) or raw argv (`['--listen-port', '8443', '--verbose']`).
   */
  flags?: Readonly<Record<string, string | boolean | readonly string[] | undefined>> | readonly string[];
  /** Env var prefix; default `CHAPERONE_`. */
  prefix?: string;
  /** Env vars with the prefix that belong to something else and must not be rejected. */
  ignoreEnv?: readonly string[];
}

function argvToRecord(
  argv: readonly string[],
  schema: Schema,
  problems: string[],
): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  const flags = Object.keys(schema).map(toFlag);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) {
      problems.push(`unexpected argument "${arg}"`);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq === -1 ? arg : arg.slice(0, eq);
    let negated = false;
    let key = flagToKey(name);
    if (!(key in schema) && name.startsWith('--no-') && flagToKey(`--${name.slice(5)}`) in schema) {
      negated = true;
      name = `--${name.slice(5)}`;
      key = flagToKey(name);
    }
    const spec = schema[key];
    if (!spec) {
      problems.push(`unknown flag ${name}${didYouMean(name, flags)}`);
      continue;
    }
    if (spec.kind === 'boolean' && eq === -1) {
      out[key] = !negated;
    } else if (eq !== -1) {
      out[key] = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--'))
        problems.push(`flag ${name} needs a value ${spec.placeholder}`);
      else {
        out[key] = next;
        i++;
      }
    }
  }
  return out;
}

/**
 * Reads, validates and freezes a configuration. Throws one ConfigError that
 * lists every problem found (not just the first).
 */
export function parseConfig<S extends Schema>(schema: S, sources: ConfigSources = {}): ConfigOf<S> {
  const prefix = sources.prefix ?? 'CHAPERONE_';
  const env = sources.env ?? {};
  const problems: string[] = [];
  const envNames = new Map(Object.keys(schema).map((k) => [toEnv(k, prefix), k] as const));
  const ignored = new Set<string>([...TOOLING_ENV, ...(sources.ignoreEnv ?? [])]);

  for (const name of Object.keys(env)) {
    if (name.startsWith(prefix) && !envNames.has(name) && !ignored.has(name) && env[name] !== undefined) {
      problems.push(`unknown setting ${name}${didYouMean(name, envNames.keys())}`);
    }
  }

  let flags: Readonly<Record<string, string | boolean | readonly string[] | undefined>>;
  if (Array.isArray(sources.flags)) {
    flags = argvToRecord(sources.flags as readonly string[], schema, problems);
  } else {
    flags = (sources.flags ?? {}) as Record<string, string | boolean | undefined>;
    for (const key of Object.keys(flags)) {
      if (!(key in schema) && flags[key] !== undefined) {
        problems.push(
          `unknown flag ${toFlag(key)}${didYouMean(toFlag(key), Object.keys(schema).map(toFlag))}`,
        );
      }
    }
  }

  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(schema)) {
    const envName = toEnv(key, prefix);
    const flagValue = flags[key];
    let raw: string | undefined;
    let from: string;
    if (flagValue !== undefined) {
      from = toFlag(key);
      if (typeof flagValue === 'boolean') {
        out[key] = flagValue;
        continue;
      }
      raw = Array.isArray(flagValue) ? flagValue.join(',') : String(flagValue);
    } else {
      from = envName;
      raw = env[envName];
    }
    if (raw === undefined || raw === '') {
      if (spec.default !== undefined) out[key] = spec.default;
      else if (spec.required)
        problems.push(`${toFlag(key)} (or ${envName}) is required: ${spec.description}`);
      continue;
    }
    try {
      out[key] = spec.parse(raw);
    } catch (err) {
      const shown = spec.secret ? '<hidden>' : JSON.stringify(raw);
      problems.push(`${from}=${shown} ${(err as Error).message}`);
    }
  }

  if (problems.length > 0) {
    const head = problems.length === 1 ? 'invalid configuration: ' : 'invalid configuration:\n  - ';
    throw new ConfigError(head + problems.join('\n  - '), { details: { problems } });
  }
  return Object.freeze(out) as ConfigOf<S>;
}

/** One line per field, for `--help` epilogues and docs. */
export function describeConfig(schema: Schema, prefix = 'CHAPERONE_'): string {
  return Object.entries(schema)
    .map(([key, spec]) => {
      const def =
        spec.default === undefined || spec.secret ? '' : ` (default: ${JSON.stringify(spec.default)})`;
      return `${`  ${toFlag(key)} ${spec.placeholder}`.padEnd(40)}${toEnv(key, prefix)}  ${spec.description}${def}`;
    })
    .join('\n');
}
