/**
 * The kubeconfig the agent gets: one cluster, the local guard on loopback
 * with the guard's own CA, one user with a placeholder token (the guard holds
 * the real credentials and ignores it), one context in the namespace of the
 * user's context. Nothing of the user's kubeconfig is copied into it.
 */
import YAML from 'yaml';
import { PLACEHOLDER_TOKEN } from '../agent-sa-dir.ts';

export interface AgentKubeconfigOptions {
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  /** PEM of the guard's local CA. */
  readonly caCert: string;
  readonly namespace: string;
  /** Name of the user's context, kept so prompts and tools show which cluster it is. */
  readonly contextName: string;
}

export function agentKubeconfig(o: AgentKubeconfigOptions): string {
  const name = `chaperone-${o.contextName}`;
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name,
        cluster: {
          server: o.server,
          'certificate-authority-data': Buffer.from(o.caCert).toString('base64'),
        },
      },
    ],
    users: [{ name: 'chaperone-agent', user: { token: PLACEHOLDER_TOKEN.replace(/[^A-Za-z0-9-]/g, '-') } }],
    contexts: [{ name, context: { cluster: name, user: 'chaperone-agent', namespace: o.namespace } }],
    'current-context': name,
  });
}
