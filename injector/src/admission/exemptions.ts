/**
 * Identities the cluster admin exempted from the validating webhook: their
 * requests may put an uninjected pod into an opted-in namespace, or take a
 * pod or namespace out of Chaperone's hands. Exact names only, matched
 * against the AdmissionRequest's userInfo (the authenticated identity, or the
 * impersonated one). Nothing is exempt by default.
 *
 * Some identities are refused outright, because exempting them would hand the
 * exemption to everyone: the groups every client belongs to, and the
 * controllers that create pods from templates anyone with RBAC on
 * Deployments, Jobs, DaemonSets… can write (a Deployment whose template opts
 * out would then start unguarded pods).
 */
import { ConfigError } from '@chaperone/shared';

export interface Exemptions {
  readonly users: readonly string[];
  readonly groups: readonly string[];
}

export interface UserInfo {
  readonly username?: string;
  readonly groups?: readonly string[];
}

const EVERYONE_GROUPS: Readonly<Record<string, string>> = {
  'system:authenticated': 'every authenticated client',
  'system:unauthenticated': 'every anonymous client',
  'system:serviceaccounts': 'every service account, so every agent',
  'system:serviceaccounts:kube-system':
    'the controllers that create pods from user-written templates (Deployments, Jobs, DaemonSets…)',
  'system:nodes': 'every node',
};

const TEMPLATE_CONTROLLERS = [
  'replicaset-controller',
  'replication-controller',
  'deployment-controller',
  'job-controller',
  'cronjob-controller',
  'daemon-set-controller',
  'statefulset-controller',
];

const EVERYONE_USERS: Readonly<Record<string, string>> = {
  'system:anonymous': 'every anonymous client',
  'system:kube-controller-manager':
    'the controller manager, which creates pods from user-written templates when it runs without --use-service-account-credentials',
  ...Object.fromEntries(
    TEMPLATE_CONTROLLERS.map((c) => [
      `system:serviceaccount:kube-system:${c}`,
      'a controller that creates pods from user-written templates',
    ]),
  ),
};

/**
 * Checks the configured exemptions at start-up; throws ConfigError naming the
 * entry and why it cannot be exempted.
 */
export function checkExemptions(e: Exemptions): void {
  const check = (flag: string, values: readonly string[], refused: Readonly<Record<string, string>>) => {
    const seen = new Set<string>();
    for (const v of values) {
      if (/[\s*]/.test(v) || /[\p{Cc}]/u.test(v)) {
        throw new ConfigError(
          `${flag}: "${v}" is not a ${flag === '--exempt-users' ? 'user' : 'group'} name (exact names only: no wildcards or spaces)`,
        );
      }
      if (seen.has(v)) throw new ConfigError(`${flag}: "${v}" is listed twice`);
      seen.add(v);
      const why = Object.hasOwn(refused, v) ? refused[v] : undefined;
      if (why) {
        throw new ConfigError(
          `${flag}: "${v}" cannot be exempted: it stands for ${why}, so any agent could start pods without the sidecar through it. Exempt the administrators' own users or groups instead`,
        );
      }
    }
  };
  check('--exempt-users', e.users, EVERYONE_USERS);
  check('--exempt-groups', e.groups, EVERYONE_GROUPS);
}

/** Why `user` is exempt (`user alice`, `group ops`), or undefined when it is not. */
export function exemptionOf(user: UserInfo | undefined, e: Exemptions): string | undefined {
  if (!user) return undefined;
  if (typeof user.username === 'string' && e.users.includes(user.username)) return `user ${user.username}`;
  if (Array.isArray(user.groups)) {
    for (const g of user.groups) if (typeof g === 'string' && e.groups.includes(g)) return `group ${g}`;
  }
  return undefined;
}
