/**
 * Pod specs wherever they sit in an object the guard does not know the
 * meaning of (custom resources, aggregated APIs): an operator may start pods
 * from any of them. A pod spec is an object with a `containers` or
 * `initContainers` array; its template metadata, when it is the `spec` of an
 * object that has `metadata`, is that object's. Pure.
 */
import { isObject as isObj } from '../check.ts';
import type { PodTemplate } from './workload-escapes.ts';

type Obj = Record<string, unknown>;

/** Deeper than this the object is not read (an API server answer is never near it). */
const MAX_DEPTH = 256;

export class TooDeepError extends Error {
  constructor() {
    super(`the object nests deeper than ${MAX_DEPTH} levels`);
    this.name = 'TooDeepError';
  }
}

function member(path: string, key: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === '' ? key : `${path}.${key}`;
}

/** Every pod spec in `obj`, each as a template with its dotted path; throws TooDeepError past the limit. */
export function podSpecsIn(obj: unknown): PodTemplate[] {
  const out: PodTemplate[] = [];
  const walk = (v: unknown, path: string, parent: Obj | undefined, key: string, depth: number) => {
    if (depth > MAX_DEPTH) throw new TooDeepError();
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        walk(x, `${path}[${i}]`, undefined, '', depth + 1);
      });
      return;
    }
    if (!isObj(v)) return;
    if (Array.isArray(v.containers) || Array.isArray(v.initContainers)) {
      const templated = key === 'spec' && parent !== undefined;
      out.push({
        metadata: templated && isObj(parent.metadata) ? parent.metadata : {},
        spec: v,
        // The holder of the spec (where its metadata is), or the spec itself.
        path: templated ? path.slice(0, Math.max(0, path.length - '.spec'.length)) : path,
        specPath: path,
      });
    }
    for (const [k, x] of Object.entries(v)) walk(x, member(path, k), v, k, depth + 1);
  };
  walk(obj, '', undefined, '', 0);
  return out;
}
