/**
 * The Kubernetes API request path, assembled in one place: audit ∘ read
 * request ∘ spool gate ∘ exec target ∘ decide ∘ object check ∘ access review ∘
 * port-forward sessions ∘ exec sessions → forward.
 */
import type { SelfProtection } from '@chaperone/shared';
import type { AuditRecorder } from '../audit/recorder.ts';
import type { Spool } from '../audit/spool.ts';
import type { SidecarMetrics } from '../metrics.ts';
import type { PolicyStore } from '../policy-store.ts';
import { compose, type Handler } from './context.ts';
import { execTarget } from './exec/exec-target.ts';
import { type ExecSessionDeps, execSessions } from './exec/session-guard.ts';
import { type ForwardOptions, forward } from './forward.ts';
import { accessReview } from './guards/access-review.ts';
import { audit } from './guards/audit.ts';
import { decide } from './guards/decide.ts';
import { objectCheck } from './guards/object-check.ts';
import { readRequest } from './guards/request-reading.ts';
import { type SpoolGateOptions, spoolGate } from './guards/spool-gate.ts';
import { type PortForwardDeps, portForwardSessions } from './portforward/session-guard.ts';

export interface PipelineDeps extends ForwardOptions {
  readonly recorder: AuditRecorder;
  readonly spool: Spool;
  readonly failOpen: boolean;
  /** The collector's delivery bound (absent: no collector configured). */
  readonly collector?: SpoolGateOptions['collector'];
  readonly policy: PolicyStore;
  readonly protection: SelfProtection;
  readonly username: string;
  readonly metrics: SidecarMetrics;
  /** Exec and attach sessions: their filters and recorder, and tuning. */
  readonly exec?: Pick<ExecSessionDeps, 'hooks' | 'session'>;
  /** Port-forward session tuning. */
  readonly portForward?: Pick<PortForwardDeps, 'closeTimeoutMs'>;
}

export function kubePipeline(d: PipelineDeps): Handler {
  return compose(
    [
      audit({ recorder: d.recorder, spool: d.spool, failOpen: d.failOpen, metrics: d.metrics, log: d.log }),
      readRequest(),
      spoolGate({
        spool: d.spool,
        failOpen: d.failOpen,
        metrics: d.metrics,
        ...(d.collector ? { collector: d.collector } : {}),
      }),
      execTarget(d),
      decide(d.policy, d.protection, d.username, d.maxRequestBytes),
      objectCheck(d),
      accessReview({ ...d, user: d.username }),
      portForwardSessions({ ...d, ...d.portForward }),
      execSessions({ ...d, ...d.exec }),
    ],
    forward(d),
  );
}
