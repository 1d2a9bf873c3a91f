/**
 * Scrubbing of secrets from anything that may be logged: values under
 * sensitive keys at any depth, Kubernetes Secret payloads, and credentials
 * embedded in free text (bearer tokens, basic auth, password=..., URLs with
 * user info). Used by the logger; pure and safe on cyclic input.
 */
export const REDACTED = '[REDACTED]';

const SENSITIVE_KEY =
  /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api[-_]?key|token|access[-_]?token|refresh[-_]?token|id[-_]?token|bearer|password|passwd|pwd|secret|client[-_]?secret|private[-_]?key|key[-_]?pem|tls[-_]?key|credentials?|pgpassword)$/i;

const TEXT_PATTERNS: readonly [RegExp, string][] = [
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{4,}/gi, `$1 ${REDACTED}`],
  [
    /\b(password|passwd|pwd|token|secret|api[-_]?key)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&"']+)/gi,
    `$1$2${REDACTED}`,
  ],
  [/(\w+:\/\/[^:/?#\s]+:)[^@/?#\s]+@/g, `$1${REDACTED}@`],
  [/eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, REDACTED],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, REDACTED],
];

export function isSensitiveKey(key: string): boolean {
  return SENSITIVE_KEY.test(key);
}

export function redactText(text: string): string {
  let out = text;
  for (const [re, replacement] of TEXT_PATTERNS) out = out.replace(re, replacement);
  return out;
}

function isSecretObject(value: Record<string, unknown>): boolean {
  return value.kind === 'Secret' && (typeof value.data === 'object' || typeof value.stringData === 'object');
}

/**
 * Returns a redacted deep copy. Keys are kept (so logs still show *what* was
 * there), values under sensitive keys and inside Secret data are replaced.
 */
export function redactValue(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 12) return '[depth limit]';
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1, seen));
  if (value instanceof Error) {
    const e: Record<string, unknown> = { type: value.name, message: redactText(value.message) };
    if (value.stack) e.stack = redactText(value.stack);
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) e.code = code;
    if (value.cause !== undefined) e.cause = redactValue(value.cause, depth + 1, seen);
    return e;
  }
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  const src = value as Record<string, unknown>;
  const secret = isSecretObject(src);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) {
    if (isSensitiveKey(k)) out[k] = v === undefined || v === null || v === '' ? v : REDACTED;
    else if (secret && (k === 'data' || k === 'stringData') && v && typeof v === 'object') {
      out[k] = Object.fromEntries(Object.keys(v).map((dk) => [dk, REDACTED]));
    } else out[k] = redactValue(v, depth + 1, seen);
  }
  return out;
}
