/**
 * Reading an HTTP request's target (RFC 9112 §3.2) without trusting it. The
 * target comes from the network as raw bytes Node has only split at spaces:
 * `//`, `http://[`, `*` or a lone `%` are all targets Node hands over. Any
 * code that runs `new URL()` or `decodeURIComponent` on one outside a
 * handler's error handling can throw past every handler; these helpers
 * return an error value the caller answers with 400 instead.
 */
import { ValidationError } from '@chaperone/shared';

/** Longest request target read; Node already caps the whole header block at 16 KiB. */
const MAX_TARGET = 8192;

/**
 * The target's path and query. Origin form (`/path?query`) is read as a path
 * on this server (so `//x` is the path `//x`, not a host `x`); absolute form
 * (`http://host/path`) only with an http(s) scheme; anything else is refused.
 */
export function parseRequestTarget(target: string | undefined): URL {
  const raw = target ?? '';
  if (raw.length > MAX_TARGET)
    throw new ValidationError(
      '',
      `the request target is ${raw.length} characters; the limit is ${MAX_TARGET}`,
    );
  let url: URL;
  try {
    url = raw.startsWith('/') ? new URL(`http://collector${raw}`) : new URL(raw);
  } catch {
    throw new ValidationError('', 'the request target is not a valid path: send /v1/... (origin form)');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ValidationError('', 'the request target must be a path (/v1/...) or an http(s) URL');
  return url;
}

/** decodeURIComponent that refuses malformed percent-encoding as a ValidationError naming `what`. */
export function decodePathSegment(segment: string, what: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ValidationError(what, 'is not valid percent-encoded UTF-8');
  }
}
