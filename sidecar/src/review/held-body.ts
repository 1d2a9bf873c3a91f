/**
 * What an approver reads of a Kubernetes write's body (HeldAction `body`):
 * JSON pretty printed, a Secret's `data` / `stringData` values (and those a
 * rule's mask fields name) masked as responses are (kube/mask.ts), the whole
 * text then run through the built-in credential detectors, and cut at
 * MAX_HELD_BODY_CHARS with a marker saying how much was left out. A body
 * that is not JSON is shown as text when it can be read as such (and is not
 * a Secret's); protobuf and other binary bodies are described, not shown.
 */
import { MAX_HELD_BODY_CHARS } from '@chaperone/shared';
import { MASKED_TEXT, maskBody } from '../kube/mask.ts';
import { maskDetected } from './detected-secrets.ts';

export interface BodyFacts {
  readonly bytes: Uint8Array;
  readonly contentType?: string;
  /** The request is about Secrets (their values are masked whatever the body's shape). */
  readonly secrets: boolean;
  /** Top-level fields whose values are masked (Secrets: `data`, `stringData`). */
  readonly maskFields: readonly string[];
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON patch (`[{op, path, value}]`) of a Secret: every value replaced. */
function maskPatchValues(ops: unknown[]): void {
  for (const op of ops) if (isObj(op) && 'value' in op && op.value !== null) op.value = MASKED_TEXT;
}

function cut(text: string): string {
  if (text.length <= MAX_HELD_BODY_CHARS) return text;
  const keep = MAX_HELD_BODY_CHARS - 64;
  return `${text.slice(0, keep)}\n… [${text.length - keep} more characters not shown]`;
}

export function heldBody(b: BodyFacts): string | undefined {
  if (b.bytes.length === 0) return undefined;
  const type = b.contentType ?? 'application/json';
  if (type.startsWith('application/vnd.kubernetes.protobuf'))
    return `[${b.bytes.length} bytes of ${type}: not shown]`;
  const raw = Buffer.from(b.bytes.buffer, b.bytes.byteOffset, b.bytes.byteLength).toString('utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch {
    doc = undefined;
  }
  let text: string;
  if (doc !== undefined) {
    const fields = b.secrets ? [...new Set(['data', 'stringData', ...b.maskFields])] : b.maskFields;
    if (Array.isArray(doc) && b.secrets) maskPatchValues(doc);
    else if (fields.length > 0) maskBody(doc, { fields, secrets: b.secrets });
    text = JSON.stringify(doc, null, 2);
  } else if (b.secrets || raw.includes('\uFFFD') || /(?![\t\n\r])\p{Cc}/u.test(raw)) {
    return `[${b.bytes.length} bytes of ${type}: not shown]`;
  } else {
    text = raw;
  }
  return cut(maskDetected(text).text);
}
