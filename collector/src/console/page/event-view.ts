/**
 * One event (/console/events/{auditID}): what it did in full, who did it,
 * the decision (and its approval, linked to the approvals view), its
 * session, its place in its sidecar's hash chain and whether that chain
 * verifies (/v1/events/{id}/chain), and the stored JSON itself.
 */
import type { AuditEvent } from '@chaperone/shared';
import { api } from './api.ts';
import type { View, ViewContext } from './context.ts';
import { type Child, h, replace } from './dom.ts';
import { decisionClass, decisionText, eventObject, eventText } from './event-text.ts';
import { formatTime, shown, shownLines } from './format.ts';
import type { ChainPosition } from './query-types.ts';
import { link } from './routes.ts';

function item(label: string, ...value: readonly Child[]): HTMLElement[] {
  return [h('dt', {}, label), h('dd', {}, ...value)];
}

export class EventView implements View {
  readonly root = h('section', { class: 'event' });
  readonly #id: string;
  readonly #ctx: ViewContext;

  constructor(id: string, ctx: ViewContext) {
    this.#id = id;
    this.#ctx = ctx;
  }

  async refresh(): Promise<void> {
    const id = encodeURIComponent(this.#id);
    const e = await api.get<AuditEvent>(`events/${id}`);
    const chainBox = h('div', { class: 'chain' }, h('p', { class: 'muted' }, 'Checking the chain…'));
    replace(
      this.root,
      h('h2', {}, 'Event'),
      h('p', { class: 'action-full' }, h('code', { class: 'action-text' }, eventText(e))),
      eventDetails(e),
      h('h3', {}, 'Hash chain'),
      chainBox,
      h('h3', {}, 'Stored event'),
      h('pre', { class: 'event-json' }, shownLines(JSON.stringify(e, null, 2))),
    );
    try {
      replace(chainBox, chainDetails(await api.get<ChainPosition>(`events/${id}/chain`)));
    } catch (err) {
      replace(chainBox, h('p', { class: 'muted' }, 'The chain could not be read.'));
      this.#ctx.failed(err);
    }
  }
}

function eventDetails(e: AuditEvent): HTMLElement {
  const c = e.chaperone;
  const d = c.decision;
  const object = eventObject(e);
  return h(
    'dl',
    { class: 'details' },
    ...item('Time', formatTime(e.requestReceivedTimestamp)),
    ...item(
      'Agent',
      shown(`${c.source.namespace}/${c.source.pod} (service account ${c.source.serviceAccount})`),
    ),
    ...item('Protocol', c.protocol),
    ...item('Verb', h('code', {}, shown(e.verb))),
    ...(object ? item('Object', h('code', {}, object)) : []),
    ...(c.sql?.database ? item('Database', shown(`${c.sql.database} as ${c.sql.user ?? '?'}`)) : []),
    ...(c.sql?.rows !== undefined ? item('Rows', c.sql.rows) : []),
    ...(c.exec?.exitCode !== undefined ? item('Exit code', c.exec.exitCode) : []),
    ...item('Decision', h('span', { class: `decision ${decisionClass(e)}` }, decisionText(e))),
    ...item('Rule', h('code', {}, shown(d.rule)), ` (${shown(d.reason)})`),
    ...(d.message ? item('Message', shown(d.message)) : []),
    ...(d.approval
      ? item(
          'Approval',
          `${d.approval.state}${d.approval.by ? ` by ${shown(d.approval.by)}` : ''}`,
          d.approval.reason ? `: “${shown(d.approval.reason)}”` : '',
          d.approval.id ? ' · ' : '',
          d.approval.id
            ? h('a', { href: link.approval(d.approval.id), class: 'approval-link' }, 'the request')
            : null,
        )
      : []),
    ...(c.maskedFields ? item('Masked values', c.maskedFields) : []),
    ...(c.sessionId
      ? item(
          'Session',
          h(
            'a',
            { href: link.session(c.sessionId), class: 'session-link' },
            h('code', {}, shown(c.sessionId)),
          ),
        )
      : []),
    ...item('Audit ID', h('code', {}, shown(e.auditID))),
  );
}

function chainDetails(p: ChainPosition): HTMLElement {
  const v = p.verified;
  return h(
    'dl',
    { class: 'details' },
    ...item(
      'Verified',
      h(
        'strong',
        { class: v.ok ? 'verified ok' : 'verified bad' },
        v.ok ? 'yes, the chain verifies' : 'NO: the chain does not verify',
      ),
      ` (${v.checked} event${v.checked === 1 ? '' : 's'} re-hashed)`,
    ),
    ...(v.problems.length
      ? item(
          'Problems',
          h('ul', { class: 'lines problems' }, ...v.problems.map((x) => h('li', {}, shown(x)))),
        )
      : []),
    ...item(
      'Signed checkpoint',
      v.checkpoint
        ? `seq ${v.checkpoint.seq}, signed ${formatTime(v.checkpoint.signedAt)}`
        : 'none covers this event yet',
    ),
    ...item('Sidecar chain', h('code', {}, shown(p.sidecarId))),
    ...item('Position', `seq ${p.seq}`),
    ...item('Hash', h('code', {}, shown(p.hash))),
    ...item(
      'Previous',
      p.previous
        ? h('a', { href: link.event(p.previous.auditID), class: 'previous' }, `seq ${p.previous.seq}`)
        : p.seq === 1
          ? 'none (the chain starts here)'
          : 'not stored',
    ),
    ...item(
      'Next',
      p.next ? h('a', { href: link.event(p.next.auditID), class: 'next' }, `seq ${p.next.seq}`) : 'none yet',
    ),
  );
}
