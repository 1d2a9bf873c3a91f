/**
 * The sidecar container, written out in full — including every field the API
 * server would default — so the stored pod's sidecar equals what we build and
 * injecting a stored pod again is a no-op.
 *
 * Contract with `chaperone sidecar` (environment):
 *   CHAPERONE_POD_NAME, CHAPERONE_POD_NAMESPACE, CHAPERONE_POD_UID,
 *   CHAPERONE_SERVICE_ACCOUNT        downward API
 *   CHAPERONE_SIDECAR_CONTAINER      its own container name
 *   CHAPERONE_POLICY_FILE            /etc/chaperone/policy/policy.yaml (ConfigMap, optional)
 *   CHAPERONE_KUBE_PORT              127.0.0.1 port of the Kubernetes API listener
 *   CHAPERONE_METRICS_PORT           metrics + /healthz (all interfaces: probes and Prometheus)
 *   CHAPERONE_LOG_LEVEL
 *   CHAPERONE_INJECTOR_NAMESPACE     nothing there may be changed through the guard
 *   CHAPERONE_COLLECTOR_URL          when the injector is given one
 *   CHAPERONE_COLLECTOR_CA_FILE      /var/run/chaperone/collector-ca/ca.crt, when the
 *                                    injector publishes the collector's CA (ConfigMap)
 *   CHAPERONE_DATABASES              `name=port,...` when the pod declares databases;
 *                                    each Secret is at /var/run/chaperone/databases/<name>/
 *   CHAPERONE_DATABASE_TLS           direct (SSLRequest answered N), with databases: the
 *                                    agents' PGSSLMODE=disable relies on it (redirect.ts)
 * and files: real credentials at /var/run/chaperone/serviceaccount/{token,
 * collector-token,ca.crt,namespace}; the agents' view at
 * /var/run/chaperone/agent-sa (write ca.crt, token, namespace there); the
 * spool at /var/run/chaperone/spool.
 */
import { SIDECAR_NODE_OPTIONS, SIDECAR_RUNTIME_ENV } from '@chaperone/shared';
import type { Container, EnvVar, VolumeMount } from '../k8s-types.ts';
import {
  AGENT_SA_VOLUME,
  COLLECTOR_CA_KEY,
  COLLECTOR_CA_VOLUME,
  DATABASE_VOLUME_PREFIX,
  POLICY_FILE,
  POLICY_VOLUME,
  SIDECAR_AGENT_SA_PATH,
  SIDECAR_COLLECTOR_CA_PATH,
  SIDECAR_DATABASES_PATH,
  SIDECAR_NAME,
  SIDECAR_POLICY_PATH,
  SIDECAR_SPOOL_PATH,
  SIDECAR_TOKEN_PATH,
  SPOOL_VOLUME,
  TOKEN_VOLUME,
} from '../names.ts';
import type { InjectionConfig, SidecarMode } from './injection-config.ts';
import type { PodSettings } from './pod-overrides.ts';
import { AGENT_DATABASE_TLS } from './redirect.ts';
import { hasCollectorCa } from './sidecar-volumes.ts';

/** Port name of the sidecar's metrics listener (at most 15 characters). */
export const METRICS_PORT_NAME = 'chaperone-prom';
/** How long the sidecar may take to come up before the kubelet restarts it. */
const STARTUP_SECONDS = 120;

function fieldEnv(name: string, fieldPath: string): EnvVar {
  return { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } };
}

function resources(settings: PodSettings): Record<string, Record<string, string>> {
  const r = settings.resources;
  const requests: Record<string, string> = {};
  const limits: Record<string, string> = {};
  if (r.cpuRequest) requests.cpu = r.cpuRequest;
  if (r.memoryRequest) requests.memory = r.memoryRequest;
  if (r.cpuLimit) limits.cpu = r.cpuLimit;
  if (r.memoryLimit) limits.memory = r.memoryLimit;
  return {
    ...(Object.keys(limits).length ? { limits } : {}),
    ...(Object.keys(requests).length ? { requests } : {}),
  };
}

function httpProbe(port: number, periodSeconds: number, failureThreshold: number) {
  return {
    httpGet: { path: '/healthz', port, scheme: 'HTTP' },
    timeoutSeconds: 1,
    periodSeconds,
    successThreshold: 1,
    failureThreshold,
  };
}

export function sidecarMounts(settings: PodSettings, config: InjectionConfig): VolumeMount[] {
  return [
    { name: AGENT_SA_VOLUME, mountPath: SIDECAR_AGENT_SA_PATH },
    { name: TOKEN_VOLUME, mountPath: SIDECAR_TOKEN_PATH, readOnly: true },
    { name: SPOOL_VOLUME, mountPath: SIDECAR_SPOOL_PATH },
    { name: POLICY_VOLUME, mountPath: SIDECAR_POLICY_PATH, readOnly: true },
    ...(hasCollectorCa(config)
      ? [{ name: COLLECTOR_CA_VOLUME, mountPath: SIDECAR_COLLECTOR_CA_PATH, readOnly: true }]
      : []),
    ...settings.databases.map((d) => ({
      name: `${DATABASE_VOLUME_PREFIX}${d.name}`,
      mountPath: `${SIDECAR_DATABASES_PATH}/${d.name}`,
      readOnly: true,
    })),
  ];
}

export function buildSidecar(settings: PodSettings, config: InjectionConfig, mode: SidecarMode): Container {
  const env: EnvVar[] = [
    fieldEnv('CHAPERONE_POD_NAME', 'metadata.name'),
    fieldEnv('CHAPERONE_POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('CHAPERONE_POD_UID', 'metadata.uid'),
    fieldEnv('CHAPERONE_SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    { name: 'CHAPERONE_SIDECAR_CONTAINER', value: SIDECAR_NAME },
    { name: 'CHAPERONE_POLICY_FILE', value: POLICY_FILE },
    { name: 'CHAPERONE_KUBE_PORT', value: String(settings.kubePort) },
    { name: 'CHAPERONE_METRICS_PORT', value: String(settings.metricsPort) },
    { name: 'CHAPERONE_LOG_LEVEL', value: settings.logLevel },
    { name: 'CHAPERONE_INJECTOR_NAMESPACE', value: config.injectorNamespace },
    { name: 'NODE_OPTIONS', value: SIDECAR_NODE_OPTIONS },
    ...Object.entries(SIDECAR_RUNTIME_ENV).map(([name, value]) => ({ name, value })),
  ];
  if (config.collectorUrl) env.push({ name: 'CHAPERONE_COLLECTOR_URL', value: config.collectorUrl });
  if (hasCollectorCa(config)) {
    env.push({
      name: 'CHAPERONE_COLLECTOR_CA_FILE',
      value: `${SIDECAR_COLLECTOR_CA_PATH}/${COLLECTOR_CA_KEY}`,
    });
  }
  if (settings.databases.length > 0) {
    env.push(
      {
        name: 'CHAPERONE_DATABASES',
        value: settings.databases.map((d) => `${d.name}=${d.port}`).join(','),
      },
      { name: 'CHAPERONE_DATABASE_TLS', value: AGENT_DATABASE_TLS.sidecar },
    );
  }
  const uid = config.sidecarUid;
  const container: Container = {
    name: SIDECAR_NAME,
    image: settings.image,
    imagePullPolicy: config.imagePullPolicy,
    command: ['chaperone', 'sidecar'],
    env,
    ports: [{ name: METRICS_PORT_NAME, containerPort: settings.metricsPort, protocol: 'TCP' }],
    resources: resources(settings),
    volumeMounts: sidecarMounts(settings, config),
    // Start ordering: the kubelet starts the next container (classic) or init
    // container (native) only when this hook has returned, i.e. once the
    // sidecar has written the agents' CA and token files and listens.
    lifecycle: {
      postStart: {
        exec: {
          command: [
            'chaperone',
            'wait-for-sidecar',
            '--port',
            String(settings.kubePort),
            '--timeout',
            `${STARTUP_SECONDS}s`,
          ],
        },
      },
    },
    readinessProbe: httpProbe(settings.metricsPort, 5, 3),
    ...(mode === 'native' ? { startupProbe: httpProbe(settings.metricsPort, 1, STARTUP_SECONDS) } : {}),
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsGroup: uid,
      runAsNonRoot: true,
      runAsUser: uid,
    },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'FallbackToLogsOnError',
    ...(mode === 'native' ? { restartPolicy: 'Always' } : {}),
  };
  return container;
}
