/**
 * Reads a GuardrailPolicy document (YAML or an object), validates every field
 * with errors that name the rule, the field and what is wrong, and returns a
 * frozen Policy.
 */
import YAML from 'yaml';
import { MAX_APPROVALS, MAX_APPROVERS, MAX_GRANT_MS, MAX_REVIEW_TIMEOUT_MS } from '../approval-protocol.ts';
import { DECISION_ACTIONS, PROTOCOLS } from '../audit-event.ts';
import { parseDuration } from '../config.ts';
import { ChaperoneError } from '../errors.ts';
import { didYouMean } from '../suggest.ts';
import { parsePortEntry } from './port-match.ts';
import { isSqlStatementName, SQL_KINDS, SQL_MASK_CONDITIONS } from './sql-match.ts';
import { KUBE_VERBS, type Policy, type ReviewOptions, type Rule, type RuleMatch } from './types.ts';

/** What a mask rule masks when it names no fields: a Secret's values. */
export const DEFAULT_MASK_FIELDS: readonly string[] = Object.freeze(['data', 'stringData']);

export class PolicyError extends ChaperoneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('policy_invalid', message, options);
    this.name = 'PolicyError';
  }
}

export const POLICY_API_VERSION = 'chaperone.dev/v1alpha1';
export const DEFAULT_REVIEW_TIMEOUT_MS = 5 * 60_000;
/** A review without its own settings: one approval from anyone RBAC lets approve, 5 minutes, no grant. */
export const DEFAULT_REVIEW: ReviewOptions = Object.freeze({
  timeoutMs: DEFAULT_REVIEW_TIMEOUT_MS,
  approvals: 1,
  approvers: Object.freeze([]),
  grantMs: 0,
});
const REVIEW_KEYS = ['timeout', 'approvals', 'approvers', 'grant'];
/** A user name as TokenReview or an OIDC issuer gives it, or `group:<name>`. */
const APPROVER = /^[^\s]{1,253}$/;
export const MAX_RULES = 1000;

const TOP_KEYS = ['apiVersion', 'kind', 'metadata', 'spec'];
const SPEC_KEYS = ['defaultAction', 'defaultMessage', 'review', 'rules'];
const RULE_KEYS = ['name', 'description', 'match', 'action', 'message', 'mask', 'review'];
const MATCH_KEYS = [
  'protocols',
  'verbs',
  'apiGroups',
  'resources',
  'subresources',
  'namespaces',
  'names',
  'nonResourceURLs',
  'users',
  'exec',
  'portForward',
  'sql',
];
const EXEC_KEYS = ['commands', 'argv0', 'containers'];
const SQL_KEYS = ['statements', 'tables', 'columns', 'functions', 'databases'];
const RULE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const SECRET_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class Ctx {
  readonly where: string;
  constructor(where: string) {
    this.where = where;
  }
  fail(field: string, what: string): never {
    throw new PolicyError(`${this.where}${field ? `: ${field}` : ''}: ${what}`);
  }
  keys(o: Obj, allowed: readonly string[], prefix: string): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) this.fail(`${prefix}${k}`, `unknown field${didYouMean(k, allowed)}`);
    }
  }
  strings(v: unknown, field: string): string[] {
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.length === 0) this.fail(field, 'must be a non-empty list of strings');
    return v.map((x, i) => {
      if (typeof x !== 'string') this.fail(`${field}[${i}]`, `must be a string, got ${JSON.stringify(x)}`);
      return x;
    });
  }
  duration(v: unknown, field: string, max: number, maxText: string): number {
    if (typeof v !== 'string') this.fail(field, 'must be a duration such as 30s, 5m or 1h');
    try {
      const ms = parseDuration(v);
      if (ms < 1000 || ms > max) this.fail(field, `must be between 1s and ${maxText}`);
      return ms;
    } catch (err) {
      if (err instanceof PolicyError) throw err;
      return this.fail(field, (err as Error).message);
    }
  }
}

function parseMatch(v: unknown, ctx: Ctx): RuleMatch {
  if (v === undefined) return {};
  if (!isObj(v)) ctx.fail('match', 'must be a mapping');
  ctx.keys(v, MATCH_KEYS, 'match.');
  const out: Record<string, unknown> = {};
  const protocols = ctx.strings(v.protocols, 'match.protocols');
  protocols.forEach((p, i) => {
    if (!(PROTOCOLS as readonly string[]).includes(p) || p === 'system') {
      ctx.fail(
        `match.protocols[${i}]`,
        `"${p}" is not kubernetes, exec or postgres${didYouMean(p, PROTOCOLS)}`,
      );
    }
  });
  if (protocols.length) out.protocols = protocols;
  const verbs = ctx.strings(v.verbs, 'match.verbs');
  verbs.forEach((verb, i) => {
    if (verb !== '*' && verb !== 'query' && !(KUBE_VERBS as readonly string[]).includes(verb)) {
      ctx.fail(`match.verbs[${i}]`, `"${verb}" is not a Kubernetes verb${didYouMean(verb, KUBE_VERBS)}`);
    }
  });
  if (verbs.length) out.verbs = verbs;
  for (const key of [
    'apiGroups',
    'resources',
    'subresources',
    'namespaces',
    'names',
    'nonResourceURLs',
    'users',
  ]) {
    const list = ctx.strings(v[key], `match.${key}`);
    if (list.length) out[key] = list;
  }
  for (const [i, r] of ((out.resources as string[] | undefined) ?? []).entries()) {
    if (r.split('/').length > 2 || r.startsWith('/') || r.endsWith('/')) {
      ctx.fail(`match.resources[${i}]`, `"${r}" must be "resource" or "resource/subresource"`);
    }
  }
  if (v.exec !== undefined) {
    if (!isObj(v.exec)) ctx.fail('match.exec', 'must be a mapping');
    ctx.keys(v.exec, EXEC_KEYS, 'match.exec.');
    const commands = ctx.strings(v.exec.commands, 'match.exec.commands');
    commands.forEach((c, i) => {
      try {
        new RegExp(c);
      } catch (err) {
        ctx.fail(`match.exec.commands[${i}]`, `invalid regular expression: ${(err as Error).message}`);
      }
    });
    const exec: Record<string, string[]> = {};
    if (commands.length) exec.commands = commands;
    const argv0 = ctx.strings(v.exec.argv0, 'match.exec.argv0');
    if (argv0.length) exec.argv0 = argv0;
    const containers = ctx.strings(v.exec.containers, 'match.exec.containers');
    if (containers.length) exec.containers = containers;
    out.exec = exec;
  }
  if (v.portForward !== undefined) {
    if (!isObj(v.portForward)) ctx.fail('match.portForward', 'must be a mapping');
    ctx.keys(v.portForward, ['ports'], 'match.portForward.');
    const ports = v.portForward.ports;
    if (ports === undefined) out.portForward = {};
    else {
      if (!Array.isArray(ports) || ports.length === 0)
        ctx.fail('match.portForward.ports', 'must be a non-empty list of ports and "from-to" ranges');
      ports.forEach((p, i) => {
        const r = parsePortEntry(p);
        if (typeof r === 'string') ctx.fail(`match.portForward.ports[${i}]`, r);
      });
      out.portForward = Object.freeze({ ports: Object.freeze([...ports]) });
    }
  }
  if (v.sql !== undefined) {
    if (!isObj(v.sql)) ctx.fail('match.sql', 'must be a mapping');
    ctx.keys(v.sql, SQL_KEYS, 'match.sql.');
    const sql: Record<string, string[]> = {};
    const statements = ctx.strings(v.sql.statements, 'match.sql.statements');
    statements.forEach((s, i) => {
      if (!isSqlStatementName(s)) {
        ctx.fail(
          `match.sql.statements[${i}]`,
          `"${s}" is neither a statement name (${Object.keys(SQL_KINDS).join(', ')}) nor a parser node type such as DropStmt${didYouMean(s, Object.keys(SQL_KINDS))}`,
        );
      }
    });
    for (const [key, list] of [
      ['statements', statements],
      ['tables', ctx.strings(v.sql.tables, 'match.sql.tables')],
      ['columns', ctx.strings(v.sql.columns, 'match.sql.columns')],
      ['functions', ctx.strings(v.sql.functions, 'match.sql.functions')],
      ['databases', ctx.strings(v.sql.databases, 'match.sql.databases')],
    ] as const) {
      if (list.length) sql[key] = list;
    }
    out.sql = sql;
  }
  return Object.freeze(out) as RuleMatch;
}

function parseRule(v: unknown, index: number, seen: Set<string>, defaults: ReviewOptions): Rule {
  const at: Ctx = new Ctx(`rules[${index}]`);
  if (!isObj(v)) at.fail('', 'must be a mapping with name, match and action');
  const name = v.name;
  if (typeof name !== 'string' || !RULE_NAME.test(name)) {
    at.fail('name', 'must be a lower-case DNS label (a-z, 0-9, "-"), at most 63 characters');
  }
  const ctx: Ctx = new Ctx(`rule "${name}" (rules[${index}])`);
  if (seen.has(name)) ctx.fail('name', 'is used by an earlier rule; rule names must be unique');
  if (name.startsWith('chaperone-'))
    ctx.fail('name', 'the "chaperone-" prefix is reserved for built-in rules');
  seen.add(name);
  ctx.keys(v, RULE_KEYS, '');
  if (v.action === undefined) ctx.fail('action', `is required: one of ${DECISION_ACTIONS.join(', ')}`);
  if (typeof v.action !== 'string' || !(DECISION_ACTIONS as readonly string[]).includes(v.action)) {
    ctx.fail(
      'action',
      `must be one of ${DECISION_ACTIONS.join(', ')}${didYouMean(String(v.action), DECISION_ACTIONS)}`,
    );
  }
  const action = v.action as Rule['action'];
  if (v.message !== undefined && typeof v.message !== 'string') ctx.fail('message', 'must be a string');
  if (v.description !== undefined && typeof v.description !== 'string')
    ctx.fail('description', 'must be a string');
  const match = parseMatch(v.match, ctx);
  if (Object.keys(match).length === 0 && v.match === undefined) {
    ctx.fail('match', 'is required (use `match: {}` to match every request on purpose)');
  }
  const rule: Record<string, unknown> = { name, match, action };
  if (typeof v.message === 'string') rule.message = v.message;
  if (typeof v.description === 'string') rule.description = v.description;
  if (action === 'mask' && match.sql) {
    // sql-match.ts: a rule with a condition SQL statements never meet would be accepted and mask nothing.
    const other = Object.keys(match).find((k) => !SQL_MASK_CONDITIONS.includes(k));
    if (other)
      ctx.fail(
        `match.${other}`,
        `a SQL mask rule may only name ${SQL_MASK_CONDITIONS.join(', ')}: ${other} is met by Kubernetes or exec requests only, so the columns would never be masked; remove it (the policy already applies to its own namespace's pods)`,
      );
    // sql-match.ts: a SQL mask names what is masked in every statement, not which statements.
    if (match.sql.statements || match.sql.functions)
      ctx.fail(
        'match.sql',
        'a mask rule masks its columns in whatever any statement returns: name tables, columns and databases, not statements or functions',
      );
    if (v.mask !== undefined)
      ctx.fail(
        'mask',
        'for SQL the masked columns are match.sql.columns (of match.sql.tables); mask.fields is for Kubernetes objects',
      );
  }
  if (v.mask !== undefined) {
    if (action !== 'mask') ctx.fail('mask', 'only applies to rules with action: mask');
    if (!isObj(v.mask)) ctx.fail('mask', 'must be a mapping');
    ctx.keys(v.mask, ['fields', 'secrets'], 'mask.');
    const fields =
      v.mask.fields === undefined && v.mask.secrets !== undefined
        ? DEFAULT_MASK_FIELDS
        : ctx.strings(v.mask.fields, 'mask.fields');
    const secrets = ctx.strings(v.mask.secrets, 'mask.secrets');
    secrets.forEach((s, i) => {
      if (!SECRET_NAME.test(s))
        ctx.fail(
          `mask.secrets[${i}]`,
          `"${s}" is not a Secret name (a DNS subdomain: a-z, 0-9, "-" and ".")`,
        );
    });
    if (secrets.length > 0 && match.protocols && !match.protocols.includes('exec'))
      ctx.fail(
        'mask.secrets',
        'masks the output of exec and attach sessions: the rule must match protocol exec',
      );
    rule.mask = Object.freeze(secrets.length > 0 ? { fields, secrets: Object.freeze(secrets) } : { fields });
  } else if (action === 'mask') {
    rule.mask = Object.freeze({ fields: DEFAULT_MASK_FIELDS });
  }
  if (v.review !== undefined && action !== 'review')
    ctx.fail('review', 'only applies to rules with action: review');
  if (action === 'review') rule.review = parseReview(v.review, ctx, 'review', defaults);
  return Object.freeze(rule) as unknown as Rule;
}

/**
 * A `review:` mapping (of the spec or of a rule): each field given replaces
 * the one of `defaults`. `timeout` 1s…24h; `approvals` 1…MAX_APPROVALS
 * distinct approvers; `approvers` user names or `group:<name>` (empty: anyone
 * RBAC lets approve); `grant.duration` 1s…7d (absent: no grant).
 */
function parseReview(v: unknown, ctx: Ctx, at: string, defaults: ReviewOptions): ReviewOptions {
  if (v === undefined) return defaults;
  if (!isObj(v)) ctx.fail(at, 'must be a mapping (timeout, approvals, approvers, grant)');
  ctx.keys(v, REVIEW_KEYS, `${at}.`);
  const out = { ...defaults };
  if (v.timeout !== undefined)
    out.timeoutMs = ctx.duration(v.timeout, `${at}.timeout`, MAX_REVIEW_TIMEOUT_MS, '24h');
  if (v.approvals !== undefined) {
    if (
      typeof v.approvals !== 'number' ||
      !Number.isInteger(v.approvals) ||
      v.approvals < 1 ||
      v.approvals > MAX_APPROVALS
    )
      ctx.fail(
        `${at}.approvals`,
        `must be a whole number of distinct approvers from 1 to ${MAX_APPROVALS}, got ${JSON.stringify(v.approvals)}`,
      );
    out.approvals = v.approvals;
  }
  if (v.approvers !== undefined) {
    const approvers = ctx.strings(v.approvers, `${at}.approvers`);
    if (approvers.length > MAX_APPROVERS)
      ctx.fail(
        `${at}.approvers`,
        `names ${approvers.length} approvers; the limit is ${MAX_APPROVERS} (name a group instead)`,
      );
    approvers.forEach((a, i) => {
      if (!APPROVER.test(a) || a === 'group:')
        ctx.fail(
          `${at}.approvers[${i}]`,
          `${JSON.stringify(a)} is neither a user name nor "group:<name>" (no spaces, at most 253 characters)`,
        );
    });
    out.approvers = Object.freeze([...new Set(approvers)]);
  }
  if (v.grant !== undefined) {
    if (!isObj(v.grant))
      ctx.fail(`${at}.grant`, 'must be a mapping with duration (e.g. grant: {duration: 1h})');
    ctx.keys(v.grant, ['duration'], `${at}.grant.`);
    if (v.grant.duration === undefined) ctx.fail(`${at}.grant.duration`, 'is required (e.g. 30m, 1h)');
    out.grantMs = ctx.duration(v.grant.duration, `${at}.grant.duration`, MAX_GRANT_MS, '7d');
  }
  // Only users named: more approvals than names could never be given.
  if (
    out.approvers.length > 0 &&
    out.approvers.every((a) => !a.startsWith('group:')) &&
    out.approvals > out.approvers.length
  )
    ctx.fail(
      `${at}.approvals`,
      `asks for ${out.approvals} distinct approvers but approvers names only ${out.approvers.length} user(s) and no group; name more, or a group`,
    );
  return Object.freeze(out);
}

/** Parses and validates a policy; throws PolicyError with a precise location. */
export function parsePolicy(input: string | unknown): Policy {
  let doc: unknown = input;
  if (typeof input === 'string') {
    try {
      const docs = YAML.parseAllDocuments(input);
      if (docs.length !== 1) throw new PolicyError(`expected one YAML document, found ${docs.length}`);
      const [first] = docs;
      if (first && first.errors.length > 0) throw first.errors[0];
      doc = first?.toJS({ maxAliasCount: 50 });
    } catch (err) {
      if (err instanceof PolicyError) throw err;
      throw new PolicyError(`not valid YAML: ${(err as Error).message}`, { cause: err });
    }
  }
  const top: Ctx = new Ctx('policy');
  if (!isObj(doc)) top.fail('', 'must be a YAML mapping (apiVersion, kind, metadata, spec)');
  top.keys(doc, TOP_KEYS, '');
  if (doc.apiVersion !== POLICY_API_VERSION) top.fail('apiVersion', `must be ${POLICY_API_VERSION}`);
  if (doc.kind !== 'GuardrailPolicy') top.fail('kind', 'must be GuardrailPolicy');
  const name = isObj(doc.metadata) && typeof doc.metadata.name === 'string' ? doc.metadata.name : 'unnamed';
  if (!isObj(doc.spec)) top.fail('spec', 'is required and must be a mapping');
  const spec = doc.spec;
  top.keys(spec, SPEC_KEYS, 'spec.');
  const defaultAction = spec.defaultAction ?? 'deny';
  if (typeof defaultAction !== 'string' || !['allow', 'deny', 'review'].includes(defaultAction)) {
    top.fail('spec.defaultAction', 'must be allow, deny or review');
  }
  if (spec.defaultMessage !== undefined && typeof spec.defaultMessage !== 'string') {
    top.fail('spec.defaultMessage', 'must be a string');
  }
  const review = parseReview(spec.review, top, 'spec.review', DEFAULT_REVIEW);
  const rawRules = spec.rules ?? [];
  if (!Array.isArray(rawRules)) top.fail('spec.rules', 'must be a list');
  if (rawRules.length > MAX_RULES)
    top.fail('spec.rules', `has ${rawRules.length} rules; the limit is ${MAX_RULES}`);
  const seen = new Set<string>();
  const rules = rawRules.map((r, i) => parseRule(r, i, seen, review));
  return Object.freeze({
    apiVersion: POLICY_API_VERSION,
    kind: 'GuardrailPolicy',
    name,
    defaultAction: defaultAction as Policy['defaultAction'],
    ...(typeof spec.defaultMessage === 'string' ? { defaultMessage: spec.defaultMessage } : {}),
    review,
    rules: Object.freeze(rules),
  });
}
