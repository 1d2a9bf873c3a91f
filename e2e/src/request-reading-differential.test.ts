// How the sidecar reads a request (verb and object) against how the real
// kube-apiserver reads the same bytes: every request goes through a real
// `chaperone sidecar` with an allow-everything policy; the sidecar sends its
// audit id upstream as Audit-ID, which the API server adopts, so each of the
// sidecar's events meets the server's own audit event for the same request.
// Either the sidecar refused the request — and then the server must never
// have seen it — or both read the same verb and objectRef. The corpus: real
// kubectl and @kubernetes/client-node traffic, and requests mutated from a
// fixed seed (percent-encodings, encoded and doubled slashes, dot segments,
// case, legacy /watch/ and /proxy/ prefixes, odd and repeated parameters).
// CHAPERONE_DIFF_RUNS=5000 runs more mutations (default 300), CHAPERONE_DIFF_SEED=<n>
// other ones.
//
// The agent's ServiceAccount is admin of its own namespace only, and every
// generated write is a dry run: a misread request cannot damage the shared
// control plane, and the API server audits requests it then forbids.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import type { AuditEvent } from '@chaperone/shared';
import { readSpoolDir } from '@chaperone/sidecar';
import * as k8s from '@kubernetes/client-node';
import fc from 'fast-check';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { kubectl, kubectlPath } from './kubectl.ts';
import { waitFor } from './process.ts';
import { type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';

const ALLOW_ALL = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: allow-all }
spec:
  defaultAction: allow
  rules: []
`;

const SEED = Number.parseInt(process.env.CHAPERONE_DIFF_SEED ?? '20260115', 10);
const RUNS = Number.parseInt(process.env.CHAPERONE_DIFF_RUNS ?? '300', 10);

/** The fields of an audit event both sides must agree on. */
interface Reading {
  verb: string;
  namespace?: string;
  resource?: string;
  subresource?: string;
  name?: string;
  apiGroup?: string;
  apiVersion?: string;
}

interface ServerEvent {
  auditID: string;
  stage: string;
  verb: string;
  requestURI: string;
  userAgent?: string;
  user?: { username?: string };
  objectRef?: Omit<Reading, 'verb'>;
}

function reading(e: { verb: string; objectRef?: Omit<Reading, 'verb'> }): Reading {
  const r: Reading = { verb: e.verb };
  const o = e.objectRef;
  if (o) {
    for (const k of ['namespace', 'resource', 'subresource', 'name', 'apiGroup', 'apiVersion'] as const) {
      const v = o[k];
      // The server omits empty strings.
      if (v !== undefined && v !== '') r[k] = v;
    }
  }
  return r;
}

function same(a: Reading, b: Reading): boolean {
  return JSON.stringify(a, Object.keys(a).sort()) === JSON.stringify(b, Object.keys(b).sort());
}

/** The API server's audit log from an offset: events by audit id (all stages). */
function readServerLog(path: string, from: number): Map<string, ServerEvent[]> {
  const size = statSync(path).size;
  const buf = Buffer.alloc(Math.max(0, size - from));
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, buf.length, from);
  } finally {
    closeSync(fd);
  }
  const byId = new Map<string, ServerEvent[]>();
  const text = buf.toString('utf8');
  const end = text.lastIndexOf('\n');
  for (const line of text.slice(0, end + 1).split('\n')) {
    if (line === '') continue;
    const e = JSON.parse(line) as ServerEvent;
    const list = byId.get(e.auditID);
    if (list) list.push(e);
    else byId.set(e.auditID, [e]);
  }
  return byId;
}

/** A request the sidecar answered itself (policy, self-protection, refusal), never forwarding it. */
function refusedBySidecar(e: AuditEvent): boolean {
  const decision = e.chaperone.decision.action;
  if (decision !== 'allow' && decision !== 'mask') return true;
  const message = e.responseStatus?.message ?? '';
  // Answered by a guard after an allow (connect refusal) or before forwarding (body limits).
  return (
    message.startsWith('chaperone:') && [400, 403, 405, 406, 413, 415].includes(e.responseStatus?.code ?? 0)
  );
}

interface RawResponse {
  status: number;
  text: string;
}

/** One request, sent byte for byte over its own TLS connection to the sidecar. */
function rawRequest(
  sc: SidecarUnderTest,
  method: string,
  target: string,
  userAgent: string,
  body?: { type: string; text: string },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: sc.kubePort, ca: sc.agentCa });
    let text = '';
    const timer = setTimeout(() => s.destroy(), 8000);
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      text += d;
    });
    s.on('close', () => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, text });
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      if (text === '') reject(err);
    });
    let head =
      `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${sc.kubePort}\r\nUser-Agent: ${userAgent}\r\n` +
      `Authorization: Bearer ${sc.agentToken}\r\nAccept: application/json\r\nConnection: close\r\n`;
    if (body) head += `Content-Type: ${body.type}\r\nContent-Length: ${Buffer.byteLength(body.text)}\r\n`;
    // Not end(): a client's half-close is a client going away, to the sidecar as to the API server.
    s.write(`${head}\r\n${body?.text ?? ''}`);
  });
}

// ---- generated requests ------------------------------------------------------------------------

interface Generated {
  method: string;
  path: string;
  query: string[];
  body?: { type: string; text: string };
}

function bases(ns: string): Generated[] {
  const cm = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'gen-cm' } });
  const json = { type: 'application/json', text: cm };
  const merge = { type: 'application/merge-patch+json', text: '{"data":{"k":"v"}}' };
  return [
    { method: 'GET', path: `/api/v1/namespaces/${ns}/secrets/db`, query: [] },
    { method: 'GET', path: `/api/v1/namespaces/${ns}/secrets`, query: [] },
    {
      method: 'GET',
      path: `/api/v1/namespaces/${ns}/configmaps`,
      query: ['fieldSelector=metadata.name%3Dcm1'],
    },
    { method: 'GET', path: `/api/v1/namespaces/${ns}/configmaps/cm1`, query: [] },
    { method: 'GET', path: `/apis/apps/v1/namespaces/${ns}/deployments/web/scale`, query: [] },
    { method: 'GET', path: `/apis/apps/v1/namespaces/${ns}/deployments`, query: ['labelSelector=app%3Dweb'] },
    { method: 'GET', path: `/api/v1/namespaces/${ns}`, query: [] },
    { method: 'GET', path: `/api/v1/namespaces/${ns}/status`, query: [] },
    { method: 'GET', path: `/api/v1/namespaces/${ns}/pods/p0/log`, query: [] },
    { method: 'GET', path: '/api/v1/nodes', query: [] },
    { method: 'GET', path: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, query: [] },
    { method: 'GET', path: '/apis/apps/v1', query: [] },
    { method: 'GET', path: '/version', query: [] },
    { method: 'HEAD', path: `/api/v1/namespaces/${ns}/configmaps`, query: [] },
    { method: 'DELETE', path: `/api/v1/namespaces/${ns}/configmaps/cm1`, query: [] },
    { method: 'DELETE', path: `/api/v1/namespaces/${ns}/configmaps`, query: [] },
    { method: 'POST', path: `/api/v1/namespaces/${ns}/configmaps`, query: [], body: json },
    { method: 'PUT', path: `/api/v1/namespaces/${ns}/configmaps/gen-cm`, query: [], body: json },
    { method: 'PATCH', path: `/api/v1/namespaces/${ns}/configmaps/cm1`, query: [], body: merge },
  ];
}

const hex = (c: string, upper: boolean) => {
  const h = c.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${upper ? h.toUpperCase() : h}`;
};

/** One change to a path's segments (the path without its leading "/"). */
const pathMutation: fc.Arbitrary<(segs: string[]) => string[]> = fc.oneof(
  // Percent-encode some characters of one segment, in either case.
  fc
    .tuple(fc.nat(), fc.array(fc.constantFrom<'raw' | 'up' | 'low'>('raw', 'up', 'low'), { maxLength: 40 }))
    .map(([i, how]) => (segs: string[]) => {
      const k = i % Math.max(1, segs.length);
      const s = segs[k] ?? '';
      const enc = [...s].map((c, j) =>
        how[j] === 'up' ? hex(c, true) : how[j] === 'low' ? hex(c, false) : c,
      );
      return segs.map((x, j) => (j === k ? enc.join('') : x));
    }),
  // Join two segments with an encoded slash.
  fc.tuple(fc.nat(), fc.constantFrom('%2F', '%2f')).map(([i, sl]) => (segs: string[]) => {
    if (segs.length < 2) return segs;
    const k = i % (segs.length - 1);
    return [...segs.slice(0, k), `${segs[k]}${sl}${segs[k + 1]}`, ...segs.slice(k + 2)];
  }),
  // An empty, dot or odd segment somewhere.
  fc
    .tuple(
      fc.nat(),
      fc.constantFrom('', '.', '..', '%2e', '%2E%2E', '%25', 'a%20b', '%00', '%C3%A9', '%3F', '%23'),
    )
    .map(([i, seg]) => (segs: string[]) => {
      const k = i % (segs.length + 1);
      return [...segs.slice(0, k), seg, ...segs.slice(k)];
    }),
  // Case changes.
  fc.tuple(fc.nat(), fc.boolean()).map(([i, all]) => (segs: string[]) => {
    const k = i % Math.max(1, segs.length);
    return segs.map((s, j) => (j !== k ? s : all ? s.toUpperCase() : s.charAt(0).toUpperCase() + s.slice(1)));
  }),
  // The legacy verb prefixes, after the version.
  fc.constantFrom('watch', 'proxy').map((verb) => (segs: string[]) => {
    const at = segs[0] === 'apis' ? 3 : 2;
    return [...segs.slice(0, at), verb, ...segs.slice(at)];
  }),
  // Drop a trailing segment (turns gets into lists, lists into other things).
  fc.constant((segs: string[]) => segs.slice(0, -1)),
);

const WATCH_VALUES = ['yes', '0', '1', 'True', 'FALSE', 'false', 'no', '', '%66alse', 'fal%C5%BFe'];
const FIELD_SELECTORS = [
  'metadata.name%3Dcm1',
  'metadata.name%3D%3Dcm1',
  'metadata.name!%3Dcm1',
  '+metadata.name%3Dcm1',
  'metadata.name%3Dcm1+',
  'metadata.name%3Dzz,metadata.name%3Dcm1',
  'metadata.name%3Dcm1,bad',
  'metadata.name%3Dcm%3D1',
  'metadata.name%3Dcm%5C%3D1',
  'metadata.name%3Da/b',
  'metadata.name%3D..',
  'metadata.name%3D',
  'metadata.namespace%3Dx',
  'metadata.name=cm1',
];

/** One change to the query's pairs. */
const queryMutation: fc.Arbitrary<(q: string[]) => string[]> = fc.oneof(
  fc.constantFrom(...WATCH_VALUES).map((v) => (q: string[]) => [...q, `watch=${v}`]),
  fc.constant((q: string[]) => [...q, 'watch']),
  fc.constantFrom(...FIELD_SELECTORS).map((v) => (q: string[]) => [...q, `fieldSelector=${v}`]),
  fc
    .constantFrom('app%3Dweb', 'app+in+(web)', '!app', 'app%3D', 'bad%20sel', 'a,', 'in%3Dx')
    .map((v) => (q: string[]) => [...q, `labelSelector=${v}`]),
  fc
    .constantFrom('5', 'abc', '', '%2B5', '99999999999999999999')
    .map((v) => (q: string[]) => [...q, `limit=${v}`]),
  fc
    .constantFrom('w%61tch=true', 'Watch=true', 'fieldSelector', 'a=b;c=d', 'a=1;watch=true')
    .map((p) => (q: string[]) => [...q, p]),
  // Repeat a parameter.
  fc.nat().map((i) => (q: string[]) => (q.length === 0 ? q : [...q, q[i % q.length] as string])),
);

const generated = (ns: string): fc.Arbitrary<Generated> =>
  fc
    .tuple(
      fc.constantFrom(...bases(ns)),
      fc.array(pathMutation, { maxLength: 3 }),
      fc.array(queryMutation, { maxLength: 3 }),
      fc.oneof(
        { weight: 20, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.constantFrom('get', 'OPTIONS', 'PROPFIND', 'Get') },
      ),
      fc.boolean(),
    )
    .map(([base, pms, qms, method, trailing]) => {
      let segs = base.path.slice(1).split('/');
      for (const m of pms) segs = m(segs);
      let query = base.query;
      for (const m of qms) query = m(query);
      const g: Generated = {
        method: method ?? base.method,
        path: `/${segs.join('/')}${trailing ? '/' : ''}`,
        query,
      };
      if (base.body) g.body = base.body;
      return g;
    });

function target(g: Generated): string {
  const q = [...g.query];
  // Watches end by themselves; writes never take effect.
  if (g.method === 'GET' || g.method === 'HEAD') q.push('timeoutSeconds=1');
  else q.push('dryRun=All');
  return `${g.path}?${q.join('&')}`;
}

// ---- the test ----------------------------------------------------------------------------------

describe('request reading: the sidecar and the API server read every request alike', () => {
  const kube = kubeInfo();
  const skip = kube.auditLogPath
    ? false
    : 'needs the local control plane: its API server writes the audit log compared against';
  let ns: TestNamespace;
  let sc: SidecarUnderTest;
  let logFrom = 0;
  const admin = (args: string[], input?: string) => {
    const r = kubectl(kube.kubeconfigPath, args, input === undefined ? {} : { input });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
  };

  before(async () => {
    if (skip) return;
    logFrom = statSync(kube.auditLogPath as string).size;
    ns = await createNamespace('diff');
    sc = await startSidecar({ namespace: ns.name, policy: ALLOW_ALL, clusterAdmin: false });
    admin([
      'create',
      'rolebinding',
      'agent-admin',
      '--clusterrole=admin',
      `--serviceaccount=${ns.name}:agent`,
      '-n',
      ns.name,
    ]);
    admin(['create', 'secret', 'generic', 'db', '-n', ns.name, '--from-literal=password=x']);
    admin(['create', 'configmap', 'cm1', '-n', ns.name, '--from-literal=a=b']);
    admin(['create', 'deployment', 'web', '--image=nginx:1.27', '-n', ns.name]);
    admin(['run', 'p0', '--image=busybox', '-n', ns.name, '--restart=Never']);
  });
  after(async () => {
    await sc?.stop();
    await ns?.delete();
  });

  /**
   * Compares every event the sidecar recorded with the API server's events of
   * the same id; the ones in `expectRefused` (by user agent) must have been
   * refused. Returns the sidecar's events by user agent.
   */
  async function compare(): Promise<{ events: AuditEvent[]; server: Map<string, ServerEvent[]> }> {
    // A last request, so every earlier one has finished and been recorded.
    const marker = `diff-marker-${Date.now()}`;
    await rawRequest(sc, 'GET', '/version', marker);
    const events = await waitFor(
      async () => {
        const all = readSpoolDir(sc.spoolDir);
        return all.some((e) => e.userAgent === marker) ? all : undefined;
      },
      { what: 'the sidecar to record the marker request', timeoutMs: 10_000 },
    );
    const forwarded = events.filter((e) => !refusedBySidecar(e));
    // The server writes RequestReceived before it answers, ResponseComplete just after.
    const server = await waitFor(
      async () => {
        const log = readServerLog(kube.auditLogPath as string, logFrom);
        return forwarded.every((e) => log.get(e.auditID)?.some((s) => s.stage === 'ResponseComplete'))
          ? log
          : undefined;
      },
      { what: "the API server's audit events of every forwarded request", timeoutMs: 15_000 },
    ).catch(() => readServerLog(kube.auditLogPath as string, logFrom));

    const problems: string[] = [];
    for (const e of events) {
      // The end of an exec or attach session: a second event of the request its sessionId names.
      if (e.chaperone.sessionId !== undefined && e.chaperone.sessionId !== e.auditID) continue;
      const theirs = server.get(e.auditID) ?? [];
      const label = `${e.verb.toUpperCase()} ${e.requestURI} (${e.userAgent}, sidecar answered ${e.responseStatus?.code})`;
      if (refusedBySidecar(e)) {
        if (theirs.length > 0) problems.push(`${label}: refused by the sidecar, yet the API server saw it`);
        continue;
      }
      const received = theirs.find((s) => s.stage === 'RequestReceived');
      if (!received) {
        problems.push(`${label}: forwarded, but the API server has no event with audit id ${e.auditID}`);
        continue;
      }
      const mine = reading(e);
      const at = reading(received);
      // The sidecar records sessions as `create`, as the policy's Action names them; the API server
      // audits a WebSocket session (a GET) as `get`, an SPDY one (a POST) as `create`.
      if (e.chaperone.protocol === 'exec' && at.verb === 'get' && mine.verb === 'create') at.verb = 'create';
      if (same(mine, at)) continue;
      // A create names its object in its body, which the sidecar reads for some kinds: the URL's
      // reading must agree, and the name must be the one the server took from the body, if it
      // got as far as reading it (not when it refused the request first).
      if (e.verb === 'create' && at.name === undefined && mine.name !== undefined) {
        const { name, ...fromUrl } = mine;
        const completed = theirs.find((s) => s.stage === 'ResponseComplete');
        const bodyName = completed ? reading(completed).name : undefined;
        if (same(fromUrl, at) && (bodyName === undefined || bodyName === name)) continue;
      }
      problems.push(`${label}:\n    sidecar ${JSON.stringify(mine)}\n    server  ${JSON.stringify(at)}`);
    }
    // Nothing reached the API server under the agent's identity without passing the sidecar's reading.
    // The guard's own calls for a request (current object, dry run, namespace) carry the request's
    // id with a `-check-N` suffix: they belong to that request's event.
    const ours = new Set(events.map((e) => e.auditID));
    const agent = `system:serviceaccount:${ns.name}:agent`;
    for (const [id, list] of server) {
      const e = list[0] as ServerEvent;
      if (e.user?.username === agent && !ours.has(id.replace(/-check-\d+$/, ''))) {
        problems.push(
          `${e.verb} ${e.requestURI} (${e.userAgent}): reached the API server with no sidecar event`,
        );
      }
    }
    assert.deepEqual(problems, [], `${problems.length} disagreements:\n${problems.join('\n')}`);
    return { events, server };
  }

  it('agrees on real kubectl and @kubernetes/client-node traffic', { skip }, async () => {
    const cache = join(sc.dir, 'kube-cache');
    const agent = (args: string[], opts: { input?: string } = {}) =>
      kubectl(sc.agentKubeconfig, [...args, '--cache-dir', cache], opts);
    const cm = (name: string, data: Record<string, string>) =>
      JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data });
    const mustPass: string[][] = [
      ['api-resources'],
      ['get', 'pods'],
      ['get', 'secrets'],
      ['get', 'secret', 'db', '-o', 'yaml'],
      ['get', 'configmaps', '--field-selector', 'metadata.name=cm1'],
      ['get', 'configmaps', '-l', 'app=x', '--field-selector', 'metadata.name=cm1'],
      ['get', 'deployment', 'web', '-o', 'json'],
      ['get', 'all'],
      ['describe', 'configmap', 'cm1'],
      ['create', 'configmap', 'cm2', '--from-literal=a=b'],
      ['patch', 'configmap', 'cm2', '-p', '{"data":{"x":"y"}}'],
      ['label', 'configmap', 'cm2', 'tier=web'],
      ['annotate', 'configmap', 'cm2', 'note=1'],
      ['scale', 'deployment', 'web', '--replicas=2'],
      ['delete', 'pod', 'p0', '--dry-run=server'],
      ['delete', 'configmap', 'cm2'],
      ['auth', 'can-i', 'list', 'secrets'],
      ['get', '--raw', '/version'],
    ];
    for (const args of mustPass) {
      const r = agent(args);
      assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    }
    for (const manifest of [cm('cm3', { a: '1' }), cm('cm3', { a: '2' })]) {
      const r = agent(['apply', '-f', '-'], { input: manifest });
      assert.equal(r.code, 0, `kubectl apply: ${r.stderr}`);
    }
    // Answered with errors by the server (or refused by the sidecar): still compared.
    agent(['logs', 'p0']);
    agent(['get', 'namespaces']);
    agent(['exec', 'p0', '--', 'ls']);
    agent(['delete', 'namespace', ns.name]);
    // Watches (all, and one by name), ended by the client.
    for (const args of [
      ['get', 'configmaps', '-w'],
      ['get', 'configmap', 'cm1', '-w'],
    ]) {
      const child = spawn(kubectlPath(), [...args, '--request-timeout=2s', '--cache-dir', cache], {
        env: { ...process.env, KUBECONFIG: sc.agentKubeconfig },
        stdio: 'ignore',
      });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill(), 2500);
        child.on('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }

    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1';
    process.env.KUBERNETES_SERVICE_PORT = String(sc.kubePort);
    try {
      const kc = new k8s.KubeConfig();
      kc.loadFromCluster(sc.agentRoot);
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const apps = kc.makeApiClient(k8s.AppsV1Api);
      const namespace = ns.name;
      await core.listNamespacedConfigMap({ namespace, fieldSelector: 'metadata.name=cm1' });
      await core.listNamespacedConfigMap({ namespace, labelSelector: 'app=web', limit: 5 });
      await core.readNamespacedSecret({ name: 'db', namespace });
      await core.createNamespacedConfigMap({
        namespace,
        body: { metadata: { name: 'cm4' }, data: { a: 'b' } },
      });
      await core.patchNamespacedConfigMap(
        { name: 'cm4', namespace, body: { data: { c: 'd' } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      await core.deleteNamespacedConfigMap({ name: 'cm4', namespace });
      await apps.readNamespacedDeploymentScale({ name: 'web', namespace });
      await core.listNamespacedPod({ namespace, timeoutSeconds: 1, watch: true }).catch(() => {});
      // A watch, ended by the client after its first event.
      const watch = new k8s.Watch(kc);
      let first: () => void = () => {};
      const firstEvent = new Promise<void>((resolve) => {
        first = resolve;
      });
      const ended = new Promise<void>((resolve) => {
        void watch
          .watch(
            `/api/v1/namespaces/${namespace}/configmaps`,
            { fieldSelector: 'metadata.name=cm1' },
            () => first(),
            () => resolve(),
          )
          .then(async (controller) => {
            await firstEvent;
            controller.abort();
          });
      });
      await ended;
    } finally {
      if (saved.host === undefined) delete process.env.KUBERNETES_SERVICE_HOST;
      else process.env.KUBERNETES_SERVICE_HOST = saved.host;
      if (saved.port === undefined) delete process.env.KUBERNETES_SERVICE_PORT;
      else process.env.KUBERNETES_SERVICE_PORT = saved.port;
    }

    const { events } = await compare();
    // The comparison had something to compare: named lists and watches among them.
    const forwarded = events.filter((e) => !refusedBySidecar(e));
    assert.ok(forwarded.length > 50, `only ${forwarded.length} forwarded requests`);
    assert.ok(forwarded.some((e) => e.verb === 'watch' && e.objectRef?.name === 'cm1'));
    assert.ok(forwarded.some((e) => e.verb === 'list' && e.objectRef?.name === 'cm1'));
    assert.ok(forwarded.some((e) => e.verb === 'create' && e.objectRef?.name === 'cm2'));
  });

  it("agrees on, or refuses, the issue's examples", { skip }, async () => {
    const n = ns.name;
    const cases: [string, string, number][] = [
      [`/api/v1/namespaces/${n}/secrets%2Fdb`, 'diff-example-encoded-slash', 400],
      [`/api/v1/namespaces//secrets`, 'diff-example-empty-namespace', 400],
      [`/api/v1/namespaces/${n}/configmaps?watch=true;timeoutSeconds=1`, 'diff-example-semicolon', 400],
      [`/api/v1/namespaces/${n}/configmaps?watch=yes&timeoutSeconds=1`, 'diff-example-watch-yes', 200],
    ];
    const answers = new Map<string, RawResponse>();
    for (const [t, ua] of cases) answers.set(ua, await rawRequest(sc, 'GET', t, ua));
    const { events, server } = await compare();
    for (const [t, ua, code] of cases) {
      const answer = answers.get(ua) as RawResponse;
      assert.equal(answer.status, code, `${t}: ${answer.text.slice(0, 400)}`);
      const e = events.find((x) => x.userAgent === ua);
      assert.ok(e, `the sidecar recorded ${t}`);
      const seen = server.get(e.auditID) ?? [];
      if (code === 400) {
        assert.equal(e.responseStatus?.reason, 'BadRequest');
        assert.match(e.responseStatus?.message ?? '', /cannot be read with certainty/);
        assert.equal(seen.length, 0, `${t} reached the API server`);
      } else {
        assert.equal(e.verb, 'watch');
        assert.equal(seen.find((s) => s.stage === 'RequestReceived')?.verb, 'watch');
      }
    }
  });

  it(`agrees on, or refuses, ${RUNS} generated requests (seed ${SEED})`, { skip }, async () => {
    const corpus = fc.sample(generated(ns.name), { seed: SEED, numRuns: RUNS });
    const sent: { g: Generated; ua: string; answer: RawResponse }[] = [];
    let next = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        const g = corpus[i];
        if (g === undefined) return;
        const ua = `diff-gen-${i}`;
        sent.push({ g, ua, answer: await rawRequest(sc, g.method, target(g), ua, g.body) });
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    const { events, server } = await compare();
    const byUa = new Map(events.map((e) => [e.userAgent, e]));
    const serverUas = new Set<string>();
    for (const list of server.values()) for (const s of list) if (s.userAgent) serverUas.add(s.userAgent);
    const problems: string[] = [];
    let refused = 0;
    let agreed = 0;
    for (const { g, ua, answer } of sent) {
      const e = byUa.get(ua);
      if (!e) {
        // Refused before the pipeline (not HTTP the sidecar accepts): never forwarded, no event.
        if (answer.status !== 400 || serverUas.has(ua)) {
          problems.push(`${g.method} ${target(g)}: no sidecar event, answer ${answer.status}`);
        }
        refused++;
      } else if (refusedBySidecar(e)) refused++;
      else agreed++;
    }
    assert.deepEqual(problems, []);
    // Both outcomes occur in quantity, or the corpus proves little.
    assert.ok(agreed > RUNS / 5 && refused > RUNS / 5, `${agreed} forwarded and agreed, ${refused} refused`);
  });
});
