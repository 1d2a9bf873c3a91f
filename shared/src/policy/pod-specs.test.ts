// Pod specs found anywhere in an object of unknown meaning, named by where they are.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { podSpecsIn, TooDeepError } from './pod-specs.ts';
import { podEscapes } from './workload-escapes.ts';

describe('podSpecsIn', () => {
  it('finds templates, bare specs and specs in lists, with their metadata', () => {
    const obj = {
      metadata: { name: 'r' },
      spec: {
        template: { metadata: { labels: { a: 'b' } }, spec: { containers: [] } },
        steps: [{ podSpec: { initContainers: [], hostNetwork: true } }],
      },
    };
    const found = podSpecsIn(obj);
    assert.deepEqual(
      found.map((t) => [t.path, t.specPath, t.metadata]),
      [
        ['spec.template', 'spec.template.spec', { labels: { a: 'b' } }],
        ['spec.steps[0].podSpec', 'spec.steps[0].podSpec', {}],
      ],
    );
    assert.deepEqual(
      found.flatMap((t) => podEscapes(t)).map((e) => e.field),
      ['spec.steps[0].podSpec.hostNetwork'],
    );
  });

  it('a root spec takes the object metadata', () => {
    const [t] = podSpecsIn({
      metadata: { labels: { 'chaperone.dev/inject': 'false' } },
      spec: { containers: [] },
    });
    assert.deepEqual(
      podEscapes(t as never).map((e) => e.rule),
      ['chaperone-no-opt-out'],
    );
  });

  it('refuses to read what nests too deep', () => {
    let deep: unknown = { containers: [] };
    for (let i = 0; i < 300; i++) deep = { x: deep };
    assert.throws(() => podSpecsIn(deep), TooDeepError);
  });
});
