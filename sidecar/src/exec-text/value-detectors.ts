/**
 * The fixed value detectors of the stream masker: each looks at the bytes
 * from a position `i` and says whether a secret starts there (MATCH, with how
 * many bytes to replace and what to swallow after them), does not (NO), or
 * cannot tell yet because the bytes stop too early (MORE). A detector answers
 * MORE only while more bytes could change its answer, and the same answer
 * for the same bytes however they were cut, so the masker's output does not
 * depend on how the stream was split. With `final` the stream has ended and
 * a detector that would wait says NO.
 *
 * MORE carries `pub`: how many bytes from `i` are a public marker (the
 * `eyJ` of a JWT, a `ghp_` prefix, the `aws_secret_access_key =` before a
 * value) that may be shown while the rest is still undecided; never any part
 * of the secret itself.
 */

export type MaskKind =
  | 'private-key'
  | 'jwt'
  | 'aws-access-key-id'
  | 'aws-secret-access-key'
  | 'github-token'
  | 'slack-token'
  | 'secret';

export const MASK_KINDS: readonly MaskKind[] = [
  'private-key',
  'jwt',
  'aws-access-key-id',
  'aws-secret-access-key',
  'github-token',
  'slack-token',
  'secret',
];

/** After a match: bytes that continue the secret are swallowed too (no bytes held for them). */
export type Swallow =
  /** While the byte is in the table (the rest of a token). */
  | { readonly t: 'run'; readonly table: Uint8Array }
  /** Until an END line, or a byte that cannot be in a PEM body. */
  | { readonly t: 'pem' }
  /**
   * Base64, across a line break only after a full wrapped line (64 characters
   * from `openssl base64`, 76 from `base64`); `line` counts this line so far.
   */
  | { readonly t: 'base64'; line: number }
  /** While the bytes continue one of these long literal values, from `off`. */
  | { readonly t: 'follow'; forms: Uint8Array[]; off: number };

export const NO = 0;
export const MORE = 1;
export const MATCH = 2;

export type Verdict =
  | { readonly t: typeof NO; readonly until?: number }
  | { readonly t: typeof MORE; readonly pub: number }
  | {
      readonly t: typeof MATCH;
      /** Bytes from `i` shown as they are before the marker (a key name before its value). */
      readonly keep: number;
      /** Bytes from `i` the match covers (kept ones included). */
      readonly len: number;
      readonly kind: MaskKind;
      readonly swallow?: Swallow;
    };

export const VERDICT_NO: Verdict = { t: NO };

function more(pub: number): Verdict {
  return { t: MORE, pub };
}

function table(chars: string): Uint8Array {
  const t = new Uint8Array(256);
  for (const c of chars) t[c.charCodeAt(0)] = 1;
  return t;
}

const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';
const ALNUM_CHARS = UPPER + LOWER + DIGITS;

const B64URL = table(`${ALNUM_CHARS}-_`);
const B64URL_DOT = table(`${ALNUM_CHARS}-_.`);
const UPPER_ALNUM = table(UPPER + DIGITS);
const ALNUM = table(ALNUM_CHARS);
const ALNUM_US = table(`${ALNUM_CHARS}_`);
const SLACK = table(`${ALNUM_CHARS}-`);
const AWS_SECRET_VALUE = table(`${ALNUM_CHARS}/+`);
const PEM_LABEL = table(`${UPPER}${DIGITS} `);
/**
 * What a PEM body may hold, also when printed inside JSON (`\n`), with RFC 1421
 * headers (`Proc-Type: 4,ENCRYPTED`), line numbers or grep prefixes. Any other
 * byte ends the masked block, so a BEGIN line quoted in source code does not
 * swallow the rest of the output; key material (base64) never ends it.
 */
export const PEM_BODY = table(`${ALNUM_CHARS}+/=-_\\:,. \t\r\n`);

const DASH = 0x2d;
const DOT = 0x2e;

/**
 * Compares `lit` with the bytes at `i`: 1 all there, 0 agrees as far as the
 * bytes go (more needed), -1 differs.
 */
function prefixAt(b: Uint8Array, i: number, end: number, lit: Uint8Array): 1 | 0 | -1 {
  const n = Math.min(lit.length, end - i);
  for (let k = 0; k < n; k++) if (b[i + k] !== lit[k]) return -1;
  return n === lit.length ? 1 : 0;
}

/** Like prefixAt for a lower-case ASCII word, ignoring case. */
function wordAt(b: Uint8Array, i: number, end: number, word: Uint8Array): 1 | 0 | -1 {
  const n = Math.min(word.length, end - i);
  for (let k = 0; k < n; k++) if (((b[i + k] as number) | 0x20) !== word[k]) return -1;
  return n === word.length ? 1 : 0;
}

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

const BEGIN = ascii('-----BEGIN ');
const END = ascii('-----END ');
const DASHES = ascii('-----');
const MAX_PEM_LABEL = 64;

/**
 * `-----BEGIN <label>-----` (or END) whose label names a private key: RSA, EC,
 * DSA, OPENSSH, ENCRYPTED, PGP … PRIVATE KEY (BLOCK).
 */
export function pemLine(b: Uint8Array, i: number, end: number, final: boolean, begin: boolean): Verdict {
  const open = begin ? BEGIN : END;
  const p = prefixAt(b, i, end, open);
  if (p < 0) return VERDICT_NO;
  if (p === 0) return final ? VERDICT_NO : more(end - i);
  const labelStart = i + open.length;
  let j = labelStart;
  while (j < end && PEM_LABEL[b[j] as number] && j - labelStart <= MAX_PEM_LABEL) j++;
  if (j - labelStart > MAX_PEM_LABEL) return VERDICT_NO;
  if (j === end) return final ? VERDICT_NO : more(end - i);
  const d = prefixAt(b, j, end, DASHES);
  if (d < 0) return VERDICT_NO;
  if (d === 0) return final ? VERDICT_NO : more(end - i);
  if (!Buffer.from(b.buffer, b.byteOffset + labelStart, j - labelStart).includes('PRIVATE KEY'))
    return VERDICT_NO;
  return {
    t: MATCH,
    keep: 0,
    len: j + DASHES.length - i,
    kind: 'private-key',
    swallow: begin ? PEM : undefined,
  };
}
const PEM: Swallow = { t: 'pem' };

export const B64 = table(`${ALNUM_CHARS}+/=`);
const PEM_B64_PREFIX = ascii('LS0tLS1CRUdJTi');
/** Base64 characters that hold the longest BEGIN line (80 bytes). */
const PEM_B64_HEAD = 108;
const PEM_B64_LINE = /^-----BEGIN ([A-Z0-9 ]{1,64})-----/;

/**
 * A PEM private key encoded in base64, as kubeconfig `client-key-data` and a
 * Secret's `tls.key` print it: `LS0tLS1CRUdJTi` is the encoding of
 * `-----BEGIN `; the first 108 characters are decoded to read the label. The
 * rest is swallowed, also over the lines of wrapped base64.
 */
export function pemBase64(b: Uint8Array, i: number, end: number, final: boolean): Verdict {
  const p = prefixAt(b, i, end, PEM_B64_PREFIX);
  if (p < 0) return VERDICT_NO;
  if (p === 0) return final ? VERDICT_NO : more(end - i);
  let j = i + PEM_B64_PREFIX.length;
  while (j < end && j - i < PEM_B64_HEAD && B64[b[j] as number]) j++;
  if (j - i < PEM_B64_HEAD && j === end && !final) return more(PEM_B64_PREFIX.length);
  const encoded = Buffer.from(b.buffer, b.byteOffset + i, (j - i) & ~3).toString('latin1');
  const label = PEM_B64_LINE.exec(Buffer.from(encoded, 'base64').toString('latin1'))?.[1];
  if (!label?.includes('PRIVATE KEY')) return VERDICT_NO;
  return { t: MATCH, keep: 0, len: j - i, kind: 'private-key', swallow: { t: 'base64', line: j - i } };
}

/**
 * A JWT (RFC 7519, compact JWS): `eyJ` (base64url of `{"`) + header, `.`,
 * payload, `.`, signature, all base64url. Confirmed at the second dot; the
 * signature is swallowed. A candidate that runs for `cap` bytes without being
 * decided is masked (a held-back buffer must stay bounded, and showing it
 * could show a token). On NO, `until` is where the candidate failed: no JWT
 * can start before it either (its segments would end at the same byte).
 */
export function jwt(b: Uint8Array, i: number, end: number, final: boolean, cap: number): Verdict {
  if (b[i] !== 0x65) return VERDICT_NO;
  if (end - i < 3) {
    if (prefixAt(b, i, end, EYJ) < 0) return VERDICT_NO;
    return final ? VERDICT_NO : more(end - i);
  }
  if (b[i + 1] !== 0x79 || b[i + 2] !== 0x4a) return VERDICT_NO;
  const limit = i + cap;
  let j = i + 3;
  let dot1 = -1;
  for (;;) {
    while (j < end && j < limit && B64URL[b[j] as number]) j++;
    if (j === limit) return { t: MATCH, keep: 0, len: cap, kind: 'jwt', swallow: JWT_OVERFLOW };
    if (j === end) return final ? { t: NO, until: end } : more(3);
    if (b[j] !== DOT) return { t: NO, until: j };
    if (dot1 < 0) {
      if (j - i < 8) return { t: NO, until: j };
      dot1 = j;
      j++;
      continue;
    }
    if (j - dot1 - 1 < 2) return { t: NO, until: j };
    return { t: MATCH, keep: 0, len: j + 1 - i, kind: 'jwt', swallow: JWT_SIGNATURE };
  }
}
const EYJ = ascii('eyJ');
const JWT_SIGNATURE: Swallow = { t: 'run', table: B64URL };
const JWT_OVERFLOW: Swallow = { t: 'run', table: B64URL_DOT };

/**
 * A fixed prefix, then at least `min` bytes of `body`: the match is the
 * prefix and `min` bytes; `swallow` takes the rest of the body run.
 */
function prefixed(
  b: Uint8Array,
  i: number,
  end: number,
  final: boolean,
  prefix: Uint8Array,
  body: Uint8Array,
  min: number,
  kind: MaskKind,
  swallow: Swallow | undefined,
): Verdict {
  const p = prefixAt(b, i, end, prefix);
  if (p < 0) return VERDICT_NO;
  if (p === 0) return final ? VERDICT_NO : more(end - i);
  const start = i + prefix.length;
  let j = start;
  while (j < end && j - start < min && body[b[j] as number]) j++;
  if (j - start === min) return { t: MATCH, keep: 0, len: j - i, kind, swallow };
  if (j === end && !final) return more(prefix.length);
  return VERDICT_NO;
}

const AKIA = ascii('AKIA');
const ASIA = ascii('ASIA');
/** AWS access key id: AKIA (long-term) or ASIA (temporary) + 16 upper-case letters and digits. */
export function awsAccessKeyId(b: Uint8Array, i: number, end: number, final: boolean): Verdict {
  const prefix = b[i + 1] === 0x53 ? ASIA : AKIA;
  return prefixed(b, i, end, final, prefix, UPPER_ALNUM, 16, 'aws-access-key-id', undefined);
}

const GH_CLASSIC = ['ghp_', 'gho_', 'ghs_', 'ghu_', 'ghr_'].map(ascii);
const GH_PAT = ascii('github_pat_');
const RUN_ALNUM: Swallow = { t: 'run', table: ALNUM };
const RUN_ALNUM_US: Swallow = { t: 'run', table: ALNUM_US };
/** GitHub tokens: `ghp_` and the other classic prefixes + 36 alphanumerics; fine-grained `github_pat_…`. */
export function githubToken(b: Uint8Array, i: number, end: number, final: boolean): Verdict {
  if (b[i + 1] === 0x69) {
    return prefixed(b, i, end, final, GH_PAT, ALNUM_US, 22, 'github-token', RUN_ALNUM_US);
  }
  return anyPrefixed(b, i, end, final, GH_CLASSIC, ALNUM, 30, 'github-token', RUN_ALNUM);
}

/** prefixed() for the first of several prefixes that fits (they differ in one byte, so at most one does). */
function anyPrefixed(
  b: Uint8Array,
  i: number,
  end: number,
  final: boolean,
  prefixes: readonly Uint8Array[],
  body: Uint8Array,
  min: number,
  kind: MaskKind,
  swallow: Swallow,
): Verdict {
  for (const prefix of prefixes) {
    const v = prefixed(b, i, end, final, prefix, body, min, kind, swallow);
    if (v.t !== NO) return v;
  }
  return VERDICT_NO;
}

const XOX = ['xoxa-', 'xoxb-', 'xoxp-', 'xoxr-'].map(ascii);
const RUN_SLACK: Swallow = { t: 'run', table: SLACK };
/** Slack tokens: `xoxa-`, `xoxb-`, `xoxp-`, `xoxr-` + at least 10 more. */
export function slackToken(b: Uint8Array, i: number, end: number, final: boolean): Verdict {
  return anyPrefixed(b, i, end, final, XOX, SLACK, 10, 'slack-token', RUN_SLACK);
}

const SECRET = ascii('secret');
const ACCESS = ascii('access');
const KEY = ascii('key');
const MAX_SEPARATOR = 10;
const MIN_AWS_SECRET = 20;
const RUN_AWS_SECRET: Swallow = { t: 'run', table: AWS_SECRET_VALUE };

/**
 * An AWS secret access key is 40 characters of base64 with nothing to tell it
 * from other base64, so it is masked only after a name that says what it is:
 * `aws_secret_access_key = …` (credentials file), `AWS_SECRET_ACCESS_KEY=…`
 * (env), `"SecretAccessKey": "…"` (STS, JSON). The name stays; the value
 * (at least 20 characters, the rest of the run swallowed) is replaced.
 */
export function awsSecretAccessKey(b: Uint8Array, i: number, end: number, final: boolean): Verdict {
  let j = i;
  for (const word of [SECRET, ACCESS, KEY]) {
    if (word !== SECRET && j < end && (b[j] === 0x5f || b[j] === DASH)) j++;
    const w = wordAt(b, j, end, word);
    if (w < 0) return VERDICT_NO;
    if (w === 0) return final ? VERDICT_NO : more(end - i);
    j += word.length;
  }
  const sepStart = j;
  let assigned = false;
  while (j < end && j - sepStart <= MAX_SEPARATOR) {
    const c = b[j];
    if (c === 0x3a || c === 0x3d) {
      if (assigned) return VERDICT_NO;
      assigned = true;
    } else if (c !== 0x20 && c !== 0x09 && c !== 0x22 && c !== 0x27) break;
    j++;
  }
  if (j - sepStart > MAX_SEPARATOR) return VERDICT_NO;
  if (j === end) return final ? VERDICT_NO : more(end - i);
  if (!assigned) return VERDICT_NO;
  const valueStart = j;
  while (j < end && j - valueStart < MIN_AWS_SECRET && AWS_SECRET_VALUE[b[j] as number]) j++;
  if (j - valueStart === MIN_AWS_SECRET) {
    return {
      t: MATCH,
      keep: valueStart - i,
      len: j - i,
      kind: 'aws-secret-access-key',
      swallow: RUN_AWS_SECRET,
    };
  }
  if (j === end && !final) return more(valueStart - i);
  return VERDICT_NO;
}

/** The bytes a detector needs at `i` to be worth calling, as regular-expression source (matched on latin1 text). */
export const FIXED_TRIGGERS: readonly string[] = [
  '-----BEGIN ',
  'LS0tLS1CRUdJTi',
  'eyJ',
  'A[KS]IA',
  'gh[pousr]_',
  'github_pat_',
  'xox[abpr]-',
  '[Ss][Ee][Cc][Rr][Ee][Tt][_-]?[Aa][Cc][Cc][Ee][Ss][Ss][_-]?[Kk][Ee][Yy]',
];
/** The longest text a fixed trigger matches. */
export const FIXED_TRIGGER_MAX = 'secret_access_key'.length;
