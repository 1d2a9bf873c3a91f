/**
 * The end of the pipeline for port-forward requests the policy let through:
 * the sidecar opens its own upgrade to the API server (its credentials, the
 * request's id as Audit-ID), answers the agent's upgrade with 101 once the API
 * server did (the audit guard writes the session's opening event then), and
 * relays the session until either side ends it; its end is recorded as one
 * more event, with what each port carried.
 *
 * - SPDY (kubectl): each forwarded connection's port is decided when it
 *   opens (port-decisions.ts, spdy-relay.ts).
 * - WebSocket v4 (client-node): the ports are in the URL; each is decided
 *   before the API server is asked, and all must be allowed (a port-forward
 *   over WebSocket cannot refuse one port and keep the others).
 * - The WebSocket tunnel kubectl tries first, and anything that is not one of
 *   these upgrades, is answered with a 400 Status (kubectl then falls back to
 *   SPDY; other clients learn what to send).
 *
 * A mask decision refuses the session: forwarded bytes pass unparsed, so
 * nothing in them could be masked. Other requests pass on.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '@chaperone/shared';
import type { Guard, KubeRequestContext } from '../context.ts';
import { switchingProtocolsHead } from '../exec/handshake.ts';
import { dialUpgrade, dialUpstream, UpstreamDialError } from '../exec/upstream-dial.ts';
import { EarlyDataError } from '../http1/agent-connection.ts';
import { sendStatus, statusBody } from '../status.ts';
import type { Upstream } from '../upstream.ts';
import { portForwardEndEvent } from './events.ts';
import { decidePort, type PortDecisionDeps, PortDecisions, portOutcome } from './port-decisions.ts';
import { readPortsQuery } from './ports-query.ts';
import { lookUpSidecarPorts } from './sidecar-ports.ts';
import { SocketRelay } from './socket-relay.ts';
import { SpdyPortForwardRelay } from './spdy-relay.ts';
import {
  checkSpdyAnswer,
  readPortForwardUpgrade,
  SPDY_SWITCHING_PROTOCOLS,
  spdyUpgradeHead,
} from './upgrade.ts';
import { WebSocketPortForwardRelay } from './websocket-relay.ts';

export interface PortForwardDeps extends PortDecisionDeps {
  readonly upstream: Upstream;
  readonly log: Logger;
  /** For opening the upstream side (connection and the answer's head). */
  readonly timeoutMs: number;
  /** How long ended sockets may take to close (default 5 s; tests shorten it). */
  readonly closeTimeoutMs?: number;
}

const EMPTY = Buffer.alloc(0);

function answer(ctx: KubeRequestContext, code: number, reason: string, message: string): void {
  ctx.answered = { code, reason, message };
  sendStatus(ctx.res, statusBody(code, reason, message));
}

export function portForwardSessions(d: PortForwardDeps): Guard {
  return (next) => async (ctx) => {
    const info = ctx.info;
    if (ctx.action?.exec?.kind !== 'portforward' || !info) return next(ctx);
    const decision = ctx.decision;
    if (decision?.action === 'mask') {
      const outcome = portOutcome(decision);
      ctx.decision = outcome.decision;
      answer(ctx, 403, 'Forbidden', outcome.refusal ?? decision.message);
      return;
    }
    const up = readPortForwardUpgrade(ctx.req);
    if (up.kind === 'tunnel') {
      answer(
        ctx,
        400,
        'BadRequest',
        'chaperone: port-forward through the guard runs over SPDY (Upgrade: SPDY/3.1); the WebSocket tunnel (SPDY/3.1+portforward.k8s.io) is not served. kubectl falls back to SPDY by itself; other clients: upgrade to SPDY/3.1 or to WebSocket v4.channel.k8s.io with ports=',
      );
      return;
    }
    if (up.kind === 'none') {
      answer(ctx, 400, 'BadRequest', `chaperone: ${up.problem}`);
      return;
    }
    // Which of the pod's ports lead to a Chaperone sidecar: refused whatever the policy says.
    const sidecarPorts = await lookUpSidecarPorts(d, ctx, info.namespace ?? '', info.name ?? '');
    if (!(sidecarPorts instanceof Set)) {
      answer(ctx, sidecarPorts.code, sidecarPorts.reason, sidecarPorts.message);
      return;
    }
    ctx.sidecarPorts = sidecarPorts;
    const path = `/api/v1/namespaces/${encodeURIComponent(info.namespace ?? '')}/pods/${encodeURIComponent(info.name ?? '')}/portforward`;
    const decisions = new PortDecisions(ctx, d);
    let ports: readonly number[] = [];
    let outcomes: ReturnType<typeof portOutcome>[] = [];
    if (up.kind === 'websocket') {
      const read = readPortsQuery(ctx.query);
      if ('problem' in read) {
        answer(ctx, 400, 'BadRequest', `chaperone: ${read.problem}`);
        return;
      }
      ports = read;
      // Each port on its own, as a SPDY session's would be (the request as a whole was decided already).
      outcomes = ports.map((p) => portOutcome(decidePort(ctx, p, d)));
      const refused = outcomes.find((o) => o.refusal !== undefined);
      if (refused?.refusal !== undefined) {
        ctx.decision = refused.decision;
        answer(ctx, 403, 'Forbidden', refused.refusal);
        return;
      }
    }
    ctx.portForward = { transport: up.kind };
    let upstream: {
      socket: TLSSocket;
      rest: Buffer;
      relay: SpdyPortForwardRelay | WebSocketPortForwardRelay;
    };
    try {
      if (up.kind === 'websocket') {
        const dial = await dialUpstream({
          upstream: d.upstream,
          target: `${path}?${ports.map((p) => `ports=${p}`).join('&')}`,
          auditID: ctx.auditID,
          agentFields: ctx.req.rawHeaders,
          timeoutMs: d.timeoutMs,
        });
        if (dial.kind === 'refused') return passRefusal(ctx, dial.status, dial.contentType, dial.body);
        upstream = {
          socket: dial.socket,
          rest: dial.rest,
          relay: new WebSocketPortForwardRelay({
            agentProtocol: up.offer.protocol,
            upstreamProtocol: dial.protocol,
            ports,
          }),
        };
      } else {
        const dial = await dialUpgrade({
          upstream: d.upstream,
          head: spdyUpgradeHead({
            target: path,
            host: d.upstream.host,
            authorization: d.upstream.authorization,
            auditID: ctx.auditID,
            agentFields: ctx.req.rawHeaders,
          }),
          check: checkSpdyAnswer,
          timeoutMs: d.timeoutMs,
        });
        if (dial.kind === 'refused') return passRefusal(ctx, dial.status, dial.contentType, dial.body);
        upstream = {
          socket: dial.socket,
          rest: dial.rest,
          relay: new SpdyPortForwardRelay({ decide: (port) => decisions.verdict(port) }),
        };
      }
    } catch (err) {
      const e = UpstreamDialError.from(err);
      d.metrics.upstreamErrors.inc({ protocol: 'exec', reason: e.reason });
      d.log.warn(
        { auditID: ctx.auditID, err: e.message },
        'port-forward: the API server could not be reached',
      );
      const s = e.status();
      ctx.failure = s;
      sendStatus(ctx.res, statusBody(s.code, s.reason, s.message));
      return;
    }
    if (ctx.res.destroyed) {
      // The agent left while the API server was being asked.
      upstream.socket.destroy();
      return;
    }
    let socket: Socket;
    try {
      socket = ctx.res.switchProtocols(
        up.kind === 'websocket' ? switchingProtocolsHead(up.offer) : SPDY_SWITCHING_PROTOCOLS,
      );
    } catch (err) {
      upstream.socket.destroy();
      if (!(err instanceof EarlyDataError)) throw err;
      ctx.failure = { code: 400, reason: 'BadRequest', message: `chaperone: ${err.message}` };
      ctx.res.destroy();
      return;
    }
    let unrecorded = false;
    for (const [i, p] of ports.entries())
      if (!decisions.record(p, outcomes[i] as ReturnType<typeof portOutcome>)) unrecorded = true;
    if (unrecorded && !d.failOpen) {
      // Unrecorded connections are not allowed: the session ends before a byte is relayed.
      d.metrics.auditGateRefused.inc({ reason: 'spool_write_failed', outcome: 'refused' });
      socket.destroy();
      upstream.socket.destroy();
      return;
    }
    const started = performance.now();
    const relay = upstream.relay;
    new SocketRelay({ socket, rest: EMPTY }, { socket: upstream.socket, rest: upstream.rest }, relay, {
      ...(d.closeTimeoutMs !== undefined ? { closeTimeoutMs: d.closeTimeoutMs } : {}),
      onEnd: (problem) =>
        d.recorder.recordSessionEvent(ctx, (e) =>
          portForwardEndEvent(e, ctx.auditID, {
            transport: up.kind,
            used: relay.usage,
            durationMs: Math.round((performance.now() - started) * 1000) / 1000,
            problem,
          }),
        ),
    });
  };
}

/** The API server's (or the kubelet's) refusal of the upgrade, passed to the agent as it came. */
function passRefusal(ctx: KubeRequestContext, status: number, contentType: string, body: Buffer): void {
  let message = `the API server answered ${status}`;
  try {
    const s = JSON.parse(body.toString('utf8')) as { message?: unknown };
    if (typeof s.message === 'string') message = s.message;
  } catch {}
  ctx.failure = { code: status, reason: '', message };
  ctx.res.writeHead(status, {
    'content-type': contentType || 'text/plain',
    'content-length': body.length,
    'cache-control': 'no-cache, private',
  });
  ctx.res.end(body);
}
