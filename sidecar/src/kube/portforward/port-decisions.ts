/**
 * The policy's word on each port a port-forward session forwards: the
 * session's action with that one port, evaluated once per port per session
 * (the first time a connection asks for it; later connections to the port get
 * the same answer), recorded as an event of the session and counted in the
 * decision metrics.
 *
 * Only `allow` lets a port through. `deny` and `review` (a forwarded
 * connection is not held for approval) refuse it with the rule's words; `mask` refuses it too: the
 * forwarded bytes pass unparsed, so nothing in them could be masked.
 */
import { type Decision, evaluate, type SelfProtection } from '@chaperone/shared';
import type { AuditRecorder } from '../../audit/recorder.ts';
import type { Spool } from '../../audit/spool.ts';
import type { SidecarMetrics } from '../../metrics.ts';
import type { PolicyStore } from '../../policy-store.ts';
import type { KubeRequestContext } from '../context.ts';
import { portDecisionEvent } from './events.ts';
import { SIDECAR_PORTS_RULE } from './sidecar-ports.ts';
import type { PortVerdict } from './spdy-relay.ts';

export interface PortDecisionDeps {
  readonly policy: PolicyStore;
  readonly protection: SelfProtection;
  readonly recorder: AuditRecorder;
  readonly spool: Spool;
  /** Let a port through even when its event could not be written (default: refuse it). */
  readonly failOpen: boolean;
  readonly metrics: SidecarMetrics;
}

/** What the guard does with a port the policy decided on, and what the agent is told. */
export function portOutcome(d: Decision): { decision: Decision; refusal?: string } {
  switch (d.action) {
    case 'allow':
      return { decision: d };
    case 'deny':
      return { decision: d, refusal: `chaperone: denied by rule "${d.rule}": ${d.message}` };
    case 'review':
      return {
        decision: d,
        refusal: `chaperone: rule "${d.rule}" requires a human's approval (${d.message}), and a port-forward is not held for approval; the connection is refused`,
      };
    case 'mask': {
      const message = `rule "${d.rule}" masks what it matches, and forwarded bytes pass unparsed, so nothing in them can be masked; the port-forward is refused (allow pods/portforward in a rule before it)`;
      return { decision: { ...d, action: 'deny', message }, refusal: `chaperone: ${message}` };
    }
  }
}

/** The session's action narrowed to one port, decided. */
export function decidePort(ctx: KubeRequestContext, port: number, d: PortDecisionDeps): Decision {
  const action = ctx.action;
  if (!action?.exec) throw new Error('a port is decided only for a port-forward request that was decided');
  if (ctx.sidecarPorts?.has(port))
    return {
      action: 'deny',
      rule: SIDECAR_PORTS_RULE,
      reason: 'self_protection',
      message: `port ${port} of this pod is a Chaperone sidecar's listener: a tunnel there would act with that pod's credentials and policy, so no policy can allow it`,
    };
  return evaluate({ ...action, exec: { ...action.exec, ports: [port] } }, d.policy.current, d.protection);
}

export class PortDecisions {
  readonly #ctx: KubeRequestContext;
  readonly #d: PortDecisionDeps;
  readonly #known = new Map<number, PortVerdict>();

  constructor(ctx: KubeRequestContext, d: PortDecisionDeps) {
    this.#ctx = ctx;
    this.#d = d;
  }

  /**
   * Decides `port` (once per session) and records the decision; what the
   * relay does with it. A port whose event the spool did not take is refused
   * (and decided again next time) unless the sidecar fails open.
   */
  verdict(port: number): PortVerdict {
    const known = this.#known.get(port);
    if (known) return known;
    const outcome = portOutcome(decidePort(this.#ctx, port, this.#d));
    const info = this.#ctx.info;
    const refused = (why: string): PortVerdict => ({
      allowed: false,
      message: `error forwarding port ${port} to pod ${info?.namespace ?? ''}/${info?.name ?? ''}: ${why}`,
    });
    if (!this.record(port, outcome)) {
      const failOpen = this.#d.failOpen;
      this.#d.metrics.auditGateRefused.inc({
        reason: 'spool_write_failed',
        outcome: failOpen ? 'served' : 'refused',
      });
      if (!failOpen)
        return refused(
          `chaperone: the audit event of this port's decision could not be written to the audit spool (${this.#d.spool.writeFailure ?? 'the event could not be built'}); unrecorded connections are not allowed. If this persists, check the sidecar's spool volume`,
        );
    }
    const verdict: PortVerdict = outcome.refusal === undefined ? { allowed: true } : refused(outcome.refusal);
    this.#known.set(port, verdict);
    return verdict;
  }

  /** Records a port's decision as an event of the session and in the metrics; whether the spool took the event. */
  record(port: number, outcome: { decision: Decision; refusal?: string }): boolean {
    const d = outcome.decision;
    this.#d.metrics.requests.inc({ protocol: 'exec', verb: 'create', action: d.action, rule: d.rule });
    if (d.action === 'deny' || d.action === 'review')
      this.#d.metrics.blocked.inc({ protocol: 'exec', rule: d.rule });
    const before = this.#d.spool.head.seq;
    this.#d.recorder.recordSessionEvent(this.#ctx, (e) =>
      portDecisionEvent(e, this.#ctx.auditID, port, outcome),
    );
    return this.#d.spool.head.seq > before;
  }
}
