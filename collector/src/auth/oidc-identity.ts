/**
 * An OIDC approver's name and groups as the API server would name them, so
 * a SubjectAccessReview asks about the same subject a RoleBinding names:
 * the username claim's value behind --oidc-username-prefix, each group behind
 * --oidc-groups-prefix (defaults `oidc:`; `-` or empty: no prefix). A name
 * or group that would start with `system:` after prefixing is refused: those
 * belong to Kubernetes itself (`system:masters` is cluster-admin), and an
 * identity provider must not be able to claim them.
 */
import { AuthError } from './sidecar-identity.ts';

export interface OidcPrefixes {
  readonly usernamePrefix: string;
  readonly groupsPrefix: string;
}

function prefixed(prefix: string, value: string): string {
  return prefix === '-' ? value : `${prefix}${value}`;
}

/** The prefixed user and groups; throws `forbidden` for a `system:` name or group. */
export function oidcIdentity(
  username: string,
  groups: readonly string[],
  p: OidcPrefixes,
): { user: string; groups: string[] } {
  const user = prefixed(p.usernamePrefix, username);
  if (user.startsWith('system:'))
    throw new AuthError(
      'forbidden',
      `the OIDC user ${user} starts with system:, reserved for Kubernetes (set --oidc-username-prefix)`,
    );
  const out = groups.map((g) => prefixed(p.groupsPrefix, g));
  const reserved = out.find((g) => g.startsWith('system:'));
  if (reserved)
    throw new AuthError(
      'forbidden',
      `the OIDC group ${reserved} starts with system:, reserved for Kubernetes (set --oidc-groups-prefix)`,
    );
  return { user, groups: out };
}
