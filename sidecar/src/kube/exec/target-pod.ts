/**
 * Reads the pod an exec, attach or port-forward goes to, with the sidecar's
 * own credentials, under an Audit-ID derived from the request's: the one
 * lookup both exec-target.ts (which container runs the command, and whether
 * it is a Chaperone sidecar) and the port-forward guard (which ports lead to
 * a sidecar) make before deciding.
 */
import type { KubeRequestContext } from '../context.ts';
import { derivedAuditID, type Upstream, upstreamCall } from '../upstream.ts';

/** Largest pod read. */
const MAX_POD_BYTES = 4 << 20;

export interface TargetPodOptions {
  readonly upstream: Upstream;
  readonly timeoutMs: number;
}

/** The pod object, or why it could not be had (what the API server said, or the error). */
export type TargetPod =
  | { readonly pod: unknown }
  | {
      readonly status: number;
      /** The API server's Status reason and message, when it answered with one. */
      readonly reason?: string;
      readonly message?: string;
      /** The request failed (no answer). */
      readonly error?: string;
    };

export async function readTargetPod(
  o: TargetPodOptions,
  ctx: Pick<KubeRequestContext, 'auditID'>,
  namespace: string,
  name: string,
): Promise<TargetPod> {
  const target = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
  let status: number;
  let body: Buffer;
  try {
    ({ status, body } = await upstreamCall(o.upstream, {
      method: 'GET',
      target,
      auditID: derivedAuditID(ctx.auditID, 1),
      timeoutMs: o.timeoutMs,
      maxBytes: MAX_POD_BYTES,
    }));
  } catch (err) {
    return { status: 503, error: (err as Error).message };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    doc = undefined;
  }
  if (status === 200 && typeof doc === 'object' && doc !== null) return { pod: doc };
  const said = doc as { message?: unknown; reason?: unknown } | undefined;
  return {
    status: status === 200 ? 502 : status,
    ...(typeof said?.reason === 'string' ? { reason: said.reason } : {}),
    ...(typeof said?.message === 'string' ? { message: said.message } : {}),
    ...(status === 200 ? { error: 'the API server answered with something other than a pod' } : {}),
  };
}
