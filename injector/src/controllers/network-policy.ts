/**
 * The NetworkPolicy for an opted-in namespace, as data: it selects injected
 * pods and allows egress only to DNS, the collector, the API server and the
 * declared upstreams. NetworkPolicy is per pod (all containers share one
 * network namespace), so it bounds *where* the pod can go; credential custody
 * makes the agent's own direct connections useless. Every field the API
 * server would default is written out, so drift detection compares like with like.
 */
import { NAMESPACE_NAME_LABEL } from '../admission/webhook-configuration.ts';
import type { NamespacedMeta } from '../k8s-types.ts';
import {
  INJECTED_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  NETWORK_POLICY_NAME,
  REVISION_LABEL,
} from '../names.ts';
import type { EgressEndpoint } from './egress-endpoint.ts';

export interface CollectorEgress {
  /** Pods in a namespace (by name) matching a selector… */
  readonly namespace?: string;
  readonly podSelector?: Record<string, string>;
  /** …or a CIDR (a collector outside the cluster). */
  readonly cidr?: string;
  readonly port: number;
}

export interface NetworkPolicySettings {
  readonly apiServer: readonly EgressEndpoint[];
  readonly dnsPodSelector: Record<string, string>;
  readonly dnsCidrs: readonly string[];
  readonly collector?: CollectorEgress;
  readonly upstreams: readonly EgressEndpoint[];
  readonly revision?: string;
}

interface Peer {
  ipBlock?: { cidr: string };
  namespaceSelector?: { matchLabels?: Record<string, string> };
  podSelector?: { matchLabels?: Record<string, string> };
}

interface EgressRule {
  to: Peer[];
  ports: { protocol: string; port: number }[];
}

export interface NetworkPolicy {
  apiVersion: string;
  kind: string;
  metadata: NamespacedMeta;
  spec: {
    podSelector: { matchLabels: Record<string, string> };
    policyTypes: string[];
    egress: EgressRule[];
    [k: string]: unknown;
  };
}

/** One rule per port, peers grouped (keeps the policy short and stable). */
function byPort(endpoints: readonly EgressEndpoint[]): EgressRule[] {
  const ports = [...new Set(endpoints.map((e) => e.port))].sort((a, b) => a - b);
  return ports.map((port) => ({
    to: [...new Set(endpoints.filter((e) => e.port === port).map((e) => e.cidr))]
      .sort()
      .map((cidr) => ({ ipBlock: { cidr } })),
    ports: [{ protocol: 'TCP', port }],
  }));
}

export function desiredNetworkPolicy(
  namespace: string,
  s: NetworkPolicySettings,
  extraUpstreams: readonly EgressEndpoint[] = [],
): NetworkPolicy {
  const egress: EgressRule[] = [
    {
      to: [
        { namespaceSelector: {}, podSelector: { matchLabels: { ...s.dnsPodSelector } } },
        ...[...s.dnsCidrs].sort().map((cidr) => ({ ipBlock: { cidr } })),
      ],
      ports: [
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 53 },
      ],
    },
    ...byPort(s.apiServer),
  ];
  const c = s.collector;
  if (c?.cidr)
    egress.push({ to: [{ ipBlock: { cidr: c.cidr } }], ports: [{ protocol: 'TCP', port: c.port }] });
  else if (c?.namespace) {
    egress.push({
      to: [
        {
          namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: c.namespace } },
          ...(c.podSelector ? { podSelector: { matchLabels: { ...c.podSelector } } } : {}),
        },
      ],
      ports: [{ protocol: 'TCP', port: c.port }],
    });
  }
  egress.push(...byPort([...s.upstreams, ...extraUpstreams]));
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: NETWORK_POLICY_NAME,
      namespace,
      labels: {
        'app.kubernetes.io/part-of': 'chaperone',
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
        ...(s.revision ? { [REVISION_LABEL]: s.revision } : {}),
      },
      annotations: {
        'chaperone.dev/description':
          'Managed by the Chaperone injector: injected pods may reach only DNS, the collector, the API server and declared upstreams. Edits are reverted; remove the chaperone.dev/inject label from the namespace to remove it.',
      },
    },
    spec: {
      podSelector: { matchLabels: { [INJECTED_LABEL]: 'true' } },
      policyTypes: ['Egress'],
      egress,
    },
  };
}
