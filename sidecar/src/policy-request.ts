/**
 * Requests written by hand for `chaperone policy test`:
 *
 *   GET /api/v1/namespaces/agents/secrets/db        an HTTP request line
 *   delete namespaces prod                           <verb> <resource>[/<sub>] [name] [-n ns] [-g group]
 *   patch deployments/scale web -n prod -g apps
 *   exec agent-0 -c app -- rm -rf /data               exec into a pod (attach likewise, without a command)
 *   sql orders DROP TABLE x; SELECT 1                  SQL sent to the declared database `orders`, read
 *                                                      by the sidecar's own classifier (the real parser)
 *
 * or a YAML/JSON file holding an Action object.
 */
import { type Action, KUBE_VERBS, UsageError } from '@chaperone/shared';
import YAML from 'yaml';
import {
  KUBE_METHODS,
  readQuery,
  readRequestInfo,
  splitTarget,
  toAction,
  UnreadableRequestError,
} from './kube/request-info.ts';

/** Splits on spaces, honouring single and double quotes. */
export function splitWords(text: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (const m of text.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3] ?? '');
  return out;
}

const SQL_REQUEST = /^\s*sql\s+(\S+)\s+([\s\S]*\S)\s*$/i;

/**
 * Any request form, SQL included (`sql <database> <statements>`: the text
 * after the database is the SQL as sent, quotes and all). SQL is read by the
 * classifier the sidecar uses, so the decision is the sidecar's.
 */
export async function parseRequest(text: string, user?: string): Promise<Action> {
  const sql = SQL_REQUEST.exec(text);
  if (!sql) {
    if (/^\s*sql\b/i.test(text))
      throw new UsageError('a SQL request is "sql <database> <statements>", e.g. "sql orders DROP TABLE x"');
    return parseRequestText(text, user);
  }
  const [{ SqlClassifier }, { sqlAction }] = await Promise.all([
    import('./postgres/sql-classifier.ts'),
    import('./postgres/sql-action.ts'),
  ]);
  const classifier = await SqlClassifier.create(1);
  const statements = classifier.classify(sql[2] as string).statements.map((s) => s.statement);
  if (statements.length === 0) throw new UsageError(`"${sql[2]}" holds no SQL statement`);
  return sqlAction(sql[1] as string, statements, user);
}

export function parseRequestText(text: string, user?: string): Action {
  const words = splitWords(text.trim());
  const [first, ...rest] = words;
  if (!first) throw new UsageError('empty request; try: "delete namespaces prod" or "GET /api/v1/pods"');
  const extra = user ? { user } : {};
  if (KUBE_METHODS.has(first.toUpperCase()) && rest[0]?.startsWith('/')) {
    // Read as the sidecar reads a request target (and as the API server does), never normalised.
    const { path, rawQuery } = splitTarget(rest[0]);
    const query = readQuery(rawQuery);
    try {
      // The method in upper case: a request line typed by hand, not a client's bytes.
      return toAction(readRequestInfo(first.toUpperCase(), path, query.params, query.problem), extra);
    } catch (err) {
      if (err instanceof UnreadableRequestError) {
        throw new UsageError(`${rest[0]}: the sidecar would refuse this request (${err.message})`);
      }
      throw err;
    }
  }
  let namespace: string | undefined;
  let group = '';
  let container: string | undefined;
  const positional: string[] = [];
  let argv: string[] | undefined;
  for (let i = 0; i < rest.length; i++) {
    const w = rest[i] as string;
    if (w === '--') {
      argv = rest.slice(i + 1);
      break;
    }
    if (w === '-n' || w === '--namespace') namespace = rest[++i];
    else if (w === '-g' || w === '--group') group = rest[++i] ?? '';
    else if (w === '-c' || w === '--container') container = rest[++i];
    else positional.push(w);
  }
  const verb = first.toLowerCase();
  if (verb === 'exec' || verb === 'attach') {
    const pod = positional[0];
    if (!pod) throw new UsageError(`${verb} needs a pod name: "${verb} <pod> [-c container] -- command..."`);
    return {
      protocol: 'exec',
      verb: 'create',
      apiGroup: '',
      resource: 'pods',
      subresource: verb,
      name: pod,
      ...(namespace ? { namespace } : {}),
      exec: { kind: verb, argv: argv ?? [], ...(container ? { container } : {}) },
      ...extra,
    };
  }
  if (!(KUBE_VERBS as readonly string[]).includes(verb)) {
    throw new UsageError(`"${first}" is not a Kubernetes verb, exec, attach or an HTTP method`);
  }
  const [resourcePart, name] = positional;
  if (!resourcePart) throw new UsageError(`"${text}" names no resource; try "${verb} pods"`);
  const [resource, subresource] = resourcePart.split('/');
  return {
    protocol: 'kubernetes',
    verb,
    apiGroup: group,
    ...(resource ? { resource } : {}),
    ...(subresource ? { subresource } : {}),
    ...(name ? { name } : {}),
    ...(namespace ? { namespace } : {}),
    ...extra,
  };
}

/** A request file: one Action object or a list of them, YAML or JSON. */
export function parseRequestFile(text: string): Action[] {
  const doc: unknown = YAML.parse(text);
  const list = Array.isArray(doc) ? doc : [doc];
  return list.map((a, i) => {
    if (
      typeof a !== 'object' ||
      a === null ||
      typeof (a as Action).protocol !== 'string' ||
      typeof (a as Action).verb !== 'string'
    ) {
      throw new UsageError(`request ${i}: needs at least protocol and verb`);
    }
    return a as Action;
  });
}
