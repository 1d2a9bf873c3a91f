/**
 * Why a pod would (or would not) be injected, step by step, in the order the
 * API server and the injector decide it: the webhook's namespace selector,
 * its object selector, then `mutate` itself — and, for a pod that would not
 * be injected in an opted-in namespace, that the validating webhook rejects it
 * unless its creator is exempt. Pure: `check-inject` gathers the facts (from
 * the cluster or a file) and prints the report.
 */
import { custodyViolations } from '../inject/custody-check.ts';
import type { InjectionConfig } from '../inject/injection-config.ts';
import { InjectionRejected } from '../inject/injection-error.ts';
import { mutate } from '../inject/mutate.ts';
import { SKIP_EXPLANATIONS } from '../inject/skip-reasons.ts';
import { parseStatus } from '../inject/status-annotation.ts';
import type { Pod } from '../k8s-types.ts';
import { INJECT_LABEL, INJECTED_LABEL, OPT_OUT_VALUE, STATUS_ANNOTATION } from '../names.ts';
import { unmetRequirement } from './label-selector.ts';
import type { MutatingWebhookConfiguration } from './webhook-configuration.ts';
import { WEBHOOK_NAME } from './webhook-configuration.ts';

export const UNINJECTED_REFUSED =
  'in a namespace opted in to Chaperone, the validating webhook (validate.chaperone.dev) rejects a pod that is not injected unless the identity creating it is exempted by the cluster admin (injector settings --exempt-users, --exempt-groups)';

export type Verdict = 'injected' | 'would-be-injected' | 'not-injected' | 'would-be-rejected';

export interface Check {
  readonly ok: boolean;
  readonly message: string;
}

export interface InjectionReport {
  readonly target: string;
  readonly verdict: Verdict;
  readonly summary: string;
  readonly checks: readonly Check[];
  /** The pod as injection would leave it (when it would be injected). */
  readonly injected?: Pod;
}

export interface ExplainInput {
  readonly pod: Pod;
  readonly namespace: string;
  /** The pod exists in the cluster (it was created already). */
  readonly live: boolean;
  /** Labels of the namespace; undefined when unknown (offline). */
  readonly namespaceLabels?: Record<string, string>;
  /** The namespace does not exist in the cluster. */
  readonly namespaceMissing?: boolean;
  /** Chaperone webhook configurations found; undefined when unknown (offline). */
  readonly webhooks?: readonly MutatingWebhookConfiguration[];
  readonly config: InjectionConfig;
  readonly target: string;
}

function describeChanges(before: Pod, after: Pod): string[] {
  const out: string[] = [];
  const status = parseStatus(after.metadata?.annotations?.[STATUS_ANNOTATION]);
  if (status) {
    out.push(
      `adds the sidecar as ${status.mode === 'native' ? 'a native sidecar (init container, restartPolicy: Always)' : 'the first container'}`,
    );
    out.push(`adds volumes ${(status.volumes ?? []).join(', ')}`);
    const removed = (before.spec.volumes ?? [])
      .filter((v) => !(after.spec.volumes ?? []).some((a) => a.name === v.name))
      .map((v) => v.name);
    if (removed.length)
      out.push(`removes the service-account token volume ${removed.join(', ')} from the agent containers`);
    out.push(`points KUBERNETES_SERVICE_HOST/PORT at 127.0.0.1:${status.kubePort} in every agent container`);
    if (status.databases?.length)
      out.push(`routes databases ${status.databases.join(', ')} through the sidecar`);
  }
  return out;
}

export function explainInjection(input: ExplainInput): InjectionReport {
  const checks: Check[] = [];
  const { pod, namespace } = input;
  const add = (ok: boolean, message: string) => checks.push({ ok, message });
  const podLabels = pod.metadata?.labels ?? {};
  const annotations = pod.metadata?.annotations ?? {};
  const isInjected = podLabels[INJECTED_LABEL] === 'true' && annotations[STATUS_ANNOTATION] !== undefined;

  const done = (verdict: Verdict, summary: string, injected?: Pod): InjectionReport => ({
    target: input.target,
    verdict,
    summary,
    checks,
    ...(injected ? { injected } : {}),
  });
  const notInjectedSummary = (why: string) =>
    input.live
      ? `not injected: ${why}. Pods are injected only when created; fix this, then recreate the pod`
      : `would not be injected: ${why}`;
  /** An uninjectable pod in an opted-in namespace: refused by the validating webhook unless exempt. */
  const refused = (why: string): InjectionReport => {
    add(false, UNINJECTED_REFUSED);
    if (input.live) {
      return done(
        isInjected ? 'injected' : 'not-injected',
        `not injected: ${why}; it was admitted before the namespace opted in, or created by an identity the cluster admin exempted`,
      );
    }
    return done(
      'would-be-rejected',
      `would be rejected: ${why}, and namespace ${namespace} is opted in. Remove the opt-out (or hostNetwork), create the pod in a namespace that is not opted in, or ask the cluster admin to exempt the identity that creates it`,
    );
  };

  // 1. Does any Chaperone webhook select the namespace?
  let selected = true;
  if (input.namespaceMissing) {
    add(false, `namespace ${namespace} does not exist`);
    return done('not-injected', notInjectedSummary(`namespace ${namespace} does not exist`));
  }
  if (input.webhooks !== undefined) {
    if (input.webhooks.length === 0) {
      add(
        false,
        'no Chaperone MutatingWebhookConfiguration in the cluster (is the injector installed and running?)',
      );
      selected = false;
    } else if (input.namespaceLabels !== undefined) {
      const labels = { ...input.namespaceLabels };
      const reasons: string[] = [];
      let match: string | undefined;
      for (const w of input.webhooks) {
        const hook = w.webhooks?.find((h) => h.name === WEBHOOK_NAME);
        const why = hook
          ? unmetRequirement(hook.namespaceSelector, labels)
          : 'it has no inject.chaperone.dev webhook';
        if (why) reasons.push(`${w.metadata.name}: ${why}`);
        else match ??= w.metadata.name;
      }
      if (match) add(true, `namespace ${namespace} is selected by webhook configuration ${match}`);
      else {
        selected = false;
        add(
          false,
          `namespace ${namespace} is not selected: ${reasons.join('; ')} (opt in: kubectl label namespace ${namespace} ${INJECT_LABEL}=enabled)`,
        );
      }
    }
  } else if (input.namespaceLabels === undefined) {
    add(true, `offline: assuming namespace ${namespace} is opted in (${INJECT_LABEL}=enabled)`);
  }
  if (input.webhooks === undefined && input.namespaceLabels !== undefined) {
    const ok = input.namespaceLabels[INJECT_LABEL] === 'enabled';
    if (!ok) selected = false;
    add(
      ok,
      ok
        ? `namespace ${namespace} has ${INJECT_LABEL}=enabled`
        : `namespace ${namespace} lacks the label ${INJECT_LABEL}=enabled`,
    );
  }

  // 2. The object selector: the opt-out label means the webhook is never called.
  if (podLabels[INJECT_LABEL] === OPT_OUT_VALUE) {
    add(false, `the pod carries the label ${INJECT_LABEL}=false: the webhook is not called for it`);
    if (selected) return refused('the pod opted out by label');
    return done(isInjected ? 'injected' : 'not-injected', notInjectedSummary('the pod opted out by label'));
  }
  if (!selected)
    return done(
      isInjected ? 'injected' : 'not-injected',
      notInjectedSummary('the namespace is not opted in'),
    );

  // 3. The injector's own decision.
  try {
    const r = mutate(pod, input.config, { namespace });
    if (r.skipReasons.includes('already_injected')) {
      add(true, 'the sidecar and every change injection makes are in place');
      const violations = custodyViolations(pod, input.config.allowedAgentTokenAudiences);
      for (const v of violations) add(false, v);
      if (violations.length === 0) add(true, 'no agent container can read a Kubernetes credential');
      return done(
        'injected',
        input.live ? 'injected and up to date' : 'already injected: injecting again changes nothing',
      );
    }
    if (r.skipReasons.length > 0) {
      for (const reason of r.skipReasons) add(false, `skipped (${reason}): ${SKIP_EXPLANATIONS[reason]}`);
      if (!r.skipReasons.includes('excluded_namespace')) return refused(r.skipReasons.join(', '));
      return done(isInjected ? 'injected' : 'not-injected', notInjectedSummary(r.skipReasons.join(', ')));
    }
    for (const c of describeChanges(pod, r.pod)) add(true, c);
    if (input.live) {
      const summary = isInjected
        ? 'injected, but not as the injector would do it now (an older version or settings); recreate the pod to update it'
        : 'not injected: it was created before the namespace opted in or while the webhook did not apply; recreate the pod to inject it';
      return done(isInjected ? 'injected' : 'not-injected', summary, r.pod);
    }
    return done('would-be-injected', 'would be injected', r.pod);
  } catch (err) {
    if (err instanceof InjectionRejected) {
      add(false, err.message);
      return done('would-be-rejected', `would be rejected: ${err.message}`);
    }
    throw err;
  }
}

export function formatReport(r: InjectionReport): string {
  const lines = [`${r.target}: ${r.summary}`];
  for (const c of r.checks) lines.push(`  ${c.ok ? '✓' : '✗'} ${c.message}`);
  return `${lines.join('\n')}\n`;
}
