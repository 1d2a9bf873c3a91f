/**
 * The approvers' HTTP API on the query listener (shared/src/approval-protocol.ts):
 *
 *   GET    /v1/approvals?state=pending|decided|all&namespace=NS&limit=N
 *   GET    /v1/approvals/{id}
 *   POST   /v1/approvals/{id}/decision   {"decision": "approve"|"deny", "reason"?}
 *   GET    /v1/grants?namespace=NS&state=active|all&limit=N
 *   DELETE /v1/grants/{id}
 *
 * Approvers authenticate with their own bearer token (approver-auth.ts:
 * TokenReview, or an OIDC ID token when the query API uses OIDC), not with a
 * query token: what they may see and decide is RBAC's to say, per namespace
 * (approvals/approval-service.ts). Every route answers JSON; errors are
 * `{"error": {code, message}}` with 400 (naming the field), 401, 403, 404,
 * 409 (already decided, revoked) or 503.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  ChaperoneError,
  check,
  type DecisionBody,
  type Logger,
  toChaperoneError,
  ValidationError,
} from '@chaperone/shared';
import type { ApprovalService, ListState } from '../approvals/approval-service.ts';
import type { Approver, ApproverAuthenticator } from '../auth/approver-auth.ts';
import { AuthError } from '../auth/sidecar-identity.ts';
import { visible } from '../text/visible-text.ts';
import { limitOf, sendJson } from './json-response.ts';
import { decodePathSegment } from './request-target.ts';

const MAX_BODY_BYTES = 16 * 1024;

export interface ApprovalRoutesOptions {
  /** Absent when the collector has no Kubernetes API access (RBAC decides who approves). */
  readonly service?: ApprovalService;
  readonly auth?: ApproverAuthenticator;
  readonly logger: Logger;
  readonly onAuthFailure?: (code: string) => void;
}

/** Parses a decision's JSON body; a ValidationError names the field. */
export function parseDecisionBody(text: string): DecisionBody {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new ValidationError('', 'the body must be JSON: {"decision": "approve"|"deny", "reason": "…"}');
  }
  const o = check.object(v, '');
  check.onlyKeys(o, ['decision', 'reason'], '');
  const decision = check.oneOf(o.decision, ['approve', 'deny'] as const, '/decision');
  const reason = check.optStr(o.reason, '/reason', { max: 1024 });
  return { decision, ...(reason ? { reason } : {}) };
}

function namespaceOf(params: URLSearchParams): string | undefined {
  const ns = params.get('namespace');
  if (ns === null) return undefined;
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns))
    throw new ValidationError('namespace', 'must be a namespace name (lower-case DNS label)');
  return ns;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new ChaperoneError('limit_exceeded', `the body is larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function methodNotAllowed(allow: string): ChaperoneError {
  return new ChaperoneError('usage', `use ${allow} here`, { details: { allow } });
}

/** True for a path this API answers. */
export function isApprovalPath(path: string): boolean {
  return /^\/v1\/(approvals|grants)(\/|$)/.test(path);
}

/** Answers one request on an approval path (isApprovalPath); throws ChaperoneErrors for the caller to send. */
export function createApprovalRoutes(opts: ApprovalRoutesOptions) {
  const { service, auth, logger } = opts;

  async function approver(req: IncomingMessage): Promise<Approver> {
    if (!service || !auth)
      throw new ChaperoneError(
        'unavailable',
        'approvals need Kubernetes API access (TokenReview and SubjectAccessReview): start the collector with --kubeconfig or --kube-api-server, or in a pod',
      );
    try {
      return await auth.authenticate(req.headers.authorization);
    } catch (err) {
      const e = toChaperoneError(err);
      opts.onAuthFailure?.(e.code);
      if (!(err instanceof AuthError)) logger.warn({ err: e }, 'approver authentication unavailable');
      throw e;
    }
  }

  return async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const params = url.searchParams;
    const method = req.method ?? 'GET';
    const who = await approver(req);
    const svc = service as ApprovalService;
    logger.info({ approver: who.user, via: who.via, method, path, query: url.search }, 'approvals API');
    if (path === '/v1/approvals') {
      if (method !== 'GET') throw methodNotAllowed('GET');
      const state = params.get('state') ?? 'pending';
      if (!['pending', 'decided', 'all'].includes(state))
        throw new ValidationError('state', 'must be pending, decided or all');
      const { items, total } = await svc.list(who, state as ListState, namespaceOf(params), limitOf(params));
      return sendJson(res, 200, JSON.stringify({ items, total }));
    }
    let m = /^\/v1\/approvals\/([^/]+)(\/decision)?$/.exec(path);
    if (m) {
      const id = decodePathSegment(m[1] as string, 'approval id');
      if (m[2]) {
        if (method !== 'POST') throw methodNotAllowed('POST');
        const body = parseDecisionBody(await readBody(req));
        return sendJson(res, 200, JSON.stringify(await svc.decide(who, id, body)));
      }
      if (method !== 'GET') throw methodNotAllowed('GET');
      return sendJson(res, 200, JSON.stringify(await svc.get(who, id)));
    }
    if (path === '/v1/grants') {
      if (method !== 'GET') throw methodNotAllowed('GET');
      const state = params.get('state') ?? 'active';
      if (!['active', 'all'].includes(state)) throw new ValidationError('state', 'must be active or all');
      const items = await svc.listGrants(who, namespaceOf(params), state === 'all', limitOf(params));
      return sendJson(res, 200, JSON.stringify({ items }));
    }
    m = /^\/v1\/grants\/([^/]+)$/.exec(path);
    if (m) {
      if (method !== 'DELETE') throw methodNotAllowed('DELETE');
      const id = decodePathSegment(m[1] as string, 'grant id');
      return sendJson(res, 200, JSON.stringify(await svc.revokeGrant(who, id)));
    }
    throw new ChaperoneError(
      'not_found',
      `no route ${visible(path)}: see /v1/approvals, /v1/approvals/{id}, /v1/approvals/{id}/decision, /v1/grants, /v1/grants/{id}`,
    );
  };
}

export type ApprovalRoutes = ReturnType<typeof createApprovalRoutes>;
