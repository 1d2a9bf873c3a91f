/**
 * The sidecar's connection to the real database, with the Secret's
 * credentials: TLS as libpq's sslmode means it, the startup packet, and
 * authentication (SCRAM-SHA-256, md5, or a cleartext password when the
 * server asks for one), up to the server's first ReadyForQuery. The agent
 * never sees the credentials: it talks to the sidecar, which talks to this.
 */
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { BackendDecoder, type BackendMessage } from './backend-decoder.ts';
import type { Credentials } from './credentials.ts';
import * as enc from './encode.ts';
import type { ErrorFields } from './protocol.ts';
import { md5Password, SCRAM_SHA_256, ScramClient } from './scram.ts';

export class UpstreamError extends Error {
  /** SQLSTATE to give the agent. */
  readonly sqlstate: string;
  /** Stable label for metrics. */
  readonly reason: 'connect' | 'tls' | 'auth' | 'refused' | 'protocol';
  constructor(reason: UpstreamError['reason'], message: string, sqlstate = '08006') {
    super(message);
    this.name = 'UpstreamError';
    this.reason = reason;
    this.sqlstate = sqlstate;
  }
}

export interface UpstreamOptions {
  readonly timeoutMs: number;
  readonly maxMessageBytes: number;
}

export interface UpstreamSession {
  readonly socket: Socket | TLSSocket;
  /** Holds whatever the server sent after its first ReadyForQuery (nothing, normally). */
  readonly decoder: BackendDecoder;
  readonly parameters: readonly (readonly [string, string])[];
  readonly processId: number;
  readonly secretKey: Buffer;
  readonly status: 'I' | 'T' | 'E';
  /** Notices the server sent during startup, to pass on. */
  readonly notices: readonly Buffer[];
  readonly tls: boolean;
}

/** Opens a TCP connection and, as `sslmode` says, TLS over it (`disable`: never; `prefer`/`allow`: if offered; else required). */
export async function openTransport(
  c: Credentials,
  timeoutMs: number,
): Promise<{ socket: Socket | TLSSocket; tls: boolean }> {
  const raw = await new Promise<Socket>((resolve, reject) => {
    const s = netConnect({ host: c.host, port: c.port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new UpstreamError('connect', `no connection to ${c.host}:${c.port} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.setNoDelay(true);
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(
        new UpstreamError(
          'connect',
          `cannot connect to ${c.host}:${c.port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
        ),
      );
    });
  });
  if (c.sslmode === 'disable') return { socket: raw, tls: false };
  raw.write(enc.sslRequest());
  const answer = await new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new UpstreamError('tls', 'the server did not answer the SSLRequest')),
      timeoutMs,
    );
    raw.once('data', (d: Buffer) => {
      clearTimeout(timer);
      resolve(d);
    });
    raw.once('error', (err) => {
      clearTimeout(timer);
      reject(new UpstreamError('connect', `connection to ${c.host}:${c.port} failed: ${err.message}`));
    });
    raw.once('close', () => {
      clearTimeout(timer);
      reject(new UpstreamError('connect', `${c.host}:${c.port} closed the connection`));
    });
  });
  raw.removeAllListeners('error');
  raw.removeAllListeners('close');
  // Anything after the one-byte answer arrived before TLS: not from the server we will verify.
  if (answer.length !== 1) {
    raw.destroy();
    throw new UpstreamError('protocol', 'the server sent more than the one-byte answer to the SSLRequest');
  }
  if (answer[0] === 0x4e /* N */) {
    if (c.sslmode === 'prefer' || c.sslmode === 'allow') return { socket: raw, tls: false };
    raw.destroy();
    throw new UpstreamError('tls', `the server does not support TLS, and sslmode ${c.sslmode} requires it`);
  }
  if (answer[0] !== 0x53 /* S */) {
    raw.destroy();
    throw new UpstreamError('protocol', 'the server answered the SSLRequest with neither S nor N');
  }
  const verify =
    c.sslmode === 'verify-ca' || c.sslmode === 'verify-full' || (c.sslmode === 'require' && c.sslrootcert);
  const secure = await new Promise<TLSSocket>((resolve, reject) => {
    const t = tlsConnect({
      socket: raw,
      ...(isIP(c.host) === 0 ? { servername: c.host } : {}),
      ...(c.sslrootcert ? { ca: c.sslrootcert } : {}),
      ...(c.sslcert && c.sslkey ? { cert: c.sslcert, key: c.sslkey } : {}),
      rejectUnauthorized: Boolean(verify),
      // verify-ca (and require with a root certificate, as in libpq) checks the chain, not the name.
      ...(c.sslmode !== 'verify-full' ? { checkServerIdentity: () => undefined } : {}),
      ALPNProtocols: ['postgresql'],
    });
    const timer = setTimeout(() => {
      t.destroy();
      reject(new UpstreamError('tls', 'the TLS handshake with the server did not finish in time'));
    }, timeoutMs);
    t.once('secureConnect', () => {
      clearTimeout(timer);
      t.removeAllListeners('error');
      resolve(t);
    });
    t.once('error', (err) => {
      clearTimeout(timer);
      reject(
        new UpstreamError(
          'tls',
          `TLS with ${c.host}:${c.port} failed (sslmode ${c.sslmode}): ${err.message}`,
        ),
      );
    });
  });
  return { socket: secure, tls: true };
}

function serverError(f: ErrorFields): UpstreamError {
  const code = f.C ?? '08006';
  const reason = code.startsWith('28') ? 'auth' : 'refused';
  return new UpstreamError(
    reason,
    `the database server refused the connection: ${f.M ?? 'no message'}`,
    code,
  );
}

/**
 * Connects, starts a session with `parameters` (client_encoding and the like;
 * user and database come from the credentials) and authenticates.
 */
export async function connectUpstream(
  c: Credentials,
  parameters: readonly (readonly [string, string])[],
  o: UpstreamOptions,
): Promise<UpstreamSession> {
  const { socket, tls } = await openTransport(c, o.timeoutMs);
  const decoder = new BackendDecoder({ maxMessageBytes: o.maxMessageBytes });
  try {
    socket.write(enc.startupMessage([['user', c.user], ['database', c.database], ...parameters]));
    const result = await new Promise<Omit<UpstreamSession, 'socket' | 'decoder' | 'tls'>>(
      (resolve, reject) => {
        const params: [string, string][] = [];
        const notices: Buffer[] = [];
        let key: { processId: number; secretKey: Buffer } | undefined;
        let scram: ScramClient | undefined;
        let done = false;
        const fail = (err: Error) => {
          if (done) return;
          done = true;
          cleanup();
          reject(err);
        };
        const timer = setTimeout(
          () =>
            fail(
              new UpstreamError('auth', `the server did not finish authentication within ${o.timeoutMs} ms`),
            ),
          o.timeoutMs,
        );
        const onMessage = async (m: BackendMessage) => {
          switch (m.type) {
            case 'Authentication':
              switch (m.auth.kind) {
                case 'ok':
                  return;
                case 'cleartext-password':
                  socket.write(enc.passwordMessage(c.password));
                  return;
                case 'md5-password':
                  socket.write(enc.passwordMessage(md5Password(c.user, c.password, m.auth.salt)));
                  return;
                case 'sasl':
                  if (!m.auth.mechanisms.includes(SCRAM_SHA_256)) {
                    throw new UpstreamError(
                      'auth',
                      `the server offers only ${m.auth.mechanisms.join(', ')}; the sidecar speaks ${SCRAM_SHA_256}`,
                    );
                  }
                  scram = new ScramClient(c.password);
                  socket.write(enc.saslInitialResponse(SCRAM_SHA_256, scram.first()));
                  return;
                case 'sasl-continue':
                  if (!scram) throw new UpstreamError('protocol', 'SASLContinue before SASL');
                  socket.write(enc.saslResponse(await scram.final(m.auth.data)));
                  return;
                case 'sasl-final':
                  if (!scram) throw new UpstreamError('protocol', 'SASLFinal before SASL');
                  scram.verify(m.auth.data);
                  return;
                default:
                  throw new UpstreamError(
                    'auth',
                    `the server asks for ${m.auth.kind} authentication, which the sidecar does not do`,
                  );
              }
            case 'ParameterStatus':
              params.push([m.name, m.value]);
              return;
            case 'BackendKeyData':
              key = { processId: m.processId, secretKey: m.secretKey };
              return;
            case 'NoticeResponse':
              notices.push(m.raw);
              return;
            case 'NegotiateProtocolVersion':
              return;
            case 'ErrorResponse':
              throw serverError(m.fields);
            case 'ReadyForQuery':
              if (!key) throw new UpstreamError('protocol', 'the server sent no BackendKeyData');
              done = true;
              cleanup();
              resolve({
                parameters: params,
                processId: key.processId,
                secretKey: key.secretKey,
                status: m.status,
                notices,
              });
              return;
            default:
              throw new UpstreamError('protocol', `unexpected ${m.type} from the server during startup`);
          }
        };
        // Messages are handled one at a time, in order (SCRAM's step is asynchronous).
        let chain = Promise.resolve();
        const onData = (d: Buffer) => {
          let msgs: BackendMessage[];
          try {
            msgs = decoder.push(d);
          } catch (err) {
            fail(new UpstreamError('protocol', `the server broke the protocol: ${(err as Error).message}`));
            return;
          }
          for (const m of msgs) {
            chain = chain.then(() => (done ? undefined : onMessage(m))).catch((err) => fail(err as Error));
          }
        };
        const onClose = () =>
          fail(new UpstreamError('refused', 'the database server closed the connection during startup'));
        const onError = (err: Error) =>
          fail(new UpstreamError('connect', `connection to the database failed: ${err.message}`));
        const cleanup = () => {
          clearTimeout(timer);
          // Paused until the session reads on: a flowing socket with no listener would drop bytes.
          socket.pause();
          socket.off('data', onData);
          socket.off('close', onClose);
          socket.off('error', onError);
        };
        socket.on('data', onData);
        socket.on('close', onClose);
        socket.on('error', onError);
      },
    );
    return { socket, decoder, tls, ...result };
  } catch (err) {
    socket.destroy();
    throw err instanceof UpstreamError ? err : new UpstreamError('auth', (err as Error).message);
  }
}

/** Sends a CancelRequest for an upstream backend, on a new connection as libpq does. */
export async function cancelUpstream(
  c: Credentials,
  processId: number,
  secretKey: Buffer,
  timeoutMs: number,
): Promise<void> {
  const { socket } = await openTransport(c, timeoutMs);
  await new Promise<void>((resolve) => {
    socket.end(enc.cancelRequest(processId, secretKey), () => resolve());
    socket.once('error', () => resolve());
  });
  socket.destroy();
}
