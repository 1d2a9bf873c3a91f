/**
 * The end of the pipeline for exec and attach: an allowed WebSocket session is
 * opened (the 101 to the agent, whose event the audit guard writes first; then
 * the sidecar's own WebSocket to the API server) and driven by ExecSession,
 * recorded as asciicast v2 into the spool while it runs
 * (session-recording.ts); its end is recorded as a second event. Other
 * requests pass on.
 *
 * Refused here, with a Status saying what to do:
 * - SPDY upgrades (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false, older clients)
 *   and requests that do not upgrade to a channel WebSocket: only WebSocket
 *   sessions are recorded, and nothing passes unrecorded;
 * - a session whose container could not be learned (exec-target.ts);
 * - a session whose filters cannot be had (the Secrets its mask rule names
 *   cannot be read: text-hooks.ts), before the 101.
 * Once the 101 is out, failures to reach the pod come as a Status on the
 * agent's error channel: the API server's or the kubelet's own refusal as
 * they wrote it, or the sidecar's words when the API server was not reached.
 */
import type { Socket } from 'node:net';
import type { ExecTarget, Logger } from '@chaperone/shared';
import type { AuditRecorder } from '../../audit/recorder.ts';
import type { SidecarMetrics } from '../../metrics.ts';
import type { Guard, KubeRequestContext } from '../context.ts';
import { queryFlag } from '../forward.ts';
import { EarlyDataError } from '../http1/agent-connection.ts';
import { type StatusBody, sendStatus, statusBody } from '../status.ts';
import type { Upstream } from '../upstream.ts';
import { asksForSpdy, switchingProtocolsHead } from './handshake.ts';
import { ExecSession, type SessionOptions } from './session.ts';
import { type SessionHooks, SessionRefusedError } from './session-hooks.ts';
import { recordSession } from './session-recording.ts';
import { dialUpstream, type UpstreamDial, UpstreamDialError } from './upstream-dial.ts';

/** The built-in rule exec and attach requests that are not WebSocket sessions are refused under. */
export const WEBSOCKET_RULE = 'chaperone-exec-needs-websocket';

export interface ExecSessionDeps {
  readonly upstream: Upstream;
  readonly recorder: AuditRecorder;
  readonly metrics: SidecarMetrics;
  readonly log: Logger;
  /** For opening the upstream side (connection and the answer's head). */
  readonly timeoutMs: number;
  /** The filters of one session (by default bytes pass unchanged), and a recorder in place of the spool's (tests). */
  readonly hooks?: (ctx: KubeRequestContext) => SessionHooks | Promise<SessionHooks>;
  /** Keep a session going when its recording cannot be written (default: end it). */
  readonly failOpen?: boolean;
  /** Session tuning (tests shorten the waits). */
  readonly session?: Partial<Pick<SessionOptions, 'stdinEndGraceMs' | 'closeTimeoutMs' | 'maxHeldBytes'>>;
}

function refuse(ctx: KubeRequestContext, code: number, reason: string, message: string): void {
  ctx.decision = { action: 'deny', rule: WEBSOCKET_RULE, reason: 'self_protection', message };
  ctx.answered = { code, reason, message };
  sendStatus(ctx.res, statusBody(code, reason, message));
}

export function execSessions(d: ExecSessionDeps): Guard {
  return (next) => async (ctx) => {
    const exec = ctx.action?.exec;
    const info = ctx.info;
    if (!exec || exec.kind === 'portforward' || !info) return next(ctx);
    const offer = ctx.webSocket;
    if (!offer) {
      if (asksForSpdy(ctx.req)) {
        refuse(
          ctx,
          400,
          'BadRequest',
          `chaperone: ${exec.kind} through the guard needs the WebSocket protocol, and this client asked for SPDY, which the guard does not record. kubectl from 1.31 uses WebSocket unless KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false: unset it; other clients: use a WebSocket executor offering v5.channel.k8s.io or v4.channel.k8s.io`,
        );
      } else {
        refuse(
          ctx,
          400,
          'BadRequest',
          `chaperone: ${exec.kind} must be a WebSocket upgrade (GET with Upgrade: websocket, Sec-WebSocket-Version: 13, a Sec-WebSocket-Key, and Sec-WebSocket-Protocol offering v5.channel.k8s.io or v4.channel.k8s.io)`,
        );
      }
      return;
    }
    if (ctx.execProblem) {
      const p = ctx.execProblem;
      ctx.failure = p;
      sendStatus(ctx.res, statusBody(p.code, p.reason, p.message));
      return;
    }
    // Before the 101: filters that cannot be had refuse the session with a Status (SessionRefusedError).
    let hooks: SessionHooks;
    try {
      hooks = (await d.hooks?.(ctx)) ?? {};
    } catch (err) {
      if (!(err instanceof SessionRefusedError)) throw err;
      ctx.failure = err.status;
      sendStatus(ctx.res, statusBody(err.status.code, err.status.reason, err.status.message));
      return;
    }
    let socket: Socket;
    try {
      socket = ctx.res.switchProtocols(switchingProtocolsHead(offer));
    } catch (err) {
      if (!(err instanceof EarlyDataError)) throw err;
      ctx.failure = { code: 400, reason: 'BadRequest', message: `chaperone: ${err.message}` };
      ctx.res.destroy();
      return;
    }
    let session: ExecSession | undefined;
    const recorder =
      hooks.recorder ??
      recordSession({
        recorder: d.recorder,
        sessionId: ctx.auditID,
        failOpen: d.failOpen === true,
        abort: (status) => session?.abort(status),
      });
    session = new ExecSession(
      { socket, rest: Buffer.alloc(0), protocol: offer.protocol },
      {
        tty: exec.tty === true,
        hooks: { ...hooks, recorder },
        ...d.session,
        onEnd: (summary) => d.recorder.recordExecEnd(ctx, summary),
      },
    );
    let dial: UpstreamDial;
    try {
      dial = await dialUpstream({
        upstream: d.upstream,
        target: sessionTarget(info.namespace ?? '', info.name ?? '', exec, ctx.query),
        auditID: ctx.auditID,
        agentFields: ctx.req.rawHeaders,
        timeoutMs: d.timeoutMs,
      });
    } catch (err) {
      const e = err instanceof UpstreamDialError ? err : new UpstreamDialError('protocol', String(err));
      d.metrics.upstreamErrors.inc({ protocol: 'exec', reason: e.reason });
      d.log.warn(
        { auditID: ctx.auditID, err: e.message },
        'exec session: the API server could not be reached',
      );
      const [code, reason] =
        e.reason === 'timeout'
          ? [504, 'Timeout']
          : e.reason === 'unreachable'
            ? [503, 'ServiceUnavailable']
            : [502, 'BadGateway'];
      session.refuse(statusBody(code, reason, `chaperone: ${e.message}`));
      return;
    }
    if (dial.kind === 'refused') {
      session.refuse(refusalStatus(dial.status, dial.body));
      return;
    }
    session.connect({ socket: dial.socket, rest: dial.rest, protocol: dial.protocol });
  };
}

/**
 * The upstream request for a session, rebuilt from what was decided: the
 * path from the request's namespace and pod, the command, the container
 * (named even when the agent left it to the API server), and the stream flags.
 */
export function sessionTarget(
  namespace: string,
  pod: string,
  exec: ExecTarget,
  query: URLSearchParams,
): string {
  const q = new URLSearchParams();
  for (const c of exec.argv) q.append('command', c);
  if (exec.container !== undefined) q.append('container', exec.container);
  if (exec.stdin) q.append('stdin', 'true');
  if (queryFlag(query, 'stdout')) q.append('stdout', 'true');
  if (queryFlag(query, 'stderr')) q.append('stderr', 'true');
  if (exec.tty) q.append('tty', 'true');
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/${exec.kind}`;
  const qs = q.toString();
  return qs === '' ? path : `${path}?${qs}`;
}

/** The API server's (or kubelet's) refusal of the upgrade, as a Status for the agent's error channel. */
function refusalStatus(code: number, body: Buffer): StatusBody {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    doc = undefined;
  }
  const s = doc as { kind?: unknown; message?: unknown; reason?: unknown; details?: unknown } | undefined;
  if (s?.kind === 'Status' && typeof s.message === 'string') {
    const details =
      typeof s.details === 'object' && s.details !== null
        ? (s.details as Record<string, unknown>)
        : undefined;
    return statusBody(code, typeof s.reason === 'string' ? s.reason : 'Failure', s.message, details);
  }
  const text = body.toString('utf8').trim().slice(0, 512);
  return statusBody(
    code,
    code === 403 ? 'Forbidden' : 'Failure',
    `chaperone: the API server refused to open the session (HTTP ${code})${text ? `: ${text}` : ''}`,
  );
}
