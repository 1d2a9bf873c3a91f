export {
  type ControlPlane,
  type ControlPlaneOptions,
  SERVICE_ACCOUNT_ISSUER,
  startControlPlane,
} from './control-plane.ts';
export * from './environment.ts';
export { kubectl, kubectlJson } from './kubectl.ts';
export { freePort, freePorts } from './ports.ts';
export { type PostgresServer, startPostgres } from './postgres.ts';
export { type ManagedProcess, startProcess, waitFor } from './process.ts';
export { type Stack, startStack } from './stack.ts';
