/**
 * The full held action and who asked, as a definition list. Every string
 * the agent chose goes through `shown()` (format.ts).
 */
import type { ApprovalView, HeldAction } from '@chaperone/shared';
import { type Child, h } from './dom.ts';
import { describeObject, describeRequester, formatArgv, shown, shownLines } from './format.ts';

function row(label: string, ...value: readonly Child[]): HTMLElement[] {
  return [h('dt', {}, label), h('dd', {}, ...value)];
}

const yesNo = (b: boolean | undefined) => (b ? 'yes' : 'no');

/** A list of agent-chosen lines (query parameters, bind parameters), one `code` each. */
function lines(items: readonly string[], cls: string): HTMLElement {
  return h('ul', { class: `lines ${cls}` }, ...items.map((x) => h('li', {}, h('code', {}, shown(x)))));
}

/** Details some protocols add: Kubernetes query and body, exec stdin/tty, Bind parameters, the digest. */
function extraRows(a: HeldAction): HTMLElement[] {
  return [
    ...(a.query?.length ? row('Query', lines(a.query, 'query')) : []),
    ...(a.stdin !== undefined || a.tty !== undefined
      ? row('Session', `stdin ${yesNo(a.stdin)}, terminal (tty) ${yesNo(a.tty)}`)
      : []),
    ...(a.params?.length ? row('Parameters', lines(a.params, 'params')) : []),
    ...(a.body !== undefined ? row('Body', h('pre', { class: 'body' }, shownLines(a.body))) : []),
    ...(a.digest ? row('Digest', h('code', { class: 'digest' }, shown(a.digest))) : []),
  ];
}

export function actionDetails(v: ApprovalView): HTMLElement {
  const a = v.action;
  const object = describeObject(a);
  return h(
    'dl',
    { class: 'details' },
    ...row('Requester', describeRequester(v)),
    ...row('Protocol', v.protocol),
    ...row('Verb', h('code', {}, shown(a.verb))),
    ...(object ? row('Object', h('code', {}, object)) : []),
    ...(a.argv ? row('Command', h('code', { class: 'argv' }, formatArgv(a.argv))) : []),
    ...(a.container ? row('Container', shown(a.container)) : []),
    ...(a.sql ? row('SQL', h('pre', { class: 'sql' }, shownLines(a.sql))) : []),
    ...(a.database ? row('Database', shown(a.database)) : []),
    ...extraRows(a),
    ...row('Rule', h('code', {}, shown(v.rule))),
    ...row('Message', shown(v.message)),
    ...(v.approvers.length ? row('Approvers', shown(v.approvers.join(', '))) : []),
    ...row('Audit event', h('code', {}, shown(v.auditId))),
  );
}

/** Each approver's decision so far: `alice approved: "looks fine"`. */
export function decisionList(v: ApprovalView): HTMLElement | undefined {
  if (!v.decisions.length) return undefined;
  return h(
    'ul',
    { class: 'decisions' },
    ...v.decisions.map((d) =>
      h(
        'li',
        {},
        h('strong', {}, shown(d.user)),
        ` ${d.decision === 'approve' ? 'approved' : 'denied'}`,
        d.reason ? `: “${shown(d.reason)}”` : '',
      ),
    ),
  );
}
