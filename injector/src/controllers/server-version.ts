/**
 * What the API server can do, from its version: native sidecars (init
 * containers with restartPolicy: Always) are on by default from Kubernetes
 * 1.29; older servers silently drop the field, which would turn the sidecar
 * into an init container that never finishes.
 */
import type { KubeClient } from '@chaperone/shared/kube';

export interface ServerVersion {
  readonly major: number;
  readonly minor: number;
  readonly gitVersion: string;
}

/** Parses /version, tolerating provider suffixes (`"minor": "29+"`, `v1.29.3-eks-…`). */
export function parseServerVersion(body: unknown): ServerVersion {
  const v = (body ?? {}) as { major?: string; minor?: string; gitVersion?: string };
  let major = Number.parseInt(v.major ?? '', 10);
  let minor = Number.parseInt(v.minor ?? '', 10);
  const m = /^v?(\d+)\.(\d+)/.exec(v.gitVersion ?? '');
  if ((!Number.isFinite(major) || !Number.isFinite(minor)) && m) {
    major = Number(m[1]);
    minor = Number(m[2]);
  }
  if (!Number.isFinite(major) || !Number.isFinite(minor))
    throw new Error(`cannot read the server version from ${JSON.stringify(body)}`);
  return { major, minor, gitVersion: v.gitVersion ?? `v${major}.${minor}` };
}

export function supportsNativeSidecars(v: ServerVersion): boolean {
  return v.major > 1 || (v.major === 1 && v.minor >= 29);
}

export async function fetchServerVersion(client: KubeClient): Promise<ServerVersion> {
  const r = await client.request('GET', '/version');
  if (r.status !== 200) throw new Error(`GET /version answered HTTP ${r.status}`);
  return parseServerVersion(r.body);
}
