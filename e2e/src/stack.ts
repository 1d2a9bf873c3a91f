/**
 * Brings up the servers the tests and `chaperone dev up` use, and describes
 * them as a serialisable state.
 */
import { type ControlPlane, startControlPlane } from './control-plane.ts';
import type { E2eState } from './environment.ts';
import { type PostgresServer, startPostgres } from './postgres.ts';

export interface StackOptions {
  kube?: boolean;
  postgres?: boolean;
  legacyTokenVolumes?: boolean;
  log?: (line: string) => void;
}

export interface Stack {
  readonly state: E2eState;
  readonly controlPlane: ControlPlane | undefined;
  readonly postgres: PostgresServer | undefined;
  stop(): Promise<void>;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const log = opts.log ?? (() => {});
  let controlPlane: ControlPlane | undefined;
  let postgres: PostgresServer | undefined;
  const stop = async () => {
    await Promise.allSettled([controlPlane?.stop(), postgres?.stop()]);
  };
  try {
    // Start both at once: PostgreSQL is up long before the API server.
    const [cp, pgServer] = await Promise.all([
      opts.kube === false
        ? undefined
        : startControlPlane({ log, ...(opts.legacyTokenVolumes ? { legacyTokenVolumes: true } : {}) }).then(
            (c) => {
              controlPlane = c;
              return c;
            },
          ),
      opts.postgres === false
        ? undefined
        : startPostgres({ log }).then((p) => {
            postgres = p;
            return p;
          }),
    ]);
    const state: E2eState = {
      ...(cp
        ? {
            kube: {
              mode: cp.mode,
              kubeconfigPath: cp.kubeconfigPath,
              server: cp.server,
              caCert: cp.caCert,
              version: cp.version,
              ...(cp.serviceAccountIssuer ? { serviceAccountIssuer: cp.serviceAccountIssuer } : {}),
              ...(cp.dir ? { dir: cp.dir } : {}),
              ...(cp.auditLogPath ? { auditLogPath: cp.auditLogPath } : {}),
              pids: cp.processes.map((p) => p.pid),
            },
          }
        : {}),
      ...(pgServer
        ? {
            postgres: {
              host: pgServer.host,
              port: pgServer.port,
              user: pgServer.user,
              password: pgServer.password,
              database: pgServer.database,
              url: pgServer.url,
              version: pgServer.version,
              superuser: pgServer.superuser,
              pids: [pgServer.pid],
            },
          }
        : {}),
    };
    return { state, controlPlane: cp, postgres: pgServer, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
