import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { secretsUsed, tokenOutsideGuard } from './token-holders.ts';

const pod = (volumes: unknown[], mounts: unknown[], labels: Record<string, string> = {}) => ({
  metadata: { name: 'p', labels },
  spec: { containers: [{ name: 'app', image: 'nginx', volumeMounts: mounts }], volumes },
});
const projected = {
  name: 'kube-api-access-x1',
  projected: {
    sources: [{ serviceAccountToken: { path: 'token' } }, { configMap: { name: 'kube-root-ca.crt' } }],
  },
};
const atTokenDir = { name: 'kube-api-access-x1', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' };

describe('tokenOutsideGuard', () => {
  // Each case fails if the check missed that way of holding a token (or refused a pod without one).
  it('finds a projected token, a legacy token Secret and anything at the token directory', () => {
    assert.match(
      tokenOutsideGuard(pod([projected], [atTokenDir]), 'app') ?? '',
      /projected service-account token/,
    );
    assert.match(
      tokenOutsideGuard(
        pod(
          [{ name: 'tok', secret: { secretName: 'default-token-ab3c9' } }],
          [{ name: 'tok', mountPath: '/t' }],
        ),
        'app',
      ) ?? '',
      /token Secret "default-token-ab3c9"/,
    );
    assert.match(
      tokenOutsideGuard(pod([{ name: 'cm', configMap: { name: 'x' } }], [atTokenDir]), 'app') ?? '',
      /token directory/,
    );
  });

  it('leaves alone a guarded pod and a pod whose containers hold no token; a token in another container counts', () => {
    const injected = {
      metadata: { name: 'p', labels: { 'chaperone.dev/injected': 'true' } },
      spec: {
        volumes: [projected],
        containers: [{ name: 'app', volumeMounts: [atTokenDir] }],
        initContainers: [
          { name: 'chaperone-sidecar', env: [{ name: 'CHAPERONE_KUBE_PORT', value: '6443' }] },
        ],
      },
    };
    assert.equal(tokenOutsideGuard(injected, 'app'), undefined);
    // The label alone (anyone may set it outside opted-in namespaces) does not make a pod guarded.
    assert.match(
      tokenOutsideGuard(pod([projected], [atTokenDir], { 'chaperone.dev/injected': 'true' }), 'app') ?? '',
      /projected service-account token/,
    );
    assert.equal(tokenOutsideGuard(pod([projected], []), 'app'), undefined);
    assert.match(
      tokenOutsideGuard(
        {
          ...pod([projected], []),
          spec: {
            volumes: [projected],
            containers: [{ name: 'app' }, { name: 'other', volumeMounts: [atTokenDir] }],
          },
        },
        'app',
      ) ?? '',
      /container "other" of the same pod/,
    );
  });

  it('finds a token Secret pulled into a projected volume, and a container that reaches other containers or the node', () => {
    assert.match(
      tokenOutsideGuard(
        pod(
          [{ name: 'mix', projected: { sources: [{ secret: { name: 'builder-token-x9z2k' } }] } }],
          [{ name: 'mix', mountPath: '/m' }],
        ),
        'app',
      ) ?? '',
      /token Secret "builder-token-x9z2k"/,
    );
    const two = (extra: Record<string, unknown>) => ({
      metadata: { name: 'p' },
      spec: {
        volumes: [projected, { name: 'root', hostPath: { path: '/' } }],
        containers: [{ name: 'app' }, { name: 'holder', volumeMounts: [atTokenDir] }],
        ...extra,
      },
    });
    assert.match(
      tokenOutsideGuard(two({ shareProcessNamespace: true }), 'app') ?? '',
      /"holder" of the same pod.*and here their processes/,
    );
    // A debug container pointed at a token holder (kubectl debug --target) shares its processes.
    assert.match(
      tokenOutsideGuard(
        two({ ephemeralContainers: [{ name: 'debugger', targetContainerName: 'holder' }] }),
        'debugger',
      ) ?? '',
      /"holder" of the same pod/,
    );
    assert.match(tokenOutsideGuard(two({ hostPID: true }), 'app') ?? '', /hostPID/);
    const app = (c: Record<string, unknown>) => ({
      ...two({}),
      spec: { ...two({}).spec, containers: [{ name: 'app', ...c }] },
    });
    assert.match(
      tokenOutsideGuard(app({ securityContext: { privileged: true } }), 'app') ?? '',
      /privileged/,
    );
    assert.match(
      tokenOutsideGuard(app({ volumeMounts: [{ name: 'root', mountPath: '/host' }] }), 'app') ?? '',
      /host path volume "root"/,
    );
    for (const cap of ['DAC_READ_SEARCH', 'CAP_SYS_ADMIN', 'sys_ptrace']) {
      assert.match(
        tokenOutsideGuard(app({ securityContext: { capabilities: { add: [cap] } } }), 'app') ?? '',
        /the capability (DAC_READ_SEARCH|SYS_ADMIN|SYS_PTRACE)/,
        cap,
      );
    }
    assert.equal(
      tokenOutsideGuard(app({ securityContext: { capabilities: { add: ['NET_BIND_SERVICE'] } } }), 'app'),
      undefined,
    );
    assert.match(
      tokenOutsideGuard(app({ securityContext: { windowsOptions: { hostProcess: true } } }), 'app') ?? '',
      /Windows host process/,
    );
    // A shared process namespace with no token in any container reaches none.
    assert.equal(
      tokenOutsideGuard(
        {
          metadata: { name: 'p' },
          spec: { shareProcessNamespace: true, containers: [{ name: 'app' }, { name: 'b' }] },
        },
        'app',
      ),
      undefined,
    );
  });

  it('finds a token Secret of any name, given as one, in a volume, a projected volume or the environment', () => {
    const tokens = new Set(['build-credentials']);
    const withEnv = (c: Record<string, unknown>, volumes: unknown[] = []) => ({
      metadata: { name: 'p' },
      spec: { containers: [{ name: 'app', ...c }, { name: 'other' }], volumes },
    });
    const envRef = {
      env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'build-credentials', key: 'token' } } }],
    };
    assert.match(
      tokenOutsideGuard(withEnv(envRef), 'app', tokens) ?? '',
      /token Secret "build-credentials" in its environment \(env "TOKEN"\)/,
    );
    assert.match(
      tokenOutsideGuard(
        withEnv({ envFrom: [{ secretRef: { name: 'build-credentials' } }] }),
        'app',
        tokens,
      ) ?? '',
      /in its environment \(envFrom\)/,
    );
    const vol = { name: 'v', secret: { secretName: 'build-credentials' } };
    assert.match(
      tokenOutsideGuard(withEnv({ volumeMounts: [{ name: 'v', mountPath: '/c' }] }, [vol]), 'app', tokens) ??
        '',
      /token Secret "build-credentials" \(mounted at "\/c"\)/,
    );
    const proj = { name: 'v', projected: { sources: [{ secret: { name: 'build-credentials' } }] } };
    assert.ok(
      tokenOutsideGuard(withEnv({ volumeMounts: [{ name: 'v', mountPath: '/c' }] }, [proj]), 'app', tokens),
    );
    // The same Secret not known as a token: nothing; another container of the pod: within reach.
    assert.equal(tokenOutsideGuard(withEnv(envRef), 'app'), undefined);
    assert.match(
      tokenOutsideGuard(withEnv(envRef), 'other', tokens) ?? '',
      /container "app" of the same pod/,
    );
    // Guarded: nothing to read, nothing held.
    const guarded = {
      metadata: { name: 'p', labels: { 'chaperone.dev/injected': 'true' } },
      spec: {
        ...withEnv(envRef).spec,
        initContainers: [
          { name: 'chaperone-sidecar', env: [{ name: 'CHAPERONE_KUBE_PORT', value: '6443' }] },
        ],
      },
    };
    assert.equal(tokenOutsideGuard(guarded, 'app', tokens), undefined);
    assert.deepEqual(secretsUsed(guarded), []);
  });

  it('names every Secret an unguarded pod uses, once', () => {
    const p = {
      metadata: { name: 'p' },
      spec: {
        volumes: [
          { name: 'a', secret: { secretName: 's1' } },
          { name: 'b', projected: { sources: [{ secret: { name: 's2' } }, { configMap: { name: 'c' } }] } },
          { name: 'c', configMap: { name: 'not-a-secret' } },
        ],
        containers: [
          {
            name: 'x',
            env: [
              { name: 'A', valueFrom: { secretKeyRef: { name: 's3', key: 'k' } } },
              { name: 'B', value: 'v' },
            ],
          },
        ],
        initContainers: [
          { name: 'i', envFrom: [{ secretRef: { name: 's1' } }, { configMapRef: { name: 'c' } }] },
        ],
      },
    };
    assert.deepEqual(secretsUsed(p).sort(), ['s1', 's2', 's3']);
  });

  it('finds a container that holds a token in the same pod, an init container copying it among them', () => {
    const p = (holderMount: Record<string, unknown>, shared: Record<string, unknown>) => ({
      metadata: { name: 'p' },
      spec: {
        volumes: [projected, { name: 'shared', ...shared }],
        initContainers: [
          {
            name: 'copier',
            volumeMounts: [atTokenDir, { name: 'shared', mountPath: '/out', ...holderMount }],
          },
        ],
        containers: [{ name: 'app', volumeMounts: [{ name: 'shared', mountPath: '/in' }] }],
      },
    });
    // Whatever they share: a volume, or only memory and the network.
    for (const [mount, shared] of [
      [{}, { emptyDir: {} }],
      [{ readOnly: true }, { emptyDir: {} }],
      [{}, { configMap: { name: 'c' } }],
    ] as const) {
      assert.match(tokenOutsideGuard(p(mount, shared), 'app') ?? '', /container "copier" of the same pod/);
    }
  });
});
