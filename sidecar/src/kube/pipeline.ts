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
import type { ReviewClient } from '../review/review-client.ts';
import { compose, type Handler, type KubeRequestContext } from './context.ts';
import { execTarget } from './exec/exec-target.ts';
import type { ExecSessionDeps } from './exec/session-guard.ts';
import { type ForwardOptions, forward } from './forward.ts';
import { accessReview } from './guards/access-review.ts';
import { audit } from './guards/audit.ts';
import { decide } from './guards/decide.ts';
import { objectCheck } from './guards/object-check.ts';
import { readRequest } from './guards/request-reading.ts';
import { type SpoolGateOptions, spoolGate } from './guards/spool-gate.ts';
import { lazyGuard } from './lazy-guard.ts';
import { maskedLogs } from './pod-log-filter.ts';
import type { PortForwardDeps } from './portforward/session-guard.ts';

export interface PipelineDeps extends ForwardOptions {
  readonly recorder: AuditRecorder;
  readonly spool: Spool;
  readonly failOpen: boolean;
  /** The collector's delivery bound (absent: no collector configured). */
  readonly collector?: SpoolGateOptions['collector'];
  readonly policy: PolicyStore;
  readonly protection: SelfProtection;
  /** Holds what a review rule matches until a human decides (absent: reviews are denied). */
  readonly reviews?: ReviewClient;
  readonly username: string;
  readonly metrics: SidecarMetrics;
  /** Exec and attach sessions: their filters and recorder, and tuning. */
  readonly exec?: Pick<ExecSessionDeps, 'hooks' | 'session'>;
  /** Port-forward session tuning. */
  readonly portForward?: Pick<PortForwardDeps, 'closeTimeoutMs'>;
}

/** Exec, attach and port-forward: the requests the session guards act on (they pass every other one on). */
const isSession = (ctx: KubeRequestContext) => ctx.action?.exec !== undefined;

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
      decide(d.policy, d.protection, d.username, d.maxRequestBytes, d.reviews),
      objectCheck(d),
      accessReview({ ...d, user: d.username }),
      // Session code (protocols, masking, recording) loads at the first exec, attach or port-forward.
      lazyGuard(isSession, async () =>
        (await import('./portforward/session-guard.ts')).portForwardSessions({ ...d, ...d.portForward }),
      ),
      lazyGuard(isSession, async () =>
        (await import('./exec/session-guard.ts')).execSessions({ ...d, ...d.exec }),
      ),
    ],
    // Pod logs hide what exec output hides: the detectors and the mask rules' Secrets.
    forward({ ...d, logFilter: d.logFilter ?? maskedLogs(d) }),
  );
}
