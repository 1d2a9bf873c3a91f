/** What every locally run sidecar (tests, demo, benchmarks) has in common. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Flags that bind a sidecar's listeners to loopback on the given ports. */
export function loopbackListenerFlags(kubePort: number, metricsPort: number): string[] {
  return [
    '--listen',
    '127.0.0.1',
    '--kube-port',
    String(kubePort),
    '--metrics-address',
    '127.0.0.1',
    '--metrics-port',
    String(metricsPort),
  ];
}

/**
 * The kubeconfig an agent in the pod effectively uses: the sidecar's URL, its
 * local CA and the placeholder token, both from the agent's service-account directory.
 */
export function writeAgentKubeconfig(path: string, url: string, agentSaDir: string, namespace: string): void {
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'in-pod', cluster: { server: url, 'certificate-authority': join(agentSaDir, 'ca.crt') } },
      ],
      users: [{ name: 'agent', user: { token: readFileSync(join(agentSaDir, 'token'), 'utf8') } }],
      contexts: [{ name: 'agent', context: { cluster: 'in-pod', user: 'agent', namespace } }],
      'current-context': 'agent',
    }),
  );
}
