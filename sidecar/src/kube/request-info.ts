/**
 * A Kubernetes request target → the parts of an Action, read exactly as the
 * API server reads it for authorization and audit (k8s.io/apiserver
 * RequestInfoFactory.NewRequestInfo, on a Go net/http request):
 *
 *   /api/v1/namespaces/{ns}/{resource}/{name}/{subresource}
 *   /apis/{group}/{version}/namespaces/{ns}/{resource}/{name}/{subresource}
 *   /api/v1/{clusterResource}/{name}/{subresource}
 *   /api/v1/watch/…, /api/v1/proxy/… (legacy prefixes: the verb is watch / proxy)
 *
 * The server's rules, which this file follows:
 * - The path is percent-decoded first (Go url.ParseRequestURI), then leading
 *   and trailing "/" are trimmed and it is split on "/" — so an encoded "/"
 *   makes new segments and an inner "//" makes an empty one (an empty
 *   namespace means all namespaces). Dot segments are not resolved.
 * - Verb: a `watch` or `proxy` segment after the version is the verb (and must
 *   be followed by something, else the server fails the request before
 *   auditing it); otherwise GET/HEAD → get, POST → create, PUT → update,
 *   PATCH → patch, DELETE → delete, anything else → "". A get without a name is
 *   list, or watch when the query's first `watch` value is neither "0" nor
 *   "false" (any case; an empty value counts as true); a delete without a name
 *   is deletecollection. Non-resource requests (/version, /api, /apis/apps/v1,
 *   /healthz, …) have the lower-cased method as verb.
 * - Only for a get without a name, the query is decoded as ListOptions; when
 *   that succeeds and `fieldSelector` requires `metadata.name` to equal a value
 *   that is a valid path segment name, that value is the name. Decoding fails
 *   (and the name is not taken) when labelSelector or fieldSelector does not
 *   parse or limit / timeoutSeconds is not a 64-bit integer; duplicated
 *   parameters are read by their first value.
 * - The query is split as Go ≥ 1.17 does (url.ParseQuery): on "&" only; a
 *   pair holding ";" or an invalid escape is dropped silently; "+" is a space.
 *   (Go < 1.17 also split on ";".)
 *
 * What the sidecar cannot be sure to read identically it refuses
 * (UnreadableRequestError, answered by guards/request-reading.ts before
 * anything is forwarded): encoded "/" or "%" and other unexpected characters
 * in the path, empty and dot segments, ";" and invalid escapes in the query,
 * query values that are not UTF-8, list parameters given twice, non-ASCII
 * watch values (the server compares them with two different case foldings),
 * and label selectors it does not fully check when they decide whether a
 * fieldSelector names the object. Pure.
 */
import type { Action, ExecTarget } from '@chaperone/shared';
import { readPort } from './portforward/ports-query.ts';

export interface RequestInfo {
  readonly isResourceRequest: boolean;
  readonly verb: string;
  readonly apiGroup: string;
  readonly apiVersion: string;
  readonly namespace?: string;
  readonly resource?: string;
  readonly subresource?: string;
  readonly name?: string;
  /** Set for non-resource requests: the decoded path. */
  readonly path?: string;
  /** exec / attach / portforward details, from the query. */
  readonly exec?: ExecTarget;
}

/** A request the sidecar refuses because it cannot be sure to read it as the API server would. */
export class UnreadableRequestError extends Error {
  readonly status: 400 | 405;
  readonly reason: 'BadRequest' | 'MethodNotAllowed';
  constructor(message: string, status: 400 | 405 = 400) {
    super(message);
    this.name = 'UnreadableRequestError';
    this.status = status;
    this.reason = status === 405 ? 'MethodNotAllowed' : 'BadRequest';
  }
}

/** The methods the Kubernetes API serves (case-sensitive, as in Go). */
export const KUBE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

/** Subresources of a namespace object itself (`/api/v1/namespaces/{name}/status`). */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);
/** Pod subresources that open interactive sessions (exec, attach, port-forward). */
export const CONNECT_SUBRESOURCES: ReadonlySet<string> = new Set(['exec', 'attach', 'portforward']);
/** metav1.ListOptions as a query: the parameters the server reads (by their first value). */
const LIST_PARAMETERS = new Set([
  'labelSelector',
  'fieldSelector',
  'watch',
  'allowWatchBookmarks',
  'resourceVersion',
  'resourceVersionMatch',
  'timeoutSeconds',
  'limit',
  'continue',
]);

/** Characters a path segment may hold, raw or decoded: RFC 3986 pchar without "%". */
const PATH_SAFE = charTable(
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@",
);
/** Raw characters of a query (RFC 3986 query: pchar, "/", "?"; "%" starts an escape; ";" is refused separately). */
const QUERY_SAFE = charTable(
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%",
);
const SAFE_LIST = "letters, digits and -._~!$&'()*+,;=:@";

function charTable(chars: string): Uint8Array {
  const t = new Uint8Array(128);
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

function refuse(problem: string, instead: string): never {
  throw new UnreadableRequestError(
    `chaperone: the request URL cannot be read with certainty the way the API server reads it: ${problem}; ${instead}`,
  );
}

function describeChar(code: number): string {
  if (code < 0x20 || code === 0x7f) return `control character 0x${code.toString(16).padStart(2, '0')}`;
  if (code > 0x7f) return 'a non-ASCII character';
  return code === 0x20 ? 'a space' : `"${String.fromCharCode(code)}"`;
}

/** One path segment, percent-decoded; refuses what is not a plain segment. */
function decodeSegment(raw: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) {
        refuse(
          'the path has a "%" that is not followed by two hex digits (the API server rejects it)',
          'percent-encode "%" as %25 — or better, leave it out: Kubernetes names never contain "%"',
        );
      }
      const b = (hi << 4) | lo;
      const encoded = raw.slice(i, i + 3);
      if (b === 47) {
        refuse(
          `the path contains ${encoded}, an encoded "/": the API server decodes the path before splitting it, so it would read other segments than were sent`,
          'send "/" only between segments, unencoded (names never contain "/")',
        );
      }
      if (b === 37) {
        refuse(
          `the path contains ${encoded}, an encoded "%"`,
          'Kubernetes names never contain "%"; send the path unencoded',
        );
      }
      if (PATH_SAFE[b] !== 1) {
        refuse(
          `the path contains ${encoded}, which decodes to ${describeChar(b)}, which no Kubernetes path segment uses`,
          `send path segments of ${SAFE_LIST} only`,
        );
      }
      out += raw.slice(from, i) + String.fromCharCode(b);
      from = i + 3;
      i += 2;
    } else if (c > 127 || PATH_SAFE[c] !== 1) {
      refuse(
        `the path contains ${describeChar(c)}`,
        `send path segments of ${SAFE_LIST} only (percent-encoding them changes nothing)`,
      );
    }
  }
  const seg = from === 0 ? raw : out + raw.slice(from);
  if (seg === '.' || seg === '..') {
    refuse(
      `the path has a "${seg}" segment, which the API server does not resolve (it would read it as a name)`,
      'send the path with dot segments resolved',
    );
  }
  return seg;
}

/**
 * The decoded segments of an origin-form path ("/a/b/"), as the server's
 * splitPath gives them, and the decoded path. A single trailing "/" is
 * accepted (the server trims it); empty segments anywhere else are refused.
 */
export function readPath(rawPath: string): { segments: string[]; path: string } {
  if (rawPath.charCodeAt(0) !== 47) {
    refuse('the path does not start with "/"', 'send an absolute path such as /api/v1/namespaces');
  }
  if (rawPath.length === 1) return { segments: [], path: '/' };
  const trailing = rawPath.charCodeAt(rawPath.length - 1) === 47;
  const body = trailing ? rawPath.slice(1, -1) : rawPath.slice(1);
  const raw = body.split('/');
  const segments = new Array<string>(raw.length);
  let changed = false;
  for (let i = 0; i < raw.length; i++) {
    const r = raw[i] as string;
    if (r.length === 0) {
      refuse(
        'the path has an empty segment ("//"), which the API server keeps (an empty namespace means every namespace)',
        'remove the extra "/"',
      );
    }
    const seg = decodeSegment(r);
    if (seg !== r) changed = true;
    segments[i] = seg;
  }
  const path = changed ? `/${segments.join('/')}${trailing ? '/' : ''}` : rawPath;
  return { segments, path };
}

/** The query as the API server's url.ParseQuery gives it, and what the sidecar refuses in it. */
export interface QueryReading {
  readonly params: URLSearchParams;
  /** Why the request must be refused (the first problem found), if it must. */
  readonly problem: string | undefined;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const UTF8_LENIENT = new TextDecoder('utf-8');

/** Go's url.QueryUnescape: undefined on an invalid escape; `bad` set when the bytes are not UTF-8. */
function queryUnescape(s: string, state: { bad: boolean }): string | undefined {
  let escapes = false;
  let plus = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37) {
      if (hexValue(s.charCodeAt(i + 1)) < 0 || hexValue(s.charCodeAt(i + 2)) < 0) return undefined;
      escapes = true;
      i += 2;
    } else if (c === 43) plus = true;
  }
  if (!escapes) return plus ? s.replaceAll('+', ' ') : s;
  const bytes = Buffer.allocUnsafe(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37) {
      bytes[n++] = (hexValue(s.charCodeAt(i + 1)) << 4) | hexValue(s.charCodeAt(i + 2));
      i += 2;
    } else bytes[n++] = c === 43 ? 32 : c;
  }
  const view = bytes.subarray(0, n);
  try {
    return UTF8.decode(view);
  } catch {
    state.bad = true;
    return UTF8_LENIENT.decode(view);
  }
}

/**
 * Splits a raw query (without "?") as Go ≥ 1.17's url.ParseQuery does —
 * pairs in order, duplicates kept — and notes what the sidecar refuses.
 */
export function readQuery(rawQuery: string): QueryReading {
  const params = new URLSearchParams();
  let problem: string | undefined;
  const note = (p: string) => {
    if (problem === undefined) problem = p;
  };
  for (let i = 0; i < rawQuery.length; i++) {
    const c = rawQuery.charCodeAt(i);
    if (c > 127 || QUERY_SAFE[c] !== 1) {
      note(`the query contains ${describeChar(c)}; percent-encode it`);
      break;
    }
  }
  if (rawQuery.includes(';')) {
    note(
      'the query contains ";": the API server drops every parameter holding one (Go before 1.17 split on it instead); separate parameters with "&" and send ";" inside a value as %3B',
    );
  }
  const state = { bad: false };
  let seen: Set<string> | undefined;
  let start = 0;
  while (start <= rawQuery.length) {
    let end = rawQuery.indexOf('&', start);
    if (end === -1) end = rawQuery.length;
    const pair = rawQuery.slice(start, end);
    start = end + 1;
    if (pair.length === 0 || pair.includes(';')) continue;
    const eq = pair.indexOf('=');
    const key = queryUnescape(eq === -1 ? pair : pair.slice(0, eq), state);
    const value = eq === -1 ? '' : queryUnescape(pair.slice(eq + 1), state);
    if (key === undefined || value === undefined) {
      note(
        'the query has a "%" not followed by two hex digits: the API server drops that parameter silently; send "%" as %25',
      );
      continue;
    }
    if (LIST_PARAMETERS.has(key)) {
      seen ??= new Set();
      if (seen.has(key)) {
        note(`the query gives "${key}" more than once (the API server reads only the first); send it once`);
      }
      seen.add(key);
    }
    params.append(key, value);
  }
  if (state.bad) note('a percent-encoded query value is not valid UTF-8; send UTF-8 text');
  return { params, problem };
}

// ---- fieldSelector (k8s.io/apimachinery/pkg/fields) -------------------------------------------

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) return false;
  return true;
}

/** Go's sort.Strings order: bytewise over UTF-8. */
function byteOrder(a: string, b: string): number {
  if (isAscii(a) && isAscii(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** fields.UnescapeValue: undefined when the value is invalid. */
function unescapeFieldValue(s: string): string | undefined {
  if (!s.includes('\\') && !s.includes(',') && !s.includes('=')) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (c === '\\') {
      const n = s[i + 1];
      if (n !== '\\' && n !== ',' && n !== '=') return undefined;
      out += n;
      i++;
    } else if (c === ',' || c === '=') return undefined;
    else out += c;
  }
  return out;
}

const NOT_PARSED = Symbol('not parsed');

/**
 * fields.ParseSelector followed by RequiresExactMatch("metadata.name"): the
 * required name ("" when there is none), or NOT_PARSED when the selector is
 * invalid (and the server's ListOptions decoding fails).
 */
function fieldSelectorName(selector: string): string | typeof NOT_PARSED {
  // splitTerms: on commas not escaped by a backslash.
  const terms: string[] = [];
  let from = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector.charCodeAt(i);
    if (c === 92) i++;
    else if (c === 44) {
      terms.push(selector.slice(from, i));
      from = i + 1;
    }
  }
  if (selector.length > 0) terms.push(selector.slice(from));
  // The server sorts the terms and takes the first exact metadata.name requirement.
  let best: string | undefined;
  let bestValue = '';
  for (const term of terms) {
    if (term === '') continue;
    // splitTerm: the first position where "!=", "==" or "=" starts.
    let at = -1;
    let op = '';
    for (let i = 0; i < term.length; i++) {
      const c = term.charCodeAt(i);
      if (c === 33 && term.charCodeAt(i + 1) === 61) {
        op = '!=';
      } else if (c === 61) {
        op = term.charCodeAt(i + 1) === 61 ? '==' : '=';
      } else continue;
      at = i;
      break;
    }
    if (at === -1) return NOT_PARSED;
    const value = unescapeFieldValue(term.slice(at + op.length));
    if (value === undefined) return NOT_PARSED;
    if (op !== '!=' && term.slice(0, at) === 'metadata.name') {
      if (best === undefined || byteOrder(term, best) < 0) {
        best = term;
        bestValue = value;
      }
    }
  }
  return bestValue;
}

/** path.IsValidPathSegmentName. */
function isValidPathSegmentName(name: string): boolean {
  return name !== '.' && name !== '..' && !name.includes('/') && !name.includes('%');
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** strconv.ParseInt(s, 10, 64) succeeds. */
function isInt64(s: string): boolean {
  if (!/^[+-]?[0-9]+$/.test(s)) return false;
  const n = BigInt(s);
  return n >= INT64_MIN && n <= INT64_MAX;
}

// ---- labelSelector (k8s.io/apimachinery/pkg/labels), a subset surely accepted ---------------

const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function isLabelKey(k: string): boolean {
  if (k === 'in' || k === 'notin') return false; // the lexer reads these as keywords
  const slash = k.indexOf('/');
  const name = slash === -1 ? k : k.slice(slash + 1);
  if (slash !== -1) {
    const prefix = k.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) return false;
  }
  return name.length <= 63 && LABEL_NAME.test(name);
}

function isLabelValue(v: string): boolean {
  return v === '' || (v !== 'in' && v !== 'notin' && v.length <= 63 && LABEL_NAME.test(v));
}

/**
 * True when labels.Parse certainly accepts the selector: comma-separated
 * `key`, `!key`, `key=value`, `key==value`, `key!=value` with valid keys and
 * values and no spaces. False means "not sure", not "invalid".
 */
function isSimpleLabelSelector(s: string): boolean {
  if (s === '') return true;
  for (const term of s.split(',')) {
    const m = /^(!?)([^=!]+)(?:(=|==|!=)([^=!]*))?$/.exec(term);
    if (!m) return false;
    const key = m[2] as string;
    if (!isLabelKey(key)) return false;
    if (m[3] !== undefined && (m[1] === '!' || !isLabelValue(m[4] as string))) return false;
  }
  return true;
}

// ---- the request ---------------------------------------------------------------------------

function methodVerb(method: string): string {
  switch (method) {
    case 'GET':
    case 'HEAD':
      return 'get';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return 'delete';
    default:
      return '';
  }
}

function nonResource(method: string, path: string): RequestInfo {
  return { isResourceRequest: false, verb: method.toLowerCase(), apiGroup: '', apiVersion: '', path };
}

function execTarget(subresource: string, query: URLSearchParams): ExecTarget {
  const kind = subresource as ExecTarget['kind'];
  // An empty container= is no container, as the API server reads it.
  const container = query.get('container') || undefined;
  const base: ExecTarget = {
    kind,
    argv: kind === 'exec' ? query.getAll('command') : [],
    ...(container !== undefined ? { container } : {}),
  };
  if (kind !== 'portforward') return base;
  // Strictly, as the API server does (decimal digits only): `0x1F90` or ` 80` names no port here.
  const ports = query
    .getAll('ports')
    .flatMap((p) => p.split(','))
    .map(readPort)
    .filter((n) => n !== undefined);
  return { ...base, ports };
}

/** Whether a list/watch names one object through its fieldSelector, as the server decides it. */
function listName(query: URLSearchParams): string | undefined {
  const selector = query.get('fieldSelector');
  if (selector === null) return undefined;
  const name = fieldSelectorName(selector);
  if (name === NOT_PARSED || name === '' || !isValidPathSegmentName(name)) return undefined;
  // The name counts only if the whole ListOptions decodes.
  const limit = query.get('limit');
  const timeout = query.get('timeoutSeconds');
  if ((limit !== null && !isInt64(limit)) || (timeout !== null && !isInt64(timeout))) return undefined;
  const labels = query.get('labelSelector');
  if (labels !== null && !isSimpleLabelSelector(labels)) {
    refuse(
      'whether the API server takes the metadata.name of this fieldSelector depends on it parsing this labelSelector, which the sidecar does not fully check',
      'use only key, !key, key=value and key!=value terms with it, or get the object by name (…/<resource>/<name>)',
    );
  }
  return name;
}

/**
 * The RequestInfo of a request: `rawPath` is the path as sent (not decoded),
 * `query` the parameters as readQuery gives them. Throws
 * UnreadableRequestError for a path or query the sidecar refuses to guess at.
 */
export function parseRequestInfo(method: string, rawPath: string, query: URLSearchParams): RequestInfo {
  const { segments: parts, path } = readPath(rawPath);
  const n = parts.length;
  if (n < 3) return nonResource(method, path);
  let at: number;
  let apiGroup: string;
  const prefix = parts[0];
  if (prefix === 'api') {
    apiGroup = '';
    at = 1;
  } else if (prefix === 'apis') {
    if (n < 4) return nonResource(method, path);
    apiGroup = parts[1] as string;
    at = 2;
  } else {
    return nonResource(method, path);
  }
  const apiVersion = parts[at++] as string;

  let verb: string;
  const special = parts[at];
  if (special === 'watch' || special === 'proxy') {
    if (at + 1 >= n) {
      refuse(
        `"${path}" ends at the legacy /${special}/ prefix, which the API server fails without reading`,
        special === 'watch' ? 'name a resource after it, or use ?watch=true' : 'name a resource after it',
      );
    }
    verb = special;
    at++;
  } else {
    verb = methodVerb(method);
  }

  let namespace: string | undefined;
  if (parts[at] === 'namespaces' && at + 1 < n) {
    namespace = parts[at + 1];
    if (at + 2 < n && !NAMESPACE_SUBRESOURCES.has(parts[at + 2] as string)) at += 2;
  }
  // parts[at…]: resource / name / subresource / anything further (not interpreted).
  const resource = parts[at];
  let name = parts[at + 1];
  const subresource = verb === 'proxy' ? undefined : parts[at + 2];

  if (name === undefined && verb === 'get') {
    const watch = query.get('watch');
    if (watch === null) verb = 'list';
    else {
      if (!isAscii(watch)) {
        refuse('the watch parameter is not ASCII', 'send watch=true or watch=false');
      }
      const w = watch.toLowerCase();
      verb = w === '0' || w === 'false' ? 'list' : 'watch';
    }
    name = listName(query);
  } else if (name === undefined && verb === 'delete') {
    verb = 'deletecollection';
  }

  // Built member by member (no spreads): this runs for every request.
  const info: { -readonly [K in keyof RequestInfo]: RequestInfo[K] } = {
    isResourceRequest: true,
    verb,
    apiGroup,
    apiVersion,
  };
  if (namespace !== undefined) info.namespace = namespace;
  if (resource !== undefined) info.resource = resource;
  if (subresource !== undefined) info.subresource = subresource;
  if (name !== undefined) info.name = name;
  if (resource === 'pods' && subresource !== undefined && CONNECT_SUBRESOURCES.has(subresource)) {
    info.exec = execTarget(subresource, query);
  }
  return info;
}

/**
 * Everything the sidecar checks before it forwards a request: the method,
 * the query's problems (from readQuery) and the path. Returns the
 * RequestInfo, or throws UnreadableRequestError.
 */
export function readRequestInfo(
  method: string,
  rawPath: string,
  query: URLSearchParams,
  queryProblem: string | undefined,
): RequestInfo {
  if (!KUBE_METHODS.has(method)) {
    throw new UnreadableRequestError(
      `chaperone: the HTTP method "${method}" is not one the Kubernetes API serves through this proxy (methods are case-sensitive); send GET, HEAD, POST, PUT, PATCH or DELETE`,
      405,
    );
  }
  if (queryProblem !== undefined) {
    throw new UnreadableRequestError(
      `chaperone: the request URL cannot be read with certainty the way the API server reads it: ${queryProblem}`,
    );
  }
  return parseRequestInfo(method, rawPath, query);
}

/** Splits an origin-form request target into its raw path and its query as the server reads it. */
export function splitTarget(target: string): { path: string; rawQuery: string } {
  const q = target.indexOf('?');
  return q === -1
    ? { path: target, rawQuery: '' }
    : { path: target.slice(0, q), rawQuery: target.slice(q + 1) };
}

/** Impersonation headers, by their canonical names, that are present on a request. */
export function impersonationHeaders(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): string[] {
  const found: string[] = [];
  for (const key of Object.keys(headers)) {
    const k = key.toLowerCase();
    if (
      k === 'impersonate-user' ||
      k === 'impersonate-group' ||
      k === 'impersonate-uid' ||
      k.startsWith('impersonate-extra-')
    ) {
      found.push(key);
    }
  }
  return found;
}

/** The Action the policy decides on. Exec-style sessions are normalised to the `exec` protocol, verb `create`. */
export function toAction(
  info: RequestInfo,
  extra: { user?: string; impersonation?: readonly string[] },
): Action {
  const common = {
    ...(extra.user ? { user: extra.user } : {}),
    ...(extra.impersonation && extra.impersonation.length > 0 ? { impersonation: extra.impersonation } : {}),
  };
  if (!info.isResourceRequest) {
    return { protocol: 'kubernetes', verb: info.verb, nonResourceURL: info.path ?? '/', ...common };
  }
  const base = {
    apiGroup: info.apiGroup,
    apiVersion: info.apiVersion,
    ...(info.namespace !== undefined ? { namespace: info.namespace } : {}),
    ...(info.resource !== undefined ? { resource: info.resource } : {}),
    ...(info.subresource !== undefined ? { subresource: info.subresource } : {}),
    ...(info.name !== undefined ? { name: info.name } : {}),
    ...common,
  };
  if (info.exec) return { protocol: 'exec', verb: 'create', exec: info.exec, ...base };
  return { protocol: 'kubernetes', verb: info.verb, ...base };
}
