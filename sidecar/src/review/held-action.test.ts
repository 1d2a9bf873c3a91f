import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Action, approvalFingerprint, MAX_HELD_BODY_CHARS } from '@chaperone/shared';
import { actionDigest } from './action-digest.ts';
import { describeParams } from './bind-params.ts';
import { clip, type KubeRequestBytes, kubeHeld, sqlHeld } from './held-action.ts';

const digest = actionDigest();
const fp = (h: ReturnType<typeof kubeHeld>) => approvalFingerprint(h.protocol, h.action);
// Fixtures in the shape of real credentials (not live ones).
const GHP = `ghp_${'16C7e42F292c6912E7710c838347Ae178B4a'}`;
const AKIA = `AKIA${'IOSFODNN7EXAMPLE'}`;

const patch: Action = {
  protocol: 'kubernetes',
  verb: 'patch',
  apiGroup: 'apps',
  resource: 'deployments',
  namespace: 'shop',
  name: 'web',
};

function request(method: string, rawQuery: string, body?: string): KubeRequestBytes {
  return {
    method,
    rawQuery,
    query: new URLSearchParams(rawQuery),
    ...(body !== undefined
      ? { body: { bytes: Buffer.from(body), contentType: 'application/json', maskFields: [] } }
      : {}),
  };
}

function exec(argv: string[], over: Partial<NonNullable<Action['exec']>> = {}): Action {
  return {
    protocol: 'exec',
    verb: 'create',
    resource: 'pods',
    subresource: 'exec',
    namespace: 'shop',
    name: 'web-0',
    exec: { kind: 'exec', argv, container: 'main', tty: false, stdin: false, ...over },
  };
}

describe('held actions', () => {
  it('describes a Kubernetes request by verb, object, query and body', () => {
    const h = kubeHeld(
      { ...patch, subresource: 'scale', user: 'system:serviceaccount:shop:agent' },
      digest,
      request('PATCH', 'fieldManager=kubectl-scale', '{"spec":{"replicas":3}}'),
    );
    assert.equal(h.protocol, 'kubernetes');
    // Who the agent is comes from the verified token, never from the request.
    const { digest: d, ...shown } = h.action;
    assert.deepEqual(shown, {
      verb: 'patch',
      apiGroup: 'apps',
      resource: 'deployments',
      subresource: 'scale',
      namespace: 'shop',
      name: 'web',
      query: ['fieldManager=kubectl-scale'],
      body: '{\n  "spec": {\n    "replicas": 3\n  }\n}',
    });
    assert.match(d ?? '', /^[0-9a-f]{64}$/);
    assert.equal(h.summary, 'patch deployments.apps/scale web -n shop ?fieldManager=kubectl-scale');
  });

  it('gives different bodies or queries on the same object different fingerprints, the same request the same', () => {
    const label = kubeHeld(
      patch,
      digest,
      request('PATCH', '', '{"metadata":{"labels":{"tier":"frontend"}}}'),
    );
    const image = kubeHeld(
      patch,
      digest,
      request('PATCH', '', '{"spec":{"template":{"spec":{"containers":[{"name":"pause","image":"x"}]}}}}'),
    );
    assert.notEqual(fp(label), fp(image));
    assert.equal(
      fp(label),
      fp(kubeHeld(patch, digest, request('PATCH', '', '{"metadata":{"labels":{"tier":"frontend"}}}'))),
    );
    const all: Action = { ...patch, verb: 'deletecollection', name: undefined };
    const some = kubeHeld(all, digest, request('DELETE', 'labelSelector=track%3Dcanary'));
    const every = kubeHeld(all, digest, request('DELETE', ''));
    assert.notEqual(fp(some), fp(every));
    assert.deepEqual(some.action.query, ['labelSelector=track=canary']);
    // Within the contract's bounds however many parameters there are.
    const many = kubeHeld(
      all,
      digest,
      request('GET', Array.from({ length: 100 }, (_, i) => `p${i}=x`).join('&')),
    );
    assert.equal(many.action.query?.length, 64);
    assert.equal(many.action.query?.at(-1), '… 37 more parameters not shown');
    // Bytes that read the same once decoded are still other bytes.
    assert.notEqual(fp(some), fp(kubeHeld(all, digest, request('DELETE', 'labelSelector=track=canary'))));
    // The same bytes under another patch type change other things.
    const merge = request('PATCH', '', '{"metadata":{"labels":{"tier":"frontend"}}}');
    const strategic = {
      ...merge,
      body: {
        ...(merge.body as NonNullable<KubeRequestBytes['body']>),
        contentType: 'application/strategic-merge-patch+json',
      },
    };
    assert.notEqual(fp(label), fp(kubeHeld(patch, digest, strategic)));
    // Another sidecar (another key) gives another digest: nobody can test a guess without the key.
    assert.notEqual(
      fp(label),
      fp(
        kubeHeld(patch, actionDigest(), request('PATCH', '', '{"metadata":{"labels":{"tier":"frontend"}}}')),
      ),
    );
  });

  it("never carries a Secret's values or a detected credential in a body or query", () => {
    const secret: Action = { ...patch, apiGroup: '', resource: 'secrets', verb: 'create', name: undefined };
    const body = JSON.stringify({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'db', annotations: { note: `token ${GHP}` } },
      data: { password: Buffer.from('hunter2-value').toString('base64') },
      stringData: { key: AKIA },
    });
    const h = kubeHeld(secret, digest, request('POST', `dryRun=All&note=${AKIA}`, body));
    const text = JSON.stringify(h);
    for (const v of [GHP, AKIA, Buffer.from('hunter2-value').toString('base64'), 'hunter2'])
      assert.ok(!text.includes(v), `${v} leaked: ${text}`);
    assert.match(h.action.body ?? '', /"password": "KiptYXNrZWQqKg=="/);
    assert.match(h.action.body ?? '', /\[masked:github-token\]/);
    // A JSON patch of a Secret has every value masked.
    const p = kubeHeld(
      { ...secret, verb: 'patch', name: 'db' },
      digest,
      request(
        'PATCH',
        '',
        JSON.stringify([{ op: 'replace', path: '/data/password', value: 'c2VjcmV0LXZhbHVl' }]),
      ),
    );
    assert.ok(!JSON.stringify(p).includes('c2VjcmV0LXZhbHVl'));
  });

  it('cuts a long body, saying how much was left out', () => {
    const big = JSON.stringify({ data: 'x'.repeat(40_000) });
    const h = kubeHeld(patch, digest, request('PATCH', '', big));
    assert.ok((h.action.body ?? '').length <= MAX_HELD_BODY_CHARS);
    assert.match(h.action.body ?? '', /more characters not shown\]$/);
  });

  it('describes an exec session by its argv (masked), container, stdin and tty', () => {
    const h = kubeHeld(exec(['sh', '-c', 'rm -rf /tmp/x'], { stdin: true, tty: true }), digest);
    assert.equal(h.protocol, 'exec');
    const { digest: d, ...shown } = h.action;
    assert.deepEqual(shown, {
      verb: 'exec',
      namespace: 'shop',
      name: 'web-0',
      argv: ['sh', '-c', 'rm -rf /tmp/x'],
      container: 'main',
      stdin: true,
      tty: true,
    });
    assert.match(d ?? '', /^[0-9a-f]{64}$/);
    assert.equal(h.summary, 'exec -n shop web-0 -c main -- sh -c rm -rf /tmp/x');
  });

  it('masks credentials in argv, and the digest still tells two of them apart', () => {
    const a = kubeHeld(
      exec(['sh', '-c', `curl -H "Authorization: token ${GHP}" https://x\nsecond line`]),
      digest,
    );
    const b = kubeHeld(
      exec(['sh', '-c', `curl -H "Authorization: token ${GHP.replace('a', 'b')}" https://x\nsecond line`]),
      digest,
    );
    const k = kubeHeld(exec(['env', `AWS_ACCESS_KEY_ID=${AKIA}`, 'aws', 's3', 'ls']), digest);
    for (const h of [a, b, k]) {
      const text = JSON.stringify(h);
      assert.ok(!text.includes(GHP) && !text.includes(AKIA), text);
    }
    assert.deepEqual(a.action.argv, b.action.argv);
    assert.notEqual(fp(a), fp(b));
    assert.equal(
      fp(a),
      fp(
        kubeHeld(exec(['sh', '-c', `curl -H "Authorization: token ${GHP}" https://x\nsecond line`]), digest),
      ),
    );
    // The summary is one line: a line break in argv cannot fake lines after it.
    assert.ok(!a.summary.includes('\n'));
    assert.notEqual(fp(kubeHeld(exec(['sh'], { stdin: true }), digest)), fp(kubeHeld(exec(['sh']), digest)));
  });

  it('clips a long summary keeping its start and its end', () => {
    const h = kubeHeld(exec(['sh', '-c', `echo ${'a'.repeat(2000)}; rm -rf /data`]), digest);
    assert.equal(h.summary.length, 1024);
    assert.ok(h.summary.startsWith('exec -n shop web-0'));
    assert.ok(h.summary.endsWith('rm -rf /data'));
    assert.match(h.summary, /a…a/);
    assert.equal(clip('abcdef', 5), 'ab…ef');
  });

  it('names a non-resource request by its path', () => {
    const h = kubeHeld({ protocol: 'kubernetes', verb: 'get', nonResourceURL: '/logs/kube.log' }, digest);
    assert.deepEqual(h.action, { verb: 'get', name: '/logs/kube.log' });
  });

  it('gives the same action the same fingerprint, whatever members were left empty', () => {
    const a = kubeHeld({ ...patch, verb: 'delete', apiGroup: '' }, digest, request('DELETE', ''));
    const b = kubeHeld({ ...patch, verb: 'delete', apiGroup: undefined }, digest, request('DELETE', ''));
    assert.equal(fp(a), fp(b));
  });

  it('describes a SQL statement normalised, with its database, and pins its text by the digest', () => {
    const d1 = digest(['postgres', 'app', "UPDATE users SET role = 'viewer' WHERE id = 42", '0']);
    const d2 = digest(['postgres', 'app', "UPDATE users SET role = 'superuser' WHERE id = 1", '0']);
    const sql = 'UPDATE users SET role = $1 WHERE id = $2';
    const h = sqlHeld({ kind: 'UpdateStmt', normalized: sql, database: 'app', digest: d1 });
    assert.deepEqual(h.action, { verb: 'UpdateStmt', sql, database: 'app', digest: d1 });
    assert.equal(h.summary, 'app: UPDATE users SET role = $1 WHERE id = $2');
    const other = sqlHeld({ kind: 'UpdateStmt', normalized: sql, database: 'app', digest: d2 });
    assert.notEqual(approvalFingerprint('postgres', h.action), approvalFingerprint('postgres', other.action));
  });

  it("describes a Bind's parameters: short plain values shown, long, binary or detected ones only measured", () => {
    const lines = describeParams({
      params: [
        Buffer.from('viewer'),
        null,
        Buffer.from(AKIA),
        Buffer.from('x'.repeat(65)),
        Buffer.from([0, 0, 0, 7]),
      ],
      formats: [0, 0, 0, 0, 1],
      types: [25, 23],
    });
    assert.deepEqual(lines, [
      '$1 type 25 text 6 bytes: "viewer"',
      '$2 type 23 NULL',
      '$3 type 0 text 20 bytes (value not shown)',
      '$4 type 0 text 65 bytes (value not shown)',
      '$5 type 0 binary 4 bytes',
    ]);
    const h = sqlHeld({
      kind: 'UpdateStmt',
      normalized: 'UPDATE t SET a = $1',
      database: 'app',
      digest: 'f'.repeat(64),
      params: lines,
    });
    assert.deepEqual(h.action.params, lines);
    assert.equal(h.summary, 'app: UPDATE t SET a = $1 [5 parameters]');
  });
});
