/**
 * The ports a Chaperone sidecar listens on in the pod a port-forward goes
 * to. Port-forward connects to the pod's loopback, where a guarded pod's
 * sidecar serves its Kubernetes API listener (6443 by default), its database
 * listeners and its metrics: a tunnel there would let this agent act with the
 * other pod's credentials and policy, its actions recorded as that pod's. So
 * those ports are refused (built-in, port-decisions.ts), in any pod.
 *
 * Which containers are sidecars and which ports they use is read from the
 * pod (../exec/sidecar-containers.ts, the same reading exec and attach use);
 * when a sidecar's ports cannot be known from the pod (a port from
 * `valueFrom`, `envFrom`, …), the port-forward is refused whatever its ports.
 */
import type { KubeRequestContext } from '../context.ts';
import { podSidecars } from '../exec/sidecar-containers.ts';
import { readTargetPod, type TargetPodOptions } from '../exec/target-pod.ts';

/** The built-in rule port-forwards into a sidecar's ports are refused under. */
export const SIDECAR_PORTS_RULE = 'chaperone-no-port-forward-to-sidecar';

/**
 * Reads the target pod with the sidecar's own credentials and returns its
 * sidecars' ports, or why the port-forward is refused: the pod could not be
 * read, or a sidecar's ports cannot be known from it.
 */
export async function lookUpSidecarPorts(
  o: TargetPodOptions,
  ctx: KubeRequestContext,
  namespace: string,
  name: string,
): Promise<Set<number> | { code: number; reason: string; message: string }> {
  const read = await readTargetPod(o, ctx, namespace, name);
  if (!('pod' in read)) {
    const why = read.error ?? read.message ?? `HTTP ${read.status}`;
    return {
      code: read.status === 404 ? 404 : 503,
      reason: read.status === 404 ? 'NotFound' : 'ServiceUnavailable',
      message: `chaperone: the pod could not be read to learn which of its ports lead to a Chaperone sidecar (${why}), so the port-forward is refused`,
    };
  }
  const sidecars = podSidecars(read.pod);
  if (sidecars.ports === undefined)
    return {
      code: 403,
      reason: 'Forbidden',
      message: `chaperone: denied by built-in rule "${SIDECAR_PORTS_RULE}": the ports of the pod's Chaperone sidecar cannot be known from the pod (${sidecars.unknownPorts}), so no port of this pod may be forwarded; give the sidecar's ports as plain values`,
    };
  return new Set(sidecars.ports);
}
