/**
 * The process logger: one pino instance created in `main` and passed down,
 * JSON to stdout, with secrets scrubbed from both the structured fields and the
 * message text before anything is written.
 */
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import { redactText, redactValue } from './redact.ts';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface CreateLoggerOptions {
  /** Component name, e.g. `sidecar`. */
  name: string;
  level?: LogLevel;
  /** Defaults to stdout; tests pass a stream to inspect output. */
  destination?: DestinationStream;
  /** Static fields added to every line (never secrets). */
  base?: Record<string, unknown>;
}

export function createLogger(opts: CreateLoggerOptions): Logger {
  const options: LoggerOptions = {
    name: opts.name,
    level: opts.level ?? 'info',
    base: { component: opts.name, ...(opts.base ?? {}) },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Serializers run before formatters; keep errors as plain objects so the
    // deep redaction below sees (and scrubs) message, stack and cause.
    serializers: { err: (e: unknown) => redactValue(e) },
    formatters: {
      level: (label) => ({ level: label }),
      log: (obj) => redactValue(obj) as Record<string, unknown>,
      bindings: (b) => redactValue(b) as Record<string, unknown>,
    },
    hooks: {
      logMethod(args, method) {
        const scrubbed = args.map((a) => (typeof a === 'string' ? redactText(a) : a));
        return method.apply(this, scrubbed as Parameters<typeof method>);
      },
    },
  };
  const logger = opts.destination ? pino(options, opts.destination) : pino(options);
  // pino deliberately skips the bindings formatter for children; scrub their
  // bindings here instead. Children inherit this `child` through the prototype.
  const originalChild = logger.child;
  logger.child = function safeChild(this: Logger, bindings, childOptions) {
    return originalChild.call(this, redactValue(bindings) as typeof bindings, childOptions);
  } as typeof logger.child;
  return logger;
}
