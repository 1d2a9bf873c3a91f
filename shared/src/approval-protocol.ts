/**
 * Just-in-time approval: the contract between a sidecar that holds an action
 * for review, the collector that keeps approval requests, and the approvers
 * (CLI, web page, HTTP API).
 *
 * Sidecar ↔ collector: a WebSocket to `<collector ingest URL>/v1/approvals`,
 * subprotocol `chaperone.approvals.v1`, JSON text messages, authenticated
 * exactly like ingest (the pod's projected service-account token, audience
 * `chaperone-collector`, in `Authorization: Bearer`). The requester's identity
 * (namespace, pod, pod uid, service account) comes from the verified token,
 * never from the message. One connection per held action: the connection's
 * life is the hold.
 *
 *   sidecar                                   collector
 *   request {...}                       →
 *                                       ←     pending {approvalId, expiresAt}
 *                                       ←     decided {approvalId, state, ...}   then the collector closes
 *
 * An active grant that covers the request (same pod, same rule, same action
 * fingerprint, window not over, not revoked) is answered with `decided`
 * (`approved`, `grantId` set) at once, without a `pending`.
 *
 * Failing closed: the sidecar lets the held action through only on a
 * `decided` with state `approved` for the request it sent. A closed or broken
 * connection, a malformed message, a collector that does not answer `pending`
 * within APPROVAL_CONNECT_TIMEOUT_MS, or the rule's timeout passing (the sidecar
 * keeps its own timer) is a denial whose message says which. When the
 * connection closes before a decision, the collector marks the request
 * `withdrawn` and no later decision reaches anyone. Both sides ping every
 * APPROVAL_PING_INTERVAL_MS and treat twice that without a pong as a broken
 * connection.
 *
 * Approvers ↔ collector (query listener, bearer token checked by TokenReview
 * or OIDC; authorised by a SubjectAccessReview for verb `approve` on resource
 * `approvals` in group `chaperone.dev` in the agent's namespace):
 *
 *   GET    /v1/approvals?state=pending|decided|all&namespace=NS   → { items: ApprovalView[] }   (default pending; limit=N)
 *   GET    /v1/approvals/{id}                                    → ApprovalView
 *   POST   /v1/approvals/{id}/decision   {decision, reason?}     → ApprovalView
 *   GET    /v1/grants?namespace=NS                               → { items: GrantView[] }   (state=active|all, default active; limit=N)
 *   DELETE /v1/grants/{id}                                       → GrantView (revoked)
 */
import { canonicalJson, sha256Hex } from './canonical-json.ts';
import { arrayOf, bool, int, object, oneOf, onlyKeys, optStr, str } from './check.ts';
import { ValidationError } from './errors.ts';

export const APPROVALS_PATH = '/v1/approvals';
export const GRANTS_PATH = '/v1/grants';
export const APPROVAL_SUBPROTOCOL = 'chaperone.approvals.v1';
/** A collector must answer a request (`pending` or `decided`) within this. */
export const APPROVAL_CONNECT_TIMEOUT_MS = 10_000;
export const APPROVAL_PING_INTERVAL_MS = 5_000;
export const MAX_APPROVAL_MESSAGE_BYTES = 64 * 1024;
/** Longest a rule may hold an action, and the longest grant window. */
export const MAX_REVIEW_TIMEOUT_MS = 24 * 60 * 60 * 1000;
export const MAX_GRANT_MS = 7 * 24 * 60 * 60 * 1000;
export const MAX_APPROVALS = 10;
/** The most approvers a review may name (what an approval request carries). */
export const MAX_APPROVERS = 64;
/** Approval ids and grant ids: UUIDs made by the collector. */
export const APPROVAL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const APPROVAL_PROTOCOLS = ['kubernetes', 'exec', 'postgres'] as const;
export type ApprovalProtocol = (typeof APPROVAL_PROTOCOLS)[number];

/** Final states. `withdrawn`: the sidecar's connection ended before a decision (restart, outage, client gone). */
export const APPROVAL_STATES = ['pending', 'approved', 'denied', 'expired', 'withdrawn'] as const;
export type ApprovalState = (typeof APPROVAL_STATES)[number];

/** The held action as the agent issued it, masked: what an approver reads. */
export interface HeldAction {
  /** Kubernetes: the verb as the audit event records it; exec: `exec`/`attach`; postgres: the statement kind. */
  readonly verb: string;
  readonly apiGroup?: string;
  readonly resource?: string;
  readonly subresource?: string;
  /** The object's namespace (may differ from the agent's own). */
  readonly namespace?: string;
  readonly name?: string;
  /** exec / attach: one element per argument. */
  readonly argv?: readonly string[];
  readonly container?: string;
  /** postgres: the statement, normalised (literals replaced by $n), never raw values. */
  readonly sql?: string;
  /** postgres: the declared database name. */
  readonly database?: string;
  /** Kubernetes: the query parameters as the API server reads them, sorted `key=value` strings. */
  readonly query?: readonly string[];
  /**
   * Kubernetes: the body of a write as the approver reads it (JSON pretty
   * printed), masked (a Secret's `data` / `stringData` values, and every value
   * the built-in credential detectors find) and at most MAX_HELD_BODY_CHARS
   * characters (then cut, with a marker saying how much was left out).
   */
  readonly body?: string;
  /** exec / attach: whether the session sends stdin, and whether it asks for a terminal. */
  readonly stdin?: boolean;
  readonly tty?: boolean;
  /** postgres: one line per parameter of a Bind (`$1 text 5 bytes: 'viewer'`), values shown only when short and no detector matched. */
  readonly params?: readonly string[];
  /**
   * An HMAC-SHA256 (hex, key made by the sidecar at its start) of the exact
   * bytes the action is made of: a Kubernetes request's method, raw query and
   * body; an exec's raw argv; a SQL statement's text (and a Bind's values).
   * Part of the fingerprint, so that an approval or grant covers exactly that
   * action, while the approver reads only masked text.
   */
  readonly digest?: string;
}

/** The longest `body` a held action carries. */
export const MAX_HELD_BODY_CHARS = 16 * 1024;

/** sidecar → collector. */
export interface ApprovalRequestMessage {
  readonly type: 'request';
  /** The audit event id of the held action: the event that records the outcome names the same id. */
  readonly auditId: string;
  readonly protocol: ApprovalProtocol;
  /** One line a human reads, e.g. `scale deployments/web -n shop` or `psql: DROP TABLE users`. */
  readonly summary: string;
  readonly action: HeldAction;
  /**
   * sha256 hex of the canonical JSON of {protocol, action}: what a grant covers.
   * The collector recomputes it and refuses a request whose fingerprint differs.
   */
  readonly fingerprint: string;
  readonly rule: string;
  readonly message: string;
  /** Distinct approvers needed (1 … MAX_APPROVALS). */
  readonly approvals: number;
  /** Who may approve: user names, or `group:<name>`; empty = anyone RBAC lets approve. */
  readonly approvers: readonly string[];
  readonly timeoutMs: number;
  /** An approval opens a grant window of this length (0 = no grant). */
  readonly grantMs: number;
}

/** collector → sidecar: the request is stored and waits for approvers. */
export interface ApprovalPendingMessage {
  readonly type: 'pending';
  readonly approvalId: string;
  readonly expiresAt: string;
}

export interface ApproverDecision {
  /** The approver's user name as TokenReview or the OIDC issuer gave it. */
  readonly user: string;
  readonly decision: 'approve' | 'deny';
  readonly at: string;
  readonly reason?: string;
}

/** collector → sidecar: the final word. Only `approved` lets the action through. */
export interface ApprovalDecidedMessage {
  readonly type: 'decided';
  readonly approvalId: string;
  readonly state: 'approved' | 'denied' | 'expired';
  /** Every approver's decision, in order (empty for expired, and for a grant). */
  readonly decisions: readonly ApproverDecision[];
  /** The grant that let this through without a new review, or the one this approval opened. */
  readonly grantId?: string;
  readonly grantUntil?: string;
}

export type ApprovalClientMessage = ApprovalRequestMessage;
export type ApprovalServerMessage = ApprovalPendingMessage | ApprovalDecidedMessage;

/** What the HTTP API, the CLI and the page show for one request. */
export interface ApprovalView {
  readonly id: string;
  readonly state: ApprovalState;
  readonly requester: {
    readonly namespace: string;
    readonly pod: string;
    readonly podUID?: string;
    readonly serviceAccount: string;
  };
  readonly protocol: ApprovalProtocol;
  readonly auditId: string;
  readonly summary: string;
  readonly action: HeldAction;
  readonly rule: string;
  readonly message: string;
  readonly approvals: number;
  readonly approvers: readonly string[];
  readonly grantMs: number;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly decidedAt?: string;
  readonly decisions: readonly ApproverDecision[];
  readonly grantId?: string;
}

export interface GrantView {
  readonly id: string;
  readonly approvalId: string;
  readonly requester: ApprovalView['requester'];
  readonly rule: string;
  readonly fingerprint: string;
  readonly summary: string;
  readonly createdAt: string;
  readonly until: string;
  readonly revokedAt?: string;
  readonly revokedBy?: string;
}

export interface DecisionBody {
  readonly decision: 'approve' | 'deny';
  readonly reason?: string;
}

/** What a grant covers: sha256 hex of the canonical JSON of the protocol and the held action. */
export function approvalFingerprint(protocol: ApprovalProtocol, action: HeldAction): string {
  return sha256Hex(canonicalJson({ protocol, action }));
}

function parseObject(text: string, what: string): Record<string, unknown> {
  if (Buffer.byteLength(text) > MAX_APPROVAL_MESSAGE_BYTES) {
    throw new ValidationError('', `${what} is larger than ${MAX_APPROVAL_MESSAGE_BYTES} bytes`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new ValidationError('', `${what} is not JSON: ${(err as Error).message}`);
  }
  return object(v, '');
}

function heldAction(v: unknown, path: string): HeldAction {
  const a = object(v, path);
  onlyKeys(
    a,
    [
      'verb',
      'apiGroup',
      'resource',
      'subresource',
      'namespace',
      'name',
      'argv',
      'container',
      'sql',
      'database',
      'query',
      'body',
      'stdin',
      'tty',
      'params',
      'digest',
    ],
    path,
  );
  str(a.verb, `${path}/verb`, { max: 128 });
  for (const k of [
    'apiGroup',
    'resource',
    'subresource',
    'namespace',
    'name',
    'container',
    'database',
  ] as const) {
    optStr(a[k], `${path}/${k}`, { max: 253 });
  }
  if (a.argv !== undefined) arrayOf(a.argv, `${path}/argv`, (x, p) => str(x, p, { max: 8192 }), 256);
  optStr(a.sql, `${path}/sql`, { max: 32 * 1024 });
  if (a.query !== undefined) arrayOf(a.query, `${path}/query`, (x, p) => str(x, p, { max: 4096 }), 64);
  optStr(a.body, `${path}/body`, { max: MAX_HELD_BODY_CHARS + 256 });
  for (const k of ['stdin', 'tty'] as const) if (a[k] !== undefined) bool(a[k], `${path}/${k}`);
  if (a.params !== undefined) arrayOf(a.params, `${path}/params`, (x, p) => str(x, p, { max: 256 }), 256);
  if (a.digest !== undefined) str(a.digest, `${path}/digest`, { pattern: /^[0-9a-f]{64}$/ });
  return a as unknown as HeldAction;
}

/** Parses a sidecar's message; throws ValidationError naming the first bad field. */
export function parseApprovalRequest(text: string): ApprovalRequestMessage {
  const o = parseObject(text, 'approval request');
  onlyKeys(
    o,
    [
      'type',
      'auditId',
      'protocol',
      'summary',
      'action',
      'fingerprint',
      'rule',
      'message',
      'approvals',
      'approvers',
      'timeoutMs',
      'grantMs',
    ],
    '',
  );
  oneOf(o.type, ['request'] as const, '/type');
  str(o.auditId, '/auditId', { pattern: /^[A-Za-z0-9-]{1,256}$/ });
  oneOf(o.protocol, APPROVAL_PROTOCOLS, '/protocol');
  str(o.summary, '/summary', { max: 1024 });
  heldAction(o.action, '/action');
  str(o.fingerprint, '/fingerprint', { pattern: /^[0-9a-f]{64}$/ });
  str(o.rule, '/rule', { max: 253 });
  str(o.message, '/message', { max: 4096 });
  int(o.approvals, '/approvals', { min: 1, max: MAX_APPROVALS });
  arrayOf(o.approvers, '/approvers', (x, p) => str(x, p, { max: 253 }), MAX_APPROVERS);
  int(o.timeoutMs, '/timeoutMs', { min: 1, max: MAX_REVIEW_TIMEOUT_MS });
  int(o.grantMs, '/grantMs', { min: 0, max: MAX_GRANT_MS });
  return o as unknown as ApprovalRequestMessage;
}

/** Parses the collector's message; throws ValidationError naming the first bad field. */
export function parseApprovalServerMessage(text: string): ApprovalServerMessage {
  const o = parseObject(text, 'approval answer');
  oneOf(o.type, ['pending', 'decided'] as const, '/type');
  str(o.approvalId, '/approvalId', { pattern: APPROVAL_ID });
  if (o.type === 'pending') {
    onlyKeys(o, ['type', 'approvalId', 'expiresAt'], '');
    str(o.expiresAt, '/expiresAt');
    return o as unknown as ApprovalPendingMessage;
  }
  onlyKeys(o, ['type', 'approvalId', 'state', 'decisions', 'grantId', 'grantUntil'], '');
  oneOf(o.state, ['approved', 'denied', 'expired'] as const, '/state');
  arrayOf(
    o.decisions,
    '/decisions',
    (x, p) => {
      const d = object(x, p);
      onlyKeys(d, ['user', 'decision', 'at', 'reason'], p);
      str(d.user, `${p}/user`, { max: 253 });
      oneOf(d.decision, ['approve', 'deny'] as const, `${p}/decision`);
      str(d.at, `${p}/at`);
      optStr(d.reason, `${p}/reason`, { max: 1024 });
      return d;
    },
    MAX_APPROVALS * 4,
  );
  if (o.grantId !== undefined) str(o.grantId, '/grantId', { pattern: APPROVAL_ID });
  optStr(o.grantUntil, '/grantUntil');
  return o as unknown as ApprovalDecidedMessage;
}
