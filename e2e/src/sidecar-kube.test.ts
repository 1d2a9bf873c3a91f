// The sidecar's Kubernetes API path end to end: a real `chaperone sidecar`
// process in front of the real kube-apiserver, driven by the real kubectl and
// by @kubernetes/client-node in in-cluster mode. The test plays the kubelet's
// part of laying out files (there is no kubelet here).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AuditEvent, verifyChain } from '@chaperone/shared';
import { readSpoolDir } from '@chaperone/sidecar';
import * as k8s from '@kubernetes/client-node';
import { Agent, request } from 'undici';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { kubectl } from './kubectl.ts';
import { waitFor } from './process.ts';
import { SA_PATH, type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';

const CANARY = 'canary-7d1f4e-do-not-leak';
const CANARY_B64 = Buffer.from(CANARY).toString('base64');

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e }
spec:
  defaultAction: allow
  rules:
    - name: mask-secrets
      match: { resources: [secrets], verbs: [get, list, watch] }
      action: mask
    - name: no-deployment-deletes
      match: { verbs: [delete, deletecollection], apiGroups: [apps], resources: [deployments] }
      action: deny
      message: Agents may not delete deployments.
`;

describe('sidecar: Kubernetes API guardrails', () => {
  const kube = kubeInfo();
  let ns: TestNamespace;
  let sc: SidecarUnderTest;
  const agent = (args: string[], env: Record<string, string> = {}) =>
    kubectl(sc.agentKubeconfig, [...args, '--cache-dir', join(sc.dir, 'kube-cache')], { env });
  const admin = (args: string[]) => kubectl(kube.kubeconfigPath, args);

  before(async () => {
    // Opted in: the agent creates a Deployment, which the guard allows only where pods get the sidecar.
    ns = await createNamespace('sidecar', { 'chaperone.dev/inject': 'enabled' });
    sc = await startSidecar({ namespace: ns.name, policy: POLICY });
    const r = admin([
      'create',
      'secret',
      'generic',
      'db',
      '-n',
      ns.name,
      `--from-literal=password=${CANARY}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await sc?.stop();
    await ns?.delete();
  });

  it('allows reads, discovery and OpenAPI through kubectl', () => {
    const pods = agent(['get', 'pods']);
    assert.equal(pods.code, 0, pods.stderr);
    const resources = agent(['api-resources', '-o', 'name']);
    assert.equal(resources.code, 0, resources.stderr);
    assert.match(resources.stdout, /^deployments\.apps$/m);
    const explain = agent(['explain', 'pods.spec.containers.image']);
    assert.equal(explain.code, 0, explain.stderr);
    const version = agent(['get', '--raw', '/version']);
    assert.match(version.stdout, /"gitVersion": ?"v1\.20\.2"/);
  });

  it('denies kubectl delete namespace with the rule named, and the namespace stays', () => {
    const r = agent(['delete', 'namespace', ns.name]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /Error from server \(Forbidden\): chaperone: denied by rule "chaperone-protect-namespaces"/,
    );
    const still = admin(['get', 'namespace', ns.name, '-o', 'jsonpath={.status.phase}']);
    assert.equal(still.stdout, 'Active');
  });

  it("denies by the policy's own rule with its message", () => {
    assert.equal(agent(['create', 'deployment', 'web', '--image=nginx:1.27']).code, 0);
    const r = agent(['delete', 'deployment', 'web']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /denied by rule "no-deployment-deletes": Agents may not delete deployments\./);
    assert.equal(admin(['get', 'deployment', 'web', '-n', ns.name]).code, 0);
  });

  it('denies changes to the policy ConfigMap (self-protection)', () => {
    const r = agent(['create', 'configmap', 'chaperone-policy', '--from-literal=policy.yaml=x']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /chaperone-protect-policy/);
    assert.equal(admin(['get', 'configmap', 'chaperone-policy', '-n', ns.name]).code, 1);
  });

  // Fails when the configmaps clause of chaperone-protect-policy is removed from
  // shared/src/policy/self-protection.ts (tried: the merge patch then lands).
  it('refuses patches (merge, strategic, JSON) and updates of the existing policy ConfigMap, which stays as it was', () => {
    // As admin: left over from the test above if the create was let through.
    admin(['delete', 'configmap', 'chaperone-policy', '-n', ns.name, '--ignore-not-found']);
    const made = admin([
      'create',
      'configmap',
      'chaperone-policy',
      '-n',
      ns.name,
      '--from-literal=policy.yaml=original',
    ]);
    assert.equal(made.code, 0, made.stderr);
    const read = () => {
      const r = admin(['get', 'configmap', 'chaperone-policy', '-n', ns.name, '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as {
        data?: Record<string, string>;
        metadata: { resourceVersion: string; labels?: Record<string, string> };
      };
    };
    const before = read();
    const edited = JSON.stringify({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'chaperone-policy', namespace: ns.name },
      data: { 'policy.yaml': 'edited' },
    });
    const attempts: [string, string[], string?][] = [
      [
        'merge patch',
        [
          'patch',
          'configmap',
          'chaperone-policy',
          '--type',
          'merge',
          '-p',
          '{"data":{"policy.yaml":"edited"}}',
        ],
      ],
      [
        'strategic merge patch',
        [
          'patch',
          'configmap',
          'chaperone-policy',
          '--type',
          'strategic',
          '-p',
          '{"data":{"policy.yaml":"edited"}}',
        ],
      ],
      [
        'JSON patch',
        [
          'patch',
          'configmap',
          'chaperone-policy',
          '--type',
          'json',
          '-p',
          '[{"op":"replace","path":"/data/policy.yaml","value":"edited"}]',
        ],
      ],
      ['label (merge patch of metadata)', ['label', 'configmap', 'chaperone-policy', 'edited=yes']],
      ['replace (PUT)', ['replace', '-f', '-'], edited],
      [
        'replace with the read resourceVersion (PUT)',
        ['replace', '-f', '-'],
        JSON.stringify({
          ...JSON.parse(edited),
          metadata: { ...JSON.parse(edited).metadata, resourceVersion: before.metadata.resourceVersion },
        }),
      ],
      ['server-side apply', ['apply', '--server-side', '--force-conflicts', '-f', '-'], edited],
      ['delete', ['delete', 'configmap', 'chaperone-policy']],
    ];
    for (const [what, args, input] of attempts) {
      const r = kubectl(
        sc.agentKubeconfig,
        [...args, '--cache-dir', join(sc.dir, 'kube-cache')],
        input === undefined ? {} : { input },
      );
      assert.equal(r.code, 1, `${what}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /Forbidden.*chaperone-protect-policy/, what);
    }
    const afterwards = read();
    assert.deepEqual(afterwards.data, { 'policy.yaml': 'original' });
    assert.equal(afterwards.metadata.resourceVersion, before.metadata.resourceVersion);
    assert.equal(afterwards.metadata.labels?.edited, undefined);
  });

  it('masks Secret values in get -o yaml/json and in lists, keeping the keys', () => {
    const yaml = agent(['get', 'secret', 'db', '-o', 'yaml']);
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.match(yaml.stdout, /password: KiptYXNrZWQqKg==/);
    const json = agent(['get', 'secrets', '-o', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const list = JSON.parse(json.stdout) as {
      items: { metadata: { name: string }; data?: Record<string, string> }[];
    };
    const db = list.items.find((s) => s.metadata.name === 'db');
    assert.deepEqual(Object.keys(db?.data ?? {}), ['password']);
    const table = agent(['get', 'secrets']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^db\s+Opaque\s+1/m);
    for (const out of [yaml.stdout, json.stdout, table.stdout]) {
      assert.equal(out.includes(CANARY), false);
      assert.equal(out.includes(CANARY_B64), false);
    }
  });

  // Fails when the Table branch of the byte-level masker (sidecar/src/kube/mask-bytes.ts,
  // `if (kind === 'Table' && rows)`) answers with no edits (tried: the canary then shows in the
  // rows' objects). kubectl's own printing shows none of that: the test reads the JSON it receives.
  it('masks the Tables kubectl asks for (get, -o wide, --sort-by), rows and embedded objects alike', async () => {
    // Applied with kubectl, so the value is also in the last-applied annotation, which a Table's
    // row object keeps even as PartialObjectMetadata.
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'applied', namespace: ns.name },
      stringData: { password: CANARY },
    };
    const made = kubectl(kube.kubeconfigPath, ['apply', '-f', '-'], { input: JSON.stringify(secret) });
    assert.equal(made.code, 0, made.stderr);
    const dispatcher = new Agent({ connect: { ca: sc.agentCa } });
    try {
      for (const extra of [[], ['-o', 'wide'], ['--sort-by', '.metadata.name']]) {
        const shown = agent(['get', 'secrets', ...extra, '-v=8']);
        assert.equal(shown.code, 0, shown.stderr);
        assert.match(shown.stdout, /^applied\s+Opaque\s+1/m);
        assert.equal(shown.stdout.includes(CANARY), false);
        // The list request kubectl made, as it logged it, sent again through the sidecar.
        const lines = shown.stderr.split('\n');
        const at = lines.findIndex((l) =>
          new RegExp(`\\] GET ${sc.url}/api/v1/namespaces/${ns.name}/secrets\\?`).test(l),
        );
        assert.ok(at >= 0, `no list request in kubectl's log:\n${shown.stderr}`);
        const url = /\] GET (\S+)/.exec(lines[at] as string)?.[1] as string;
        const acceptLine = lines.slice(at + 1, at + 8).find((l) => /\]\s+Accept: /.test(l));
        const accept = /Accept: (.*)$/.exec(acceptLine ?? '')?.[1]?.trim();
        assert.ok(accept?.includes('as=Table'), `kubectl asked for no Table: ${acceptLine}`);
        if (extra[0] === '--sort-by') assert.match(url, /[?&]includeObject=Object(&|$)/);
        const r = await request(url, {
          headers: { accept, authorization: `Bearer ${sc.agentToken}`, 'user-agent': 'e2e-table' },
          dispatcher,
        });
        const text = await r.body.text();
        assert.equal(r.statusCode, 200, text);
        const table = JSON.parse(text) as {
          kind: string;
          rows: {
            cells: unknown[];
            object: {
              kind: string;
              metadata: { name: string; annotations?: Record<string, string> };
              data?: Record<string, string>;
            };
          }[];
        };
        assert.equal(table.kind, 'Table');
        const row = (name: string) => table.rows.find((x) => x.object.metadata.name === name);
        const applied = row('applied');
        assert.ok(applied && row('db'), text);
        assert.ok(
          applied.object.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration'],
          'the row object keeps the last-applied annotation (masked)',
        );
        if (extra[0] === '--sort-by') {
          assert.equal(applied.object.kind, 'Secret');
          assert.deepEqual(applied.object.data, { password: 'KiptYXNrZWQqKg==' });
          assert.deepEqual(row('db')?.object.data, { password: 'KiptYXNrZWQqKg==' });
        } else assert.equal(applied.object.kind, 'PartialObjectMetadata');
        for (const leak of [CANARY, CANARY_B64]) {
          assert.equal(text.includes(leak), false, `${extra.join(' ')}: ${leak} in the Table`);
          assert.equal(JSON.stringify(table.rows).includes(leak), false);
        }
      }
    } finally {
      await dispatcher.close();
    }
  });

  it('masks the watch stream event by event (kubectl get secrets -w)', async () => {
    const child = spawn(
      'kubectl',
      ['get', 'secrets', '-w', '-o', 'json', '--cache-dir', join(sc.dir, 'kube-cache')],
      {
        env: { ...process.env, KUBECONFIG: sc.agentKubeconfig },
      },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    try {
      await waitFor(async () => out.includes('"name": "db"'), {
        what: 'the initial watch events',
        timeoutMs: 15_000,
      });
      const r = admin([
        'create',
        'secret',
        'generic',
        'later',
        '-n',
        ns.name,
        `--from-literal=token=${CANARY}-2`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      await waitFor(async () => out.includes('"name": "later"'), {
        what: 'the watch event for the new secret',
        timeoutMs: 15_000,
      });
      assert.equal(out.includes(CANARY), false);
      assert.equal(out.includes(Buffer.from(`${CANARY}-2`).toString('base64')), false);
      assert.match(out, /"token": "KiptYXNrZWQqKg=="/);
    } finally {
      child.kill();
    }
  });

  it('@kubernetes/client-node in in-cluster mode reaches the sidecar with no code change', async () => {
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1';
    process.env.KUBERNETES_SERVICE_PORT = String(sc.kubePort);
    try {
      const kc = new k8s.KubeConfig();
      kc.loadFromCluster(sc.agentRoot);
      assert.equal(kc.getCurrentCluster()?.server, `https://127.0.0.1:${sc.kubePort}`);
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const pods = await core.listNamespacedPod({ namespace: ns.name });
      assert.ok(Array.isArray(pods.items));
      const secret = await core.readNamespacedSecret({ name: 'db', namespace: ns.name });
      assert.equal(secret.data?.password, 'KiptYXNrZWQqKg==');
      await assert.rejects(core.deleteNamespace({ name: ns.name }), (err: unknown) => {
        assert.match(String((err as Error).message), /chaperone-protect-namespaces/);
        return true;
      });
    } finally {
      if (saved.host === undefined) delete process.env.KUBERNETES_SERVICE_HOST;
      else process.env.KUBERNETES_SERVICE_HOST = saved.host;
      if (saved.port === undefined) delete process.env.KUBERNETES_SERVICE_PORT;
      else process.env.KUBERNETES_SERVICE_PORT = saved.port;
    }
  });

  it("the agent's placeholder token alone gets 401 from the real API server", async () => {
    const token = readFileSync(join(sc.agentRoot, SA_PATH, 'token'), 'utf8');
    assert.notEqual(token, sc.realToken);
    const dispatcher = new Agent({ connect: { ca: kube.caCert } });
    try {
      const r = await request(`${kube.server}/api/v1/namespaces/${ns.name}/pods`, {
        headers: { authorization: `Bearer ${token}` },
        dispatcher,
      });
      await r.body.dump();
      assert.equal(r.statusCode, 401);
    } finally {
      await dispatcher.close();
    }
  });

  // Fails when the exec session guard passes the request on instead of
  // answering it (tried: kubectl then prints the API server's "does not have a
  // host assigned" and the audit log holds the request). Exec and attach
  // sessions through the guard: sidecar-exec.test.ts; port-forward:
  // sidecar-portforward.test.ts.
  it('refuses an exec that is not a WebSocket session on a pod that exists, before the API server sees it', async () => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'target', namespace: ns.name },
      spec: { containers: [{ name: 'main', image: 'busybox:1.36', command: ['sleep', '3600'] }] },
    };
    const made = kubectl(kube.kubeconfigPath, ['create', '-f', '-'], { input: JSON.stringify(pod) });
    assert.equal(made.code, 0, made.stderr);
    // A running pod, as a session would find it: the test plays the kubelet's part.
    const status = admin([
      'patch',
      'pod',
      'target',
      '-n',
      ns.name,
      '--subresource=status',
      '--type=merge',
      '-p',
      '{"status":{"phase":"Running"}}',
    ]);
    assert.equal(status.code, 0, status.stderr);
    const logFrom = kube.auditLogPath ? statSync(kube.auditLogPath).size : 0;
    const seen = agent(['get', 'pod', 'target', '-o', 'jsonpath={.status.phase}']);
    assert.equal(seen.stdout, 'Running', seen.stderr);
    // An existing cluster has no audit log of ours to read (kube.auditLogPath is unset).
    const assertNoSessionsAudited = async (auditLog: string) => {
      const agentUser = `system:serviceaccount:${ns.name}:agent`;
      type ServerEvent = {
        stage: string;
        user: { username: string };
        requestURI: string;
        verb: string;
        objectRef?: { resource?: string; name?: string; subresource?: string };
      };
      const events = () =>
        readFileSync(auditLog)
          .subarray(logFrom)
          .toString('utf8')
          .split('\n')
          .filter((l) => l.trim() !== '')
          .map((l) => JSON.parse(l) as ServerEvent)
          .filter((e) => e.user.username === agentUser);
      // The agent's reads of the pod (kubectl looks the pod up before each session) reached the server,
      // so the log is being read where the sessions would have landed.
      await waitFor(
        async () =>
          events().some(
            (e) =>
              e.stage === 'ResponseComplete' &&
              e.verb === 'get' &&
              e.objectRef?.resource === 'pods' &&
              e.objectRef.name === 'target' &&
              e.objectRef.subresource === undefined,
          ),
        { what: "the API server's audit of the agent's pod reads", timeoutMs: 15_000 },
      );
      const sessions = events()
        .filter(
          (e) =>
            ['exec', 'attach', 'portforward'].includes(e.objectRef?.subresource ?? '') ||
            /\/pods\/[^/?]+\/(exec|attach|portforward)/.test(e.requestURI),
        )
        .map((e) => `${e.stage} ${e.verb} ${e.requestURI}`);
      assert.deepEqual(sessions, []);
    };
    const cases: [string[], RegExp][] = [
      [
        ['get', '--raw', `/api/v1/namespaces/${ns.name}/pods/target/exec?command=ls&stdout=true`],
        /chaperone: exec must be a WebSocket upgrade/,
      ],
    ];
    const results = cases.map(([args, message]) => ({
      what: `kubectl ${args.join(' ')}`,
      message,
      r: kubectl(sc.agentKubeconfig, ['--cache-dir', join(sc.dir, 'kube-cache'), ...args], {
        timeoutMs: 30_000,
      }),
    }));
    // The audit log first (when there is one): the sessions never reached the API server.
    if (kube.auditLogPath) await assertNoSessionsAudited(kube.auditLogPath);
    for (const { what, message, r } of results) {
      assert.notEqual(r.code, 0, `${what}: ${r.stdout}`);
      assert.match(r.stderr, message, `${what}: ${r.stderr}`);
      // The API server's own answers (the sidecar's refusal of a plain exec is a BadRequest too).
      assert.doesNotMatch(
        r.stderr,
        /NotFound|not found|host assigned|container name must be specified|Upgrade request required/,
        `${what}: ${r.stderr}`,
      );
    }
  });

  it('maps bad input to a Status: oversized bodies get 413', async () => {
    const dispatcher = new Agent({ connect: { ca: sc.agentCa } });
    try {
      const big = Buffer.alloc(4 * 1024 * 1024, 'a');
      const r = await request(`${sc.url}/api/v1/namespaces/${ns.name}/configmaps`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'e2e-oversize' },
        body: big,
        dispatcher,
      });
      const body = (await r.body.json()) as { kind: string; code: number; message: string };
      assert.equal(r.statusCode, 413);
      assert.equal(body.kind, 'Status');
      assert.match(body.message, /larger than the limit/);
    } finally {
      await dispatcher.close();
    }
  });

  it('every request produced exactly one event with the right decision, chained, with no secret in it', async () => {
    const dispatcher = new Agent({ connect: { ca: sc.agentCa } });
    const ua = 'e2e-counting-client/1.0';
    const calls: [string, string, number, string][] = [
      ['GET', `/api/v1/namespaces/${ns.name}/pods`, 200, 'allow'],
      ['GET', `/api/v1/namespaces/${ns.name}/secrets/db`, 200, 'mask'],
      ['DELETE', `/api/v1/namespaces/${ns.name}`, 403, 'deny'],
      ['GET', '/version', 200, 'allow'],
      ['GET', `/api/v1/namespaces/${ns.name}/secrets/missing`, 404, 'mask'],
    ];
    try {
      for (const [method, path] of calls) {
        const r = await request(`${sc.url}${path}`, {
          method: method as 'GET',
          headers: { 'user-agent': ua },
          dispatcher,
        });
        await r.body.dump();
      }
    } finally {
      await dispatcher.close();
    }
    const mine = await waitFor(
      async () => {
        const events = readSpoolDir(sc.spoolDir).filter((e) => e.userAgent === ua);
        return events.length >= calls.length ? events : undefined;
      },
      { what: 'the audit events of the counted requests', timeoutMs: 10_000 },
    );
    assert.equal(mine.length, calls.length);
    calls.forEach(([method, path, code, action], i) => {
      const e = mine[i] as AuditEvent;
      assert.equal(e.requestURI, path, `${method} ${path}`);
      assert.equal(e.responseStatus?.code, code, `${method} ${path}`);
      assert.equal(e.chaperone.decision.action, action, `${method} ${path}`);
      assert.equal(e.user.username, `system:serviceaccount:${ns.name}:agent`);
      assert.equal(e.chaperone.source.pod, 'agent-0');
      assert.match(e.auditID, /^[0-9a-f-]{36}$/);
    });
    const denied = mine[2] as AuditEvent;
    assert.equal(denied.annotations?.['authorization.k8s.io/decision'], 'forbid');
    assert.equal(denied.chaperone.decision.rule, 'chaperone-protect-namespaces');
    assert.equal((mine[1] as AuditEvent).chaperone.maskedFields, 1);
    assert.equal((mine[1] as AuditEvent).objectRef?.name, 'db');
    const all = readSpoolDir(sc.spoolDir);
    assert.deepEqual(verifyChain(all).problems, []);
  });

  it('a canary secret value appears nowhere in the logs, the spool or the events', () => {
    const files = [sc.logFile, ...readdirSync(sc.spoolDir).map((f) => join(sc.spoolDir, f))];
    for (const f of files) {
      const text = readFileSync(f).toString('latin1');
      assert.equal(text.includes(CANARY), false, `canary in ${f}`);
      assert.equal(text.includes(CANARY_B64), false, `base64 canary in ${f}`);
      assert.equal(text.includes(sc.realToken), false, `real token in ${f}`);
    }
  });

  it('serves its metrics on a separate port', async () => {
    const body = await (await fetch(sc.metricsUrl)).text();
    assert.match(
      body,
      /chaperone_requests_total\{protocol="kubernetes",verb="delete",action="deny",rule="chaperone-protect-namespaces"/,
    );
    assert.ok(
      body.includes(
        `chaperone_blocked_total{namespace="${ns.name}",protocol="kubernetes",rule="no-deployment-deletes"`,
      ),
    );
    assert.ok(
      body.includes(
        `chaperone_masked_fields_total{namespace="${ns.name}",protocol="kubernetes",rule="mask-secrets"`,
      ),
    );
    assert.match(body, /chaperone_proxy_overhead_seconds_bucket/);
    assert.match(body, /chaperone_policy_loaded\{component="sidecar"\} 1/);
  });

  it('reloads an edited policy, and keeps the last good one when an edit is invalid', async () => {
    writeFileSync(
      sc.policyFile,
      `${POLICY}    - name: no-pod-lists\n      match: { verbs: [list], resources: [pods] }\n      action: deny\n`,
    );
    await waitFor(async () => agent(['get', 'pods']).code === 1, {
      what: 'the new rule to apply',
      timeoutMs: 10_000,
    });
    writeFileSync(
      sc.policyFile,
      'apiVersion: chaperone.dev/v1alpha1\nkind: GuardrailPolicy\nspec: { rules: [ { name: x } ] }\n',
    );
    await waitFor(async () => /policy edit rejected/.test(readFileSync(sc.logFile, 'utf8')), {
      what: 'the bad edit to be rejected',
      timeoutMs: 10_000,
    });
    const r = agent(['get', 'pods']);
    assert.equal(r.code, 1, 'the last good policy (denying pod lists) is still in force');
    assert.match(r.stderr, /no-pod-lists/);
    const metrics = await (await fetch(sc.metricsUrl)).text();
    assert.match(metrics, /chaperone_policy_reloads_total\{result="failure",component="sidecar"\} 1/);
  });
});
