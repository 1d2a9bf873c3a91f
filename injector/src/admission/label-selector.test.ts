import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matchesSelector, unmetRequirement } from './label-selector.ts';
import { namespaceSelector, OBJECT_SELECTOR } from './webhook-configuration.ts';

describe('label selectors', () => {
  const sel = namespaceSelector(undefined, ['kube-system', 'chaperone-system']);
  it('selects opted-in namespaces without a revision label', () => {
    assert.equal(matchesSelector(sel, { 'chaperone.dev/inject': 'enabled' }), true);
    assert.equal(
      matchesSelector(sel, { 'chaperone.dev/inject': 'enabled', 'kubernetes.io/metadata.name': 'agents' }),
      true,
    );
  });
  it('explains why a namespace is not selected', () => {
    assert.equal(unmetRequirement(sel, {}), 'label chaperone.dev/inject must be "enabled" (it is missing)');
    assert.equal(
      unmetRequirement(sel, { 'chaperone.dev/inject': 'yes' }),
      'label chaperone.dev/inject must be "enabled" (it is "yes")',
    );
    assert.equal(
      unmetRequirement(sel, { 'chaperone.dev/inject': 'enabled', 'chaperone.dev/revision': 'canary' }),
      'label chaperone.dev/revision must be absent (it is "canary")',
    );
    assert.equal(
      unmetRequirement(sel, {
        'chaperone.dev/inject': 'enabled',
        'kubernetes.io/metadata.name': 'kube-system',
      }),
      'label kubernetes.io/metadata.name must not be "kube-system"',
    );
  });
  it('revisions select only their namespaces', () => {
    const canary = namespaceSelector('canary', []);
    assert.equal(
      matchesSelector(canary, { 'chaperone.dev/inject': 'enabled', 'chaperone.dev/revision': 'canary' }),
      true,
    );
    assert.equal(matchesSelector(canary, { 'chaperone.dev/inject': 'enabled' }), false);
  });
  it('the object selector lets everything but the opt-out label through', () => {
    assert.equal(matchesSelector(OBJECT_SELECTOR, {}), true);
    assert.equal(matchesSelector(OBJECT_SELECTOR, { 'chaperone.dev/inject': 'true' }), true);
    assert.equal(matchesSelector(OBJECT_SELECTOR, { 'chaperone.dev/inject': 'false' }), false);
  });
  it('matchLabels and Exists', () => {
    assert.equal(matchesSelector({ matchLabels: { a: 'b' } }, { a: 'b' }), true);
    assert.match(unmetRequirement({ matchLabels: { a: 'b' } }, {}) ?? '', /a=b is required/);
    assert.equal(matchesSelector({ matchExpressions: [{ key: 'x', operator: 'Exists' }] }, {}), false);
  });
});
