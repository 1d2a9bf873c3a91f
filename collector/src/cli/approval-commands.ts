/**
 * `chaperone approvals list|show|approve|deny` and `chaperone grants
 * list|revoke`: the approvers' HTTP API from a terminal, with the
 * approver's own token (`--token-file`: a Kubernetes token, e.g. from
 * `kubectl create token`, or an OIDC ID token). Everything the agent chose
 * (summary, action, message) is shown through terminal-safe.ts.
 */
import type { ApprovalView, GrantView } from '@chaperone/shared';
import { type Command, Option } from 'commander';
import { type ApiClientConfig, createApiClient } from './api-client.ts';
import { safeJson, visible } from './terminal-safe.ts';

/** Adds the client flags (--collector-url, --token-file, …) to a command; returns their parser. */
export type WithClient = (cmd: Command) => (opts: Record<string, unknown>) => ApiClientConfig;

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

const output = () =>
  new Option('-o, --output <format>', 'table or json').choices(['table', 'json']).default('table');

function progress(a: ApprovalView): string {
  const approved = new Set(a.decisions.filter((d) => d.decision === 'approve').map((d) => d.user)).size;
  return `${approved}/${a.approvals}`;
}

export const APPROVAL_HEADER = ['ID', 'STATE', 'POD', 'RULE', 'APPROVED', 'EXPIRES', 'SUMMARY'];

export function approvalRow(a: ApprovalView): string[] {
  return [
    a.id,
    a.state,
    visible(`${a.requester.namespace}/${a.requester.pod}`),
    visible(a.rule),
    progress(a),
    a.state === 'pending' ? a.expiresAt : (a.decidedAt ?? ''),
    visible(a.summary),
  ];
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

const yesNo = (b: boolean | undefined) => (b ? 'yes' : 'no');

/** Details some protocols add: Kubernetes query and body, exec stdin/tty, Bind parameters, the digest. */
function extraLines(act: ApprovalView['action']): string[] {
  const out: string[] = [];
  for (const q of act.query ?? []) out.push(`query      ${visible(q)}`);
  if (act.stdin !== undefined || act.tty !== undefined)
    out.push(`session    stdin ${yesNo(act.stdin)}, terminal (tty) ${yesNo(act.tty)}`);
  for (const p of act.params ?? []) out.push(`param      ${visible(p)}`);
  if (act.body !== undefined) {
    out.push('body       |');
    for (const l of act.body.split('\n')) out.push(`  | ${visible(l)}`);
  }
  if (act.digest) out.push(`digest     ${visible(act.digest)}`);
  return out;
}

/** `showing 100 of 340 …` when the list was cut short, else undefined. */
export function listCutShort(shown: number, total: number | undefined): string | undefined {
  if (total === undefined || total <= shown) return undefined;
  return `showing ${shown} of ${total} (pending ones expiring soonest first): raise --limit, or narrow with --namespace`;
}

/** The request as `approvals show` prints it. */
export function describeApproval(a: ApprovalView): string[] {
  const act = a.action;
  const lines = [
    `approval   ${a.id}`,
    `state      ${a.state}${a.decidedAt ? ` at ${a.decidedAt}` : ` (expires ${a.expiresAt})`}`,
    `requester  ${visible(`${a.requester.namespace}/${a.requester.pod}`)} (service account ${visible(a.requester.serviceAccount)})`,
    `protocol   ${a.protocol}`,
    `summary    ${visible(a.summary)}`,
    `action     ${visible(act.verb)}${act.resource ? ` ${visible([act.apiGroup, act.resource].filter(Boolean).join('/'))}${act.subresource ? `/${visible(act.subresource)}` : ''}` : ''}${act.name ? ` ${visible(act.name)}` : ''}${act.namespace ? ` -n ${visible(act.namespace)}` : ''}`,
  ];
  if (act.container) lines.push(`container  ${visible(act.container)}`);
  if (act.argv) lines.push(`argv       ${act.argv.map((x) => visible(JSON.stringify(x))).join(' ')}`);
  if (act.database) lines.push(`database   ${visible(act.database)}`);
  if (act.sql) lines.push(`sql        ${visible(act.sql)}`);
  lines.push(...extraLines(act));
  lines.push(
    `rule       ${visible(a.rule)}: ${visible(a.message)}`,
    `needs      ${a.approvals} distinct approver${a.approvals === 1 ? '' : 's'}${a.approvers.length ? ` among ${visible(a.approvers.join(', '))}` : ''} (approved ${progress(a)})`,
    `grant      ${a.grantMs > 0 ? `${Math.round(a.grantMs / 1000)} s once approved` : 'none'}${a.grantId ? ` (grant ${a.grantId})` : ''}`,
    `requested  ${a.createdAt} (audit id ${a.auditId})`,
  );
  for (const d of a.decisions)
    lines.push(
      `decision   ${d.at}  ${visible(d.user)} ${d.decision === 'approve' ? 'approved' : 'denied'}${d.reason ? `: ${visible(d.reason)}` : ''}`,
    );
  return lines;
}

export const GRANT_HEADER = ['ID', 'POD', 'RULE', 'UNTIL', 'REVOKED', 'SUMMARY'];

export function grantRow(g: GrantView): string[] {
  return [
    g.id,
    visible(`${g.requester.namespace}/${g.requester.pod}`),
    visible(g.rule),
    g.until,
    g.revokedAt ? `${g.revokedAt} by ${visible(g.revokedBy ?? '?')}` : '-',
    visible(g.summary),
  ];
}

export function registerApprovalCommands(program: Command, withClient: WithClient): void {
  const approvals = program
    .command('approvals')
    .description('Held actions waiting for approvers: list, show, approve, deny');

  const list = approvals
    .command('list')
    .description('Requests you may approve: pending ones expiring soonest first, others newest first')
    .addOption(
      new Option('--state <state>', 'pending, decided or all')
        .choices(['pending', 'decided', 'all'])
        .default('pending'),
    )
    .option('--namespace <ns>', 'only requests of agents in this namespace')
    .option('--limit <n>', 'at most this many', '100')
    .addOption(output());
  const listConfig = withClient(list);
  list.action(async (opts: Record<string, unknown>) => {
    const api = createApiClient(listConfig(opts));
    const p = new URLSearchParams({ state: String(opts.state), limit: String(opts.limit) });
    if (opts.namespace) p.set('namespace', String(opts.namespace));
    const res = await api.get<{ items: ApprovalView[]; total?: number }>('/v1/approvals', p);
    const cut = listCutShort(res.items.length, res.total);
    if (opts.output === 'json') {
      if (cut) process.stderr.write(`${cut}\n`);
      return print(safeJson(res.items, 2));
    }
    if (res.items.length === 0)
      return print(`no ${opts.state === 'all' ? '' : `${opts.state} `}approval requests you may approve`);
    for (const l of table(APPROVAL_HEADER, res.items.map(approvalRow))) print(l);
    if (cut) print(cut);
  });

  const show = approvals
    .command('show')
    .description('One request in full')
    .argument('<id>')
    .addOption(output());
  const showConfig = withClient(show);
  show.action(async (id: string, opts: Record<string, unknown>) => {
    const api = createApiClient(showConfig(opts));
    const a = await api.get<ApprovalView>(`/v1/approvals/${encodeURIComponent(id)}`);
    if (opts.output === 'json') return print(safeJson(a, 2));
    for (const l of describeApproval(a)) print(l);
  });

  for (const [verb, decision, help] of [
    ['approve', 'approve', 'Approve a request (it proceeds once enough distinct approvers have)'],
    ['deny', 'deny', 'Deny a request (one denial ends it)'],
  ] as const) {
    const cmd = approvals
      .command(verb)
      .description(help)
      .argument('<id>')
      .option('--reason <text>', 'why, recorded with the decision and shown to the agent')
      .addOption(output());
    const config = withClient(cmd);
    cmd.action(async (id: string, opts: Record<string, unknown>) => {
      const api = createApiClient(config(opts));
      const a = await api.send<ApprovalView>('POST', `/v1/approvals/${encodeURIComponent(id)}/decision`, {
        decision,
        ...(opts.reason ? { reason: String(opts.reason) } : {}),
      });
      if (opts.output === 'json') return print(safeJson(a, 2));
      print(
        a.state === 'pending'
          ? `${a.id}: your approval is recorded; ${progress(a)} distinct approvers so far, still pending`
          : `${a.id}: ${a.state}${a.grantId ? ` (grant ${a.grantId} opened)` : ''}`,
      );
    });
  }

  const grants = program.command('grants').description('Approval grants: list, revoke');
  const glist = grants
    .command('list')
    .description('Grants in namespaces you may approve in, newest first')
    .option('--namespace <ns>', 'only grants of agents in this namespace')
    .option('--all', 'include revoked and ended grants')
    .option('--limit <n>', 'at most this many', '100')
    .addOption(output());
  const glistConfig = withClient(glist);
  glist.action(async (opts: Record<string, unknown>) => {
    const api = createApiClient(glistConfig(opts));
    const p = new URLSearchParams({ state: opts.all ? 'all' : 'active', limit: String(opts.limit) });
    if (opts.namespace) p.set('namespace', String(opts.namespace));
    const res = await api.get<{ items: GrantView[] }>('/v1/grants', p);
    if (opts.output === 'json') return print(safeJson(res.items, 2));
    if (res.items.length === 0) return print(opts.all ? 'no grants' : 'no active grants');
    for (const l of table(GRANT_HEADER, res.items.map(grantRow))) print(l);
  });

  const revoke = grants.command('revoke').description('End a grant now').argument('<id>').addOption(output());
  const revokeConfig = withClient(revoke);
  revoke.action(async (id: string, opts: Record<string, unknown>) => {
    const api = createApiClient(revokeConfig(opts));
    const g = await api.send<GrantView>('DELETE', `/v1/grants/${encodeURIComponent(id)}`);
    if (opts.output === 'json') return print(safeJson(g, 2));
    print(`${g.id}: revoked at ${g.revokedAt} by ${visible(g.revokedBy ?? '?')}`);
  });
}
