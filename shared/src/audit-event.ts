/**
 * The audit event: a superset of Kubernetes' `audit.k8s.io/v1` Event, so Falco
 * and other Kubernetes-audit consumers read it as-is, plus Chaperone's own
 * fields under `chaperone` (protocol, decision, session, per-sidecar sequence
 * number and hash chain). Events are typed records, never log lines, and hold
 * masked values only.
 */
import { randomUUID } from 'node:crypto';
import { canonicalMembersAround, sha256Hex } from './canonical-json.ts';
import {
  arrayOf,
  bool,
  int,
  num,
  object,
  oneOf,
  onlyKeys,
  optStr,
  RFC3339,
  str,
  stringMap,
} from './check.ts';
import { ValidationError } from './errors.ts';
import { didYouMean } from './suggest.ts';

export const AUDIT_SCHEMA_VERSION = 1;
export const GENESIS_HASH = '0'.repeat(64);

export const AUDIT_LEVELS = ['None', 'Metadata', 'Request', 'RequestResponse'] as const;
export const AUDIT_STAGES = ['RequestReceived', 'ResponseStarted', 'ResponseComplete', 'Panic'] as const;
export const PROTOCOLS = ['kubernetes', 'exec', 'postgres', 'system'] as const;
export const DECISION_ACTIONS = ['allow', 'deny', 'mask', 'review'] as const;

export type AuditLevel = (typeof AUDIT_LEVELS)[number];
export type AuditStage = (typeof AUDIT_STAGES)[number];
export type Protocol = (typeof PROTOCOLS)[number];
export type DecisionAction = (typeof DECISION_ACTIONS)[number];

export interface UserInfo {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface ObjectReference {
  resource?: string;
  namespace?: string;
  name?: string;
  uid?: string;
  apiGroup?: string;
  apiVersion?: string;
  resourceVersion?: string;
  subresource?: string;
}

/** metav1.Status as it appears in `responseStatus`. */
export interface ResponseStatus {
  metadata?: Record<string, unknown>;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: Record<string, unknown>;
}

/** Where the event came from: the pod whose sidecar recorded it. */
export interface EventSource {
  namespace: string;
  pod: string;
  podUID?: string;
  serviceAccount: string;
  /** Stable id of the sidecar instance's chain (one chain per pod, survives restarts). */
  sidecarId: string;
}

export interface DecisionRecord {
  action: DecisionAction;
  /** Name of the rule that decided, or `default` / a built-in rule name. */
  rule: string;
  /** Stable reason code, e.g. `rule_matched`, `policy_default`, `self_protection`. */
  reason: string;
  message?: string;
  /**
   * For `review`: how the hold ended. `unavailable`: no decision could be
   * obtained (no approval service, collector unreachable, connection lost);
   * the action was denied. `by` lists the approvers (or deniers), comma-separated.
   */
  approval?: {
    state: 'approved' | 'denied' | 'expired' | 'unavailable';
    id?: string;
    by?: string;
    at?: string;
    reason?: string;
    grantId?: string;
  };
}

export interface ExecDetails {
  argv: string[];
  container?: string;
  tty?: boolean;
  stdin?: boolean;
  /** The command's exit status, from the session's status channel (close event only). */
  exitCode?: number;
  /** Payload bytes the agent sent into the session, as the pod received them (close event only). */
  bytesToPod?: number;
  /** Payload bytes of the command's output, as the agent received them (close event only). */
  bytesToAgent?: number;
  /** How long the session was open, in milliseconds (close event only). */
  durationMs?: number;
  /** Size of the session's asciicast recording, in bytes (close event only). */
  recordingBytes?: number;
  /** The recording reached its size limit and stops there, with a marker saying so (close event only). */
  recordingTruncated?: boolean;
  /** An input line of the session as it was judged, secrets masked (line event only). */
  line?: string;
  /** The other ways the program may read the line, when they differ from `line` (line event only). */
  lineReadings?: string[];
  /** Why the input could not be read as a line; it was refused (line event only). */
  lineProblem?: string;
  /** Input lines judged by the policy (close event of a session whose input is guarded). */
  linesEvaluated?: number;
  /** Input lines refused (close event of a session whose input is guarded). */
  linesDenied?: number;
}

/** What one port of a port-forward session carried (its close event). */
export interface PortForwardPortUse {
  port: number;
  /** Forwarded connections the policy let through to this port. */
  connections: number;
  /** Forwarded connections refused (the port was denied). */
  refused: number;
  /** Payload bytes of the allowed connections, agent to pod. */
  bytesToPod: number;
  /** Payload bytes of the allowed connections, pod to agent. */
  bytesToAgent: number;
}

/** A port-forward session: when it opens, per port decision, and when it closes. */
export interface PortForwardDetails {
  /** How the agent forwards: `spdy` (kubectl) or `websocket` (v4.channel.k8s.io, one channel pair per port). */
  transport?: 'spdy' | 'websocket';
  /** The ports the request named (WebSocket `ports=`); over SPDY each forwarded connection names its own. */
  ports?: number[];
  /** The port one forwarded connection asked for (a port decision event). */
  port?: number;
  /** Every port the session was asked for, with what it carried (close event only). */
  used?: PortForwardPortUse[];
  /** Payload bytes, agent to pod, all ports (close event only). */
  bytesToPod?: number;
  /** Payload bytes, pod to agent, all ports (close event only). */
  bytesToAgent?: number;
  /** How long the session was open, in milliseconds (close event only). */
  durationMs?: number;
}

export interface SqlDetails {
  database?: string;
  user?: string;
  /** `kinds` and `functions` as the guard read them (statement kinds such as `delete-without-where`). */
  statements: { kind: string; tables: string[]; kinds?: string[]; functions?: string[] }[];
  /** The statement text with literals masked; never raw values. */
  text?: string;
  /** libpg-query's fingerprint of the statement: the same for statements that differ only in literals. */
  fingerprint?: string;
  /** Rows the server reported (CommandComplete: rows returned, inserted, updated, deleted, copied). */
  rows?: number;
  /** From the statement's arrival to its completion, in milliseconds. */
  durationMs?: number;
  /** The SQLSTATE the server failed the statement with. */
  sqlstate?: string;
}

export interface ChaperoneFields {
  schemaVersion: number;
  protocol: Protocol;
  source: EventSource;
  decision: DecisionRecord;
  sessionId?: string;
  /** Per-sidecar sequence number, from 1, no gaps. */
  seq: number;
  /** Hash of the previous event in this sidecar's chain (GENESIS_HASH for seq 1). */
  prevHash: string;
  /** sha256 over the canonical JSON of the event without this field. */
  hash: string;
  maskedFields: number;
  /** Time the sidecar itself added, in milliseconds. */
  latencyMs?: number;
  exec?: ExecDetails;
  portForward?: PortForwardDetails;
  sql?: SqlDetails;
}

export interface AuditEvent {
  kind: 'Event';
  apiVersion: 'audit.k8s.io/v1';
  level: AuditLevel;
  auditID: string;
  stage: AuditStage;
  requestURI: string;
  verb: string;
  user: UserInfo;
  impersonatedUser?: UserInfo;
  sourceIPs?: string[];
  userAgent?: string;
  objectRef?: ObjectReference;
  responseStatus?: ResponseStatus;
  requestObject?: unknown;
  responseObject?: unknown;
  requestReceivedTimestamp: string;
  stageTimestamp: string;
  annotations?: Record<string, string>;
  chaperone: ChaperoneFields;
}

/** An event before it is placed in a chain (no seq / prevHash / hash yet). */
export type UnchainedEvent = Omit<AuditEvent, 'chaperone'> & {
  chaperone: Omit<ChaperoneFields, 'seq' | 'prevHash' | 'hash'>;
};

/** RFC 3339 with microseconds, as the Kubernetes API server writes it. */
export function microTime(date: Date = new Date(), extraMicros = 0): string {
  const ms = date.getTime();
  const second = Math.floor(ms / 1000);
  // Every audit event carries two of these: the date-and-time part is formatted once per second.
  if (second !== lastSecond) {
    lastPrefix = date.toISOString().slice(0, 19); // 2024-01-02T03:04:05 (throws on an invalid date)
    lastSecond = second;
  }
  const micros = String((ms - second * 1000) * 1000 + (extraMicros % 1000)).padStart(6, '0');
  return `${lastPrefix}.${micros}Z`;
}

let lastSecond = Number.NaN;
let lastPrefix = '';

export function newAuditId(): string {
  return randomUUID();
}

/** The hash of an event: sha256 of its canonical JSON with `chaperone.hash` left out. */
export function hashEvent(
  event: AuditEvent | (UnchainedEvent & { chaperone: { seq: number; prevHash: string } }),
): string {
  return sha256Hex(canonicalEventForms(event).unhashed);
}

/** Joins canonical members (empty parts skipped) into an object. */
function objectOf(...parts: string[]): string {
  let out = '';
  for (const p of parts) if (p) out = out ? `${out},${p}` : p;
  return `{${out}}`;
}

/**
 * An event's canonical JSON in the two forms its chain needs, each member
 * encoded once: `unhashed` leaves `chaperone.hash` out (its sha256 is the hash
 * the event must carry), `withHash(h)` is the whole event with `chaperone.hash`
 * set to `h`.
 */
export function canonicalEventForms(event: { readonly chaperone: object }): {
  readonly unhashed: string;
  withHash(hash: string): string;
} {
  const c = canonicalMembersAround(event.chaperone, 'hash');
  const top = canonicalMembersAround(event, 'chaperone');
  return {
    unhashed: objectOf(top.before, `"chaperone":${objectOf(c.before, c.after)}`, top.after),
    withHash: (hash) =>
      objectOf(
        top.before,
        `"chaperone":${objectOf(c.before, `"hash":${JSON.stringify(hash)}`, c.after)}`,
        top.after,
      ),
  };
}

/**
 * Places an event in a chain (sets seq, prevHash and hash) and gives its
 * canonical JSON too (what a sidecar's spool records): the text is built from
 * the same encoded members as the hash input, so nothing is encoded twice. Pure.
 */
export function chainEventText(
  event: UnchainedEvent,
  seq: number,
  prevHash: string,
): { event: AuditEvent; text: string } {
  const chaperone = withChainFields(event.chaperone, seq, prevHash);
  const chained = { ...event, chaperone } as AuditEvent;
  const forms = canonicalEventForms(chained);
  chaperone.hash = sha256Hex(forms.unhashed);
  return { event: chained, text: forms.withHash(chaperone.hash) };
}

/** The members chaining adds, in canonical order. */
const CHAIN_KEYS = ['hash', 'prevHash', 'seq'] as const;

/**
 * `{ ...fields, seq, prevHash, hash: '' }` with the members in canonical
 * order when those of `fields` are (as the sidecar builds them): the
 * encoder then has no keys to sort. Same members and values either way.
 */
function withChainFields(
  fields: UnchainedEvent['chaperone'],
  seq: number,
  prevHash: string,
): ChaperoneFields {
  const added = { hash: '', prevHash, seq };
  const out: Record<string, unknown> = {};
  let next = 0;
  for (const k of Object.keys(fields)) {
    for (; next < CHAIN_KEYS.length && (CHAIN_KEYS[next] as string) < k; next++) {
      const c = CHAIN_KEYS[next] as (typeof CHAIN_KEYS)[number];
      out[c] = added[c];
    }
    if (k !== 'hash' && k !== 'prevHash' && k !== 'seq') out[k] = (fields as Record<string, unknown>)[k];
  }
  for (; next < CHAIN_KEYS.length; next++) {
    const c = CHAIN_KEYS[next] as (typeof CHAIN_KEYS)[number];
    out[c] = added[c];
  }
  return out as unknown as ChaperoneFields;
}

/** Places an event in a chain: sets seq, prevHash and hash. Pure. */
export function chainEvent(event: UnchainedEvent, seq: number, prevHash: string): AuditEvent {
  return chainEventText(event, seq, prevHash).event;
}

export type ChainProblem =
  | { kind: 'hash_mismatch'; seq: number; auditID: string }
  | { kind: 'gap'; expectedSeq: number; gotSeq: number }
  | { kind: 'reorder'; expectedSeq: number; gotSeq: number }
  | { kind: 'broken_link'; seq: number; auditID: string };

/** What the chain check reads of an event (an AuditEvent is one). */
export interface ChainLink {
  readonly auditID: string;
  readonly chaperone: { readonly seq: number; readonly prevHash: string; readonly hash: string };
}

/**
 * Checks one sidecar's events, given in the order they were received, against
 * the chain state before them. Returns the problems and the new chain head.
 * `hashOf` gives the hash each event should carry, for a caller that already
 * computed it from the event's canonical form (the collector, on arrival).
 */
export function verifyChain(
  events: readonly AuditEvent[],
  head?: { seq: number; hash: string },
): { problems: ChainProblem[]; head: { seq: number; hash: string } };
export function verifyChain<E extends ChainLink>(
  events: readonly E[],
  head: { seq: number; hash: string },
  hashOf: (event: E, index: number) => string,
): { problems: ChainProblem[]; head: { seq: number; hash: string } };
export function verifyChain(
  events: readonly ChainLink[],
  head: { seq: number; hash: string } = { seq: 0, hash: GENESIS_HASH },
  hashOf: (event: ChainLink, index: number) => string = (e) => hashEvent(e as AuditEvent),
): { problems: ChainProblem[]; head: { seq: number; hash: string } } {
  const problems: ChainProblem[] = [];
  let cur = head;
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as ChainLink;
    const c = e.chaperone;
    if (hashOf(e, i) !== c.hash) problems.push({ kind: 'hash_mismatch', seq: c.seq, auditID: e.auditID });
    if (c.seq === cur.seq + 1) {
      if (c.prevHash !== cur.hash) problems.push({ kind: 'broken_link', seq: c.seq, auditID: e.auditID });
    } else if (c.seq > cur.seq + 1) {
      problems.push({ kind: 'gap', expectedSeq: cur.seq + 1, gotSeq: c.seq });
    } else {
      problems.push({ kind: 'reorder', expectedSeq: cur.seq + 1, gotSeq: c.seq });
      continue; // an old event does not move the head back
    }
    cur = { seq: c.seq, hash: c.hash };
  }
  return { problems, head: cur };
}

// ---------------------------------------------------------------------------
// Validation

const EVENT_KEYS = [
  'kind',
  'apiVersion',
  'level',
  'auditID',
  'stage',
  'requestURI',
  'verb',
  'user',
  'impersonatedUser',
  'sourceIPs',
  'userAgent',
  'objectRef',
  'responseStatus',
  'requestObject',
  'responseObject',
  'requestReceivedTimestamp',
  'stageTimestamp',
  'annotations',
  'chaperone',
] as const;
const CHAPERONE_KEYS = [
  'schemaVersion',
  'protocol',
  'source',
  'decision',
  'sessionId',
  'seq',
  'prevHash',
  'hash',
  'maskedFields',
  'latencyMs',
  'exec',
  'portForward',
  'sql',
] as const;
const OBJECT_REF_KEYS = [
  'resource',
  'namespace',
  'name',
  'uid',
  'apiGroup',
  'apiVersion',
  'resourceVersion',
  'subresource',
] as const;
/** Falco's k8saudit plugin refuses events larger than this. */
export const MAX_EVENT_BYTES = 256 * 1024;
/**
 * The largest sequence number a chain may reach: 2^50 (a million events a
 * second for 35 years), so `seq + 1` stays exact in a JavaScript number and
 * fits a PostgreSQL bigint with room to spare.
 */
export const MAX_SEQ = 2 ** 50;
/** Bounds of the other numeric members: a count, a duration (30 days), an exit status. */
export const MAX_MASKED_FIELDS = 2 ** 31 - 1;
export const MAX_LATENCY_MS = 30 * 24 * 3600 * 1000;
/** Longest input line (and reading of it) an exec line event holds; the recorder cuts longer ones. */
export const MAX_LINE_CHARS = 16 * 1024;
export const EXIT_CODE_RANGE = { min: -(2 ** 31), max: 2 ** 32 - 1 } as const;
const HEX64 = /^[0-9a-f]{64}$/;
/** The API server accepts `Audit-ID` values of this shape, so ours are forwarded as-is. */
const AUDIT_ID = /^[A-Za-z0-9-]{1,256}$/;

const suggestFrom = (keys: readonly string[]) => (k: string) => didYouMean(k, keys);

function userInfo(v: unknown, path: string): UserInfo {
  const o = object(v, path);
  onlyKeys(o, ['username', 'uid', 'groups', 'extra'], path);
  str(o.username, `${path}/username`, { empty: true, max: 1024 });
  optStr(o.uid, `${path}/uid`);
  if (o.groups !== undefined) arrayOf(o.groups, `${path}/groups`, (g, p) => str(g, p, { empty: true }));
  if (o.extra !== undefined) {
    const extra = object(o.extra, `${path}/extra`);
    for (const [k, x] of Object.entries(extra))
      arrayOf(x, `${path}/extra/${k}`, (g, p) => str(g, p, { empty: true }));
  }
  return o as unknown as UserInfo;
}

function chaperoneFields(v: unknown, path: string): ChaperoneFields {
  const o = object(v, path);
  onlyKeys(o, CHAPERONE_KEYS, path, suggestFrom(CHAPERONE_KEYS));
  const version = int(o.schemaVersion, `${path}/schemaVersion`, { min: 1 });
  if (version !== AUDIT_SCHEMA_VERSION) {
    throw new ValidationError(
      `${path}/schemaVersion`,
      `unsupported schema version ${version}; this build reads version ${AUDIT_SCHEMA_VERSION}`,
    );
  }
  oneOf(o.protocol, PROTOCOLS, `${path}/protocol`);
  const src = object(o.source, `${path}/source`);
  onlyKeys(src, ['namespace', 'pod', 'podUID', 'serviceAccount', 'sidecarId'], `${path}/source`);
  str(src.namespace, `${path}/source/namespace`, { max: 253 });
  str(src.pod, `${path}/source/pod`, { max: 253 });
  optStr(src.podUID, `${path}/source/podUID`);
  str(src.serviceAccount, `${path}/source/serviceAccount`, { max: 253 });
  str(src.sidecarId, `${path}/source/sidecarId`, { max: 256 });
  const d = object(o.decision, `${path}/decision`);
  onlyKeys(d, ['action', 'rule', 'reason', 'message', 'approval'], `${path}/decision`);
  oneOf(d.action, DECISION_ACTIONS, `${path}/decision/action`);
  str(d.rule, `${path}/decision/rule`, { max: 253 });
  str(d.reason, `${path}/decision/reason`, { max: 128 });
  optStr(d.message, `${path}/decision/message`, { max: 4096 });
  if (d.approval !== undefined) {
    const a = object(d.approval, `${path}/decision/approval`);
    onlyKeys(a, ['state', 'id', 'by', 'at', 'reason', 'grantId'], `${path}/decision/approval`);
    oneOf(
      a.state,
      ['approved', 'denied', 'expired', 'unavailable'] as const,
      `${path}/decision/approval/state`,
    );
    optStr(a.id, `${path}/decision/approval/id`, { max: 64 });
    optStr(a.by, `${path}/decision/approval/by`, { max: 4096 });
    optStr(a.reason, `${path}/decision/approval/reason`, { max: 1024 });
    optStr(a.grantId, `${path}/decision/approval/grantId`, { max: 64 });
    if (a.at !== undefined) str(a.at, `${path}/decision/approval/at`, { pattern: RFC3339 });
  }
  optStr(o.sessionId, `${path}/sessionId`, { max: 256 });
  int(o.seq, `${path}/seq`, { min: 1, max: MAX_SEQ });
  str(o.prevHash, `${path}/prevHash`, { pattern: HEX64 });
  str(o.hash, `${path}/hash`, { pattern: HEX64 });
  int(o.maskedFields, `${path}/maskedFields`, { min: 0, max: MAX_MASKED_FIELDS });
  if (o.latencyMs !== undefined && num(o.latencyMs, `${path}/latencyMs`, { min: 0 }) > MAX_LATENCY_MS)
    throw new ValidationError(`${path}/latencyMs`, `must be at most ${MAX_LATENCY_MS}`);
  if (o.exec !== undefined) {
    const x = object(o.exec, `${path}/exec`);
    onlyKeys(
      x,
      [
        'argv',
        'container',
        'tty',
        'stdin',
        'exitCode',
        'bytesToPod',
        'bytesToAgent',
        'durationMs',
        'recordingBytes',
        'recordingTruncated',
        'line',
        'lineReadings',
        'lineProblem',
        'linesEvaluated',
        'linesDenied',
      ],
      `${path}/exec`,
    );
    arrayOf(x.argv, `${path}/exec/argv`, (a, p) => str(a, p, { empty: true }), 4096);
    optStr(x.container, `${path}/exec/container`);
    if (x.tty !== undefined) bool(x.tty, `${path}/exec/tty`);
    if (x.stdin !== undefined) bool(x.stdin, `${path}/exec/stdin`);
    if (x.exitCode !== undefined) int(x.exitCode, `${path}/exec/exitCode`, EXIT_CODE_RANGE);
    optStr(x.line, `${path}/exec/line`, { max: MAX_LINE_CHARS });
    if (x.lineReadings !== undefined)
      arrayOf(
        x.lineReadings,
        `${path}/exec/lineReadings`,
        (a, p) => str(a, p, { empty: true, max: MAX_LINE_CHARS }),
        16,
      );
    optStr(x.lineProblem, `${path}/exec/lineProblem`, { max: 1024 });
    for (const k of [
      'bytesToPod',
      'bytesToAgent',
      'recordingBytes',
      'linesEvaluated',
      'linesDenied',
    ] as const)
      if (x[k] !== undefined) int(x[k], `${path}/exec/${k}`, { min: 0, max: Number.MAX_SAFE_INTEGER });
    if (x.recordingTruncated !== undefined) bool(x.recordingTruncated, `${path}/exec/recordingTruncated`);
    if (
      x.durationMs !== undefined &&
      num(x.durationMs, `${path}/exec/durationMs`, { min: 0 }) > MAX_LATENCY_MS
    )
      throw new ValidationError(`${path}/exec/durationMs`, `must be at most ${MAX_LATENCY_MS}`);
  }
  if (o.portForward !== undefined) portForwardDetails(o.portForward, `${path}/portForward`);
  if (o.sql !== undefined) {
    const q = object(o.sql, `${path}/sql`);
    onlyKeys(
      q,
      ['database', 'user', 'statements', 'text', 'fingerprint', 'rows', 'durationMs', 'sqlstate'],
      `${path}/sql`,
    );
    optStr(q.database, `${path}/sql/database`);
    optStr(q.user, `${path}/sql/user`);
    optStr(q.text, `${path}/sql/text`);
    optStr(q.fingerprint, `${path}/sql/fingerprint`, { max: 64 });
    optStr(q.sqlstate, `${path}/sql/sqlstate`, { max: 5 });
    if (q.rows !== undefined) int(q.rows, `${path}/sql/rows`, { min: 0, max: Number.MAX_SAFE_INTEGER });
    if (
      q.durationMs !== undefined &&
      num(q.durationMs, `${path}/sql/durationMs`, { min: 0 }) > MAX_LATENCY_MS
    )
      throw new ValidationError(`${path}/sql/durationMs`, `must be at most ${MAX_LATENCY_MS}`);
    arrayOf(q.statements, `${path}/sql/statements`, (s, p) => {
      const so = object(s, p);
      onlyKeys(so, ['kind', 'tables', 'kinds', 'functions'], p);
      str(so.kind, `${p}/kind`);
      arrayOf(so.tables, `${p}/tables`, (t, tp) => str(t, tp));
      if (so.kinds !== undefined) arrayOf(so.kinds, `${p}/kinds`, (t, tp) => str(t, tp));
      if (so.functions !== undefined) arrayOf(so.functions, `${p}/functions`, (t, tp) => str(t, tp));
      return so;
    });
  }
  return o as unknown as ChaperoneFields;
}

const PORT = { min: 1, max: 65535 } as const;
const BYTES = { min: 0, max: Number.MAX_SAFE_INTEGER } as const;

function portForwardDetails(v: unknown, path: string): void {
  const x = object(v, path);
  onlyKeys(x, ['transport', 'ports', 'port', 'used', 'bytesToPod', 'bytesToAgent', 'durationMs'], path);
  if (x.transport !== undefined) oneOf(x.transport, ['spdy', 'websocket'] as const, `${path}/transport`);
  if (x.ports !== undefined) arrayOf(x.ports, `${path}/ports`, (p, pp) => int(p, pp, PORT), 1024);
  if (x.port !== undefined) int(x.port, `${path}/port`, PORT);
  if (x.used !== undefined)
    arrayOf(
      x.used,
      `${path}/used`,
      (u, p) => {
        const o = object(u, p);
        onlyKeys(o, ['port', 'connections', 'refused', 'bytesToPod', 'bytesToAgent'], p);
        int(o.port, `${p}/port`, PORT);
        for (const k of ['connections', 'refused', 'bytesToPod', 'bytesToAgent'] as const)
          int(o[k], `${p}/${k}`, BYTES);
        return o;
      },
      1024,
    );
  for (const k of ['bytesToPod', 'bytesToAgent'] as const)
    if (x[k] !== undefined) int(x[k], `${path}/${k}`, BYTES);
  if (x.durationMs !== undefined && num(x.durationMs, `${path}/durationMs`, { min: 0 }) > MAX_LATENCY_MS)
    throw new ValidationError(`${path}/durationMs`, `must be at most ${MAX_LATENCY_MS}`);
}

/**
 * Validates an untrusted value as an AuditEvent. Throws a ValidationError
 * naming the path of the first problem. Does not check the hash (see
 * verifyChain): a validator answers "is this well-formed", not "is it genuine".
 */
export function validateAuditEvent(value: unknown): AuditEvent {
  const event = validateAuditEventFields(value);
  // The size as it travels (plain JSON is what is sent and stored); cheaper than the canonical form.
  checkAuditEventSize(Buffer.byteLength(JSON.stringify(event)));
  return event;
}

/**
 * Throws when an event of `bytes` bytes (as JSON, in any key order: the
 * plain and the canonical form are the same length) is over MAX_EVENT_BYTES.
 */
export function checkAuditEventSize(bytes: number): void {
  if (bytes > MAX_EVENT_BYTES)
    throw new ValidationError('', `event is ${bytes} bytes; the limit is ${MAX_EVENT_BYTES}`);
}

/**
 * validateAuditEvent without the size check, for a caller that serialises
 * the event anyway and checks that text's length with checkAuditEventSize.
 */
export function validateAuditEventFields(value: unknown): AuditEvent {
  const o = object(value, '');
  onlyKeys(o, EVENT_KEYS, '', suggestFrom(EVENT_KEYS));
  if (o.kind !== 'Event') throw new ValidationError('/kind', 'must be "Event"');
  if (o.apiVersion !== 'audit.k8s.io/v1')
    throw new ValidationError('/apiVersion', 'must be "audit.k8s.io/v1"');
  oneOf(o.level, AUDIT_LEVELS, '/level');
  str(o.auditID, '/auditID', { pattern: AUDIT_ID });
  oneOf(o.stage, AUDIT_STAGES, '/stage');
  str(o.requestURI, '/requestURI', { max: 16_384 });
  str(o.verb, '/verb', { max: 64 });
  userInfo(o.user, '/user');
  if (o.impersonatedUser !== undefined) userInfo(o.impersonatedUser, '/impersonatedUser');
  if (o.sourceIPs !== undefined) arrayOf(o.sourceIPs, '/sourceIPs', (s, p) => str(s, p), 64);
  optStr(o.userAgent, '/userAgent', { max: 2048 });
  if (o.objectRef !== undefined) {
    const ref = object(o.objectRef, '/objectRef');
    onlyKeys(ref, OBJECT_REF_KEYS, '/objectRef', suggestFrom(OBJECT_REF_KEYS));
    for (const k of OBJECT_REF_KEYS) optStr(ref[k], `/objectRef/${k}`, { max: 1024 });
  }
  if (o.responseStatus !== undefined) {
    const rs = object(o.responseStatus, '/responseStatus');
    if (rs.code !== undefined) int(rs.code, '/responseStatus/code', { min: 0, max: 999 });
    optStr(rs.status, '/responseStatus/status');
    optStr(rs.message, '/responseStatus/message');
    optStr(rs.reason, '/responseStatus/reason');
  }
  str(o.requestReceivedTimestamp, '/requestReceivedTimestamp', { pattern: RFC3339 });
  str(o.stageTimestamp, '/stageTimestamp', { pattern: RFC3339 });
  if (o.annotations !== undefined) stringMap(o.annotations, '/annotations');
  chaperoneFields(o.chaperone, '/chaperone');
  return o as unknown as AuditEvent;
}
