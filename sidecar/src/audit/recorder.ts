/**
 * One audit event per request: built from the request context when the
 * response is over (or the client went away), appended to the spool, and
 * counted in the metrics. Events hold metadata only — never bodies — so masked
 * values cannot reach them.
 */
import { randomUUID } from 'node:crypto';
import {
  type Decision,
  type Logger,
  MAX_LINE_CHARS,
  microTime,
  type UnchainedEvent,
} from '@chaperone/shared';
import type { Identity } from '../identity.ts';
import type { KubeRequestContext } from '../kube/context.ts';
import type { SessionSummary } from '../kube/exec/session.ts';
import type { SidecarMetrics } from '../metrics.ts';
import { RecordingSink } from './recording-sink.ts';
import type { Spool } from './spool.ts';

/** How exec and attach sessions are recorded into the spool. */
export interface RecordingOptions {
  /** Size limit of one session's recording, in bytes. */
  readonly maxBytes: number;
  /** A chunk goes to the spool after this many bytes… */
  readonly flushBytes?: number;
  /** …or this long after its first line. */
  readonly flushMs?: number;
}

/** One judged input line of an exec or attach session, for its event. */
export interface ExecLineRecord {
  /** The line as judged, secrets already masked. */
  readonly text: string;
  /** The other readings of the line, masked, when they differ from `text`. */
  readonly readings?: readonly string[];
  /** Why the line could not be read (it was refused). */
  readonly problem?: string;
  readonly decision: Decision;
  /** What the agent was told, when the line was refused. */
  readonly refusal?: string;
  /** Values masked in the text and readings. */
  readonly maskedFields: number;
  /** Time taken to judge the line, in ms. */
  readonly latencyMs: number;
}

/** The most readings of a line an event holds, and their length (the event stays within its size limit). */
const MAX_LINE_READINGS = 4;
const MAX_READING_CHARS = MAX_LINE_CHARS / 4;

function cutLine(text: string, max = MAX_LINE_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Whether the decision let the request through: allow, mask, or a review a human approved. */
function lets(d: Decision): boolean {
  return d.action === 'allow' || d.action === 'mask' || d.approval?.state === 'approved';
}

export class AuditRecorder {
  readonly #spool: Spool;
  readonly #identity: Identity;
  readonly #metrics: SidecarMetrics;
  readonly #log: Logger;
  readonly #recording: RecordingOptions;
  /** Recordings of sessions still running. */
  readonly #sinks = new Set<RecordingSink>();

  constructor(
    spool: Spool,
    identity: Identity,
    metrics: SidecarMetrics,
    log: Logger,
    recording: RecordingOptions = { maxBytes: 16 * 1024 * 1024 },
  ) {
    this.#spool = spool;
    this.#identity = identity;
    this.#metrics = metrics;
    this.#log = log;
    this.#recording = recording;
  }

  /** The size limit of a session's recording. */
  get recordingMaxBytes(): number {
    return this.#recording.maxBytes;
  }

  /**
   * Where the recording of the session `sessionId` goes: chunks into the
   * spool, beside the events (recording-sink.ts). `onFailure` is told once
   * if a chunk cannot be written. Close it when the session ends.
   */
  openRecording(sessionId: string, onFailure: (err: Error) => void): RecordingSink {
    const sink: RecordingSink = new RecordingSink({
      spool: this.#spool,
      sessionId,
      ...(this.#recording.flushBytes !== undefined ? { flushBytes: this.#recording.flushBytes } : {}),
      ...(this.#recording.flushMs !== undefined ? { flushMs: this.#recording.flushMs } : {}),
      onFailure: (err) => {
        this.#metrics.auditWriteFailures.inc();
        this.#log.error({ err, sessionId }, 'could not write a session recording to the spool');
        this.#sinks.delete(sink);
        onFailure(err);
      },
      onClose: () => this.#sinks.delete(sink),
    });
    this.#sinks.add(sink);
    return sink;
  }

  /** Writes what the recordings of running sessions hold (before the sidecar exits). */
  flushRecordings(): void {
    for (const sink of this.#sinks) sink.flush();
  }

  /** Builds the event for a finished Kubernetes request. Pure apart from the clock. */
  kubeEvent(ctx: KubeRequestContext, now = new Date()): UnchainedEvent {
    const { req, res, info, action, decision } = ctx;
    const protocol = action?.protocol ?? 'kubernetes';
    const code = ctx.answered?.code ?? ctx.failure?.code ?? (res.headersSent ? res.statusCode : 0);
    const said = ctx.answered ?? ctx.failure;
    const forbidden = decision !== undefined && !lets(decision);
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
            // A review: how the hold ended (review/review-outcome.ts).
            ...(decision.approval ? { approval: decision.approval } : {}),
            message: decision.message,
            reason: decision.reason,
            rule: decision.rule,
          }
        : { action: 'deny', reason: 'not_decided', rule: 'none' },
    } as UnchainedEvent['chaperone'];
    if (action?.exec?.kind === 'portforward') {
      // What a port-forward session asks for; its port decisions and its end are events of their own.
      const pf: NonNullable<UnchainedEvent['chaperone']['portForward']> = {};
      if (action.exec.ports && action.exec.ports.length > 0) pf.ports = [...action.exec.ports];
      if (ctx.portForward) pf.transport = ctx.portForward.transport;
      chaperone.portForward = pf;
    } else if (action?.exec) {
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
   * the command's status and exit code, bytes each way, how long it lasted,
   * the size of its recording and whether it was cut at its limit — under a
   * new id, with the session's id (the request's) in `sessionId`.
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
    if (s.input) {
      exec.linesDenied = s.input.linesDenied;
      exec.linesEvaluated = s.input.linesEvaluated;
    }
    if (s.recording) {
      exec.recordingBytes = s.recording.bytes;
      exec.recordingTruncated = s.recording.truncated;
    }
    if (x.stdin !== undefined) exec.stdin = x.stdin;
    if (x.tty !== undefined) exec.tty = x.tty;
    c.exec = exec;
    c.sessionId = ctx.auditID;
    return event;
  }

  /**
   * The event of one input line of a session (kube/exec/line-guard.ts): the
   * session's request event under a new id, completed with the line's
   * decision, its text (masked by the caller) and the session's id in
   * `sessionId`; 403 when the line was refused.
   */
  execLineEvent(ctx: KubeRequestContext, line: ExecLineRecord, now = new Date()): UnchainedEvent {
    const event = this.kubeEvent(ctx, now);
    event.auditID = randomUUID();
    event.stage = 'ResponseComplete';
    const d = line.decision;
    const refused = line.refusal !== undefined;
    event.annotations = {
      'authorization.k8s.io/decision': refused ? 'forbid' : 'allow',
      'authorization.k8s.io/reason': `chaperone ${d.reason} ${d.rule}: ${d.message}`.slice(0, 1024),
      'chaperone.dev/rule': d.rule,
    };
    const rs = { code: refused ? 403 : 200 } as NonNullable<UnchainedEvent['responseStatus']>;
    if (line.refusal !== undefined) rs.message = line.refusal;
    rs.metadata = {};
    if (refused) {
      rs.reason = 'Forbidden';
      rs.status = 'Failure';
    }
    event.responseStatus = rs;
    const c = event.chaperone;
    c.decision = { action: d.action, message: d.message, reason: d.reason, rule: d.rule };
    const x = c.exec ?? { argv: [] };
    const exec: NonNullable<UnchainedEvent['chaperone']['exec']> = { argv: x.argv };
    if (x.container !== undefined) exec.container = x.container;
    exec.line = cutLine(line.text);
    if (line.problem !== undefined) exec.lineProblem = line.problem.slice(0, 1024);
    if (line.readings !== undefined && line.readings.length > 0)
      exec.lineReadings = line.readings.slice(0, MAX_LINE_READINGS).map((r) => cutLine(r, MAX_READING_CHARS));
    if (x.stdin !== undefined) exec.stdin = x.stdin;
    if (x.tty !== undefined) exec.tty = x.tty;
    c.exec = exec;
    c.latencyMs = Math.round(line.latencyMs * 1000) / 1000;
    c.maskedFields = line.maskedFields;
    c.sessionId = ctx.auditID;
    return event;
  }

  /** Appends the event of an input line (execLineEvent); false when it could not be written. */
  recordExecLine(ctx: KubeRequestContext, line: ExecLineRecord): boolean {
    let event: UnchainedEvent;
    try {
      event = this.execLineEvent(ctx, line);
      this.#spool.append(event);
    } catch (err) {
      this.#metrics.auditWriteFailures.inc();
      this.#log.error({ err, auditID: ctx.auditID }, 'could not write the event of an input line');
      return false;
    }
    const d = line.decision;
    this.#metrics.requests.inc({ protocol: 'exec', verb: event.verb, action: d.action, rule: d.rule });
    if (line.refusal !== undefined) this.#metrics.blocked.inc({ protocol: 'exec', rule: d.rule });
    return true;
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

  /**
   * Appends a later event of a session the request opened (a port-forward's
   * port decisions and its end): `build` makes it from the request's event.
   */
  recordSessionEvent(ctx: KubeRequestContext, build: (requestEvent: UnchainedEvent) => UnchainedEvent): void {
    let event: UnchainedEvent;
    try {
      event = build(this.kubeEvent(ctx));
    } catch (err) {
      this.#metrics.auditWriteFailures.inc();
      this.#log.error({ err, auditID: ctx.auditID }, 'could not build an event of a session');
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
    if (action === 'deny' || (action === 'review' && c.decision.approval?.state !== 'approved'))
      m.blocked.inc({ protocol: c.protocol, rule: c.decision.rule });
    m.overhead.observe({ protocol: c.protocol }, Number(ctx.overheadNs) / 1e9);
    this.#append(event);
  }
}
