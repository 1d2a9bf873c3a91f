/**
 * Realistic chained audit events for tests, the fault test's sidecar-like
 * clients and the ingest benchmark. Deterministic for a given input.
 */
import {
  type AuditEvent,
  chainEvent,
  type DecisionAction,
  GENESIS_HASH,
  microTime,
  type Protocol,
  type UnchainedEvent,
} from '@chaperone/shared';
import type { Identity } from '../store/store.ts';

/** A sidecar's verified identity, for tests that connect as one. */
export const TEST_SOURCE = {
  namespace: 'agents',
  pod: 'agent-0',
  podUID: 'u0',
  serviceAccount: 'agent',
  sidecarId: 'agents/agent-0/u0',
};

export interface EventSpec {
  protocol?: Protocol;
  verb?: string;
  resource?: string;
  subresource?: string;
  name?: string;
  action?: DecisionAction;
  rule?: string;
  sessionId?: string;
  argv?: string[];
  sqlText?: string;
  requestURI?: string;
  /** Request time; default: a fixed base time plus the sequence number in ms. */
  time?: Date;
  user?: string;
  auditID?: string;
}

const BASE_TIME = Date.UTC(2026, 0, 15, 9, 0, 0);

export function sampleEvent(
  source: Identity & { sidecarId: string },
  i: number,
  spec: EventSpec = {},
): UnchainedEvent {
  const protocol = spec.protocol ?? 'kubernetes';
  const t = spec.time ?? new Date(BASE_TIME + i);
  const action = spec.action ?? 'allow';
  const resource =
    spec.resource ?? (protocol === 'exec' ? 'pods' : protocol === 'postgres' ? undefined : 'configmaps');
  const name = spec.name ?? `obj-${i % 17}`;
  const requestURI =
    spec.requestURI ??
    (protocol === 'exec'
      ? `/api/v1/namespaces/${source.namespace}/pods/${name}/exec?${(spec.argv ?? ['ls']).map((a) => `command=${encodeURIComponent(a)}`).join('&')}`
      : protocol === 'postgres'
        ? `postgres://db/app`
        : `/api/v1/namespaces/${source.namespace}/${resource ?? 'configmaps'}/${name}`);
  const event: UnchainedEvent = {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: spec.auditID ?? deterministicUuid(`${source.sidecarId}/${i}`),
    stage: 'ResponseComplete',
    requestURI,
    verb: spec.verb ?? (protocol === 'exec' ? 'create' : protocol === 'postgres' ? 'query' : 'get'),
    user: {
      username: spec.user ?? `system:serviceaccount:${source.namespace}:${source.serviceAccount}`,
      groups: ['system:serviceaccounts'],
    },
    sourceIPs: ['127.0.0.1'],
    userAgent: 'kubectl/v1.32.4',
    ...(resource !== undefined
      ? {
          objectRef: {
            resource,
            namespace: source.namespace,
            name,
            apiVersion: 'v1',
            ...(spec.subresource ? { subresource: spec.subresource } : {}),
          },
        }
      : {}),
    responseStatus: { metadata: {}, code: action === 'deny' ? 403 : 200 },
    requestReceivedTimestamp: microTime(t),
    stageTimestamp: microTime(t, 250),
    annotations: {
      'authorization.k8s.io/decision': action === 'deny' ? 'forbid' : 'allow',
      'authorization.k8s.io/reason': `chaperone rule ${spec.rule ?? 'default'}`,
    },
    chaperone: {
      schemaVersion: 1,
      protocol,
      source: {
        namespace: source.namespace,
        pod: source.pod,
        ...(source.podUID ? { podUID: source.podUID } : {}),
        serviceAccount: source.serviceAccount,
        sidecarId: source.sidecarId,
      },
      decision: {
        action,
        rule: spec.rule ?? 'default',
        reason: spec.rule ? 'rule_matched' : 'policy_default',
      },
      ...(spec.sessionId ? { sessionId: spec.sessionId } : {}),
      maskedFields: action === 'mask' ? 2 : 0,
      latencyMs: 0.4,
      ...(protocol === 'exec' ? { exec: { argv: spec.argv ?? ['ls'], container: 'agent', tty: false } } : {}),
      ...(protocol === 'postgres'
        ? {
            sql: {
              database: 'app',
              user: 'agent',
              statements: [{ kind: 'SelectStmt', tables: ['orders'] }],
              text: spec.sqlText ?? 'SELECT * FROM orders WHERE id = $1',
            },
          }
        : {}),
    },
  };
  return event;
}

/** A stable UUID-shaped id from a string (tests need reproducible ids). */
export function deterministicUuid(seed: string): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  const hex: string[] = [];
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < seed.length; i++) {
      h1 = Math.imul(h1 ^ seed.charCodeAt(i), 16777619) >>> 0;
      h2 = Math.imul(h2 ^ (seed.charCodeAt(i) + round), 2246822519) >>> 0;
    }
    hex.push(((h1 ^ (h2 >>> 3)) >>> 0).toString(16).padStart(8, '0'));
    h1 = (h1 + 0x9e3779b9 + round) >>> 0;
  }
  const s = hex.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-4${s.slice(13, 16)}-a${s.slice(17, 20)}-${s.slice(20, 32)}`;
}

/** A chain of `count` events starting at `startSeq` after `prevHash`. */
export function makeChain(
  source: Identity & { sidecarId: string },
  count: number,
  opts: { startSeq?: number; prevHash?: string; spec?: (i: number) => EventSpec } = {},
): AuditEvent[] {
  const out: AuditEvent[] = [];
  let prev = opts.prevHash ?? GENESIS_HASH;
  const start = opts.startSeq ?? 1;
  for (let seq = start; seq < start + count; seq++) {
    const e = chainEvent(sampleEvent(source, seq, opts.spec?.(seq) ?? {}), seq, prev);
    out.push(e);
    prev = e.chaperone.hash;
  }
  return out;
}
