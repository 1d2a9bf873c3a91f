// The object check inside the real pipeline, against a stand-in API server
// that records what it is sent: the order of the calls (current object, dry
// run, write), that the write carries exactly the dry run's preconditioned
// body, and the refusals. The real API server's side is in
// e2e/src/guard-escapes.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { readSpoolDir } from '../../audit/spool.ts';
import { startTestPipeline } from '../test-pipeline.ts';

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: t }
spec:
  defaultAction: allow
`;

interface Seen {
  method: string;
  url: string;
  type: string;
  body: string;
  auditID: string;
}

type Route = (req: IncomingMessage, res: ServerResponse, body: string) => boolean;

const VALUE = 'hunter2-correct-horse-battery';
const VALUE_B64 = Buffer.from(VALUE).toString('base64');
const SECRET = {
  kind: 'Secret',
  metadata: { name: 's', namespace: 'a', resourceVersion: '9' },
  data: { password: VALUE_B64 },
  type: 'Opaque',
};
/** The shape of the API server's answer to a JSON patch that fails on a Secret: the object, quoted. */
const QUOTING_ERROR = {
  kind: 'Status',
  apiVersion: 'v1',
  metadata: {},
  status: 'Failure',
  message: `Secret "s" is invalid: patch: Invalid value: "{\\"data\\":{\\"password\\":\\"${VALUE_B64}\\"}}"`,
  reason: 'Invalid',
  details: {
    name: 's',
    kind: 'secrets',
    causes: [
      { reason: 'FieldValueInvalid', message: `Invalid value: "${VALUE_B64}"`, field: 'metadata.labels' },
    ],
  },
  code: 422,
};

const DEPLOYMENT = {
  kind: 'Deployment',
  metadata: { name: 'web', resourceVersion: '7' },
  spec: {
    template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'a', image: 'x' }] } },
  },
};

describe('object check', () => {
  const ca = createCA({ commonName: 'test' });
  const leaf = issueCertificate({ ca, commonName: 'api', ipAddresses: ['127.0.0.1'] });
  let dir: string;
  let server: ReturnType<typeof createServer>;
  let seen: Seen[] = [];
  let dryResult: unknown = DEPLOYMENT;
  let namespaceStatus = 200;
  /** A test's own answers, tried first. */
  let custom: Route | undefined;
  let base = '';
  let spoolDir = '';
  let close: () => Promise<void> = async () => {};

  const answer = (res: ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const route = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const url = req.url ?? '';
    seen.push({
      method: req.method ?? '',
      url,
      type: String(req.headers['content-type'] ?? ''),
      body,
      auditID: String(req.headers['audit-id'] ?? ''),
    });
    if (custom?.(req, res, body)) return;
    if (url.startsWith('/api/v1/namespaces/a') && !url.includes('/apis') && url.split('/').length === 5) {
      return answer(res, namespaceStatus, { metadata: { labels: { 'chaperone.dev/inject': 'enabled' } } });
    }
    if (req.method === 'GET') return answer(res, 200, DEPLOYMENT);
    if (url.includes('dryRun=All')) return answer(res, 200, dryResult);
    return answer(res, 200, JSON.parse(body || '{}'));
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'object-check-'));
    writeFileSync(join(dir, 'token'), 'real-token');
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    server = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => route(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const sc = await startTestPipeline({
      dir,
      upstreamUrl: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
      ca: ca.cert,
      maxRequestBytes: 64 * 1024,
    });
    spoolDir = sc.spoolDir;
    base = sc.base;
    close = sc.close;
  });
  after(async () => {
    await close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const send = async (method: string, path: string, body: string, type: string) => {
    const res = await fetch(`${base}${path}`, { method, body, headers: { 'content-type': type } });
    const text = await res.text();
    return {
      status: res.status,
      text,
      body: JSON.parse(text) as {
        message?: string;
        reason?: string;
        details?: { causes?: { message?: string; field?: string }[] };
      },
    };
  };
  const lastEvent = async () => {
    await new Promise((res) => setTimeout(res, 20));
    return readSpoolDir(spoolDir).at(-1);
  };
  const DEP = '/apis/apps/v1/namespaces/a/deployments/web';

  it('a merge patch: current object, a preconditioned dry run, then the same body for real', async () => {
    seen = [];
    dryResult = DEPLOYMENT;
    const r = await send(
      'PATCH',
      `${DEP}?fieldManager=k`,
      '{"metadata":{"labels":{"x":"y"}}}',
      'application/merge-patch+json',
    );
    assert.equal(r.status, 200);
    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url}`),
      [
        `GET ${DEP}`,
        `PATCH ${DEP}?fieldManager=k&dryRun=All`,
        'GET /api/v1/namespaces/a',
        `PATCH ${DEP}?fieldManager=k`,
      ],
    );
    const [, dry, , real] = seen;
    assert.equal(dry?.body, '{"metadata":{"resourceVersion":"7","labels":{"x":"y"}}}');
    assert.equal(real?.body, dry?.body);
    assert.equal(real?.type, 'application/merge-patch+json');
  });

  it('a JSON patch gets a last replace of the resourceVersion', async () => {
    seen = [];
    const r = await send(
      'PATCH',
      DEP,
      '[{"op":"add","path":"/metadata/labels/x","value":"y"}]',
      'application/json-patch+json',
    );
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(seen.at(-1)?.body ?? ''), [
      { op: 'add', path: '/metadata/labels/x', value: 'y' },
      { op: 'replace', path: '/metadata/resourceVersion', value: '7' },
    ]);
  });

  it('a JSON patch that sets the resourceVersion holds itself to it: a stale one is a 409, a current one is sent as it is', async () => {
    seen = [];
    const ops = (rv: string) => [
      { op: 'replace', path: '/metadata/resourceVersion', value: rv },
      { op: 'add', path: '/metadata/labels/x', value: 'y' },
    ];
    const stale = await send('PATCH', DEP, JSON.stringify(ops('3')), 'application/json-patch+json');
    assert.equal(stale.status, 409);
    assert.match(stale.body.message ?? '', /resourceVersion 3 is not the current 7/);
    assert.deepEqual(
      seen.map((x) => x.method),
      ['GET'],
    );
    // At the version read: sent as the agent wrote it; a conflict at the write is the agent's, not tried again.
    seen = [];
    custom = (req, res) => {
      if (req.method !== 'PATCH' || (req.url ?? '').includes('dryRun')) return false;
      answer(res, 409, {
        kind: 'Status',
        status: 'Failure',
        reason: 'Conflict',
        code: 409,
        message: 'modified',
      });
      return true;
    };
    try {
      const r = await send('PATCH', DEP, JSON.stringify(ops('7')), 'application/json-patch+json');
      assert.equal(r.status, 409);
      assert.equal(seen.filter((x) => x.method === 'GET' && x.url === DEP).length, 1);
      assert.deepEqual(JSON.parse(seen.at(-1)?.body ?? ''), ops('7'));
    } finally {
      custom = undefined;
    }
  });

  it('a JSON patch that copies or moves a value into the resourceVersion is refused; one that removes it gets the precondition', async () => {
    for (const op of [
      { op: 'copy', from: '/metadata/labels/v', path: '/metadata/resourceVersion' },
      { op: 'move', from: '/metadata/labels/v', path: '/metadata/resourceVersion' },
      { op: 'copy', from: '/spec/template/metadata', path: '/metadata' },
      { op: 'move', from: '/spec', path: '' },
    ]) {
      seen = [];
      const r = await send('PATCH', DEP, JSON.stringify([op]), 'application/json-patch+json');
      assert.equal(r.status, 400, JSON.stringify(op));
      assert.match(r.body.message ?? '', /copies or moves a value to/);
      assert.deepEqual(
        seen.map((x) => x.method),
        ['GET'],
      );
    }
    // A version set, then removed, or moved out of the object (as good as a remove): the last word is
    // the removal, so the guard's precondition goes after it.
    const removals = [
      [
        { op: 'replace', path: '/metadata/resourceVersion', value: '3' },
        { op: 'remove', path: '/metadata/resourceVersion' },
      ],
      [
        { op: 'replace', path: '/metadata/resourceVersion', value: '7' },
        { op: 'move', from: '/metadata/resourceVersion', path: '/metadata/labels/v' },
      ],
    ];
    for (const ops of removals) {
      seen = [];
      const r = await send('PATCH', DEP, JSON.stringify(ops), 'application/json-patch+json');
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(seen.at(-1)?.body ?? ''), [
        ...ops,
        { op: 'replace', path: '/metadata/resourceVersion', value: '7' },
      ]);
    }
    // A key that only begins like it is another key: its copy is no version.
    seen = [];
    const other = [{ op: 'copy', from: '/metadata/name', path: '/metadata/resourceVersionNote' }];
    assert.equal(
      (await send('PATCH', DEP, JSON.stringify(other), 'application/json-patch+json')).status,
      200,
    );
    // A whole object replaced holds itself to the version it carries.
    seen = [];
    const whole = [
      {
        op: 'replace',
        path: '',
        value: { ...DEPLOYMENT, metadata: { ...DEPLOYMENT.metadata, resourceVersion: '3' } },
      },
    ];
    const stale = await send('PATCH', DEP, JSON.stringify(whole), 'application/json-patch+json');
    assert.equal(stale.status, 409);
    assert.match(stale.body.message ?? '', /resourceVersion 3 is not the current 7/);
  });

  it('refuses what the dry run shows, and records the rule', async () => {
    seen = [];
    dryResult = { ...DEPLOYMENT, spec: { template: { spec: { hostNetwork: true } } } };
    const r = await send(
      'PATCH',
      DEP,
      '{"spec":{"template":{"spec":{"hostNetwork":true}}}}',
      'application/strategic-merge-patch+json',
    );
    assert.equal(r.status, 403);
    assert.match(r.body.message ?? '', /denied by rule "chaperone-no-host-namespaces"/);
    assert.equal(seen.filter((s) => s.method === 'PATCH' && !s.url.includes('dryRun')).length, 0);
    await new Promise((res) => setTimeout(res, 20));
    const last = readSpoolDir(spoolDir).at(-1);
    assert.equal(last?.chaperone?.decision?.action, 'deny');
    assert.equal(last?.chaperone?.decision?.rule, 'chaperone-no-host-namespaces');
  });

  it('a stale resourceVersion in the patch is a 409 before anything is written', async () => {
    seen = [];
    const r = await send(
      'PATCH',
      DEP,
      '{"metadata":{"resourceVersion":"3"}}',
      'application/merge-patch+json',
    );
    assert.equal(r.status, 409);
    assert.deepEqual(
      seen.map((s) => s.method),
      ['GET'],
    );
  });

  describe('the object changed under the guard (a controller wrote its status meanwhile)', () => {
    const CONFLICT = {
      kind: 'Status',
      status: 'Failure',
      reason: 'Conflict',
      code: 409,
      message: 'modified',
    };
    /** The stored object's resourceVersion, moved on by each conflict. */
    let rv = 7;
    /** Answers a 409 to the first `n` writes (dry runs or real) that carry a precondition. */
    const conflicts = (n: number, which: 'dry' | 'real' | 'both') => {
      let left = n;
      rv = 7;
      dryResult = DEPLOYMENT;
      custom = (req, res, body) => {
        if (req.method === 'GET' && (req.url ?? '').startsWith(DEP)) {
          answer(res, 200, {
            ...DEPLOYMENT,
            metadata: { ...DEPLOYMENT.metadata, resourceVersion: String(rv) },
          });
          return true;
        }
        const dry = (req.url ?? '').includes('dryRun=All');
        if (req.method === 'PATCH' && left > 0 && (which === 'both' || (which === 'dry') === dry)) {
          left--;
          rv++;
          answer(res, 409, CONFLICT);
          return true;
        }
        if (req.method === 'PATCH' && !dry) {
          answer(res, 200, JSON.parse(body));
          return true;
        }
        return false;
      };
    };
    const patch = () =>
      send('PATCH', DEP, '{"metadata":{"labels":{"x":"y"}}}', 'application/merge-patch+json');
    const writes = () => seen.filter((s) => s.method === 'PATCH' && !s.url.includes('dryRun'));

    it('a conflict at the dry run or at the write is checked again against the object as it is now', async () => {
      for (const which of ['dry', 'real'] as const) {
        seen = [];
        conflicts(2, which);
        const r = await patch();
        assert.equal(r.status, 200, `${which}: ${r.text}`);
        // Each attempt reads the object again; what lands holds the last resourceVersion read.
        assert.equal(seen.filter((s) => s.method === 'GET' && s.url === DEP).length, 3, which);
        assert.match(writes().at(-1)?.body ?? '', /"resourceVersion":"9"/, which);
        // Every write that reaches the API server for real carries the request's own Audit-ID, the guard's reads derived ones.
        const own = writes().at(-1)?.auditID ?? '';
        assert.ok(own !== '' && writes().every((w) => w.auditID === own), which);
        const reads = seen.filter((s) => s.method === 'GET');
        assert.ok(
          reads.every((g) => g.auditID !== own && g.auditID.startsWith(own)),
          which,
        );
      }
      custom = undefined;
    });

    it('gives up after as many tries as the API server gives a patch, and passes the 409 on', async () => {
      seen = [];
      conflicts(100, 'both');
      const r = await patch();
      custom = undefined;
      assert.equal(r.status, 409);
      assert.equal(r.body.reason, 'Conflict');
      assert.equal(seen.filter((s) => s.method === 'GET' && s.url === DEP).length, 6);
    });

    it("a field manager's conflict in an apply is the agent's: passed on as it came, not tried again", async () => {
      const FIELD_CONFLICT = {
        kind: 'Status',
        status: 'Failure',
        reason: 'Conflict',
        code: 409,
        message: 'Apply failed with 1 conflict: conflict with "other": .spec.replicas',
        details: {
          causes: [
            { reason: 'FieldManagerConflict', message: 'conflict with "other"', field: '.spec.replicas' },
          ],
        },
      };
      for (const at of ['dry', 'real'] as const) {
        seen = [];
        custom = (req, res) => {
          if (!(req.url ?? '').startsWith(DEP)) return false;
          const dry = (req.url ?? '').includes('dryRun=All');
          if (req.method === 'GET')
            answer(res, 200, { ...DEPLOYMENT, metadata: { ...DEPLOYMENT.metadata, uid: 'u' } });
          else if (dry === (at === 'dry')) answer(res, 409, FIELD_CONFLICT);
          else answer(res, 200, DEPLOYMENT);
          return true;
        };
        const r = await send(
          'PATCH',
          `${DEP}?fieldManager=agent`,
          JSON.stringify({
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name: 'web' },
            spec: { replicas: 3 },
          }),
          'application/apply-patch+yaml',
        );
        custom = undefined;
        assert.equal(r.status, 409, at);
        assert.match(r.body.message ?? '', /Apply failed with 1 conflict/, at);
        assert.equal(r.body.details?.causes?.[0]?.field, '.spec.replicas', at);
        assert.equal(seen.filter((x) => x.method === 'GET' && x.url === DEP).length, 1, at);
      }
    });

    it("an apply checked as an update is held to the object's uid too (an apply of a deleted object would create it)", async () => {
      seen = [];
      dryResult = DEPLOYMENT;
      custom = (req, res) => {
        if (req.method !== 'GET' || !(req.url ?? '').startsWith(DEP)) return false;
        answer(res, 200, { ...DEPLOYMENT, metadata: { ...DEPLOYMENT.metadata, uid: 'uid-of-web' } });
        return true;
      };
      const apply = (metadata: object) =>
        send(
          'PATCH',
          `${DEP}?fieldManager=agent`,
          JSON.stringify({
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name: 'web', ...metadata },
          }),
          'application/apply-patch+yaml',
        );
      try {
        assert.equal((await apply({})).status, 200);
        const [, dry, , real] = seen;
        assert.deepEqual(JSON.parse(dry?.body ?? '').metadata, {
          resourceVersion: '7',
          uid: 'uid-of-web',
          name: 'web',
        });
        assert.equal(real?.body, dry?.body);
        // A uid of the agent's own is the API server's to hold it to: left as it is.
        seen = [];
        assert.equal((await apply({ uid: 'its-own' })).status, 200);
        assert.deepEqual(JSON.parse(seen[1]?.body ?? '').metadata, {
          resourceVersion: '7',
          name: 'web',
          uid: 'its-own',
        });
        // A merge patch cannot create: no uid added.
        seen = [];
        await send('PATCH', DEP, '{"metadata":{"labels":{"x":"y"}}}', 'application/merge-patch+json');
        assert.equal(JSON.parse(seen[1]?.body ?? '').metadata.uid, undefined);
        // A stored object without a uid (no API server keeps one): the apply cannot be held, so it is refused.
        custom = undefined;
        const bare = await apply({});
        assert.equal(bare.status, 502);
        assert.match(bare.body.message ?? '', /no uid/);
      } finally {
        custom = undefined;
      }
    });

    it("the agent's own stale resourceVersion is its conflict: passed on, not tried again", async () => {
      seen = [];
      conflicts(1, 'real');
      const r = await send(
        'PATCH',
        DEP,
        '{"metadata":{"resourceVersion":"7","labels":{"x":"y"}}}',
        'application/merge-patch+json',
      );
      custom = undefined;
      assert.equal(r.status, 409);
      assert.equal(seen.filter((s) => s.method === 'GET' && s.url === DEP).length, 1);
    });
  });

  it('refuses bodies it cannot read one way', async () => {
    const pods = '/api/v1/namespaces/a/pods';
    assert.equal((await send('POST', pods, 'k8s\0', 'application/vnd.kubernetes.protobuf')).status, 415);
    assert.equal((await send('PATCH', DEP, '{}', 'text/plain')).status, 415);
    const dup = await send(
      'POST',
      pods,
      '{"spec":{"hostNetwork":false,"hostNetwork":true}}',
      'application/json',
    );
    assert.equal(dup.status, 400);
    assert.match(dup.body.message ?? '', /repeated object key/);
  });

  it('refuses a token Secret from its JSON body, without asking the API server', async () => {
    seen = [];
    const r = await send(
      'POST',
      '/api/v1/namespaces/a/secrets',
      '{"metadata":{"name":"t"},"type":"kubernetes.io/service-account-token"}',
      'application/json',
    );
    assert.equal(r.status, 403);
    assert.match(r.body.message ?? '', /chaperone-no-token-secrets/);
    assert.equal(seen.length, 0);
  });

  it('fails closed when the namespace cannot be read', async () => {
    namespaceStatus = 403;
    try {
      const r = await send(
        'POST',
        '/api/v1/namespaces/a/pods',
        '{"metadata":{"name":"p"},"spec":{"containers":[]}}',
        'application/json',
      );
      assert.equal(r.status, 503);
      assert.match(r.body.message ?? '', /cannot read namespace a/);
    } finally {
      namespaceStatus = 200;
    }
  });

  describe('Secrets', () => {
    const SEC = '/api/v1/namespaces/a/secrets/s';
    const secrets: Route = (req, res, body) => {
      if (!(req.url ?? '').startsWith(SEC)) return false;
      if (req.method === 'GET') answer(res, 200, SECRET);
      else
        answer(res, 200, { ...SECRET, metadata: { ...SECRET.metadata, labels: JSON.parse(body || '{}').x } });
      return true;
    };

    it('a JSON patch that copies, moves or tests a value is refused before anything is sent', async () => {
      custom = secrets;
      try {
        for (const op of [
          { op: 'copy', from: '/data/password', path: '/metadata/annotations/leak' },
          { op: 'move', from: '/data/password', path: '/metadata/labels/leak' },
          { op: 'test', path: '/data/password', value: VALUE_B64 },
          { op: 'c\u006fpy', from: '/data/password', path: '/metadata/annotations/leak' },
        ]) {
          seen = [];
          const r = await send(
            'PATCH',
            SEC,
            JSON.stringify([{ op: 'add', path: '/metadata/annotations', value: {} }, op]),
            'application/json-patch+json',
          );
          assert.equal(r.status, 403, r.text);
          assert.match(r.body.message ?? '', /chaperone-no-masked-value-patch/);
          assert.deepEqual(seen, []);
        }
        // add, remove and replace carry their own values: checked as usual.
        seen = [];
        const ok = await send(
          'PATCH',
          SEC,
          '[{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]',
          'application/json-patch+json',
        );
        assert.equal(ok.status, 200, ok.text);
        assert.equal(ok.text.includes(VALUE_B64), false);
      } finally {
        custom = undefined;
      }
    });

    it("the API server's errors about a Secret keep code and reason, never their words", async () => {
      for (const failing of ['dry run', 'write']) {
        custom = (req, res, body) => {
          if (!(req.url ?? '').startsWith(SEC)) return false;
          const dry = (req.url ?? '').includes('dryRun=All');
          if (req.method === 'GET') answer(res, 200, SECRET);
          else if (dry === (failing === 'dry run')) answer(res, 422, QUOTING_ERROR);
          else answer(res, 200, JSON.parse(body || '{}'));
          return true;
        };
        try {
          const r = await send(
            'PATCH',
            SEC,
            '[{"op":"add","path":"/metadata/labels","value":"x"}]',
            'application/json-patch+json',
          );
          assert.equal(r.status, 422, r.text);
          assert.equal(r.body.reason, 'Invalid');
          assert.equal(r.text.includes(VALUE_B64), false, r.text);
          assert.match(r.body.message ?? '', /withheld/);
          assert.deepEqual(r.body.details?.causes?.[0]?.field, 'metadata.labels');
          const event = await lastEvent();
          assert.equal(JSON.stringify(event).includes(VALUE_B64), false, failing);
          assert.match(event?.responseStatus?.message ?? '', /withheld/);
        } finally {
          custom = undefined;
        }
      }
    });

    it('refuses a result that holds a value of the stored Secret outside data', async () => {
      custom = (req, res) => {
        if (!(req.url ?? '').startsWith(SEC)) return false;
        if (req.method === 'GET') answer(res, 200, SECRET);
        else answer(res, 200, { ...SECRET, metadata: { ...SECRET.metadata, annotations: { x: VALUE } } });
        return true;
      };
      try {
        seen = [];
        const r = await send(
          'PATCH',
          SEC,
          '{"metadata":{"annotations":{"x":"y"}}}',
          'application/merge-patch+json',
        );
        assert.equal(r.status, 403, r.text);
        assert.match(r.body.message ?? '', /chaperone-no-masked-value-patch/);
        assert.equal(r.text.includes(VALUE), false);
        assert.equal(seen.filter((x) => x.method === 'PATCH' && !x.url.includes('dryRun')).length, 0);
      } finally {
        custom = undefined;
      }
    });
  });

  it("the guard's own calls carry derived Audit-IDs; the write carries the request's", async () => {
    seen = [];
    dryResult = DEPLOYMENT;
    const r = await send('PATCH', DEP, '{"metadata":{"labels":{"x":"y"}}}', 'application/merge-patch+json');
    assert.equal(r.status, 200);
    const id = (await lastEvent())?.auditID ?? '';
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(
      seen.map((x) => x.auditID),
      [`${id}-check-1`, `${id}-check-2`, `${id}-check-3`, id],
    );
  });

  it('a server-side apply that creates is held to a resourceVersion no stored object has', async () => {
    const NEW = '/apis/apps/v1/namespaces/a/deployments/new';
    custom = (req, res, body) => {
      if (!(req.url ?? '').startsWith(NEW)) return false;
      if (req.method === 'GET') answer(res, 404, { kind: 'Status', code: 404, reason: 'NotFound' });
      else if ((req.url ?? '').includes('dryRun')) answer(res, 201, JSON.parse(body));
      // The object appeared between the dry run and the write: the API server refuses the update.
      else answer(res, 409, { kind: 'Status', code: 409, reason: 'Conflict', message: 'modified' });
      return true;
    };
    try {
      seen = [];
      const apply = JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'new' },
        spec: { template: { spec: { containers: [{ name: 'a', image: 'x' }] } } },
      });
      const r = await send('PATCH', `${NEW}?fieldManager=m`, apply, 'application/apply-patch+yaml');
      assert.equal(r.status, 409, r.text);
      const [, dry, , real] = seen;
      assert.equal(JSON.parse(dry?.body ?? '').metadata.resourceVersion, '1');
      assert.equal(real?.body, dry?.body);
      // A body that holds itself to a resourceVersion of its own cannot create.
      const own = await send(
        'PATCH',
        NEW,
        JSON.stringify({ metadata: { name: 'new', resourceVersion: '5' } }),
        'application/apply-patch+yaml',
      );
      assert.equal(own.status, 409);
      assert.match(own.body.message ?? '', /does not exist/);
    } finally {
      custom = undefined;
    }
  });

  it('refuses apply bodies with characters YAML reads as line breaks', async () => {
    for (const ch of ['\u2028', '\u2029', '\u0085', '\ufeff']) {
      seen = [];
      const r = await send(
        'PATCH',
        DEP,
        `{"metadata":{"labels":{"a":"b${ch}c"}}}`,
        'application/apply-patch+yaml',
      );
      assert.equal(r.status, 400, JSON.stringify(ch));
      assert.match(r.body.message ?? '', /YAML line breaks/);
      assert.equal(seen.filter((x) => x.method === 'PATCH').length, 0);
    }
  });

  it('a custom resource is judged by its dry run, pod specs wherever they are', async () => {
    const CR = '/apis/example.com/v1/namespaces/a/runners';
    let result: unknown = {};
    custom = (req, res) => {
      if (!(req.url ?? '').startsWith(CR)) return false;
      if ((req.url ?? '').includes('dryRun=All')) answer(res, 201, result);
      else answer(res, 201, result);
      return true;
    };
    try {
      // The body says nothing dangerous; the dry run (defaulted by the CRD's schema) does.
      result = {
        metadata: { name: 'r' },
        spec: { runner: { template: { spec: { hostNetwork: true, containers: [{ name: 'a' }] } } } },
      };
      seen = [];
      const r = await send('POST', CR, '{"metadata":{"name":"r"},"spec":{}}', 'application/json');
      assert.equal(r.status, 403, r.text);
      assert.match(r.body.message ?? '', /chaperone-no-host-namespaces/);
      assert.match(r.body.message ?? '', /spec\.runner\.template\.spec\.hostNetwork/);
      assert.deepEqual(
        seen.map((x) => `${x.method} ${x.url}`),
        [`POST ${CR}?dryRun=All`, 'GET /api/v1/namespaces/a'],
      );
      // No pod spec: no namespace read, the create goes on.
      result = { metadata: { name: 'w' }, spec: { size: 1 } };
      seen = [];
      const w = await send('POST', CR, '{"metadata":{"name":"w"},"spec":{"size":1}}', 'application/json');
      assert.equal(w.status, 201, w.text);
      assert.deepEqual(
        seen.map((x) => `${x.method} ${x.url}`),
        [`POST ${CR}?dryRun=All`, `POST ${CR}`],
      );
    } finally {
      custom = undefined;
    }
  });
});
