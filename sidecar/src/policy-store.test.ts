import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createLogger, evaluate } from '@chaperone/shared';
import { PolicyStore } from './policy-store.ts';

const protection = {
  namespace: 'a',
  policyConfigMaps: ['chaperone-policy'],
  sidecarContainer: 'chaperone-sidecar',
};
const getPods = { protocol: 'kubernetes', verb: 'list', resource: 'pods', namespace: 'a' } as const;
const policy = (action: string) =>
  `apiVersion: chaperone.dev/v1alpha1\nkind: GuardrailPolicy\nmetadata: { name: p }\nspec:\n  defaultAction: ${action}\n`;

describe('PolicyStore', () => {
  let dir: string;
  let file: string;
  let logs: string;
  const log = () =>
    createLogger({
      name: 'test',
      destination: new Writable({
        write(c, _e, cb) {
          logs += String(c);
          cb();
        },
      }),
    });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'policy-'));
    file = join(dir, 'policy.yaml');
    logs = '';
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a missing policy at start means deny-all, with the reason', () => {
    const results: string[] = [];
    const store = new PolicyStore(file, log(), { onReload: (r) => results.push(r) });
    assert.equal(store.state, 'missing');
    const d = evaluate(getPods, store.current, protection);
    assert.equal(d.action, 'deny');
    assert.match(d.message, /policy file .* is missing/);
    assert.deepEqual(results, ['missing']);
    assert.match(logs, /every request is denied/);
  });

  it('an invalid policy at start means deny-all, never allow-all', () => {
    writeFileSync(
      file,
      'apiVersion: chaperone.dev/v1alpha1\nkind: GuardrailPolicy\nspec: { defaultAction: yes }\n',
    );
    const store = new PolicyStore(file, log());
    assert.equal(store.state, 'invalid');
    assert.equal(evaluate(getPods, store.current, protection).action, 'deny');
  });

  it('loads, reloads on change, rejects a bad edit keeping the last good policy, and recovers', () => {
    writeFileSync(file, policy('allow'));
    const results: string[] = [];
    const store = new PolicyStore(file, log(), { onReload: (r) => results.push(r) });
    assert.equal(evaluate(getPods, store.current, protection).action, 'allow');
    assert.equal(store.reload(), false, 'unchanged content is not reloaded');
    writeFileSync(file, policy('deny'));
    assert.equal(store.reload(), true);
    assert.equal(evaluate(getPods, store.current, protection).action, 'deny');
    writeFileSync(file, policy('maybe'));
    assert.equal(store.reload(), false);
    assert.equal(store.state, 'loaded');
    assert.equal(evaluate(getPods, store.current, protection).action, 'deny', 'last good policy stays');
    assert.match(
      logs,
      /"error":"policy: spec\.defaultAction: must be allow, deny or review","msg":"policy edit rejected/,
    );
    unlinkSync(file);
    assert.equal(store.reload(), false);
    assert.equal(
      evaluate(getPods, store.current, protection).action,
      'deny',
      'a deleted file keeps the last policy',
    );
    writeFileSync(file, policy('allow'));
    assert.equal(store.reload(), true);
    assert.equal(evaluate(getPods, store.current, protection).action, 'allow');
    assert.deepEqual(results, ['success', 'success', 'failure', 'missing', 'success']);
  });
});
