/**
 * Golden tests: every testdata/inject/X.yaml is injected and compared with
 * X.yaml.injected (semantically, as parsed YAML). An optional X.config.yaml
 * sets the namespace and injection settings. For each input:
 * - the result matches the golden (UPDATE_GOLDEN=1 rewrites the goldens);
 * - the RFC 6902 patch applied to the input gives the same result;
 * - injecting the result again is a no-op (`already_injected`);
 * - custody holds on the result.
 * A first line `# skipped: reasons` or `# rejected: message` records outcomes
 * that are not a plain injection.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import type { Pod } from '../k8s-types.ts';
import { testConfig } from '../test-support.ts';
import { custodyViolations } from './custody-check.ts';
import type { InjectionConfig } from './injection-config.ts';
import { InjectionRejected } from './injection-error.ts';
import { applyPatch, diff } from './json-patch.ts';
import { type MutateResult, mutate } from './mutate.ts';
import { podInManifest } from './workload.ts';

const dir = fileURLToPath(new URL('../../testdata/inject/', import.meta.url));
const update = process.env.UPDATE_GOLDEN === '1';

const inputs = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml') && !f.endsWith('.config.yaml'))
  .sort();

interface CaseConfig {
  namespace?: string;
  config?: Partial<InjectionConfig>;
}

interface Rendered {
  readonly text: string;
  readonly outcome: string;
  /** The input pod, the settings and the result (absent when rejected), for the checks beyond the golden. */
  readonly pod: Pod;
  readonly config: InjectionConfig;
  readonly namespace: string;
  readonly result?: MutateResult;
}

function render(input: string, cfg: CaseConfig): Rendered {
  const manifest = YAML.parse(input) as unknown;
  const { pod, wrap } = podInManifest(manifest);
  const config = testConfig(cfg.config);
  const namespace = cfg.namespace ?? pod.metadata?.namespace ?? 'agents';
  try {
    const result = mutate(pod, config, { namespace });
    const outcome = result.skipReasons.length > 0 ? `skipped: ${result.skipReasons.join(', ')}` : 'injected';
    return {
      text: `# ${outcome}\n${YAML.stringify(wrap(result.pod), { lineWidth: 0, aliasDuplicateObjects: false })}`,
      outcome,
      pod,
      config,
      namespace,
      result,
    };
  } catch (err) {
    if (!(err instanceof InjectionRejected)) throw err;
    return {
      text: `# rejected: ${err.message}\n`,
      outcome: `rejected: ${err.message}`,
      pod,
      config,
      namespace,
    };
  }
}

describe('injection goldens (testdata/inject)', () => {
  it('has inputs', () => assert.ok(inputs.length >= 12, `only ${inputs.length} inputs`));

  for (const file of inputs) {
    const name = file.replace(/\.yaml$/, '');
    it(name, () => {
      const input = readFileSync(`${dir}${file}`, 'utf8');
      const cfgPath = `${dir}${name}.config.yaml`;
      const cfg: CaseConfig = existsSync(cfgPath) ? (YAML.parse(readFileSync(cfgPath, 'utf8')) ?? {}) : {};
      const got = render(input, cfg);
      const goldenPath = `${dir}${file}.injected`;
      if (update || !existsSync(goldenPath)) {
        if (!update) assert.fail(`${goldenPath} is missing; run with UPDATE_GOLDEN=1 to create it`);
        writeFileSync(goldenPath, got.text);
      }
      const golden = readFileSync(goldenPath, 'utf8');
      const goldenOutcome = golden.split('\n', 1)[0]?.replace(/^# /, '');
      assert.equal(got.outcome, goldenOutcome, 'outcome');
      assert.deepStrictEqual(YAML.parse(got.text), YAML.parse(golden), 'injected manifest');
      const { pod, config, namespace, result } = got;
      if (!result) return; // rejected
      // The patch the webhook would return gives exactly the injected pod.
      assert.deepStrictEqual(applyPatch(pod, diff(pod, result.pod)), result.pod, 'patch applied to input');
      if (result.skipReasons.length > 0 && !result.skipReasons.includes('already_injected')) {
        assert.strictEqual(result.pod, pod, 'a skipped pod is returned untouched');
        return;
      }
      // Injecting twice is a no-op.
      const again = mutate(structuredClone(result.pod), config, { namespace });
      assert.deepEqual(again.skipReasons, ['already_injected']);
      assert.deepStrictEqual(again.pod, result.pod);
      assert.deepEqual(diff(result.pod, again.pod), []);
      assert.deepEqual(custodyViolations(result.pod, config.allowedAgentTokenAudiences), []);
    });
  }
});
