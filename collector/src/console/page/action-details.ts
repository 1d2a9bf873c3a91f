/** The full held action and who asked, as a definition list. */
import type { ApprovalView } from '@chaperone/shared';
import { type Child, h } from './dom.ts';
import { describeObject, describeRequester, formatArgv } from './format.ts';

function row(label: string, ...value: readonly Child[]): HTMLElement[] {
  return [h('dt', {}, label), h('dd', {}, ...value)];
}

export function actionDetails(v: ApprovalView): HTMLElement {
  const a = v.action;
  const object = describeObject(a);
  return h(
    'dl',
    { class: 'details' },
    ...row('Requester', describeRequester(v)),
    ...row('Protocol', v.protocol),
    ...row('Verb', h('code', {}, a.verb)),
    ...(object ? row('Object', h('code', {}, object)) : []),
    ...(a.argv ? row('Command', h('code', { class: 'argv' }, formatArgv(a.argv))) : []),
    ...(a.container ? row('Container', a.container) : []),
    ...(a.sql ? row('SQL', h('pre', { class: 'sql' }, a.sql)) : []),
    ...(a.database ? row('Database', a.database) : []),
    ...row('Rule', h('code', {}, v.rule)),
    ...row('Message', v.message),
    ...(v.approvers.length ? row('Approvers', v.approvers.join(', ')) : []),
    ...row('Audit event', h('code', {}, v.auditId)),
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
        h('strong', {}, d.user),
        ` ${d.decision === 'approve' ? 'approved' : 'denied'}`,
        d.reason ? `: “${d.reason}”` : '',
      ),
    ),
  );
}
