/**
 * Forwards to Falco's k8saudit input (or any Kubernetes-audit webhook): POSTs
 * `audit.k8s.io/v1` EventList bodies. Falco reads the guard's decision from
 * the `authorization.k8s.io/decision` (allow|forbid) and `.../reason`
 * annotations, so they are filled in when the sidecar did not set them.
 * Falco accepts at most 12 MiB per body; we stay well below.
 */
import type { AuditEvent } from '@chaperone/shared';
import type { Sink } from './forwarder.ts';
import { type Delivery, postJson } from './http-delivery.ts';

export interface FalcoSinkOptions {
  url: string;
  /** Bearer token for the destination, re-read on every send (rotation). */
  token?: () => string | undefined;
  timeoutMs?: number;
}

export function falcoEvent(json: string): string {
  const e = JSON.parse(json) as AuditEvent;
  const a = e.annotations ?? {};
  if (a['authorization.k8s.io/decision'] && a['authorization.k8s.io/reason']) return json;
  const d = e.chaperone.decision;
  return JSON.stringify({
    ...e,
    annotations: {
      ...a,
      'authorization.k8s.io/decision':
        a['authorization.k8s.io/decision'] ?? (d.action === 'deny' ? 'forbid' : 'allow'),
      'authorization.k8s.io/reason':
        a['authorization.k8s.io/reason'] ?? `chaperone ${d.action} by rule ${d.rule} (${d.reason})`,
    },
  });
}

export function falcoSink(opts: FalcoSinkOptions): Sink {
  return {
    name: 'falco',
    maxBodyBytes: 8 * 1024 * 1024,
    encode: (events) =>
      `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[${events.map(falcoEvent).join(',')}]}`,
    deliver(body): Promise<Delivery> {
      const token = opts.token?.();
      return postJson(
        opts.url,
        body,
        token ? { authorization: `Bearer ${token}` } : {},
        opts.timeoutMs ?? 15_000,
      );
    },
  };
}
