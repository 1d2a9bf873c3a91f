/**
 * Kubernetes `Status` responses (metav1.Status): what every Kubernetes client
 * knows how to show. kubectl prints `Error from server (<reason>): <message>`.
 */
import type { AgentResponse } from './http1/agent-connection.ts';

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  details?: Record<string, unknown>;
  code: number;
}

export function statusBody(
  code: number,
  reason: string,
  message: string,
  details?: Record<string, unknown>,
): StatusBody {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

export function sendStatus(
  res: AgentResponse,
  body: StatusBody,
  extraHeaders: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(body.code, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-cache, private',
    ...extraHeaders,
  });
  res.end(text);
}
