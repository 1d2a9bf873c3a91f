/**
 * The one decision function: `evaluate(action, policy, protection)`. Pure: no
 * clock, logger, environment or I/O. Built-in self-protection first, then the
 * policy's rules in order (the first match decides), then the default.
 * Several SQL statements in one request are decided one by one and the most
 * restrictive decision wins.
 */
import { globMatcher, type Matcher } from './glob.ts';
import { DEFAULT_MASK_FIELDS, SQL_STATEMENT_ALIASES } from './parse.ts';
import { checkSelfProtection } from './self-protection.ts';
import type { Action, Decision, Policy, Rule, SelfProtection, SqlStatement } from './types.ts';

type Test = (a: Action) => boolean;

interface CompiledRule {
  readonly rule: Rule;
  readonly test: Test;
}

export interface CompiledPolicy {
  readonly policy: Policy;
  readonly rules: readonly CompiledRule[];
}

const compiledCache = new WeakMap<Policy, CompiledPolicy>();

function listTest(
  values: readonly string[] | undefined,
  pick: (a: Action) => string | undefined,
): Test | undefined {
  if (!values) return undefined;
  const m: Matcher = globMatcher(values);
  return (a) => m(pick(a));
}

function resourceTest(resources: readonly string[]): Test {
  const plain = resources.filter((r) => !r.includes('/'));
  const sub = resources.filter((r) => r.includes('/')).map((r) => r.split('/') as [string, string]);
  const plainMatch = globMatcher(plain);
  return (a) => {
    if (a.resource === undefined) return false;
    if (a.subresource === undefined && plain.length > 0 && plainMatch(a.resource)) return true;
    // A bare resource name covers its subresources only with `*`: `pods` does not match `pods/exec`.
    if (a.subresource !== undefined && plain.includes('*')) return true;
    return sub.some(([r, s]) => (r === '*' || r === a.resource) && (s === '*' || s === a.subresource));
  };
}

function statementKinds(names: readonly string[]): (s: SqlStatement) => boolean {
  const wanted = names.flatMap((n) => SQL_STATEMENT_ALIASES[n] ?? [n]);
  return (s) =>
    wanted.some((w) => {
      const [kind, flag] = w.split('!');
      return kind === s.kind && (flag !== 'unqualified' || s.unqualified === true);
    });
}

function compileRule(rule: Rule): CompiledRule {
  const m = rule.match;
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
  if (m.resources) tests.push(resourceTest(m.resources));
  push(listTest(m.subresources, (a) => a.subresource));
  push(listTest(m.namespaces, (a) => a.namespace));
  push(listTest(m.names, (a) => a.name));
  push(listTest(m.nonResourceURLs, (a) => a.nonResourceURL));
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
  if (m.sql) {
    const kinds = m.sql.statements ? statementKinds(m.sql.statements) : undefined;
    const tables = m.sql.tables ? globMatcher(m.sql.tables) : undefined;
    const columns = m.sql.columns ? globMatcher(m.sql.columns) : undefined;
    const databases = m.sql.databases ? globMatcher(m.sql.databases) : undefined;
    tests.push((a) => {
      const q = a.sql;
      if (!q) return false;
      if (databases && !databases(q.database)) return false;
      // All statement conditions must hold on the same statement.
      return q.statements.some(
        (s) =>
          (!kinds || kinds(s)) &&
          (!tables || s.tables.some((t) => tables(t) || tables(t.split('.').pop()))) &&
          (!columns || (s.columns ?? []).some((c) => columns(c))),
      );
    });
  }
  return { rule, test: (a) => tests.every((t) => t(a)) };
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
  return maskSecrets(action, decideByPolicy(action, compiled));
}

function decideByPolicy(action: Action, compiled: CompiledPolicy): Decision {
  for (const { rule, test } of compiled.rules) {
    if (!test(action)) continue;
    const message = rule.message ?? defaultMessage(rule.action, rule.name);
    return {
      action: rule.action,
      rule: rule.name,
      reason: 'rule_matched',
      message,
      ...(rule.mask ? { maskFields: rule.mask.fields } : {}),
      ...(rule.review ? { reviewTimeoutMs: rule.review.timeoutMs } : {}),
    };
  }
  const p = compiled.policy;
  return {
    action: p.defaultAction,
    rule: 'default',
    reason: 'policy_default',
    message: p.defaultMessage ?? defaultMessage(p.defaultAction, `the default of policy ${p.name}`),
    ...(p.defaultAction === 'review' ? { reviewTimeoutMs: p.reviewTimeoutMs } : {}),
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
    reviewTimeoutMs: 60_000,
    rules: Object.freeze([]),
  });
}
