/**
 * One error type for the whole project. Every error carries a stable `code`
 * from a closed union so callers, metrics and clients can branch on it, and an
 * optional `cause`. Messages say what happened, which rule or limit, and what
 * to do about it.
 */
export const ERROR_CODES = [
  'config_invalid',
  'usage',
  'validation_failed',
  'policy_invalid',
  'tls_failed',
  'not_found',
  'unavailable',
  'limit_exceeded',
  'unauthenticated',
  'forbidden',
  'conflict',
  'timeout',
  'dependency_missing',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ChaperoneErrorOptions {
  cause?: unknown;
  /** Extra machine-readable facts (never secret values). */
  details?: Readonly<Record<string, unknown>>;
}

export class ChaperoneError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: ChaperoneErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ChaperoneError';
    this.code = code;
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }
}

export class ConfigError extends ChaperoneError {
  constructor(message: string, options?: ChaperoneErrorOptions) {
    super('config_invalid', message, options);
    this.name = 'ConfigError';
  }
}

export class ValidationError extends ChaperoneError {
  /** JSON-pointer-like location of the offending value, e.g. `/objectRef/resource`. */
  readonly path: string;
  constructor(path: string, message: string, options?: ChaperoneErrorOptions) {
    super('validation_failed', path ? `${path}: ${message}` : message, options);
    this.name = 'ValidationError';
    this.path = path;
  }
}

export class UsageError extends ChaperoneError {
  constructor(message: string, options?: ChaperoneErrorOptions) {
    super('usage', message, options);
    this.name = 'UsageError';
  }
}

export class DependencyError extends ChaperoneError {
  constructor(message: string, options?: ChaperoneErrorOptions) {
    super('dependency_missing', message, options);
    this.name = 'DependencyError';
  }
}

/** Normalises anything thrown into a ChaperoneError; use at the edges only. */
export function toChaperoneError(err: unknown, fallback: ErrorCode = 'internal'): ChaperoneError {
  if (err instanceof ChaperoneError) return err;
  if (err instanceof Error) return new ChaperoneError(fallback, err.message, { cause: err });
  return new ChaperoneError(fallback, `non-error thrown: ${String(err)}`);
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}
