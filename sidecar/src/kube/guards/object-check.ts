/**
 * The built-in rules that depend on the object a write would store (pods and
 * pod templates, Secrets, egress NetworkPolicies, volume claims, pod specs in
 * custom resources), after `decide` has allowed the request itself.
 *
 * - create: the JSON body is the object (read strictly: a repeated key is
 *   refused). Other media types (kubectl's typed clients send protobuf) are
 *   decoded by the API server in a dry run of the same bytes, except for
 *   pods, whose dry run the injector changes: they get 415 asking for JSON.
 *   A custom resource is always judged by its dry run (the API server
 *   defaults and prunes it by a schema the guard does not have).
 * - update and patch: the sidecar cannot compute the result, so the API server
 *   does. The current object is read; the write is sent with `dryRun=All` and
 *   a precondition on the current resourceVersion (in metadata for PUT,
 *   merge, strategic-merge and apply bodies; a last `replace` operation for
 *   JSON patches); the result is checked against the current object; then the
 *   same preconditioned write is forwarded, so exactly the checked result is
 *   stored. If the object changed in between, the API server answers 409 to
 *   the guard's precondition: the write is then checked again against the
 *   object as it is now and sent again (up to MAX_CONFLICT_RETRIES times, as
 *   the API server retries a patch; then the agent gets the 409). A 409 to a
 *   precondition of the agent's own is its answer. When there is no current
 *   object (a server-side apply that creates), the precondition is
 *   resourceVersion "1", which no stored object has (etcd's first write is
 *   revision 2): the API server creates the object, but answers 409 if it
 *   appeared meanwhile, and the apply is checked again as an update of it.
 *   An apply checked as an update also carries the object's uid, so it cannot
 *   create the object if it is deleted meanwhile (the API server refuses to
 *   create an object a uid is given for); it is then checked again as a create.
 * - pods and templates (and custom resources with new pod specs) also need
 *   their namespace to be opted in: its labels are read fresh for every such
 *   write (no cache: a namespace's opt-in can change at any time, and these
 *   writes are rare).
 * - a JSON patch of an object whose values are masked (every Secret) may
 *   only add, remove and replace: it is refused before anything is sent.
 *   The API server's errors about such objects are passed on with their
 *   words withheld (mask-status.ts).
 *
 * The guard's own calls (the current object, dry runs, the namespace) carry
 * Audit-IDs derived from the request's; only the agent's write carries the
 * request's own (each attempt of it, when a conflict sends it again).
 */
import {
  check,
  checkWrittenObject,
  type Decision,
  isOpenSubject,
  maskedJsonPatchEscapes,
  needsNamespace,
  needsRoleBindings,
  type SelfProtection,
  TooDeepError,
  writeCheckOf,
  writeRefusal,
} from '@chaperone/shared';
import type { Guard, KubeRequestContext } from '../context.ts';
import { BodyTooLargeError } from '../http1/agent-connection.ts';
import { UpstreamError } from '../http1/upstream-pool.ts';
import { withheldStatus } from '../mask-status.ts';
import { sendStatus, statusBody } from '../status.ts';
import { derivedAuditID, type Upstream, type UpstreamReply, upstreamCall } from '../upstream.ts';
import {
  jsonPatchWithResourceVersion,
  readStrictJson,
  type StrictJson,
  StrictJsonError,
  withResourceVersion,
} from './strict-json.ts';

export interface ObjectCheckOptions {
  readonly upstream: Upstream;
  readonly protection: SelfProtection;
  readonly maxRequestBytes: number;
  readonly maxResponseBytes: number;
  readonly timeoutMs: number;
}

const JSON_PATCH = 'application/json-patch+json';

/**
 * How many times a write is checked again when the object changed under the
 * guard's precondition: as often as the API server retries a patch that meets
 * a conflict (maxRetryWhenPatchConflicts).
 */
const MAX_CONFLICT_RETRIES = 5;
const APPLY_PATCH = 'application/apply-patch+yaml';

/**
 * The resourceVersion that holds a write to an object that does not exist
 * yet: etcd's revisions start at 1 and its first write is revision 2, so no
 * stored object has it (a create ignores it; an update is refused with 409).
 */
export const CREATE_ONLY_RESOURCE_VERSION = '1';

/**
 * Characters YAML 1.1 reads as line breaks inside a string, where JSON reads
 * an ordinary character (an apply body is read by the API server as YAML),
 * and the byte-order mark, which YAML reads as a document marker.
 */
const YAML_ONLY_BREAKS = /[\u0085\u2028\u2029\ufeff]/;

const PATCH_TYPES = new Set([
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
  'application/apply-patch+yaml',
]);

/** A refusal the guard answers itself, with the Status it sends. */
class Refusal extends Error {
  readonly code: number;
  readonly reason: string;
  /** The API server's own answer, relayed as is. */
  readonly relay?: UpstreamReply;
  constructor(code: number, reason: string, message: string, relay?: UpstreamReply) {
    super(message);
    this.code = code;
    this.reason = reason;
    if (relay) this.relay = relay;
  }
}

type Obj = Record<string, unknown>;

const isObj = check.isObject;

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

async function readBody(ctx: KubeRequestContext, limit: number): Promise<Buffer> {
  if (ctx.body !== undefined) return ctx.body;
  try {
    ctx.body = await ctx.req.body(limit);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new Refusal(413, 'RequestEntityTooLarge', err.message);
    throw err;
  }
  return ctx.body;
}

function strict(body: Buffer, what: string): StrictJson {
  try {
    return readStrictJson(body);
  } catch (err) {
    if (err instanceof StrictJsonError) {
      throw new Refusal(
        400,
        'BadRequest',
        `the ${what} could not be read strictly (${err.message}); send plain JSON with each key once`,
      );
    }
    throw err;
  }
}

const RESOURCE_VERSION_POINTER = '/metadata/resourceVersion';

/** Whether a JSON pointer names metadata.resourceVersion, something in it, or something holding it. */
function touchesResourceVersion(pointer: string): boolean {
  return (
    pointer === '' ||
    pointer === '/metadata' ||
    pointer === RESOURCE_VERSION_POINTER ||
    pointer.startsWith(`${RESOURCE_VERSION_POINTER}/`)
  );
}

/**
 * The resourceVersion a JSON patch sets, by its last operation that touches
 * it: an `add` or `replace` of /metadata/resourceVersion with a string, or of
 * /metadata or the whole object with one in it. Undefined when the last one
 * sets none (a `remove`, or a /metadata without one): the guard's
 * precondition is then appended after the patch. A `copy` or `move` into it
 * takes its value from elsewhere in the object, which the API server reads as
 * the patch's precondition and the guard would not: refused.
 */
function ownJsonPatchResourceVersion(ops: readonly unknown[]): string | undefined {
  let own: string | undefined;
  for (const op of ops) {
    if (!isObj(op) || typeof op.path !== 'string') continue;
    // A move out of it takes the version away, as a remove does: the write would then be unconditional.
    if (op.op === 'move' && typeof op.from === 'string' && touchesResourceVersion(op.from)) own = undefined;
    const path = op.path;
    if (!touchesResourceVersion(path)) continue;
    if (op.op === 'copy' || op.op === 'move') {
      throw new Refusal(
        400,
        'BadRequest',
        `a JSON patch that copies or moves a value to ${path || 'the whole object'} sets the resourceVersion from elsewhere in the object, which the guard cannot hold it to; set it with add or replace and a string`,
      );
    }
    if (op.op !== 'add' && op.op !== 'replace') {
      if (op.op === 'remove') own = undefined;
      continue;
    }
    const value =
      path === RESOURCE_VERSION_POINTER
        ? op.value
        : path === '/metadata'
          ? isObj(op.value)
            ? op.value.resourceVersion
            : undefined
          : path === ''
            ? resourceVersionOf(op.value)
            : undefined; // below a string: the API server refuses the patch
    own = typeof value === 'string' && value !== '' ? value : undefined;
  }
  return own;
}

/**
 * A 409 that reading the object again cannot resolve: a server-side apply's
 * conflict with another field manager (the agent must force it or leave the
 * field). Any other 409 to a write the guard preconditioned is taken for the
 * guard's precondition failing (the object changed, or was deleted under an
 * apply held to its uid).
 */
function agentsConflict(status: Buffer): boolean {
  try {
    const s = JSON.parse(status.toString('utf8')) as { details?: { causes?: { reason?: unknown }[] } };
    return (s.details?.causes ?? []).some((c) => c?.reason === 'FieldManagerConflict');
  } catch {
    return false;
  }
}

function uidOf(v: unknown): string | undefined {
  const uid = isObj(v) && isObj(v.metadata) ? v.metadata.uid : undefined;
  return typeof uid === 'string' && uid !== '' ? uid : undefined;
}

function resourceVersionOf(v: unknown): string | undefined {
  const rv = isObj(v) && isObj(v.metadata) ? v.metadata.resourceVersion : undefined;
  return typeof rv === 'string' && rv !== '' ? rv : undefined;
}

interface Sent {
  /** What goes to the API server, for the dry run and the write alike. */
  readonly body: Buffer;
  /** The agent's body as parsed. */
  readonly request: unknown;
  /**
   * The precondition is the guard's: the agent's write had none, so a 409
   * Conflict to it means only that the object changed since it was read.
   */
  readonly guardPrecondition: boolean;
}

/**
 * The body sent (dry run and real write alike): the agent's, with a
 * precondition on `rv`, or — with no current object — one that only a create
 * can meet. A server-side apply creates the object when it is gone, whatever
 * its resourceVersion says, so an apply checked as an update of the current
 * object also carries that object's uid: the API server refuses to create an
 * object with a uid given ("no existing object was found", 409), and the
 * write is then checked again as the create it would be.
 */
function preconditioned(
  ctx: KubeRequestContext,
  body: Buffer,
  current: string | undefined,
  currentUid: string | undefined,
): Sent {
  const method = ctx.req.method;
  const type = mediaType(ctx.req.headers['content-type']);
  if (method === 'PUT') {
    if (type !== '' && type !== 'application/json') {
      throw new Refusal(
        415,
        'UnsupportedMediaType',
        `a ${type} body cannot be checked by the guard; send the object as application/json`,
      );
    }
  } else if (!PATCH_TYPES.has(type)) {
    throw new Refusal(
      415,
      'UnsupportedMediaType',
      `a patch of type ${type || '(none)'} cannot be checked by the guard; use application/json-patch+json, merge-patch+json, strategic-merge-patch+json or apply-patch+yaml with a JSON body`,
    );
  }
  const doc = strict(body, type === APPLY_PATCH ? 'apply configuration (send it as JSON)' : 'request body');
  if (type === APPLY_PATCH && YAML_ONLY_BREAKS.test(doc.text)) {
    throw new Refusal(
      400,
      'BadRequest',
      'the apply configuration holds U+0085, U+2028, U+2029 or U+FEFF, which the API server reads as YAML line breaks or markers, unlike JSON; write them as \\u escapes',
    );
  }
  const rv = current ?? CREATE_ONLY_RESOURCE_VERSION;
  if (type === JSON_PATCH) {
    if (!Array.isArray(doc.value))
      throw new Refusal(400, 'BadRequest', 'a JSON patch must be an array of operations');
    // A patch that sets the resourceVersion holds itself to it: the API server refuses it unless the
    // object is at that version. It must be the version the guard read (or the object changed since),
    // and the guard adds nothing: a conflict is the agent's own.
    const own = ownJsonPatchResourceVersion(doc.value);
    if (own !== undefined) {
      if (own !== current) {
        throw new Refusal(
          409,
          'Conflict',
          `the object has been modified (resourceVersion ${own} is not the current ${current ?? '(none: the object does not exist)'}); read it again and retry`,
        );
      }
      return { body, request: doc.value, guardPrecondition: false };
    }
    return {
      body: Buffer.from(jsonPatchWithResourceVersion(doc, rv), 'utf8'),
      request: doc.value,
      guardPrecondition: true,
    };
  }
  if (!isObj(doc.value)) throw new Refusal(400, 'BadRequest', 'the request body must be a JSON object');
  const meta = doc.value.metadata;
  if (meta !== undefined && !isObj(meta)) {
    throw new Refusal(400, 'BadRequest', 'metadata in the request body must be an object');
  }
  const own = meta?.resourceVersion;
  if (own !== undefined) {
    if (current === undefined) {
      throw new Refusal(
        409,
        'Conflict',
        `the object does not exist, yet the body holds the write to resourceVersion ${String(own)}; leave resourceVersion out to create it`,
      );
    }
    if (own !== current) {
      throw new Refusal(
        409,
        'Conflict',
        `the object has been modified (resourceVersion ${String(own)} is not the current ${current}); read it again and retry`,
      );
    }
    return { body, request: doc.value, guardPrecondition: false };
  }
  // An apply with a uid of its own is held to it by the API server already.
  const holdUid = type === APPLY_PATCH && current !== undefined && meta?.uid === undefined;
  if (holdUid && currentUid === undefined) {
    throw new Refusal(
      502,
      'BadGateway',
      'the stored object has no uid, so the apply cannot be held to it (an apply of a deleted object would create it unchecked)',
    );
  }
  return {
    body: Buffer.from(withResourceVersion(doc, rv, holdUid ? currentUid : undefined), 'utf8'),
    request: doc.value,
    guardPrecondition: true,
  };
}

/** A JSON patch of an object whose values the guard masks: only operations that carry their own value. */
function checkMaskedJsonPatch(ctx: KubeRequestContext, body: Buffer): Decision | undefined {
  const action = ctx.action;
  if (!action) return undefined;
  const ops = strict(body, 'JSON patch').value;
  if (!Array.isArray(ops))
    throw new Refusal(400, 'BadRequest', 'a JSON patch must be an array of operations');
  return writeRefusal(action, maskedJsonPatchEscapes(ops));
}

export function objectCheck(opts: ObjectCheckOptions): Guard {
  /** Calls made on the request's behalf, numbered for their Audit-IDs. */
  const calls = new WeakMap<KubeRequestContext, number>();
  const call = (ctx: KubeRequestContext, method: string, target: string, body?: Buffer) => {
    const n = (calls.get(ctx) ?? 0) + 1;
    calls.set(ctx, n);
    return upstreamCall(opts.upstream, {
      method,
      target,
      ...(body !== undefined
        ? { body, contentType: ctx.req.headers['content-type'] ?? 'application/json' }
        : {}),
      auditID: derivedAuditID(ctx.auditID, n),
      timeoutMs: opts.timeoutMs,
      maxBytes: opts.maxResponseBytes,
    });
  };

  const readJson = (reply: UpstreamReply, what: string): unknown => {
    try {
      return JSON.parse(reply.body.toString('utf8'));
    } catch {
      throw new Refusal(502, 'BadGateway', `the API server's answer to ${what} is not JSON`);
    }
  };

  const namespaceLabels = async (
    ctx: KubeRequestContext,
    ns: string | undefined,
  ): Promise<Readonly<Obj> | null> => {
    if (ns === undefined) return null;
    const r = await call(ctx, 'GET', `/api/v1/namespaces/${encodeURIComponent(ns)}`);
    if (r.status === 404) return null;
    if (r.status !== 200) {
      throw new Refusal(
        503,
        'ServiceUnavailable',
        `cannot read namespace ${ns} to check that it is opted in (the API server answered ${r.status}); the pod's service account needs get on namespaces`,
      );
    }
    const doc = readJson(r, 'reading the namespace');
    const labels = isObj(doc) && isObj(doc.metadata) ? doc.metadata.labels : undefined;
    return isObj(labels) ? labels : {};
  };

  /**
   * The bindings that grant a Role or ClusterRole to open subjects (callers
   * with no credential, or every caller): for a Role, the RoleBindings of its
   * namespace; for a ClusterRole, every ClusterRoleBinding and RoleBinding.
   * Read fresh for every such write (they are rare); a list that cannot be
   * read refuses the write.
   */
  async function roleOpenBindings(
    ctx: KubeRequestContext,
    action: NonNullable<KubeRequestContext['action']>,
    name: string,
  ) {
    const cluster = action.resource === 'clusterroles';
    const roleKind = cluster ? 'ClusterRole' : 'Role';
    const base = '/apis/rbac.authorization.k8s.io/v1';
    const lists: [target: string, bindingKind: string][] = cluster
      ? [
          [`${base}/clusterrolebindings`, 'ClusterRoleBinding'],
          [`${base}/rolebindings`, 'RoleBinding'],
        ]
      : action.namespace === undefined
        ? []
        : [[`${base}/namespaces/${encodeURIComponent(action.namespace)}/rolebindings`, 'RoleBinding']];
    const found: string[] = [];
    for (const [target, bindingKind] of lists) {
      const r = await call(ctx, 'GET', target);
      if (r.status !== 200) {
        throw new Refusal(
          503,
          'ServiceUnavailable',
          `cannot list the bindings of ${roleKind} ${name} to check who it is granted to (the API server answered ${r.status} to ${target}); the pod's service account needs list on rolebindings and clusterrolebindings`,
        );
      }
      const doc = readJson(r, 'listing the bindings');
      const items = isObj(doc) && Array.isArray(doc.items) ? doc.items : [];
      for (const b of items) {
        if (!isObj(b) || !isObj(b.roleRef) || b.roleRef.kind !== roleKind || b.roleRef.name !== name)
          continue;
        const meta = isObj(b.metadata) ? b.metadata : {};
        const where = typeof meta.namespace === 'string' ? `${meta.namespace}/` : '';
        for (const subject of Array.isArray(b.subjects) ? b.subjects : []) {
          if (!isOpenSubject(subject)) continue;
          const { kind, name: who } = subject as Obj;
          found.push(`${bindingKind} ${where}${String(meta.name)} to ${String(kind)} ${String(who)}`);
        }
      }
    }
    return found;
  }

  return (next) => async (ctx) => {
    const action = ctx.action;
    const check = action ? writeCheckOf(action) : undefined;
    const type = mediaType(ctx.req.headers['content-type']);
    // Every Secret write is masked (evaluate's chaperone-mask-secrets); so are a policy's mask rules.
    const maskedJsonPatch =
      action?.verb === 'patch' && ctx.decision?.action === 'mask' && type === JSON_PATCH;
    if (!action || (!check && !maskedJsonPatch)) return next(ctx);
    let retries = 0;
    /** The agent's body as it came (ctx.body becomes what is sent). */
    let original: Buffer | undefined;
    /**
     * Checks the write against the object as it is now. True: send ctx.body
     * on; false: answered here. A 409 to the guard's own precondition (the
     * object changed between the guard's read and its dry run) checks again,
     * as the API server retries a patch that meets a conflict.
     */
    const judge = async (): Promise<boolean> => {
      for (;;) {
        const state = { guardPrecondition: false };
        let decision: Decision | undefined;
        try {
          original ??= await readBody(ctx, opts.maxRequestBytes);
          if (maskedJsonPatch) decision = checkMaskedJsonPatch(ctx, original);
          if (!decision && check) decision = await checkObject(ctx, check, original, state);
        } catch (caught) {
          const err =
            caught instanceof UpstreamError
              ? upstreamRefusal(caught, opts)
              : caught instanceof TooDeepError
                ? new Refusal(400, 'BadRequest', `the object cannot be checked: ${caught.message}`)
                : caught;
          if (!(err instanceof Refusal)) throw err;
          if (
            err.relay?.status === 409 &&
            state.guardPrecondition &&
            retries < MAX_CONFLICT_RETRIES &&
            !agentsConflict(err.relay.body)
          ) {
            retries++;
            continue;
          }
          if (err.relay) {
            relay(ctx, err.relay);
            return false;
          }
          const message = `chaperone: ${err.message}`;
          ctx.answered = { code: err.code, reason: err.reason, message };
          sendStatus(ctx.res, statusBody(err.code, err.reason, message));
          return false;
        }
        if (decision) {
          deny(ctx, decision);
          return false;
        }
        // The write goes on with the guard's precondition: if the object changes before it lands,
        // forward hands the 409 back here instead of to the agent.
        if (state.guardPrecondition && retries < MAX_CONFLICT_RETRIES) {
          ctx.retryConflict = (status) => {
            if (agentsConflict(status)) return undefined;
            retries++;
            ctx.retryConflict = undefined;
            return judge();
          };
        } else ctx.retryConflict = undefined;
        return true;
      }
    };
    if (await judge()) return next(ctx);
  };

  /** Answers a write the object rules refuse. */
  function deny(ctx: KubeRequestContext, decision: Decision): void {
    ctx.decision = decision;
    const message = `chaperone: denied by rule "${decision.rule}": ${decision.message}`;
    const info = ctx.info;
    ctx.answered = { code: 403, reason: 'Forbidden', message };
    sendStatus(
      ctx.res,
      statusBody(403, 'Forbidden', message, {
        ...(info?.name !== undefined ? { name: info.name } : {}),
        ...(info?.apiGroup ? { group: info.apiGroup } : {}),
        ...(info?.resource !== undefined ? { kind: info.resource } : {}),
        causes: (decision.causes ?? []).map((c) => ({ reason: c.rule, message: c.message, field: c.field })),
      }),
    );
  }

  /** The object the write would store, checked; the body to send is left in ctx.body. */
  async function checkObject(
    ctx: KubeRequestContext,
    check: NonNullable<ReturnType<typeof writeCheckOf>>,
    body: Buffer,
    state: { guardPrecondition: boolean },
  ): Promise<Decision | undefined> {
    const action = ctx.action;
    if (!action) return undefined;
    const type = mediaType(ctx.req.headers['content-type']);
    let object: unknown;
    let previous: unknown;
    let request: unknown;
    if (action.verb === 'create') {
      if ((type === '' || type === 'application/json') && check !== 'custom-resource') {
        object = strict(body, 'request body').value;
        request = object;
      } else if (check === 'pod') {
        // A pod's dry run goes through the injector, which changes what is judged: JSON only.
        throw new Refusal(
          415,
          'UnsupportedMediaType',
          `a ${type} pod cannot be checked by the guard; send the pod as application/json (kubectl create -f and kubectl run do)`,
        );
      } else {
        // Protobuf or YAML (kubectl's typed clients send protobuf), or a
        // custom resource: the API server decodes (and defaults) it for a
        // dry run, and the same bytes are then sent.
        const q = ctx.req.url.includes('?') ? '&' : '?';
        const dry = await call(ctx, 'POST', `${ctx.req.url}${q}dryRun=All`, body);
        if (dry.status < 200 || dry.status > 299) throw new Refusal(dry.status, '', '', dry);
        object = readJson(dry, 'the dry run');
      }
    } else {
      const current = await call(ctx, 'GET', ctx.path);
      if (current.status !== 200 && current.status !== 404)
        throw new Refusal(current.status, '', '', current);
      if (current.status === 200) previous = readJson(current, 'reading the object');
      const rv = resourceVersionOf(previous);
      if (previous !== undefined && rv === undefined) {
        throw new Refusal(
          502,
          'BadGateway',
          'the stored object has no resourceVersion, so the write cannot be held to it',
        );
      }
      const sent = preconditioned(ctx, body, rv, uidOf(previous));
      state.guardPrecondition = sent.guardPrecondition;
      request = sent.request;
      const q = ctx.req.url.includes('?') ? '&' : '?';
      const dry = await call(ctx, ctx.req.method, `${ctx.req.url}${q}dryRun=All`, sent.body);
      if (dry.status < 200 || dry.status > 299) throw new Refusal(dry.status, '', '', dry);
      object = readJson(dry, 'the dry run');
      // A server-side apply that creates a pod: the dry run went through the
      // injector (it adds the sidecar and its token), so the pod is judged by
      // what the agent wrote, as a create is.
      if (previous === undefined && check === 'pod') object = sent.request;
      ctx.body = sent.body;
    }
    if (
      check === 'custom-resource' &&
      (typeof object !== 'object' || object === null || Array.isArray(object))
    ) {
      throw new Refusal(
        502,
        'BadGateway',
        "the API server's dry run of this custom resource is not an object, so its pod specs cannot be checked",
      );
    }
    const labels = needsNamespace(check, object, previous)
      ? await namespaceLabels(ctx, action.namespace)
      : undefined;
    // The role's name as written: a create names it in its body (a binding may name a role before it exists).
    const meta = isObj(object) && isObj(object.metadata) ? object.metadata : undefined;
    const roleName = typeof meta?.name === 'string' ? meta.name : action.name;
    const openBindings =
      needsRoleBindings(action) && roleName !== undefined
        ? await roleOpenBindings(ctx, action, roleName)
        : undefined;
    return checkWrittenObject(
      {
        action,
        object,
        ...(previous !== undefined ? { previous } : {}),
        ...(labels !== undefined ? { namespaceLabels: labels } : {}),
        ...(request !== undefined ? { request } : {}),
        ...(openBindings !== undefined ? { openBindings } : {}),
      },
      opts.protection,
    );
  }
}

function upstreamRefusal(err: UpstreamError, opts: ObjectCheckOptions): Refusal {
  if (err.kind === 'headers-timeout' || err.kind === 'body-timeout') {
    return new Refusal(
      504,
      'Timeout',
      `the API server did not answer the guard's check within ${opts.timeoutMs} ms`,
    );
  }
  return new Refusal(
    503,
    'ServiceUnavailable',
    `the guard could not check the object with the API server at ${opts.upstream.origin} (${err.code}); try again shortly`,
  );
}

/**
 * The API server's own refusal (a Status: not found, forbidden, invalid,
 * conflict), passed on as it came — with its words withheld when the object's
 * values are masked (an error can quote the object).
 */
function relay(ctx: KubeRequestContext, reply: UpstreamReply): void {
  if (ctx.decision?.action === 'mask') {
    const status = withheldStatus(reply.status, reply.body);
    ctx.failure = { code: status.code, reason: status.reason, message: status.message };
    sendStatus(ctx.res, status);
    return;
  }
  let message = `the API server answered ${reply.status}`;
  let reason = '';
  try {
    const s = JSON.parse(reply.body.toString('utf8')) as { message?: unknown; reason?: unknown };
    if (typeof s.message === 'string') message = s.message;
    if (typeof s.reason === 'string') reason = s.reason;
  } catch {
    // not a Status: the code alone is recorded
  }
  ctx.failure = { code: reply.status, reason, message };
  if (ctx.res.headersSent) {
    ctx.res.destroy();
    return;
  }
  ctx.res.writeHead(reply.status, {
    'content-type': reply.contentType || 'application/json',
    'content-length': reply.body.length,
    'cache-control': 'no-cache, private',
  });
  ctx.res.end(reply.body);
}
