/**
 * One audit event per request: built from the request context when the
 * response is over (or the client went away), appended to the spool, and
 * counted in the metrics. Events hold metadata only — never bodies — so masked
 * values cannot reach them.
 */
import { randomUUID } from 'node:crypto';
import { type Logger, microTime, type UnchainedEvent } from '@chaperone/shared';
import type { Identity } from '../identity.ts';
import type { KubeRequestContext } from '../kube/context.ts';
import type { SessionSummary } from '../kube/exec/session.ts';
import type { SidecarMetrics } from '../metrics.ts';
import type { Spool } from './spool.ts';

export class AuditRecorder {
  readonly #spool: Spool;
  readonly #identity: Identity;
  readonly #metrics: SidecarMetrics;
  readonly #log: Logger;

  constructor(spool: Spool, identity: Identity, metrics: SidecarMetrics, log: Logger) {
    this.#spool = spool;
    this.#identity = identity;
    this.#metrics = metrics;
    this.#log = log;
  }

  /** Builds the event for a finished Kubernetes request. Pure apart from the clock. */
  kubeEvent(ctx: KubeRequestContext, now = new Date()): UnchainedEvent {
    const { req, res, info, action, decision } = ctx;
    const protocol = action?.protocol ?? 'kubernetes';
    const code = ctx.answered?.code ?? ctx.failure?.code ?? (res.headersSent ? res.statusCode : 0);
    const said = ctx.answered ?? ctx.failure;
    const forbidden = decision !== undefined && decision.action !== 'allow' && decision.action !== 'mask';
    const userAgent = req.headers['user-agent'];
    const latencyMs = Number(ctx.overheadNs) / 1e6;
    // Built member by member (no spreads): this runs for every request. Members are added in
    // canonical (sorted) order, so the chain's encoder has no keys to sort but those of
    // `chaperone`, to which chaining appends seq, prevHash and hash (recorder.test.ts checks the order).
    const responseStatus = { code } as NonNullable<UnchainedEvent['responseStatus']>;
    if (said) responseStatus.message = said.message;
    responseStatus.metadata = {};
    if (said) {
      responseStatus.reason = said.reason;
      responseStatus.status = 'Failure';
    }
    const chaperone = {
      decision: decision
        ? {
            action: decision.action,
            message: decision.message,
            reason: decision.reason,
            rule: decision.rule,
          }
        : { action: 'deny', reason: 'not_decided', rule: 'none' },
    } as UnchainedEvent['chaperone'];
    if (action?.exec) {
      chaperone.exec = { argv: [...action.exec.argv] };
      if (action.exec.container !== undefined) chaperone.exec.container = action.exec.container;
      if (action.exec.stdin !== undefined) chaperone.exec.stdin = action.exec.stdin;
      if (action.exec.tty !== undefined) chaperone.exec.tty = action.exec.tty;
    }
    chaperone.latencyMs = Math.round(latencyMs * 1000) / 1000;
    chaperone.maskedFields = ctx.maskedFields;
    chaperone.protocol = protocol;
    chaperone.schemaVersion = 1;
    // A session that opened (101) is named by its request's id; its end event carries it too.
    if (code === 101) chaperone.sessionId = ctx.auditID;
    chaperone.source = this.#identity.source;
    const event: Partial<UnchainedEvent> = {
      annotations: {
        'authorization.k8s.io/decision': forbidden ? 'forbid' : 'allow',
        'authorization.k8s.io/reason': decision
          ? `chaperone ${decision.reason} ${decision.rule}: ${decision.message}`.slice(0, 1024)
          : 'chaperone: not decided',
        'chaperone.dev/rule': decision?.rule ?? 'none',
      },
      apiVersion: 'audit.k8s.io/v1',
      auditID: ctx.auditID,
      chaperone,
      kind: 'Event',
      level: 'Metadata',
    };
    if (info?.isResourceRequest) {
      const ref: NonNullable<UnchainedEvent['objectRef']> = {
        apiGroup: info.apiGroup,
        apiVersion: info.apiVersion,
      };
      if (info.name !== undefined) ref.name = info.name;
      if (info.namespace !== undefined) ref.namespace = info.namespace;
      if (info.resource !== undefined) ref.resource = info.resource;
      if (info.subresource !== undefined) ref.subresource = info.subresource;
      event.objectRef = ref;
    }
    event.requestReceivedTimestamp = microTime(ctx.receivedAt);
    event.requestURI = req.url;
    event.responseStatus = responseStatus;
    event.sourceIPs = [ctx.remoteAddress];
    // As the API server records long-running requests: started at the 101, complete at the end.
    event.stage = code === 101 ? 'ResponseStarted' : 'ResponseComplete';
    event.stageTimestamp = microTime(now);
    event.user = this.#identity.user;
    if (typeof userAgent === 'string') event.userAgent = userAgent.slice(0, 2048);
    event.verb = action?.verb ?? req.method.toLowerCase();
    return event as UnchainedEvent;
  }

  /**
   * The event for the end of an exec or attach session: the request's event
   * (decision, argv, container, tty, stdin) completed with how it ended —
   * the command's status and exit code, bytes each way, how long it lasted —
   * under a new id, with the session's id (the request's) in `sessionId`.
   */
  execEndEvent(ctx: KubeRequestContext, s: SessionSummary, now = new Date()): UnchainedEvent {
    const event = this.kubeEvent(ctx, now);
    event.auditID = randomUUID();
    event.stage = 'ResponseComplete';
    const said = s.problem;
    const status = s.status;
    const rs = {} as NonNullable<UnchainedEvent['responseStatus']>;
    if (said) {
      rs.code = said.code;
      rs.message = said.message;
      rs.metadata = {};
      rs.reason = said.reason;
      rs.status = 'Failure';
    } else if (status) {
      rs.code = status.status === 'Success' ? 200 : 500;
      if (status.message !== undefined) rs.message = status.message;
      rs.metadata = {};
      if (status.reason !== undefined) rs.reason = status.reason;
      rs.status = status.status;
    } else {
      rs.code = 200;
      rs.metadata = {};
    }
    event.responseStatus = rs;
    const c = event.chaperone;
    const x = c.exec ?? { argv: [] };
    const exec: NonNullable<UnchainedEvent['chaperone']['exec']> = { argv: x.argv };
    exec.bytesToAgent = s.bytesToAgent;
    exec.bytesToPod = s.bytesToPod;
    if (x.container !== undefined) exec.container = x.container;
    exec.durationMs = s.durationMs;
    if (s.exitCode !== undefined) exec.exitCode = s.exitCode;
    if (x.stdin !== undefined) exec.stdin = x.stdin;
    if (x.tty !== undefined) exec.tty = x.tty;
    c.exec = exec;
    c.sessionId = ctx.auditID;
    return event;
  }

  /** Appends the end event of a session (execEndEvent). */
  recordExecEnd(ctx: KubeRequestContext, summary: SessionSummary): void {
    let event: UnchainedEvent;
    try {
      event = this.execEndEvent(ctx, summary);
    } catch (err) {
      this.#metrics.auditWriteFailures.inc();
      this.#log.error({ err, auditID: ctx.auditID }, 'could not build the end event of a session');
      return;
    }
    this.#append(event);
  }

  #append(event: UnchainedEvent): void {
    try {
      this.#spool.append(event);
    } catch (err) {
      this.#metrics.auditWriteFailures.inc();
      this.#log.error({ err, auditID: event.auditID }, 'could not write an audit event to the spool');
    }
  }

  recordKube(ctx: KubeRequestContext): void {
    let event: UnchainedEvent;
    try {
      event = this.kubeEvent(ctx);
    } catch (err) {
      this.#metrics.auditWriteFailures.inc();
      this.#log.error({ err, auditID: ctx.auditID }, 'could not build an audit event');
      return;
    }
    const c = event.chaperone;
    const action = c.decision.action;
    const m = this.#metrics;
    m.requests.inc({ protocol: c.protocol, verb: event.verb, action, rule: c.decision.rule });
    if (action === 'deny' || action === 'review')
      m.blocked.inc({ protocol: c.protocol, rule: c.decision.rule });
    m.overhead.observe({ protocol: c.protocol }, Number(ctx.overheadNs) / 1e9);
    this.#append(event);
  }
}
