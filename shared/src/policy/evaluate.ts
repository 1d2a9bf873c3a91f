/**
 * The one decision function: `evaluate(action, policy, protection)`. Pure: no
 * clock, logger, environment or I/O. Built-in self-protection first, then the
 * policy's rules in order (the first match decides), then the default.
 * Several SQL statements in one request are decided one by one and the most
 * restrictive decision wins.
 *
 * Restrictive rules (deny, review, mask) match everything the request reaches;
 * allow rules match exactly what they name, as RBAC does:
 * - a list, watch or deletecollection without a namespace (on a resource whose
 *   objects have one) or without a name serves or deletes the objects of every
 *   namespace or name, so a restrictive rule's `namespaces` / `names` match it
 *   whatever they list (request-span.ts); an allow rule's match it only with `*`;
 * - a plain resource in a restrictive rule (`pods`) also matches its
 *   subresources (`pods/exec`, `pods/log`, `deployments/scale` for
 *   `deployments`); in an allow rule only `*` does;
 * - a non-resource URL without `*` in a restrictive rule (`/logs`) also matches
 *   the path with a trailing `/` and every path below it; in an allow rule it
 *   matches exactly.
 * So a deny cannot be walked around by asking for more than it names, and an
 * allow never grants more than it names.
 */
import { globMatcher, type Matcher, pathTreeMatcher } from './glob.ts';
import { DEFAULT_MASK_FIELDS, DEFAULT_REVIEW } from './parse.ts';
import { portForwardTest } from './port-match.ts';
import { compileReachNote, coveredNamespace, spansNames, spansNamespaces } from './request-span.ts';
import { checkSelfProtection } from './self-protection.ts';
import { applySqlMasks, sqlBuiltins, sqlTest } from './sql-match.ts';
import type { Action, Decision, Policy, Rule, SelfProtection } from './types.ts';

type Test = (a: Action) => boolean;

interface CompiledRule {
  readonly rule: Rule;
  readonly test: Test;
  /** Restrictive rules: why the rule reached a request that does not name what it names. */
  readonly reach?: (a: Action) => string | undefined;
}

export interface CompiledPolicy {
  readonly policy: Policy;
  readonly rules: readonly CompiledRule[];
}

const compiledCache = new WeakMap<Policy, CompiledPolicy>();

function listTest(
  values: readonly string[] | undefined,
  pick: (a: Action) => string | undefined,
  spans?: Test,
): Test | undefined {
  if (!values) return undefined;
  const m: Matcher = globMatcher(values);
  return spans ? (a) => spans(a) || m(pick(a)) : (a) => m(pick(a));
}

/**
 * `resources`: plain names and `resource/subresource` pairs. A plain name
 * matches the resource's subresources too when the rule is restrictive
 * (`pods` covers `pods/exec`); in an allow rule only `*` does, as in RBAC.
 */
function resourceTest(resources: readonly string[], restrictive: boolean): Test {
  const plain = resources.filter((r) => !r.includes('/'));
  const sub = resources.filter((r) => r.includes('/')).map((r) => r.split('/') as [string, string]);
  const plainMatch = globMatcher(plain);
  const plainCoversSub = restrictive || plain.includes('*');
  return (a) => {
    if (a.resource === undefined) return false;
    if (plain.length > 0 && (a.subresource === undefined || plainCoversSub) && plainMatch(a.resource)) {
      return true;
    }
    return sub.some(([r, s]) => (r === '*' || r === a.resource) && (s === '*' || s === a.subresource));
  };
}

function compileRule(rule: Rule): CompiledRule {
  const m = rule.match;
  const restrictive = rule.action !== 'allow';
  const tests: Test[] = [];
  const push = (t: Test | undefined) => {
    if (t) tests.push(t);
  };
  if (m.protocols) {
    const set = new Set<string>(m.protocols);
    tests.push((a) => set.has(a.protocol));
  }
  push(listTest(m.verbs, (a) => a.verb));
  push(listTest(m.apiGroups, (a) => a.apiGroup ?? ''));
  if (m.resources) tests.push(resourceTest(m.resources, restrictive));
  push(listTest(m.subresources, (a) => a.subresource));
  if (restrictive) {
    push(listTest(m.namespaces, coveredNamespace, spansNamespaces));
    push(listTest(m.names, (a) => a.name, spansNames));
    if (m.nonResourceURLs) {
      const urls = pathTreeMatcher(m.nonResourceURLs);
      tests.push((a) => urls(a.nonResourceURL));
    }
  } else {
    push(listTest(m.namespaces, (a) => a.namespace));
    push(listTest(m.names, (a) => a.name));
    push(listTest(m.nonResourceURLs, (a) => a.nonResourceURL));
  }
  push(listTest(m.users, (a) => a.user));
  if (m.exec) {
    const commands = m.exec.commands?.map((c) => new RegExp(c));
    const argv0 = m.exec.argv0 ? globMatcher(m.exec.argv0) : undefined;
    const containers = m.exec.containers ? globMatcher(m.exec.containers) : undefined;
    tests.push((a) => {
      const x = a.exec;
      if (!x) return false;
      if (commands && !commands.some((re) => re.test(x.argv.join(' ')))) return false;
      if (argv0) {
        const first = x.argv[0];
        if (first === undefined || !(argv0(first) || argv0(first.split('/').pop()))) return false;
      }
      if (containers && !containers(x.container)) return false;
      return true;
    });
  }
  if (m.portForward) tests.push(portForwardTest(m.portForward.ports, restrictive));
  if (m.sql) tests.push(sqlTest(m.sql, restrictive));
  const test: Test = (a) => tests.every((t) => t(a));
  return rule.action === 'allow' ? { rule, test } : { rule, test, reach: compileReachNote(m, rule.action) };
}

export function compilePolicy(policy: Policy): CompiledPolicy {
  let c = compiledCache.get(policy);
  if (!c) {
    c = { policy, rules: policy.rules.map(compileRule) };
    compiledCache.set(policy, c);
  }
  return c;
}

const SEVERITY = { allow: 0, mask: 1, review: 2, deny: 3 } as const;

/**
 * Every answer about Secrets — reads, watches, and the objects that writes and
 * deletes return — leaves the guard masked, whatever the policy allows: a
 * Secret's values (service-account tokens among them) are credentials. A
 * policy's deny still wins.
 */
function maskSecrets(action: Action, decision: Decision): Decision {
  if (
    action.protocol !== 'kubernetes' ||
    (action.apiGroup ?? '') !== '' ||
    action.resource !== 'secrets' ||
    decision.action === 'deny'
  ) {
    return decision;
  }
  if (decision.action === 'allow') {
    return {
      action: 'mask',
      rule: 'chaperone-mask-secrets',
      reason: 'self_protection',
      message: `Secret values are always masked through the guard (${decision.message})`,
      maskFields: DEFAULT_MASK_FIELDS,
    };
  }
  const fields = [...new Set([...(decision.maskFields ?? []), ...DEFAULT_MASK_FIELDS])];
  return { ...decision, maskFields: fields };
}

function decideOne(action: Action, compiled: CompiledPolicy, protection: SelfProtection): Decision {
  const builtin = checkSelfProtection(action, protection);
  if (builtin) return builtin;
  const decided = decideByPolicy(action, compiled);
  if (action.sql) {
    const rule = compiled.rules.find((r) => r.rule.name === decided.rule)?.rule;
    return applySqlMasks(action, sqlBuiltins(action, decided, rule), compiled.policy.rules);
  }
  return maskSecrets(action, decided);
}

function decideByPolicy(action: Action, compiled: CompiledPolicy): Decision {
  for (const { rule, test, reach } of compiled.rules) {
    // SQL masks hold for every statement that runs, whatever decides it (applySqlMasks).
    if (action.sql && rule.action === 'mask') continue;
    if (!test(action)) continue;
    const said = rule.message ?? defaultMessage(rule.action, rule.name);
    const note = reach?.(action);
    const message = note === undefined ? said : `${said} (${note})`;
    return {
      action: rule.action,
      rule: rule.name,
      reason: 'rule_matched',
      message,
      ...(rule.mask ? { maskFields: rule.mask.fields } : {}),
      ...(rule.mask?.secrets ? { maskSecrets: rule.mask.secrets } : {}),
      ...(rule.review ? { review: rule.review } : {}),
    };
  }
  const p = compiled.policy;
  return {
    action: p.defaultAction,
    rule: 'default',
    reason: 'policy_default',
    message: p.defaultMessage ?? defaultMessage(p.defaultAction, `the default of policy ${p.name}`),
    ...(p.defaultAction === 'review' ? { review: p.review } : {}),
  };
}

function defaultMessage(action: Decision['action'], by: string): string {
  switch (action) {
    case 'deny':
      return `denied by ${by}`;
    case 'review':
      return `held for approval by ${by}`;
    case 'mask':
      return `allowed with masking by ${by}`;
    case 'allow':
      return `allowed by ${by}`;
  }
}

export function evaluate(
  action: Action,
  policy: Policy | CompiledPolicy,
  protection: SelfProtection,
): Decision {
  const compiled = 'rules' in policy && 'policy' in policy ? policy : compilePolicy(policy);
  const statements = action.sql?.statements;
  if (!statements || statements.length <= 1) return decideOne(action, compiled, protection);
  let worst: Decision | undefined;
  for (const s of statements) {
    const d = decideOne({ ...action, sql: { ...action.sql, statements: [s] } }, compiled, protection);
    if (!worst || SEVERITY[d.action] > SEVERITY[worst.action]) worst = d;
  }
  return worst as Decision;
}

/** The policy in force when none could be loaded: every request is denied, with the reason. */
export function denyAllPolicy(reason: string): Policy {
  return Object.freeze({
    apiVersion: 'chaperone.dev/v1alpha1',
    kind: 'GuardrailPolicy',
    name: 'deny-all',
    defaultAction: 'deny',
    defaultMessage: `no valid guardrail policy is loaded (${reason}); every request is denied until one is`,
    review: DEFAULT_REVIEW,
    rules: Object.freeze([]),
  });
}
