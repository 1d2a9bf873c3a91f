import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tokenOutsideGuard } from './token-holders.ts';

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

  it('leaves alone a guarded pod, a container without a token, and a token mounted only elsewhere', () => {
    assert.equal(
      tokenOutsideGuard(pod([projected], [atTokenDir], { 'chaperone.dev/injected': 'true' }), 'app'),
      undefined,
    );
    assert.equal(tokenOutsideGuard(pod([projected], []), 'app'), undefined);
    assert.equal(
      tokenOutsideGuard(
        {
          ...pod([projected], []),
          spec: {
            volumes: [projected],
            containers: [{ name: 'app' }, { name: 'other', volumeMounts: [atTokenDir] }],
          },
        },
        'app',
      ),
      undefined,
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
      /shared process namespace.*"holder"/,
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
});
