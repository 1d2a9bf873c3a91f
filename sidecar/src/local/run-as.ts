/**
 * `--run-as USER`: the agent's command runs as another user of the machine,
 * one that cannot read the invoking user's files (kubeconfig, cloud
 * credentials, the state directory). `chaperone local` must then run as root:
 * the command is started through util-linux `setpriv` with that user's uid,
 * gid and groups, HOME, USER and LOGNAME. What the agent needs from the
 * session (its kubeconfig and the guard's CA certificate, neither a secret)
 * is put in a directory that user can read.
 */
import { spawnSync } from 'node:child_process';
import { ChaperoneError, ConfigError } from '@chaperone/shared';

export interface RunAsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/** A passwd line (`name:x:uid:gid:gecos:home:shell`) read. */
export function parsePasswdLine(line: string): RunAsUser | undefined {
  const f = line.trim().split(':');
  if (f.length < 7) return undefined;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  return { name: f[0] as string, uid, gid, home: f[5] as string };
}

export function lookupUser(name: string, ownUid: number): RunAsUser {
  if (ownUid !== 0)
    throw new ConfigError(
      `--run-as ${name}: chaperone local must run as root to start the command as another user (it keeps your kubeconfig and runs the guard as you otherwise)`,
    );
  const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  const user = r.status === 0 ? parsePasswdLine(r.stdout.split('\n')[0] ?? '') : undefined;
  if (!user) throw new ConfigError(`--run-as ${name}: no such user on this machine`);
  if (user.uid === 0) throw new ConfigError(`--run-as ${name}: that is root, who can read everything`);
  return user;
}

/** The argv that starts `command` as `user`. */
export function runAsCommand(user: RunAsUser, command: readonly string[]): string[] {
  if (spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status !== 0)
    throw new ChaperoneError(
      'dependency_missing',
      '--run-as needs util-linux setpriv, which is not installed',
    );
  return ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', ...command];
}

/** The environment variables that name the user. */
export function runAsEnv(user: RunAsUser): Record<string, string> {
  return { HOME: user.home, USER: user.name, LOGNAME: user.name };
}
