/**
 * The volumes the injector adds, with the API server's defaults written out
 * (see sidecar-container.ts for why).
 *
 * Why the agent's CA and token live in an in-memory emptyDir written by the
 * sidecar: the per-pod CA's private key is created inside the sidecar and
 * never leaves it, so no private key is ever stored in the API server (a
 * Secret per pod would put every pod's CA key in etcd and give anyone who can
 * read Secrets in the namespace the means to impersonate the sidecar).
 */
import type { Volume } from '../k8s-types.ts';
import {
  AGENT_SA_VOLUME,
  COLLECTOR_CA_CONFIGMAP,
  COLLECTOR_CA_KEY,
  COLLECTOR_CA_VOLUME,
  DATABASE_VOLUME_PREFIX,
  POLICY_CONFIGMAP,
  POLICY_VOLUME,
  ROOT_CA_CONFIGMAP,
  SPOOL_VOLUME,
  TOKEN_VOLUME,
} from '../names.ts';
import type { InjectionConfig } from './injection-config.ts';
import type { PodSettings } from './pod-overrides.ts';

const DEFAULT_MODE = 0o644;

export function buildVolumes(settings: PodSettings, config: InjectionConfig): Volume[] {
  return [
    { name: AGENT_SA_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
    {
      name: TOKEN_VOLUME,
      projected: {
        defaultMode: DEFAULT_MODE,
        sources: [
          // Audience unset: the API server's own audience, as in kube-api-access.
          { serviceAccountToken: { expirationSeconds: config.tokenExpirationSeconds, path: 'token' } },
          {
            serviceAccountToken: {
              audience: config.collectorAudience,
              expirationSeconds: config.tokenExpirationSeconds,
              path: 'collector-token',
            },
          },
          { configMap: { name: ROOT_CA_CONFIGMAP, items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          {
            downwardAPI: {
              items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }],
            },
          },
        ],
      },
    },
    { name: SPOOL_VOLUME, emptyDir: {} },
    { name: POLICY_VOLUME, configMap: { name: POLICY_CONFIGMAP, defaultMode: DEFAULT_MODE, optional: true } },
    // Not optional: until the injector has published the CA in the namespace the
    // kubelet holds the whole pod back, rather than start a sidecar that cannot
    // verify the collector.
    ...(hasCollectorCa(config)
      ? [
          {
            name: COLLECTOR_CA_VOLUME,
            configMap: {
              name: COLLECTOR_CA_CONFIGMAP,
              items: [{ key: COLLECTOR_CA_KEY, path: COLLECTOR_CA_KEY }],
              defaultMode: DEFAULT_MODE,
            },
          },
        ]
      : []),
    ...settings.databases.map((d) => ({
      name: `${DATABASE_VOLUME_PREFIX}${d.name}`,
      secret: { secretName: d.secretName, defaultMode: DEFAULT_MODE },
    })),
  ];
}

/** Whether sidecars get the collector's CA: only when they are told where the collector is. */
export function hasCollectorCa(config: InjectionConfig): boolean {
  return config.collectorCa === true && config.collectorUrl !== undefined;
}

/** Volumes only the sidecar may mount. */
export function isSidecarOnlyVolume(name: string): boolean {
  return (
    name === TOKEN_VOLUME ||
    name === SPOOL_VOLUME ||
    name === POLICY_VOLUME ||
    name === COLLECTOR_CA_VOLUME ||
    name.startsWith(DATABASE_VOLUME_PREFIX)
  );
}
