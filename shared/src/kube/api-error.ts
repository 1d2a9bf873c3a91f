/**
 * An answer from the API server that is not the one asked for, as a typed
 * error: the HTTP status, the `metav1.Status` the server sent (reason,
 * message, details) and a project error code callers can branch on
 * (404 → not_found, 409 → conflict, 401, 403, 400/422 → validation_failed,
 * anything else → unavailable).
 */
import { ChaperoneError, type ErrorCode } from '../errors.ts';

/** `metav1.Status`, the body of every API error (and of watch ERROR events). */
export interface KubeStatus {
  readonly kind?: 'Status';
  readonly apiVersion?: string;
  readonly status?: string;
  readonly message?: string;
  /** e.g. NotFound, AlreadyExists, Conflict, Forbidden, Expired, Gone. */
  readonly reason?: string;
  readonly code?: number;
  readonly details?: {
    readonly name?: string;
    readonly group?: string;
    readonly kind?: string;
    readonly causes?: readonly { reason?: string; message?: string; field?: string }[];
    readonly retryAfterSeconds?: number;
  };
}

export function errorCodeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
    case 422:
      return 'validation_failed';
    case 401:
      return 'unauthenticated';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 409:
      return 'conflict';
    default:
      return 'unavailable';
  }
}

/** The Status in a response body, when it is one (a proxy in front of the API server may answer HTML). */
export function asStatus(body: unknown): KubeStatus | undefined {
  return body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as KubeStatus) : undefined;
}

export class KubeApiError extends ChaperoneError {
  /** The HTTP status. */
  readonly status: number;
  /** The Status reason, '' when the server sent none. */
  readonly reason: string;
  /** The Status the server sent, when it sent one. */
  readonly kubeStatus: KubeStatus | undefined;

  constructor(method: string, path: string, status: number, body: KubeStatus | undefined) {
    super(
      errorCodeForStatus(status),
      `${method} ${path}: HTTP ${status}${body?.message ? `: ${body.message}` : ''}`,
      { details: { status, ...(body?.reason ? { reason: body.reason } : {}) } },
    );
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = body?.reason ?? '';
    this.kubeStatus = body;
  }
}
