/**
 * Where `chaperone local` keeps its state: `--state-dir`, else
 * `$XDG_STATE_HOME/chaperone`, else `~/.local/state/chaperone`. Inside it:
 * `tls/` (the guard's local CA, reused so agents' kubeconfigs stay valid),
 * `collector/` (the embedded collector's store, query token and log),
 * `session/` (the running session's policy, agent kubeconfig and database
 * credentials; emptied when the next session starts), `spool/<session>/`
 * (audit events the collector has not acknowledged), `session.json` (the
 * running session) and `last-session.json` (the one that ended last).
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function localStateDir(env: Readonly<Record<string, string | undefined>>, flag?: string): string {
  if (flag) return resolve(flag);
  if (env.XDG_STATE_HOME) return join(resolve(env.XDG_STATE_HOME), 'chaperone');
  return join(env.HOME || homedir(), '.local', 'state', 'chaperone');
}

export interface StateLayout {
  readonly root: string;
  readonly tlsDir: string;
  readonly collectorDir: string;
  readonly sessionDir: string;
  /** The running session's record (session-record.ts). */
  readonly sessionFile: string;
  /** The record of the last session that ended. */
  readonly lastSessionFile: string;
}

export function stateLayout(root: string): StateLayout {
  return {
    root,
    tlsDir: join(root, 'tls'),
    collectorDir: join(root, 'collector'),
    sessionDir: join(root, 'session'),
    sessionFile: join(root, 'session.json'),
    lastSessionFile: join(root, 'last-session.json'),
  };
}
