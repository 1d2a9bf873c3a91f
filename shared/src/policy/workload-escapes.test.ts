// Every reason a pod template escapes the guard, as a table: one change to a
// clean pod per row, and the rules and fields it must produce.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { podEscapes, podTemplateOf, podTemplatePath } from './workload-escapes.ts';

type Obj = Record<string, unknown>;

const clean = (): Obj => ({
  metadata: { name: 'p', labels: { app: 'web' }, annotations: { note: 'x' } },
  spec: {
    containers: [
      {
        name: 'app',
        image: 'nginx',
        env: [
          { name: 'A', value: '1' },
          { name: 'B', valueFrom: { configMapKeyRef: { name: 'c', key: 'k' } } },
        ],
        envFrom: [{ configMapRef: { name: 'c' } }],
        securityContext: { capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] } },
      },
    ],
    volumes: [
      { name: 'scratch', emptyDir: {} },
      { name: 'cfg', configMap: { name: 'c' } },
      { name: 'p', projected: { sources: [{ configMap: { name: 'c' } }, { downwardAPI: { items: [] } }] } },
    ],
  },
});

type Change = (
  p: Obj & {
    metadata: Obj & { labels: Obj; annotations: Obj };
    spec: Obj & { containers: Obj[]; volumes: Obj[] };
  },
) => void;
const container = (p: Parameters<Change>[0]) =>
  p.spec.containers[0] as Obj & { securityContext: Obj; env: Obj[]; envFrom: Obj[] };

// [case, change, expected rules with their fields]
const table: [string, Change, [string, string][]][] = [
  ['clean pod', () => {}, []],
  [
    'opt-out label',
    (p) => {
      p.metadata.labels['chaperone.dev/inject'] = 'false';
    },
    [['chaperone-no-opt-out', 'metadata.labels[chaperone.dev/inject]']],
  ],
  [
    'opt-out annotation',
    (p) => {
      p.metadata.annotations['chaperone.dev/inject'] = 'false';
    },
    [['chaperone-no-opt-out', 'metadata.annotations[chaperone.dev/inject]']],
  ],
  [
    'opt-out annotation in other case',
    (p) => {
      p.metadata.annotations['chaperone.dev/inject'] = ' False';
    },
    [['chaperone-no-opt-out', 'metadata.annotations[chaperone.dev/inject]']],
  ],
  [
    'an override annotation the injector validates is fine',
    (p) => {
      p.metadata.annotations['chaperone.dev/log-level'] = 'debug';
    },
    [],
  ],
  [
    'forged injected label and status',
    (p) => {
      p.metadata.labels['chaperone.dev/injected'] = 'true';
      p.metadata.annotations['chaperone.dev/status'] = '{}';
    },
    [
      ['chaperone-no-forged-injection-marks', 'metadata.labels[chaperone.dev/injected]'],
      ['chaperone-no-forged-injection-marks', 'metadata.annotations[chaperone.dev/status]'],
    ],
  ],
  [
    'hostNetwork',
    (p) => {
      p.spec.hostNetwork = true;
    },
    [['chaperone-no-host-namespaces', 'spec.hostNetwork']],
  ],
  [
    'hostNetwork false',
    (p) => {
      p.spec.hostNetwork = false;
    },
    [],
  ],
  [
    'hostPID and hostIPC',
    (p) => {
      p.spec.hostPID = true;
      p.spec.hostIPC = true;
    },
    [
      ['chaperone-no-host-namespaces', 'spec.hostPID'],
      ['chaperone-no-host-namespaces', 'spec.hostIPC'],
    ],
  ],
  [
    'shareProcessNamespace',
    (p) => {
      p.spec.shareProcessNamespace = true;
    },
    [['chaperone-no-shared-process-namespace', 'spec.shareProcessNamespace']],
  ],
  [
    'privileged',
    (p) => {
      container(p).securityContext.privileged = true;
    },
    [['chaperone-no-privileged', 'spec.containers[0].securityContext.privileged']],
  ],
  [
    'NET_ADMIN',
    (p) => {
      container(p).securityContext.capabilities = { add: ['NET_ADMIN'] };
    },
    [['chaperone-no-privileged', 'spec.containers[0].securityContext.capabilities.add']],
  ],
  [
    'cap_sys_ptrace spelled the runtime way',
    (p) => {
      container(p).securityContext.capabilities = { add: ['cap_sys_ptrace'] };
    },
    [['chaperone-no-privileged', 'spec.containers[0].securityContext.capabilities.add']],
  ],
  [
    'ALL',
    (p) => {
      container(p).securityContext.capabilities = { add: ['ALL'] };
    },
    [['chaperone-no-privileged', 'spec.containers[0].securityContext.capabilities.add']],
  ],
  [
    'allowPrivilegeEscalation in an init container',
    (p) => {
      p.spec.initContainers = [
        { name: 'i', image: 'x', securityContext: { allowPrivilegeEscalation: true } },
      ];
    },
    [['chaperone-no-privileged', 'spec.initContainers[0].securityContext.allowPrivilegeEscalation']],
  ],
  [
    'hostPath volume',
    (p) => {
      p.spec.volumes.push({ name: 'root', hostPath: { path: '/' } });
    },
    [['chaperone-no-host-path', 'spec.volumes[3].hostPath']],
  ],
  [
    'projected service-account token',
    (p) => {
      p.spec.volumes.push({
        name: 't',
        projected: { sources: [{ serviceAccountToken: { path: 'token', audience: 'x' } }] },
      });
    },
    [['chaperone-no-own-token', 'spec.volumes[3].projected.sources[0].serviceAccountToken']],
  ],
  [
    'Secret volume (token Secrets included)',
    (p) => {
      p.spec.volumes.push({ name: 't', secret: { secretName: 'default-token-abcde' } });
    },
    [['chaperone-no-unmasked-secrets', 'spec.volumes[3].secret']],
  ],
  [
    'projected Secret source',
    (p) => {
      p.spec.volumes.push({
        name: 't',
        projected: { sources: [{ configMap: {} }, { secret: { name: 's' } }] },
      });
    },
    [['chaperone-no-unmasked-secrets', 'spec.volumes[3].projected.sources[1].secret']],
  ],
  [
    'secrets-store CSI volume',
    (p) => {
      p.spec.volumes.push({ name: 't', csi: { driver: 'secrets-store.csi.k8s.io' } });
    },
    [['chaperone-no-unmasked-secrets', 'spec.volumes[3].csi']],
  ],
  [
    'env from a Secret key',
    (p) => {
      container(p).env.push({ name: 'P', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } });
    },
    [['chaperone-no-unmasked-secrets', 'spec.containers[0].env[2].valueFrom.secretKeyRef']],
  ],
  [
    'envFrom a Secret',
    (p) => {
      container(p).envFrom.push({ secretRef: { name: 'db' } });
    },
    [['chaperone-no-unmasked-secrets', 'spec.containers[0].envFrom[1].secretRef']],
  ],
  [
    'hostProcess',
    (p) => {
      p.spec.securityContext = { windowsOptions: { hostProcess: true } };
    },
    [['chaperone-no-host-namespaces', 'spec.securityContext.windowsOptions.hostProcess']],
  ],
];

describe('podEscapes', () => {
  for (const [name, change, expected] of table) {
    it(name, () => {
      const pod = clean() as Parameters<Change>[0];
      change(pod);
      const t = podTemplateOf('', 'pods', pod);
      assert.ok(t);
      const got = podEscapes(t).map((e) => [e.rule, e.field]);
      assert.deepEqual(got, expected);
      for (const e of podEscapes(t)) assert.match(e.message, /: (remove|use|leave)|remove/);
    });
  }

  it('finds the template of every built-in kind, and prefixes the fields with its path', () => {
    const bad = clean() as Parameters<Change>[0];
    bad.spec.hostNetwork = true;
    bad.metadata.labels['chaperone.dev/inject'] = 'false';
    const cases: [string, string, Obj, string][] = [
      ['', 'replicationcontrollers', { spec: { template: bad } }, 'spec.template'],
      ['', 'podtemplates', { template: bad }, 'template'],
      ['apps', 'deployments', { spec: { template: bad } }, 'spec.template'],
      ['apps', 'replicasets', { spec: { template: bad } }, 'spec.template'],
      ['apps', 'statefulsets', { spec: { template: bad } }, 'spec.template'],
      ['apps', 'daemonsets', { spec: { template: bad } }, 'spec.template'],
      ['extensions', 'deployments', { spec: { template: bad } }, 'spec.template'],
      ['batch', 'jobs', { spec: { template: bad } }, 'spec.template'],
      [
        'batch',
        'cronjobs',
        { spec: { jobTemplate: { spec: { template: bad } } } },
        'spec.jobTemplate.spec.template',
      ],
    ];
    for (const [group, resource, obj, path] of cases) {
      const t = podTemplateOf(group, resource, obj);
      assert.ok(t, resource);
      assert.deepEqual(
        podEscapes(t).map((e) => e.field),
        [`${path}.metadata.labels[chaperone.dev/inject]`, `${path}.spec.hostNetwork`],
        resource,
      );
    }
    assert.equal(podTemplatePath('apps', 'controllerrevisions'), undefined);
    assert.equal(podTemplatePath('', 'services'), undefined);
  });

  it('reads a missing or malformed template as empty, never throws', () => {
    for (const obj of [undefined, null, 3, 'x', [], {}, { spec: null }, { spec: { template: [] } }]) {
      const t = podTemplateOf('apps', 'deployments', obj);
      assert.ok(t);
      assert.deepEqual(podEscapes(t), []);
    }
    const odd = podTemplateOf('', 'pods', {
      spec: {
        containers: [null, 1, { securityContext: { capabilities: { add: [1, null] } } }],
        volumes: 'x',
      },
    });
    assert.ok(odd);
    assert.deepEqual(podEscapes(odd), []);
  });
});
