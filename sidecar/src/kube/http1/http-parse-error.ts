/** The status a server answers with when it cannot read a message (502 when the message came from upstream). */
export type HttpParseStatus = 400 | 413 | 431 | 501 | 505 | 502;

/**
 * A message that is not valid HTTP/1.1, or that exceeds a limit. Thrown by the
 * request and response decoders; `status` is what the sidecar should answer.
 */
export class HttpParseError extends Error {
  readonly status: HttpParseStatus;

  constructor(status: HttpParseStatus, message: string) {
    super(message);
    this.name = 'HttpParseError';
    this.status = status;
  }
}
