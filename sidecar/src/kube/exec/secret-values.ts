/**
 * The values of the Secrets a mask rule names, read in a namespace with the
 * sidecar's own credentials: every value of each Secret's `data` is one
 * value to mask. Exec and attach output (text-hooks.ts) and pod logs
 * (../pod-log-filter.ts) mask them. A Secret that does not exist has no
 * values (logged); one that cannot be read is a refusal — the caller does
 * not go on unmasked.
 */
import type { CompiledPolicy, Logger } from '@chaperone/shared';
import type { KubeRequestContext } from '../context.ts';
import { derivedAuditID, type Upstream, upstreamCall } from '../upstream.ts';

/** Largest Secret read. */
const MAX_SECRET_BYTES = 4 << 20;

export interface SecretValuesDeps {
  readonly upstream: Upstream;
  readonly timeoutMs: number;
  readonly log: Logger;
}

/** The Secret that could not be read, and why. */
export interface UnreadSecret {
  readonly secret: string;
  readonly why: string;
}

/**
 * The values of the Secrets `names` in `namespace`, or the first that could
 * not be read. `firstAuditId` numbers the reads' derived Audit-IDs.
 */
export async function readSecretValues(
  d: SecretValuesDeps,
  ctx: Pick<KubeRequestContext, 'auditID'>,
  namespace: string,
  names: readonly string[],
  rule: string,
  firstAuditId = 2,
): Promise<Buffer[] | UnreadSecret> {
  const values: Buffer[] = [];
  for (const [i, name] of names.entries()) {
    const secret = `${namespace}/${name}`;
    let status: number;
    let body: Buffer;
    try {
      ({ status, body } = await upstreamCall(d.upstream, {
        method: 'GET',
        target: `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`,
        auditID: derivedAuditID(ctx.auditID, firstAuditId + i),
        timeoutMs: d.timeoutMs,
        maxBytes: MAX_SECRET_BYTES,
      }));
    } catch (err) {
      return { secret, why: (err as Error).message };
    }
    if (status === 404) {
      d.log.warn({ secret, rule }, 'a mask rule names a Secret that does not exist');
      continue;
    }
    if (status !== 200) return { secret, why: `HTTP ${status}` };
    let data: unknown;
    try {
      data = (JSON.parse(body.toString('utf8')) as { data?: unknown }).data;
    } catch {
      return { secret, why: 'the answer is not JSON' };
    }
    if (typeof data !== 'object' || data === null) continue;
    for (const v of Object.values(data)) if (typeof v === 'string') values.push(Buffer.from(v, 'base64'));
  }
  return values;
}

/** Every Secret name any mask rule of the policy names (`mask: {secrets: [...]}`), once each. */
export function maskRuleSecrets(policy: CompiledPolicy): string[] {
  const names = new Set<string>();
  for (const r of policy.policy.rules)
    if (r.action === 'mask') for (const s of r.mask?.secrets ?? []) names.add(s);
  return [...names];
}
