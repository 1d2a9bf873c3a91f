// Which containers of a pod are a Chaperone sidecar (exec and attach refused)
// and which ports lead to one (port-forward refused), read from pod objects.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { podSidecars } from './sidecar-containers.ts';

const IMAGE = 'ghcr.io/example/chaperone:1.0';

/** The sidecar as the injector writes it (injector/src/inject/sidecar-container.ts), under another name. */
const sidecar = (over: Record<string, unknown> = {}) => ({
  name: 'proxy',
  image: IMAGE,
  command: ['chaperone', 'sidecar'],
  env: [
    { name: 'CHAPERONE_POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'CHAPERONE_KUBE_PORT', value: '7443' },
    { name: 'CHAPERONE_METRICS_PORT', value: '9191' },
  ],
  ports: [{ name: 'metrics', containerPort: 9191 }],
  ...over,
});
const app = { name: 'app', image: 'debian', env: [{ name: 'CHAPERONE_DB_MAIN_HOST', value: '127.0.0.1' }] };
const pod = (spec: Record<string, unknown>) => ({ kind: 'Pod', spec });

describe('podSidecars: containers', () => {
  // Fails if a sidecar is recognised by its name only, or an application container is taken for one.
  it('a sidecar under another name, by its environment; not the app with a database redirect', () => {
    const s = podSidecars(pod({ containers: [app, sidecar()] }));
    assert.deepEqual([...s.containers.keys()], ['proxy']);
  });

  it('by its command alone (no CHAPERONE_ variables)', () => {
    const s = podSidecars(
      pod({ containers: [sidecar({ env: [], command: ['/usr/local/bin/chaperone', 'sidecar'] })] }),
    );
    assert.match(s.containers.get('proxy') ?? '', /chaperone sidecar/);
    assert.deepEqual([...(s.ports ?? [])].sort(), [6443, 9090, 9191], 'the defaults, and the declared port');
  });

  it('as a native sidecar (init container)', () => {
    assert.ok(podSidecars(pod({ containers: [app], initContainers: [sidecar()] })).containers.has('proxy'));
  });

  it('ephemeral containers: with the sidecar image, with CHAPERONE_ variables, or targeting the sidecar', () => {
    const s = podSidecars(
      pod({
        containers: [app, sidecar()],
        ephemeralContainers: [
          { name: 'same-image', image: IMAGE, command: ['sh'] },
          { name: 'env', image: 'alpine', env: [{ name: 'CHAPERONE_X', value: '1' }] },
          { name: 'debugger', image: 'busybox', targetContainerName: 'proxy' },
          { name: 'debug-app', image: 'busybox', targetContainerName: 'app' },
        ],
      }),
    );
    assert.deepEqual([...s.containers.keys()].sort(), ['debugger', 'env', 'proxy', 'same-image']);
    assert.match(s.containers.get('debugger') ?? '', /targeting the sidecar container proxy/);
  });

  it('every container of a pod that shares its process namespace with a sidecar', () => {
    // Fails if shareProcessNamespace is ignored: the app container could read the sidecar's token via /proc.
    const s = podSidecars(pod({ shareProcessNamespace: true, containers: [app, sidecar()] }));
    assert.match(s.containers.get('app') ?? '', /shares its process namespace/);
    assert.equal(podSidecars(pod({ shareProcessNamespace: true, containers: [app] })).containers.size, 0);
  });

  it('a pod without a sidecar has none, and no sidecar ports', () => {
    const s = podSidecars(pod({ containers: [app] }));
    assert.equal(s.containers.size, 0);
    assert.deepEqual(s.ports, new Set());
  });
});

describe('podSidecars: ports', () => {
  it('from the variables, flags, databases and declared ports', () => {
    const s = podSidecars(
      pod({
        containers: [
          app,
          sidecar({
            args: ['--kube-port=8443', '--databases', 'main=5433'],
            env: [
              { name: 'CHAPERONE_KUBE_PORT', value: '7443' },
              { name: 'CHAPERONE_DATABASES', value: 'main=5432,other=6432' },
            ],
          }),
        ],
      }),
    );
    assert.deepEqual([...(s.ports ?? [])].sort(), [5432, 5433, 6432, 7443, 8443, 9090, 9191]);
  });

  // Fails if a port given another way than a plain value is skipped (the old reading ignored valueFrom,
  // so a sidecar whose port came from a ConfigMap had no ports at all).
  for (const [name, over] of [
    [
      'valueFrom',
      { env: [{ name: 'CHAPERONE_KUBE_PORT', valueFrom: { configMapKeyRef: { name: 'c', key: 'k' } } }] },
    ],
    ['envFrom', { envFrom: [{ configMapRef: { name: 'chaperone' } }] }],
    ['a $(VAR) flag', { args: ['--kube-port', '$(PORT)'] }],
    ['any free port', { env: [{ name: 'CHAPERONE_METRICS_PORT', value: '0' }] }],
    ['a database without a port', { env: [{ name: 'CHAPERONE_DATABASES', value: 'main' }] }],
  ] as const) {
    it(`cannot be known with ${name}: undefined, and why`, () => {
      const s = podSidecars(pod({ containers: [app, sidecar(over)] }));
      assert.equal(s.ports, undefined);
      assert.match(s.unknownPorts ?? '', /container proxy/);
      assert.ok(s.containers.has('proxy'), 'still a sidecar');
    });
  }
});
