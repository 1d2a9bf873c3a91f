/**
 * One HTTP POST to a forwarding destination, with the answer classified the
 * way an at-least-once forwarder needs it: delivered, retry later, refused
 * for good (the destination says the data itself is bad), or too large
 * (split and resend).
 */
export type Delivery =
  | { readonly kind: 'ok' }
  | { readonly kind: 'retry'; readonly reason: string; readonly retryAfterMs?: number }
  | { readonly kind: 'reject'; readonly reason: string }
  | { readonly kind: 'too_large'; readonly reason: string };

export async function postJson(
  url: string,
  body: string,
  headers: Readonly<Record<string, string>>,
  timeoutMs: number,
): Promise<Delivery> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return {
      kind: 'retry',
      reason: `${(err as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ''}`,
    };
  }
  const text = await res.text().catch(() => '');
  const reason = `HTTP ${res.status}${text ? `: ${text.trim().slice(0, 300)}` : ''}`;
  if (res.ok) return { kind: 'ok' };
  if (res.status === 413) return { kind: 'too_large', reason };
  if (res.status === 400 || res.status === 422) return { kind: 'reject', reason };
  const after = Number(res.headers.get('retry-after'));
  // 401/403/404 are configuration problems an operator can fix: keep the events and retry.
  return {
    kind: 'retry',
    reason,
    ...(Number.isFinite(after) && after > 0 ? { retryAfterMs: after * 1000 } : {}),
  };
}
