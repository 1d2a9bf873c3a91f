/**
 * µs per audit event to place it in a chain and give its spool text, for
 * three events as the sidecar builds them (members in canonical order,
 * identity objects shared between events): a Kubernetes GET, a masked LIST
 * and a PostgreSQL statement. Compared in the same run with the definition
 * (the generic canonical JSON of the event without `hash`, its sha256, then
 * the generic canonical JSON of the whole event), which is what the
 * collector and `chaperone audit verify` recompute. Prints a markdown table.
 *
 *   node bench/src/audit-event.ts [--ms=1500]
 *
 * The numbers are indicative: they depend on the machine and its load.
 */
import { performance } from 'node:perf_hooks';
import {
  type AuditEvent,
  canonicalJson,
  chainEventText,
  deepFreeze,
  GENESIS_HASH,
  sha256Hex,
  type UnchainedEvent,
} from '@chaperone/shared';
import { median, ratio, table } from './stats.ts';

/** As identity.ts gives it: frozen all the way down (the encoder keeps the text of such objects). */
const identity = deepFreeze({
  user: {
    extra: { 'authentication.kubernetes.io/pod-name': ['agent-7f9c6d4b5-x2kqz'] },
    groups: ['system:serviceaccounts', 'system:serviceaccounts:agents', 'system:authenticated'],
    uid: '5f0c2d4e-8a3b-4c1d-9e7f-0a1b2c3d4e5f',
    username: 'system:serviceaccount:agents:coding-agent',
  },
  source: {
    namespace: 'agents',
    pod: 'agent-7f9c6d4b5-x2kqz',
    podUID: '0e1d2c3b-4a59-6877-8695-a4b3c2d1e0f9',
    serviceAccount: 'coding-agent',
    sidecarId: 'agents/agent-7f9c6d4b5-x2kqz/0e1d2c3b-4a59-6877-8695-a4b3c2d1e0f9',
  },
});

const allow = {
  action: 'allow',
  message: 'no rule matched; the policy allows',
  reason: 'policy_default',
  rule: 'default',
} as const;

/** The annotations of an allowed request, as the sidecar writes them. */
function allowed(): Record<string, string> {
  return {
    'authorization.k8s.io/decision': 'allow',
    'authorization.k8s.io/reason': `chaperone ${allow.reason} ${allow.rule}: ${allow.message}`,
    'chaperone.dev/rule': allow.rule,
  };
}

/** A GET of one pod, as recorder.ts builds it. */
export function kubeGetEvent(i: number): UnchainedEvent {
  return {
    annotations: allowed(),
    apiVersion: 'audit.k8s.io/v1',
    auditID: `3f2b8c1e-9d4a-4e6b-8c7d-${String(i).padStart(12, '0')}`,
    chaperone: {
      decision: { ...allow },
      latencyMs: 0.412,
      maskedFields: 0,
      protocol: 'kubernetes',
      schemaVersion: 1,
      source: identity.source,
    },
    kind: 'Event',
    level: 'Metadata',
    objectRef: { apiGroup: '', apiVersion: 'v1', name: `web-${i}`, namespace: 'shop', resource: 'pods' },
    requestReceivedTimestamp: '2026-12-07T08:40:01.123456Z',
    requestURI: `/api/v1/namespaces/shop/pods/web-${i}`,
    responseStatus: { code: 200, metadata: {} },
    sourceIPs: ['10.244.1.17'],
    stage: 'ResponseComplete',
    stageTimestamp: '2026-12-07T08:40:01.124001Z',
    user: identity.user,
    userAgent: 'kubectl/v1.33.1 (linux/amd64) kubernetes/8adc0f0',
    verb: 'get',
  };
}

/** A LIST of Secrets whose values were masked. */
export function maskedListEvent(i: number): UnchainedEvent {
  const e = kubeGetEvent(i);
  e.chaperone.decision = {
    action: 'mask',
    message: 'Secret values in namespace shop are masked',
    reason: 'rule_matched',
    rule: 'mask-shop-secrets',
  };
  e.chaperone.maskedFields = 37;
  e.annotations = {
    'authorization.k8s.io/decision': 'allow',
    'authorization.k8s.io/reason':
      'chaperone rule_matched mask-shop-secrets: Secret values in namespace shop are masked',
    'chaperone.dev/rule': 'mask-shop-secrets',
  };
  e.objectRef = { apiGroup: '', apiVersion: 'v1', namespace: 'shop', resource: 'secrets' };
  e.requestURI = '/api/v1/namespaces/shop/secrets?limit=500';
  e.verb = 'list';
  return e;
}

/** One SQL statement, as postgres/audit-event.ts builds it. */
export function sqlStatementEvent(i: number): UnchainedEvent {
  return {
    annotations: allowed(),
    apiVersion: 'audit.k8s.io/v1',
    auditID: `8a1c3e5f-7b9d-4f1a-8c3e-${String(i).padStart(12, '0')}`,
    chaperone: {
      decision: { ...allow },
      latencyMs: 0.087,
      maskedFields: 0,
      protocol: 'postgres',
      schemaVersion: 1,
      sessionId: '1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9',
      source: identity.source,
      sql: {
        database: 'shop',
        durationMs: 0.311,
        fingerprint: 'a7c3f1e9b2d4c6e8',
        rows: 1,
        statements: [{ kind: 'select', tables: ['public.orders', 'public.customers'] }],
        text: `SELECT o.id, o.total, c.email FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = $1 /* ${i} */`,
        user: 'app',
      },
    },
    kind: 'Event',
    level: 'Metadata',
    requestReceivedTimestamp: '2026-12-07T08:40:01.123456Z',
    requestURI: 'postgres:shop',
    responseStatus: { code: 200, metadata: {}, status: 'Success' },
    sourceIPs: ['10.244.1.17'],
    stage: 'ResponseComplete',
    stageTimestamp: '2026-12-07T08:40:01.123790Z',
    user: identity.user,
    userAgent: 'psql',
    verb: 'query',
  };
}

/** The definition: two generic canonical serialisations and a hash over the first. */
function byDefinition(
  event: UnchainedEvent,
  seq: number,
  prevHash: string,
): { event: AuditEvent; text: string } {
  const chained = { ...event, chaperone: { ...event.chaperone, seq, prevHash } } as AuditEvent;
  const hash = sha256Hex(canonicalJson(chained));
  chained.chaperone.hash = hash;
  return { event: chained, text: canonicalJson(chained) };
}

type Chain = (event: UnchainedEvent, seq: number, prevHash: string) => { event: AuditEvent; text: string };

/**
 * CPU µs per event (this process's user + system time, so time the shared
 * machine gives to others is not counted) over about `ms` milliseconds;
 * events built outside the timed loop.
 */
function measure(chain: Chain, events: readonly UnchainedEvent[], ms: number): number {
  let prev = GENESIS_HASH;
  let n = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (const e of events) prev = chain(e, ++n, prev).event.chaperone.hash;
  }
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / n;
}

function main(): void {
  const msArg = process.argv.find((a) => a.startsWith('--ms='));
  const ms = msArg ? Number(msArg.slice(5)) : 1500;
  const kinds: [string, (i: number) => UnchainedEvent][] = [
    ['kube GET', kubeGetEvent],
    ['masked LIST', maskedListEvent],
    ['SQL statement', sqlStatementEvent],
  ];
  const rows: (string | number)[][] = [];
  for (const [name, build] of kinds) {
    const events = Array.from({ length: 256 }, (_, i) => build(i));
    // Same bytes either way, or the comparison means nothing.
    const a = chainEventText(events[0] as UnchainedEvent, 1, GENESIS_HASH).text;
    const b = byDefinition(events[0] as UnchainedEvent, 1, GENESIS_HASH).text;
    if (a !== b) throw new Error(`${name}: the chain's text differs from the definition's`);
    const bytes = Buffer.byteLength(a);
    // Alternate the two and take medians, so drift in the machine's load hits both alike.
    const def: number[] = [];
    const fast: number[] = [];
    for (let r = 0; r < 15; r++) {
      def.push(measure(byDefinition, events, ms / 30));
      fast.push(measure(chainEventText, events, ms / 30));
    }
    const d = median(def);
    const f = median(fast);
    rows.push([name, bytes, d.toFixed(2), f.toFixed(2), ratio(d, f)]);
  }
  process.stdout.write(
    `${table(['event', 'bytes', 'definition CPU µs/event', 'chainEventText CPU µs/event', 'speed-up'], rows)}\n`,
  );
}

if (import.meta.main) main();
