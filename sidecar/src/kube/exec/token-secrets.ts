/**
 * Which of the Secrets an unguarded pod uses are service-account tokens
 * (type `kubernetes.io/service-account-token`: since Kubernetes 1.24 they are
 * made by hand, under any name), read with the sidecar's own credentials
 * under Audit-IDs derived from the request's, before an exec or attach is
 * decided (token-holders.ts judges with them). Each is asked for as a Table
 * (the API server's printed columns, Type among them, and the object's
 * metadata only), so the Secret's values never reach the sidecar; an answer
 * that is the Secret itself (a server that does not print Tables) is read for
 * its type alone.
 *
 * A Secret that does not exist holds nothing. One that cannot be read makes
 * the answer unknown: the session is then refused, since the guard cannot
 * tell whether the container holds a token.
 */
import type { KubeRequestContext } from '../context.ts';
import { derivedAuditID, type Upstream, upstreamCall } from '../upstream.ts';

export const SERVICE_ACCOUNT_TOKEN_TYPE = 'kubernetes.io/service-account-token';

/** Most Secrets read for one session (a pod using more is refused: the guard would not read them all). */
export const MAX_SECRETS_READ = 16;

/** Largest Secret (the API server's limit is 1 MiB of data, before base64). */
const MAX_SECRET_BYTES = 2 << 20;

/** A Table of printed columns with the object's metadata only (no data), or the object where Tables are not printed. */
const TABLE_ACCEPT = 'application/json;as=Table;v=v1;g=meta.k8s.io, application/json';

/** The Secret's type, from its Table (the Type column) or from the Secret itself. */
function typeOf(doc: unknown): unknown {
  const d = doc as {
    kind?: unknown;
    type?: unknown;
    columnDefinitions?: { name?: unknown }[];
    rows?: { cells?: unknown[] }[];
  } | null;
  if (d?.kind !== 'Table') return d?.type;
  const column = Array.isArray(d.columnDefinitions)
    ? d.columnDefinitions.findIndex((c) => c?.name === 'Type')
    : -1;
  const row = Array.isArray(d.rows) ? d.rows[0] : undefined;
  return column >= 0 && Array.isArray(row?.cells) ? row.cells[column] : undefined;
}

export type TokenSecrets = { readonly tokens: ReadonlySet<string> } | { readonly unknown: string };

export async function readTokenSecrets(
  o: { readonly upstream: Upstream; readonly timeoutMs: number },
  ctx: Pick<KubeRequestContext, 'auditID'>,
  namespace: string,
  names: readonly string[],
): Promise<TokenSecrets> {
  if (names.length > MAX_SECRETS_READ) {
    return {
      unknown: `the pod uses ${names.length} Secrets, more than the ${MAX_SECRETS_READ} the guard reads to tell whether one is a service-account token`,
    };
  }
  const tokens = new Set<string>();
  // The pod's read was call 1.
  let call = 1;
  for (const name of names) {
    call++;
    let status: number;
    let body: Buffer;
    try {
      ({ status, body } = await upstreamCall(o.upstream, {
        method: 'GET',
        target: `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`,
        auditID: derivedAuditID(ctx.auditID, call),
        timeoutMs: o.timeoutMs,
        maxBytes: MAX_SECRET_BYTES,
        accept: TABLE_ACCEPT,
      }));
    } catch (err) {
      return { unknown: `the Secret ${JSON.stringify(name)} could not be read (${(err as Error).message})` };
    }
    if (status === 404) continue;
    let type: unknown;
    try {
      type = typeOf(JSON.parse(body.toString('utf8')));
    } catch {
      type = undefined;
    }
    if (status !== 200 || typeof type !== 'string') {
      return { unknown: `the Secret ${JSON.stringify(name)} could not be read (HTTP ${status})` };
    }
    if (type === SERVICE_ACCOUNT_TOKEN_TYPE) tokens.add(name);
  }
  return { tokens };
}
