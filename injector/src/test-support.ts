/**
 * The fixed injection settings the unit and golden tests use (version and
 * image pinned so goldens do not change with releases).
 */
import type { WebhookSettings } from './admission/webhook-configuration.ts';
import type { InjectionConfig } from './inject/injection-config.ts';

export const TEST_CONFIG: InjectionConfig = Object.freeze({
  version: '0.1.0',
  image: 'ghcr.io/chaperone-dev/chaperone:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  mode: 'classic',
  nativeSidecarsSupported: false,
  kubePort: 6443,
  metricsPort: 9090,
  logLevel: 'info',
  resources: { cpuRequest: '50m', memoryRequest: '64Mi', memoryLimit: '256Mi' },
  collectorUrl: 'https://chaperone-collector.chaperone-system.svc:443',
  tokenExpirationSeconds: 3600,
  collectorAudience: 'chaperone-collector',
  postgresPort: 5432,
  sidecarUid: 65532,
  allowedImages: ['ghcr.io/chaperone-dev/chaperone'],
  allowedAgentTokenAudiences: [],
  excludedNamespaces: ['kube-system', 'kube-public', 'kube-node-lease', 'chaperone-system'],
  injectorNamespace: 'chaperone-system',
});

export function testConfig(overrides: Partial<InjectionConfig> = {}): InjectionConfig {
  return Object.freeze({ ...TEST_CONFIG, ...overrides });
}

/** The webhook settings of the default install, over TEST_CONFIG. */
export const TEST_WEBHOOK_SETTINGS: WebhookSettings = Object.freeze({
  name: 'chaperone-injector',
  namespace: 'chaperone-system',
  serviceName: 'chaperone-injector',
  servicePort: 443,
  path: '/mutate',
  validatePath: '/validate',
  timeoutSeconds: 5,
  injection: TEST_CONFIG,
});
