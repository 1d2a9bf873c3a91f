/**
 * The ports a Chaperone sidecar listens on in the pod a port-forward goes
 * to. Port-forward connects to the pod's loopback, where a guarded pod's
 * sidecar serves its Kubernetes API listener (6443 by default), its database
 * listeners and its metrics: a tunnel there would let this agent act with the
 * other pod's credentials and policy, its actions recorded as that pod's. So
 * those ports are refused (built-in, port-decisions.ts), in any pod.
 *
 * A sidecar is recognised by what it is, not by its name: any container (or
 * native-sidecar init container) whose environment carries
 * CHAPERONE_KUBE_PORT, the contract the injector writes
 * (injector/src/inject/sidecar-container.ts). Its ports are the values of
 * CHAPERONE_KUBE_PORT and CHAPERONE_METRICS_PORT, the ports of
 * CHAPERONE_DATABASES (`name=port,…`) and its declared containerPorts.
 */
import type { KubeRequestContext } from '../context.ts';
import { derivedAuditID, type Upstream, upstreamCall } from '../upstream.ts';

/** The built-in rule port-forwards into a sidecar's ports are refused under. */
export const SIDECAR_PORTS_RULE = 'chaperone-no-port-forward-to-sidecar';

/** Largest pod the lookup reads. */
const MAX_POD_BYTES = 4 << 20;

const PORT_VARIABLES = ['CHAPERONE_KUBE_PORT', 'CHAPERONE_METRICS_PORT'];

interface ContainerLike {
  readonly env?: readonly { readonly name?: unknown; readonly value?: unknown }[];
  readonly ports?: readonly { readonly containerPort?: unknown }[];
}

const asPort = (v: unknown): number | undefined => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,5}$/.test(v.trim()) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
};

/** The sidecar ports a pod object declares (none when it has no sidecar). */
export function sidecarPortsOf(pod: unknown): Set<number> {
  const ports = new Set<number>();
  const spec = (pod as { spec?: { containers?: unknown; initContainers?: unknown } } | null)?.spec;
  const containers = [spec?.containers, spec?.initContainers].flatMap((l) =>
    Array.isArray(l) ? (l as ContainerLike[]) : [],
  );
  for (const c of containers) {
    const env = Array.isArray(c?.env) ? c.env : [];
    const value = (name: string) => env.find((e) => e?.name === name)?.value;
    if (value('CHAPERONE_KUBE_PORT') === undefined) continue;
    for (const name of PORT_VARIABLES) {
      const p = asPort(value(name));
      if (p !== undefined) ports.add(p);
    }
    const databases = value('CHAPERONE_DATABASES');
    if (typeof databases === 'string')
      for (const entry of databases.split(',')) {
        const p = asPort(entry.slice(entry.indexOf('=') + 1));
        if (p !== undefined) ports.add(p);
      }
    for (const declared of Array.isArray(c.ports) ? c.ports : []) {
      const p = asPort(declared?.containerPort);
      if (p !== undefined) ports.add(p);
    }
  }
  return ports;
}

/**
 * Reads the target pod with the sidecar's own credentials and returns its
 * sidecar's ports, or why it could not be read (the session is then refused:
 * without the pod the guard cannot tell which ports lead to a sidecar).
 */
export async function lookUpSidecarPorts(
  o: { readonly upstream: Upstream; readonly timeoutMs: number },
  ctx: KubeRequestContext,
  namespace: string,
  name: string,
): Promise<Set<number> | { code: number; reason: string; message: string }> {
  const target = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
  const refused = (code: number, reason: string, why: string) => ({
    code,
    reason,
    message: `chaperone: the pod could not be read to learn which of its ports lead to a Chaperone sidecar (${why}), so the port-forward is refused`,
  });
  try {
    const { status, body } = await upstreamCall(o.upstream, {
      method: 'GET',
      target,
      auditID: derivedAuditID(ctx.auditID, 1),
      timeoutMs: o.timeoutMs,
      maxBytes: MAX_POD_BYTES,
    });
    if (status !== 200)
      return refused(
        status === 404 ? 404 : 503,
        status === 404 ? 'NotFound' : 'ServiceUnavailable',
        `HTTP ${status}`,
      );
    return sidecarPortsOf(JSON.parse(body.toString('utf8')));
  } catch (err) {
    return refused(503, 'ServiceUnavailable', (err as Error).message);
  }
}
