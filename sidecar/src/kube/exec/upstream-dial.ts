/**
 * Opens the upstream half of a session: a TLS connection of its own to the
 * API server (the pool's address and CA), the sidecar's upgrade request with
 * its own token and the session's Audit-ID, and the answer. A 101 hands over
 * the socket and any bytes that came after the answer's head; any other
 * answer is read whole (within a bound) — it is a Status saying why the API
 * server or the kubelet refused, which the agent is told.
 *
 * `dialUpgrade` takes any upgrade request and a check of the 101's fields (the
 * SPDY port-forward uses it); `dialUpstream` is the WebSocket upgrade of exec
 * and attach sessions.
 */
import type { TLSSocket } from 'node:tls';
import { headerRecord, parseFieldLines } from '../http1/framing.ts';
import { HttpParseError } from '../http1/http-parse-error.ts';
import { ResponseDecoder } from '../http1/response-decoder.ts';
import type { Upstream } from '../upstream.ts';
import type { ChannelProtocol } from './channel-protocol.ts';
import { checkUpstreamAnswer, newKey, upstreamUpgradeHead } from './handshake.ts';

export type UpstreamDial =
  | {
      readonly kind: 'open';
      readonly socket: TLSSocket;
      readonly protocol: ChannelProtocol;
      /** Bytes that arrived after the 101 head: the first WebSocket frames. */
      readonly rest: Buffer;
    }
  | {
      readonly kind: 'refused';
      readonly status: number;
      readonly contentType: string;
      readonly body: Buffer;
    };

/** Why the upstream half could not be opened: the agent is told, with this message. */
export class UpstreamDialError extends Error {
  readonly reason: 'unreachable' | 'timeout' | 'protocol';
  constructor(reason: UpstreamDialError['reason'], message: string) {
    super(message);
    this.name = 'UpstreamDialError';
    this.reason = reason;
  }

  /** Anything a dial threw, as an UpstreamDialError (an unexpected one is a protocol failure). */
  static from(err: unknown): UpstreamDialError {
    return err instanceof UpstreamDialError ? err : new UpstreamDialError('protocol', String(err));
  }

  /** The Status the agent gets: 504 for a timeout, 503 for an API server out of reach, 502 otherwise. */
  status(): { code: number; reason: string; message: string } {
    const message = `chaperone: ${this.message}`;
    if (this.reason === 'timeout') return { code: 504, reason: 'Timeout', message };
    if (this.reason === 'unreachable') return { code: 503, reason: 'ServiceUnavailable', message };
    return { code: 502, reason: 'BadGateway', message };
  }
}

export interface DialOptions {
  readonly upstream: Upstream;
  /** Origin-form path and query of the exec or attach request. */
  readonly target: string;
  readonly auditID: string;
  /** The agent's request fields ([name, value, …]); those that may cross the proxy are sent. */
  readonly agentFields: readonly string[];
  /** For the connection and the answer's head together. */
  readonly timeoutMs: number;
}

/** What dialUpgrade hands over: the 101 with the value its check read, or the refusal. */
export type UpgradeDial<T> =
  | { readonly kind: 'open'; readonly socket: TLSSocket; readonly value: T; readonly rest: Buffer }
  | Extract<UpstreamDial, { kind: 'refused' }>;

export interface UpgradeOptions<T> {
  readonly upstream: Upstream;
  /** The whole request head, ending with the empty line. */
  readonly head: string;
  /** Reads a 101's fields (lower-cased names): what to hand over, or why the answer is not one the sidecar asked for. */
  readonly check: (headers: Readonly<Record<string, string>>) => T | { problem: string };
  /** For the connection and the answer's head together. */
  readonly timeoutMs: number;
}

const MAX_HEAD_BYTES = 64 * 1024;
const MAX_REFUSAL_BYTES = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');

export async function dialUpstream(o: DialOptions): Promise<UpstreamDial> {
  const key = newKey();
  const dial = await dialUpgrade({
    upstream: o.upstream,
    head: upstreamUpgradeHead({
      target: o.target,
      host: o.upstream.host,
      authorization: o.upstream.authorization,
      auditID: o.auditID,
      key,
      agentFields: o.agentFields,
    }),
    check: (headers) => checkUpstreamAnswer(headers, key),
    timeoutMs: o.timeoutMs,
  });
  if (dial.kind === 'refused') return dial;
  return { kind: 'open', socket: dial.socket, protocol: dial.value, rest: dial.rest };
}

export function dialUpgrade<T>(o: UpgradeOptions<T>): Promise<UpgradeDial<T>> {
  const socket = o.upstream.pool.openSocket();
  return new Promise<UpgradeDial<T>>((resolve, reject) => {
    let settled = false;
    let acc: Buffer = Buffer.alloc(0);
    let refusal: ResponseDecoder | undefined;
    let status = 0;
    let contentType = '';
    const body: Buffer[] = [];
    let bodyBytes = 0;
    const finish = (err: UpstreamDialError | undefined, value?: UpgradeDial<T>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (err || value?.kind === 'refused') socket.destroy();
      // Held until the session reads on: data with no listener would be lost.
      else socket.pause();
      if (err) reject(err);
      else resolve(value as UpgradeDial<T>);
    };
    const timer = setTimeout(
      () =>
        finish(
          new UpstreamDialError(
            'timeout',
            `the API server did not answer the upgrade within ${o.timeoutMs} ms`,
          ),
        ),
      o.timeoutMs,
    );
    timer.unref();
    const readRefusal = (parts: ReturnType<ResponseDecoder['push']>) => {
      for (const part of parts) {
        if (part.kind === 'head') {
          status = part.head.statusCode;
          if (status === 401) o.upstream.refreshToken();
          contentType = part.head.headers['content-type'] ?? '';
        } else if (part.kind === 'body') {
          bodyBytes += part.data.length;
          if (bodyBytes <= MAX_REFUSAL_BYTES) body.push(Buffer.from(part.data));
        } else {
          finish(undefined, {
            kind: 'refused',
            status,
            contentType,
            body: Buffer.concat(body).subarray(0, MAX_REFUSAL_BYTES),
          });
          return;
        }
      }
    };
    const protocolError = (message: string) =>
      finish(
        new UpstreamDialError(
          'protocol',
          `the API server's answer to the upgrade could not be read: ${message}`,
        ),
      );
    const onData = (chunk: Buffer) => {
      if (refusal) {
        try {
          readRefusal(refusal.push(chunk));
        } catch (err) {
          protocolError(err instanceof HttpParseError ? err.message : String(err));
        }
        return;
      }
      acc = acc.length === 0 ? chunk : Buffer.concat([acc, chunk]);
      const end = acc.indexOf(HEAD_END);
      if (end === -1) {
        if (acc.length > MAX_HEAD_BYTES) protocolError(`the head is larger than ${MAX_HEAD_BYTES} bytes`);
        return;
      }
      const text = acc.toString('latin1', 0, end + 2);
      const nl = text.indexOf('\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text.slice(0, nl));
      if (!m) {
        protocolError('malformed status line');
        return;
      }
      if (m[1] !== '101') {
        // Not upgraded: the answer is an ordinary response, read by the proxy's response decoder.
        refusal = new ResponseDecoder();
        refusal.expect('GET');
        const all = acc;
        acc = Buffer.alloc(0);
        onData(all);
        return;
      }
      const raw: string[] = [];
      try {
        parseFieldLines(text, nl + 1, true, 502, raw);
      } catch (err) {
        protocolError(err instanceof HttpParseError ? err.message : String(err));
        return;
      }
      const checked = o.check(headerRecord(raw));
      if (typeof checked === 'object' && checked !== null && 'problem' in checked) {
        protocolError(checked.problem);
        return;
      }
      finish(undefined, { kind: 'open', socket, value: checked, rest: acc.subarray(end + 4) });
    };
    const onEnd = () => {
      if (refusal) {
        try {
          readRefusal(refusal.end());
        } catch (err) {
          protocolError(err instanceof HttpParseError ? err.message : String(err));
        }
      }
      if (!settled) protocolError('the connection closed before the answer was complete');
    };
    const onError = (err: NodeJS.ErrnoException) =>
      finish(
        new UpstreamDialError(
          'unreachable',
          `the API server at ${o.upstream.origin} is unreachable (${err.code ?? err.message})`,
        ),
      );
    const onClose = () => onEnd();
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(o.head, 'latin1');
  });
}
