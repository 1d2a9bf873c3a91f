/**
 * Forwards to Grafana Loki's push API (POST /loki/api/v1/push, JSON form):
 * one stream per label set, each entry `[<unix ns as string>, <event JSON>]`
 * stamped with the request time. Labels are the bounded ones (source,
 * namespace, protocol, action); everything else stays in the line, where
 * LogQL's `| json` reaches it. Multi-tenant Lokis get `X-Scope-OrgID`.
 */
import type { AuditEvent } from '@chaperone/shared';
import { rfc3339ToMicros } from '../events/time.ts';
import type { Sink } from './forwarder.ts';
import { type Delivery, postJson } from './http-delivery.ts';

export interface LokiSinkOptions {
  /** Base URL of Loki, e.g. http://loki:3100 (the push path is added). */
  url: string;
  tenant?: string;
  token?: () => string | undefined;
  timeoutMs?: number;
}

interface Stream {
  stream: Record<string, string>;
  values: [string, string][];
}

export function lokiPushBody(events: readonly string[]): string {
  const streams = new Map<string, Stream>();
  for (const json of events) {
    const e = JSON.parse(json) as AuditEvent;
    const labels = {
      source: 'chaperone',
      namespace: e.chaperone.source.namespace,
      protocol: e.chaperone.protocol,
      action: e.chaperone.decision.action,
    };
    const key = JSON.stringify(labels);
    let s = streams.get(key);
    if (!s) {
      s = { stream: labels, values: [] };
      streams.set(key, s);
    }
    s.values.push([`${rfc3339ToMicros(e.requestReceivedTimestamp)}000`, json]);
  }
  return JSON.stringify({ streams: [...streams.values()] });
}

export function lokiPushUrl(base: string): string {
  return `${base.replace(/\/+$/, '')}/loki/api/v1/push`;
}

export function lokiSink(opts: LokiSinkOptions): Sink {
  const url = lokiPushUrl(opts.url);
  return {
    name: 'loki',
    maxBodyBytes: 2 * 1024 * 1024, // lines are JSON-escaped inside the body: leave room under Loki's 4 MiB
    encode: lokiPushBody,
    deliver(body): Promise<Delivery> {
      const token = opts.token?.();
      return postJson(
        url,
        body,
        {
          ...(opts.tenant ? { 'x-scope-orgid': opts.tenant } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        opts.timeoutMs ?? 15_000,
      );
    },
  };
}
