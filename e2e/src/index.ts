export {
  CHAPERONE_BIN,
  type CollectorProcess,
  childEnv,
  startCollectorProcess,
} from './collector-process.ts';
export {
  type ControlPlane,
  type ControlPlaneOptions,
  SERVICE_ACCOUNT_ISSUER,
  startControlPlane,
} from './control-plane.ts';
export * from './environment.ts';
export { postToWebhook } from './injector-harness.ts';
export { kubectl, kubectlJson } from './kubectl.ts';
export {
  type BoundPodOptions,
  createBoundPod,
  markPodRunning,
  type PodContainer,
  registerNode,
  type StandinNode,
} from './kubelet/node.ts';
export {
  type ContainerState,
  type KubeletStandin,
  type KubeletStandinOptions,
  type StandinRequest,
  startKubeletStandin,
} from './kubelet-standin.ts';
export { freePort, freePorts } from './ports.ts';
export { type PostgresServer, startPostgres } from './postgres.ts';
export { type ManagedProcess, startProcess, waitFor } from './process.ts';
export { loopbackListenerFlags } from './sidecar-local.ts';
export { type Stack, startStack } from './stack.ts';
export { ensurePackages } from './system-packages.ts';
