/**
 * The API server's errors about an object whose values are masked, with their
 * words withheld. An error can quote the object it was about: a JSON patch
 * that fails to apply to a Secret is answered with the whole Secret in the
 * message, an invalid label with the value that made it invalid. Such a
 * Status keeps its code, reason and the names in its details (from the
 * request's URL); its message and every cause's message become a fixed text.
 */
import { check } from '@chaperone/shared';
import { type StatusBody, statusBody } from './status.ts';

type Obj = Record<string, unknown>;

const isObj = check.isObject;

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** What a withheld message says. */
export function withheldMessage(code: number, reason: string): string {
  return `chaperone: the API server refused the request (${code}${reason ? ` ${reason}` : ''}); its message is withheld because it may quote values the guard masks`;
}

export const WITHHELD_CAUSE = 'withheld: it may quote values the guard masks';

/**
 * The Status to send instead of the API server's error `body` (answered with
 * `code`): only the code, the reason and the details' names, kind, group,
 * uid, retry delay and the causes' reasons and fields are kept.
 */
export function withheldStatus(code: number, body: Buffer): StatusBody {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    doc = undefined;
  }
  const s = isObj(doc) ? doc : {};
  const reason = text(s.reason) ?? '';
  const details: Obj = {};
  if (isObj(s.details)) {
    const d = s.details;
    for (const key of ['name', 'group', 'kind', 'uid'] as const) {
      const v = text(d[key]);
      if (v !== undefined) details[key] = v;
    }
    if (typeof d.retryAfterSeconds === 'number') details.retryAfterSeconds = d.retryAfterSeconds;
    if (Array.isArray(d.causes)) {
      details.causes = d.causes.filter(isObj).map((c) => ({
        ...(text(c.reason) !== undefined ? { reason: c.reason } : {}),
        message: WITHHELD_CAUSE,
        ...(text(c.field) !== undefined ? { field: c.field } : {}),
      }));
    }
  }
  return statusBody(
    code,
    reason,
    withheldMessage(code, reason),
    Object.keys(details).length > 0 ? details : undefined,
  );
}
