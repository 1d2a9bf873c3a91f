import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  impersonationHeaders,
  parseRequestInfo,
  type RequestInfo,
  readQuery,
  readRequestInfo,
  splitTarget,
  toAction,
  UnreadableRequestError,
} from './request-info.ts';

/** The sidecar's reading of a request target, as the request-reading guard does it. */
function read(method: string, target: string): RequestInfo {
  const { path, rawQuery } = splitTarget(target);
  const q = readQuery(rawQuery);
  return readRequestInfo(method, path, q.params, q.problem);
}

function refusal(method: string, target: string): UnreadableRequestError {
  try {
    read(method, target);
  } catch (err) {
    if (err instanceof UnreadableRequestError) return err;
    throw err;
  }
  assert.fail(`${method} ${target} was read, not refused`);
}

// [method, target, expected subset]
const table: [string, string, Record<string, unknown>][] = [
  [
    'GET',
    '/api/v1/namespaces/agents/pods',
    { verb: 'list', apiGroup: '', apiVersion: 'v1', namespace: 'agents', resource: 'pods' },
  ],
  ['GET', '/api/v1/namespaces/agents/pods/web-0', { verb: 'get', resource: 'pods', name: 'web-0' }],
  [
    'GET',
    '/api/v1/namespaces/agents/pods?watch=true&resourceVersion=10',
    { verb: 'watch', resource: 'pods' },
  ],
  ['GET', '/api/v1/namespaces/agents/secrets?watch=1', { verb: 'watch', resource: 'secrets' }],
  // Convert_Slice_string_To_bool: only "0" and "false" (any case) are false; even an empty value is true.
  ['GET', '/api/v1/namespaces/a/secrets?watch=yes', { verb: 'watch' }],
  ['GET', '/api/v1/namespaces/a/secrets?watch=True', { verb: 'watch' }],
  ['GET', '/api/v1/namespaces/a/secrets?watch=FALSE', { verb: 'list' }],
  ['GET', '/api/v1/namespaces/a/secrets?watch=0', { verb: 'list' }],
  ['GET', '/api/v1/namespaces/a/secrets?watch=', { verb: 'watch' }],
  ['GET', '/api/v1/namespaces/a/secrets?watch', { verb: 'watch' }],
  ['GET', '/api/v1/namespaces/a/secrets?watch=%66alse', { verb: 'list' }],
  ['GET', '/api/v1/namespaces/a/secrets?Watch=true', { verb: 'list' }],
  ['HEAD', '/api/v1/namespaces/a/secrets?watch=true', { verb: 'watch' }],
  // With a name the query is not read at all.
  ['GET', '/api/v1/namespaces/a/secrets/db?watch=true', { verb: 'get', name: 'db' }],
  [
    'GET',
    '/api/v1/watch/namespaces/agents/secrets',
    { verb: 'watch', resource: 'secrets', namespace: 'agents' },
  ],
  // The legacy prefixes are the verb whatever the method.
  ['DELETE', '/api/v1/watch/namespaces/a/pods', { verb: 'watch', resource: 'pods' }],
  ['GET', '/api/v1/watch/namespaces/a/pods/p', { verb: 'watch', resource: 'pods', name: 'p' }],
  [
    'GET',
    '/api/v1/proxy/namespaces/a/services/web/metrics/x',
    { verb: 'proxy', resource: 'services', name: 'web', subresource: undefined },
  ],
  ['POST', '/apis/apps/v1/proxy/deployments', { verb: 'proxy', apiGroup: 'apps', resource: 'deployments' }],
  [
    'GET',
    '/api/v1/namespaces/agents/secrets?fieldSelector=metadata.name%3Ddb',
    { verb: 'list', resource: 'secrets', name: 'db' },
  ],
  [
    'GET',
    '/api/v1/namespaces/agents/secrets?fieldSelector=metadata.name%3Ddb&watch=true',
    { verb: 'watch', name: 'db' },
  ],
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3D%3Ddb', { name: 'db' }],
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name!%3Ddb', { name: undefined }],
  // The lhs is not trimmed.
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=+metadata.name%3Ddb', { name: undefined }],
  // Terms are sorted before the first metadata.name requirement is taken.
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Db,metadata.name%3Da', { name: 'a' }],
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=type%3Dx,metadata.name%3Ddb', { name: 'db' }],
  // An invalid selector (a term without operator, an unescaped "=") fails the whole decoding.
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ddb,bad', { name: undefined }],
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Dd%3Db', { name: undefined }],
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Dd%5C%3Db', { name: 'd=b' }],
  // Names that are not valid path segments are not taken.
  [
    'GET',
    '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Da/b',
    { verb: 'list', name: undefined },
  ],
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3D..', { name: undefined }],
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3D', { name: undefined }],
  // The rest of ListOptions must decode too.
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ddb&limit=abc', { name: undefined }],
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ddb&limit=', { name: undefined }],
  [
    'GET',
    '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ddb&timeoutSeconds=99999999999999999999',
    { name: undefined },
  ],
  ['GET', '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ddb&limit=%2B5', { name: 'db' }],
  [
    'GET',
    '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ddb&labelSelector=app%3Dweb,!tier',
    { name: 'db' },
  ],
  // Field selectors are read only for get: a delete without a name is deletecollection.
  [
    'DELETE',
    '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ddb',
    { verb: 'deletecollection', name: undefined },
  ],
  ['POST', '/api/v1/namespaces/agents/configmaps', { verb: 'create', resource: 'configmaps' }],
  [
    'PUT',
    '/api/v1/namespaces/agents/configmaps/chaperone-policy',
    { verb: 'update', name: 'chaperone-policy' },
  ],
  [
    'PATCH',
    '/apis/apps/v1/namespaces/agents/deployments/web/scale',
    {
      verb: 'patch',
      apiGroup: 'apps',
      apiVersion: 'v1',
      resource: 'deployments',
      name: 'web',
      subresource: 'scale',
    },
  ],
  ['DELETE', '/api/v1/namespaces/agents/pods/web-0', { verb: 'delete', name: 'web-0' }],
  ['DELETE', '/api/v1/namespaces/agents/pods', { verb: 'deletecollection', resource: 'pods' }],
  [
    'DELETE',
    '/api/v1/namespaces/agents',
    { verb: 'delete', resource: 'namespaces', name: 'agents', namespace: 'agents' },
  ],
  ['GET', '/api/v1/namespaces', { verb: 'list', resource: 'namespaces', namespace: undefined }],
  [
    'PUT',
    '/api/v1/namespaces/agents/finalize',
    { verb: 'update', resource: 'namespaces', name: 'agents', subresource: 'finalize' },
  ],
  [
    'PUT',
    '/api/v1/namespaces/agents/status',
    { verb: 'update', resource: 'namespaces', name: 'agents', subresource: 'status' },
  ],
  ['GET', '/api/v1/nodes/n1', { verb: 'get', resource: 'nodes', name: 'n1' }],
  [
    'GET',
    '/apis/rbac.authorization.k8s.io/v1/clusterroles',
    { verb: 'list', apiGroup: 'rbac.authorization.k8s.io', resource: 'clusterroles' },
  ],
  [
    'DELETE',
    '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/chaperone',
    { verb: 'delete', resource: 'mutatingwebhookconfigurations', name: 'chaperone' },
  ],
  [
    'PATCH',
    '/api/v1/namespaces/agents/pods/a/ephemeralcontainers',
    { verb: 'patch', subresource: 'ephemeralcontainers' },
  ],
  ['GET', '/api/v1/namespaces/agents/pods/a/log?follow=true', { verb: 'get', subresource: 'log' }],
  [
    'GET',
    '/api/v1/namespaces/agents/services/web:80/proxy/metrics',
    { verb: 'get', resource: 'services', name: 'web:80', subresource: 'proxy' },
  ],
  // Percent-encoded safe characters are decoded first, as the server does.
  ['GET', '/api/v1/namespaces/a/%73ecrets/d%62', { resource: 'secrets', name: 'db' }],
  ['GET', '/api/v1/namespaces/a/roles/system%3Aview', { resource: 'roles', name: 'system:view' }],
  ['GET', '/api/v1/namespaces/agents/pods/', { verb: 'list', resource: 'pods' }],
  // Case matters: "API" is not an API prefix, "Namespaces" is a resource.
  ['GET', '/API/v1/pods', { isResourceRequest: false, path: '/API/v1/pods' }],
  ['GET', '/api/v1/Namespaces/a/pods', { resource: 'Namespaces', name: 'a', subresource: 'pods' }],
  // Non-resource requests: the verb is the lower-cased method.
  ['GET', '/api', { isResourceRequest: false, path: '/api', verb: 'get' }],
  ['HEAD', '/version', { isResourceRequest: false, path: '/version', verb: 'head' }],
  ['POST', '/version', { isResourceRequest: false, verb: 'post' }],
  ['GET', '/api/v1', { isResourceRequest: false, path: '/api/v1' }],
  ['GET', '/apis', { isResourceRequest: false, path: '/apis' }],
  ['GET', '/apis/apps/v1', { isResourceRequest: false, path: '/apis/apps/v1' }],
  ['GET', '/apis/apps/v1/', { isResourceRequest: false, path: '/apis/apps/v1/' }],
  ['GET', '/version', { isResourceRequest: false, path: '/version' }],
  ['GET', '/openapi/v2', { isResourceRequest: false, path: '/openapi/v2' }],
  ['GET', '/healthz/etcd', { isResourceRequest: false, path: '/healthz/etcd' }],
  ['GET', '/', { isResourceRequest: false, path: '/' }],
  [
    'POST',
    '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
    { verb: 'create', resource: 'selfsubjectaccessreviews' },
  ],
];

// [method, target, what the refusal names]
const refused: [string, string, RegExp][] = [
  ['GET', '/api/v1/namespaces/a/secrets%2Fdb', /%2F, an encoded "\/"/],
  ['GET', '/api/v1/namespaces/a/secrets%2fdb', /%2f, an encoded "\/"/],
  ['GET', '/api/v1/namespaces/a%2Fsecrets', /encoded "\/"/],
  ['GET', '/api/v1/namespaces//secrets', /empty segment/],
  ['GET', '//api/v1/secrets', /empty segment/],
  ['GET', '/api/v1/secrets//', /empty segment/],
  ['GET', '//', /empty segment/],
  ['GET', '/api/v1/namespaces/a/secrets/./db', /"\." segment/],
  ['GET', '/api/v1/namespaces/a/configmaps/../secrets', /"\.\." segment/],
  ['GET', '/api/v1/namespaces/a/secrets/%2E%2E', /"\.\." segment/],
  ['GET', '/api/v1/namespaces/a/secrets/%25', /encoded "%"/],
  ['GET', '/api/v1/namespaces/a/secrets/a%20b', /a space/],
  ['GET', '/api/v1/namespaces/a/secrets/a%00b', /control character 0x00/],
  ['GET', '/api/v1/namespaces/a/secrets/%C3%A9', /non-ASCII/],
  ['GET', '/api/v1/namespaces/a/secrets/%3Fx', /"\?"/],
  ['GET', '/api/v1/namespaces/a/secrets/%zz', /not followed by two hex digits/],
  ['GET', '/api/v1/namespaces/a/secrets/db#frag', /"#"/],
  ['GET', '/api/v1/watch', /legacy \/watch\/ prefix/],
  ['GET', '/apis/apps/v1/proxy/', /legacy \/proxy\/ prefix/],
  ['GET', '/api/v1/namespaces/a/secrets?a=b;watch=true', /";"/],
  ['GET', '/api/v1/namespaces/a/secrets?watch=true&watch=false', /"watch" more than once/],
  [
    'GET',
    '/api/v1/namespaces/a/secrets?fieldSelector=a%3Db&fieldSelector=metadata.name%3Ddb',
    /"fieldSelector" more than once/,
  ],
  ['GET', '/api/v1/namespaces/a/secrets?x=%zz', /not followed by two hex digits/],
  ['GET', '/api/v1/namespaces/a/secrets?x=%FF', /not valid UTF-8/],
  ['GET', '/api/v1/namespaces/a/secrets?x=a b', /a space/],
  ['GET', '/api/v1/namespaces/a/secrets?watch=fal%C5%BFe', /watch parameter is not ASCII/],
  [
    'GET',
    '/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ddb&labelSelector=app+in+(a)',
    /labelSelector/,
  ],
  ['get', '/api/v1/pods', /method "get"/],
  ['OPTIONS', '/api/v1/pods', /method "OPTIONS"/],
  ['CONNECT', '/api/v1/pods', /method "CONNECT"/],
];

describe('request reading', () => {
  for (const [method, target, expected] of table) {
    it(`${method} ${target}`, () => {
      const got = read(method, target) as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(expected))
        assert.deepEqual(got[k], v, `${k} of ${method} ${target}: ${JSON.stringify(got)}`);
      if (expected.isResourceRequest === undefined) assert.equal(got.isResourceRequest, true);
    });
  }

  for (const [method, target, names] of refused) {
    it(`refuses ${method} ${target}`, () => {
      const err = refusal(method, target);
      assert.match(err.message, names);
      assert.match(err.message, /^chaperone: /);
      assert.equal(
        err.status,
        ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method) ? 400 : 405,
      );
    });
  }

  it('splits the query as Go ≥ 1.17 does: "&" only, ";" and bad escapes drop their pair, "+" is a space', () => {
    const q = readQuery('a=1&b=x+y&&c;d=2&e=%zz&f&g=%2B&a=3');
    assert.deepEqual(
      [...q.params],
      [
        ['a', '1'],
        ['b', 'x y'],
        ['f', ''],
        ['g', '+'],
        ['a', '3'],
      ],
    );
    assert.match(q.problem ?? '', /";"/);
    assert.equal(readQuery('a=1&a=2&limit=5').problem, undefined);
  });

  it('reads exec, attach and port-forward targets from the query', () => {
    const exec = read(
      'GET',
      '/api/v1/namespaces/a/pods/p/exec?command=sh&command=-c&command=rm%20-rf%20%2F&container=app&stdin=true&tty=true',
    );
    assert.deepEqual(exec.exec, { kind: 'exec', argv: ['sh', '-c', 'rm -rf /'], container: 'app' });
    assert.equal(exec.subresource, 'exec');
    const attach = read('POST', '/api/v1/namespaces/a/pods/p/attach?container=chaperone-sidecar');
    assert.deepEqual(attach.exec, { kind: 'attach', argv: [], container: 'chaperone-sidecar' });
    const pf = read('GET', '/api/v1/namespaces/a/pods/p/portforward?ports=8080&ports=9090,9091');
    assert.deepEqual(pf.exec, { kind: 'portforward', argv: [], ports: [8080, 9090, 9091] });
    // Ports read as the API server reads them (decimal digits): these name none. Fails with Number().
    const loose = read('GET', '/api/v1/namespaces/a/pods/p/portforward?ports=0x1F90&ports=%2080,1e3,');
    assert.deepEqual(loose.exec, { kind: 'portforward', argv: [], ports: [] });
    // An empty container= names no container, as the API server reads it.
    const unnamed = read('GET', '/api/v1/namespaces/a/pods/p/exec?command=ls&container=');
    assert.deepEqual(unnamed.exec, { kind: 'exec', argv: ['ls'] });
  });

  it('parseRequestInfo throws on a path it refuses, whoever calls it', () => {
    assert.throws(
      () => parseRequestInfo('GET', '/api/v1/namespaces//secrets', new URLSearchParams()),
      UnreadableRequestError,
    );
  });

  it('turns request info into actions: exec sessions become the exec protocol with verb create', () => {
    const a = toAction(read('GET', '/api/v1/namespaces/a/pods/p/exec?command=ls'), {
      user: 'system:serviceaccount:a:agent',
    });
    assert.equal(a.protocol, 'exec');
    assert.equal(a.verb, 'create');
    assert.deepEqual(a.exec?.argv, ['ls']);
    assert.equal(a.user, 'system:serviceaccount:a:agent');
    const nr = toAction(read('GET', '/version'), {});
    assert.deepEqual(nr, { protocol: 'kubernetes', verb: 'get', nonResourceURL: '/version' });
    const imp = toAction(read('GET', '/api/v1/pods'), { impersonation: ['Impersonate-User'] });
    assert.deepEqual(imp.impersonation, ['Impersonate-User']);
  });

  it('finds impersonation headers in any case', () => {
    assert.deepEqual(
      impersonationHeaders({
        'impersonate-user': 'x',
        'Impersonate-Extra-Scopes': 'y',
        accept: 'z',
        'impersonate-uid': 'u',
      }),
      ['impersonate-user', 'Impersonate-Extra-Scopes', 'impersonate-uid'],
    );
  });
});

/**
 * A literal transcription of the server's reading of a path (decode the whole
 * path, trim slashes, split, no refusals), for the property below: whatever
 * the sidecar does not refuse, it must read like this.
 */
function serverPathReading(method: string, rawPath: string) {
  const bytes: number[] = [];
  for (let i = 0; i < rawPath.length; i++) {
    if (rawPath[i] === '%') {
      bytes.push(Number.parseInt(rawPath.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(rawPath.charCodeAt(i));
  }
  const path = Buffer.from(bytes).toString('latin1');
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  const parts = trimmed === '' ? [] : trimmed.split('/');
  const out: Record<string, string> = { verb: method.toLowerCase() };
  if (parts.length < 3 || (parts[0] !== 'api' && parts[0] !== 'apis')) return out;
  let rest = parts.slice(1);
  if (parts[0] === 'apis') {
    if (rest.length < 3) return out;
    out.apiGroup = rest[0] as string;
    rest = rest.slice(1);
  }
  out.apiVersion = rest[0] as string;
  rest = rest.slice(1);
  if (rest[0] === 'watch' || rest[0] === 'proxy') {
    out.verb = rest[0];
    rest = rest.slice(1);
  } else {
    out.verb = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' }[
      method
    ] as string;
  }
  if (rest[0] === 'namespaces' && rest.length > 1) {
    out.namespace = rest[1] as string;
    if (rest.length > 2 && rest[2] !== 'status' && rest[2] !== 'finalize') rest = rest.slice(2);
  }
  if (rest.length >= 3 && out.verb !== 'proxy') out.subresource = rest[2] as string;
  if (rest.length >= 2) out.name = rest[1] as string;
  if (rest.length >= 1) out.resource = rest[0] as string;
  if (!out.name && out.verb === 'get') out.verb = 'list';
  if (!out.name && out.verb === 'delete') out.verb = 'deletecollection';
  return out;
}

describe('request reading (property)', () => {
  const segment = fc.constantFrom(
    'api',
    'apis',
    'v1',
    'apps',
    'namespaces',
    'a',
    'secrets',
    'db',
    'status',
    'watch',
    'proxy',
    '.',
    '..',
    '',
    'x:y',
  );
  /** Every character of a segment possibly percent-encoded, in either case; an occasional raw odd byte. */
  const encoded = (s: string) =>
    fc
      .array(fc.constantFrom<'raw' | 'upper' | 'lower'>('raw', 'raw', 'upper', 'lower'), {
        minLength: s.length,
        maxLength: s.length,
      })
      .map((how) =>
        [...s]
          .map((ch, i) => {
            const hex = ch.charCodeAt(0).toString(16).padStart(2, '0');
            return how[i] === 'raw' ? ch : `%${how[i] === 'upper' ? hex.toUpperCase() : hex}`;
          })
          .join(''),
      );
  const target = fc
    .tuple(
      fc.array(
        fc.oneof(segment.chain(encoded), fc.constantFrom('%2F', '%2f', '%25', '%20', '%00', 'secrets%2Fdb')),
        { maxLength: 8 },
      ),
      fc.boolean(),
      fc.boolean(),
    )
    .map(([segs, lead, trail]) => `${lead ? '//' : '/'}${segs.join('/')}${trail ? '/' : ''}`);

  it('whatever is not refused reads as the server reads it (fixed seed)', () => {
    fc.assert(
      fc.property(fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'), target, (method, t) => {
        let info: RequestInfo;
        try {
          info = read(method, t);
        } catch (err) {
          if (err instanceof UnreadableRequestError) return;
          throw err;
        }
        const want = serverPathReading(method, t);
        const got: Record<string, string> = { verb: info.verb };
        if (info.isResourceRequest) {
          if (info.apiGroup) got.apiGroup = info.apiGroup;
          got.apiVersion = info.apiVersion;
          for (const k of ['namespace', 'resource', 'subresource', 'name'] as const) {
            const v = info[k];
            if (v !== undefined) got[k] = v;
          }
        }
        assert.deepEqual(got, want, t);
      }),
      { seed: 20_250_101, numRuns: 5000 },
    );
  });
});
