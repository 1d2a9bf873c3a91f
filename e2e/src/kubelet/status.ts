/**
 * The `metav1.Status` a kubelet writes at the end of an exec or attach session
 * (k8s.io/kubernetes pkg/kubelet/cri/streaming/remotecommand exec.go and
 * attach.go, v1.20), serialised with Go's field order so the bytes match:
 * success `{"metadata":{},"status":"Success"}`; a non-zero exit
 * `Failure`/`NonZeroExitCode` with the code in `details.causes[{reason: ExitCode}]`;
 * anything else an InternalError (code 500).
 *
 * The protocol decides how it travels: v4 (WebSocket `v4.channel.k8s.io`, SPDY
 * `v4.channel.k8s.io`) sends the JSON; older protocols send nothing on success
 * and the bare error text otherwise (`v1WriteStatusFunc`).
 */

export interface ExecStatus {
  readonly status: 'Success' | 'Failure';
  readonly message?: string;
  readonly reason?: string;
  readonly details?: { readonly causes: readonly { readonly reason?: string; readonly message: string }[] };
  readonly code?: number;
}

export const SUCCESS: ExecStatus = { status: 'Success' };

/**
 * A command that exited non-zero. The message follows containerd's CRI
 * (`error executing command [argv], exit code N`), which the kubelet prefixes.
 */
export function nonZeroExit(argv: readonly string[], exitCode: number): ExecStatus {
  return {
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${argv.join(' ')}], exit code ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

/** apierrors.NewInternalError(err). */
export function internalError(message: string): ExecStatus {
  return {
    status: 'Failure',
    message: `Internal error occurred: ${message}`,
    reason: 'InternalError',
    details: { causes: [{ message }] },
    code: 500,
  };
}

/** The v4 encoding: Go's json.Marshal of metav1.Status. */
export function statusJson(s: ExecStatus): string {
  return JSON.stringify({
    metadata: {},
    status: s.status,
    message: s.message,
    reason: s.reason,
    details: s.details,
    code: s.code,
  });
}

/** The pre-v4 encoding: nothing on success, the error's text otherwise. */
export function statusText(s: ExecStatus): string | undefined {
  return s.status === 'Success' ? undefined : (s.message ?? 'unknown error');
}
