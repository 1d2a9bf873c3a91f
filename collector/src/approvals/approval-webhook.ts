/**
 * Tells people a request waits: a JSON POST `{"text": …}` to a
 * Slack-compatible incoming webhook (--approval-webhook-url), with the
 * request's summary, who asks, the rule and a link to it on the approval
 * page (--approval-page-url). Never holds up the request: the POST runs in
 * the background, and a failure is logged (without the URL, which is a
 * secret) and otherwise ignored.
 */
import type { Logger } from '@chaperone/shared';
import type { ApprovalRecord } from '../store/approval-plan.ts';
import { visible } from '../text/visible-text.ts';

export interface ApprovalWebhookOptions {
  readonly url: string;
  /** Base URL of the approval page; the request's link is `<base>/approvals/<id>`. */
  readonly pageUrl?: string;
  readonly logger: Logger;
  readonly timeoutMs?: number;
}

/**
 * One agent-chosen value as a Slack inline code span: control, bidi and
 * invisible characters written out (text/visible-text.ts), so a newline in a
 * command cannot start a line that looks like the collector's own; `&`, `<`
 * and `>` escaped as Slack's docs ask (no link or mention can be made); a
 * backtick written out as `\x60` so the span cannot be closed early (inside
 * it, Slack neither formats nor turns a URL into a link).
 */
function field(s: string): string {
  const text = visible(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/`/g, '\\x60');
  return `\`${text}\``;
}

/** The message text for a new request: one line per field. */
export function webhookText(a: ApprovalRecord, pageUrl: string | undefined): string {
  const who = `${a.requester.namespace}/${a.requester.pod} (service account ${a.requester.serviceAccount})`;
  const need = a.approvals === 1 ? 'one approval' : `${a.approvals} approvals`;
  const lines = [
    `Approval needed: ${field(a.summary)}`,
    `Requested by: ${field(who)}`,
    `Rule: ${field(a.rule)}`,
    `Message: ${field(a.message)}`,
    `Needs ${need} by ${a.expiresAt}${a.approvers.length ? ` from ${field(a.approvers.join(', '))}` : ''}.`,
    pageUrl
      ? `<${pageUrl.replace(/\/+$/, '')}/approvals/${a.id}|Review request ${a.id}>`
      : `Review it with: chaperone approvals show ${a.id}`,
  ];
  return lines.join('\n');
}

export type ApprovalNotifier = (a: ApprovalRecord) => void;

export function approvalWebhook(opts: ApprovalWebhookOptions): ApprovalNotifier {
  return (a) => {
    const body = JSON.stringify({ text: webhookText(a, opts.pageUrl) });
    fetch(opts.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
    }).then(
      async (res) => {
        await res.arrayBuffer().catch(() => {});
        if (!res.ok)
          opts.logger.warn(
            { approvalId: a.id, status: res.status },
            'the approval webhook refused the notification',
          );
      },
      (err: unknown) =>
        opts.logger.warn(
          { approvalId: a.id, reason: (err as Error).message },
          'the approval webhook could not be reached',
        ),
    );
  };
}
