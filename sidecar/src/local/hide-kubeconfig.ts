/**
 * `--hide-kubeconfig`: the agent's command runs in a private mount namespace
 * (util-linux `unshare`) in which an empty tmpfs lies over each directory
 * holding the user's kubeconfig files, so the agent's processes cannot read
 * them; everything else on the machine stays as it is. As root `unshare
 * --mount` does it; as another user a user namespace is needed (mapped to
 * root to mount, then back to the user's own uid before the command runs),
 * which some systems forbid — then the session does not start, with a message
 * saying so. It hides files, not the user: processes the agent talks to
 * outside the namespace (a running shell, an editor server, an ssh agent)
 * still read what they can.
 */
import { spawnSync } from 'node:child_process';
import { dirname, relative, resolve } from 'node:path';
import { ChaperoneError } from '@chaperone/shared';

/** Mounts the tmpfs over "$2" … (count in "$1"), then runs the rest. Exit 125 when a mount fails. */
const MOUNT_SCRIPT =
  'n=$1; shift; while [ "$n" -gt 0 ]; do mount -t tmpfs -o size=64k,mode=0700 chaperone-hidden "$1" || { echo "chaperone: cannot hide $1 (mount failed)" >&2; exit 125; }; shift; n=$((n-1)); done; exec "$@"';

function inside(dir: string, path: string): boolean {
  const r = relative(dir, path);
  return r === '' || (!r.startsWith('..') && !r.startsWith('/'));
}

/**
 * The directories to cover: those of the kubeconfig files (and of the files
 * they name, given as `extraFiles`). Refuses a directory that holds the
 * working directory, the state directory or the home directory, which the
 * agent needs.
 */
export function directoriesToHide(
  files: readonly string[],
  keep: { readonly cwd: string; readonly stateDir: string; readonly home: string },
): string[] {
  const dirs = [...new Set(files.map((f) => dirname(resolve(f))))].sort();
  for (const d of dirs) {
    for (const [what, path] of [
      ['the working directory', keep.cwd],
      ['the state directory', keep.stateDir],
      ['the home directory', keep.home],
    ] as const) {
      if (inside(d, path))
        throw new ChaperoneError(
          'config_invalid',
          `--hide-kubeconfig: the kubeconfig's directory ${d} holds ${what} (${path}), which cannot be hidden from the agent; move the kubeconfig into a directory of its own (such as ~/.kube/) and point KUBECONFIG at it`,
        );
    }
  }
  // A directory inside another one hidden is hidden with it.
  return dirs.filter((d) => !dirs.some((o) => o !== d && inside(o, d)));
}

/** The argv that runs `command` with `dirs` hidden; `uid`/`gid` of the user (0 = root). */
export function hiddenCommand(
  dirs: readonly string[],
  command: readonly string[],
  who: { readonly uid: number; readonly gid: number },
): string[] {
  const run =
    who.uid === 0
      ? [...command]
      : ['unshare', '--user', `--map-user=${who.uid}`, `--map-group=${who.gid}`, '--', ...command];
  const ns =
    who.uid === 0
      ? ['unshare', '--mount', '--propagation', 'private']
      : ['unshare', '--user', '--map-root-user', '--mount', '--propagation', 'private'];
  return [...ns, '--', 'sh', '-c', MOUNT_SCRIPT, 'sh', String(dirs.length), ...dirs, ...run];
}

/** Checks, before the session starts, that this machine lets us do it; throws saying why not. */
export function checkHidingWorks(who: { readonly uid: number; readonly gid: number }): void {
  const probe = hiddenCommand(['/tmp'], ['true'], who);
  const r = spawnSync(probe[0] as string, probe.slice(1), { encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : r.stderr.trim().split('\n').pop() || `exit ${r.status}`;
    throw new ChaperoneError(
      'unavailable',
      `--hide-kubeconfig needs a private mount namespace (util-linux unshare${who.uid === 0 ? '' : ' and unprivileged user namespaces'}), which this system does not allow: ${why}. Run without --hide-kubeconfig (the agent can then read your kubeconfig), run the agent as another user, or run chaperone local in a container or VM`,
    );
  }
}
