/**
 * One audit event per request: built from the request context when the
 * response is over (or the client went away), appended to the spool, and
 * counted in the metrics. Events hold metadata only — never bodies — so masked
 * values cannot reach them.
 */
import { type Logger, microTime, type UnchainedEvent } from '@chaperone/shared';
import type { Identity } from '../identity.ts';
import type { KubeRequestContext } from '../kube/context.ts';
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
    const event: UnchainedEvent = {
      kind: 'Event',
      apiVersion: 'audit.k8s.io/v1',
      level: 'Metadata',
      auditID: ctx.auditID,
      stage: 'ResponseComplete',
      requestURI: req.url ?? '/',
      verb: action?.verb ?? (req.method ?? 'get').toLowerCase(),
      user: this.#identity.user,
      sourceIPs: [ctx.remoteAddress],
      ...(typeof userAgent === 'string' ? { userAgent: userAgent.slice(0, 2048) } : {}),
      ...(info?.isResourceRequest
        ? {
            objectRef: {
              ...(info.resource !== undefined ? { resource: info.resource } : {}),
              ...(info.namespace !== undefined ? { namespace: info.namespace } : {}),
              ...(info.name !== undefined ? { name: info.name } : {}),
              apiGroup: info.apiGroup,
              apiVersion: info.apiVersion,
              ...(info.subresource !== undefined ? { subresource: info.subresource } : {}),
            },
          }
        : {}),
      responseStatus: {
        metadata: {},
        code,
        ...(said ? { status: 'Failure', reason: said.reason, message: said.message } : {}),
      },
      requestReceivedTimestamp: microTime(ctx.receivedAt),
      stageTimestamp: microTime(now),
      annotations: {
        'authorization.k8s.io/decision': forbidden ? 'forbid' : 'allow',
        'authorization.k8s.io/reason': decision
          ? `chaperone ${decision.reason} ${decision.rule}: ${decision.message}`.slice(0, 1024)
          : 'chaperone: not decided',
        'chaperone.dev/rule': decision?.rule ?? 'none',
      },
      chaperone: {
        schemaVersion: 1,
        protocol,
        source: this.#identity.source,
        decision: decision
          ? {
              action: decision.action,
              rule: decision.rule,
              reason: decision.reason,
              message: decision.message,
            }
          : { action: 'deny', rule: 'none', reason: 'not_decided' },
        maskedFields: ctx.maskedFields,
        latencyMs: Math.round(latencyMs * 1000) / 1000,
        ...(action?.exec
          ? {
              exec: {
                argv: [...action.exec.argv],
                ...(action.exec.container !== undefined ? { container: action.exec.container } : {}),
              },
            }
          : {}),
      },
    };
    return event;
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
    const labels = {
      protocol: c.protocol,
      verb: event.verb,
      action: c.decision.action,
      rule: c.decision.rule,
    };
    this.#metrics.requests.inc(labels);
    if (c.decision.action === 'deny' || c.decision.action === 'review') {
      this.#metrics.blocked.inc({ protocol: c.protocol, rule: c.decision.rule });
    }
    this.#metrics.overhead.observe({ protocol: c.protocol }, Number(ctx.overheadNs) / 1e9);
    try {
      this.#spool.append(event);
    } catch (err) {
      this.#metrics.auditWriteFailures.inc();
      this.#log.error({ err, auditID: event.auditID }, 'could not write an audit event to the spool');
    }
  }
}
