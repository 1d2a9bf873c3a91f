/**
 * The HTTP half of a SPDY upgrade, as the kubelet's streaming server answers it
 * (k8s.io/apimachinery pkg/util/httpstream Handshake and spdy
 * responseUpgrader.UpgradeResponse, v1.20):
 * - X-Stream-Protocol-Version (any number of headers, comma-separated) is
 *   required: 400 otherwise;
 * - the first of the client's versions the server supports wins; none → 403,
 *   with the server's list in X-Accepted-Stream-Protocol-Versions;
 * - Connection must contain "upgrade" and Upgrade "spdy/3.1": 400 otherwise;
 * - then `101 Switching Protocols` with Connection: Upgrade, Upgrade: SPDY/3.1
 *   and the chosen X-Stream-Protocol-Version.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

/** remotecommand.SupportedStreamingProtocols: what a 1.20 kubelet speaks over SPDY for exec/attach. */
export const REMOTE_COMMAND_SPDY_PROTOCOLS: readonly string[] = [
  'v4.channel.k8s.io',
  'v3.channel.k8s.io',
  'v2.channel.k8s.io',
  'channel.k8s.io',
];

/** portforward.SupportedProtocols. */
export const PORT_FORWARD_SPDY_PROTOCOLS: readonly string[] = ['portforward.k8s.io'];

export interface HttpAnswer {
  readonly status: number;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
}

/** Go's http.Error: text/plain, nosniff, the message and a newline. */
export function goHttpError(
  status: number,
  message: string,
  extra: readonly (readonly [string, string])[] = [],
): HttpAnswer {
  return {
    status,
    headers: [...extra, ['Content-Type', 'text/plain; charset=utf-8'], ['X-Content-Type-Options', 'nosniff']],
    body: `${message}\n`,
  };
}

/** The versions offered, in the client's order. */
export function offeredStreamProtocols(req: IncomingMessage): string[] {
  const lines = req.headersDistinct['x-stream-protocol-version'] ?? [];
  return lines.flatMap((l) => l.split(',').map((p) => p.trim())).filter((p) => p !== '');
}

/** Negotiates and checks the upgrade headers: the chosen version, or the error answer to send. */
export function spdyHandshake(
  req: IncomingMessage,
  supported: readonly string[],
): { protocol: string } | { answer: HttpAnswer } {
  const offered = offeredStreamProtocols(req);
  if (offered.length === 0) {
    return { answer: goHttpError(400, 'unable to upgrade: X-Stream-Protocol-Version is required') };
  }
  const protocol = offered.find((p) => supported.includes(p));
  if (protocol === undefined) {
    return {
      answer: goHttpError(
        403,
        `unable to upgrade: unable to negotiate protocol: client supports [${offered.join(' ')}], server accepts [${supported.join(' ')}]`,
        supported.map((p) => ['X-Accepted-Stream-Protocol-Versions', p] as const),
      ),
    };
  }
  const connection = (req.headers.connection ?? '').toLowerCase();
  const upgrade = (req.headers.upgrade ?? '').toLowerCase();
  if (!connection.includes('upgrade') || !upgrade.includes('spdy/3.1')) {
    return { answer: goHttpError(400, 'unable to upgrade: missing upgrade headers in request') };
  }
  return { protocol };
}

/** Writes the 101 that starts the SPDY session. */
export function acceptSpdyUpgrade(socket: Duplex, protocol: string): void {
  socket.write(
    [
      'HTTP/1.1 101 Switching Protocols',
      'Connection: Upgrade',
      'Upgrade: SPDY/3.1',
      `X-Stream-Protocol-Version: ${protocol}`,
      `Date: ${new Date().toUTCString()}`,
      '',
      '',
    ].join('\r\n'),
  );
}
