/**
 * The sidecars' approvals WebSocket on the ingest port: `GET /v1/approvals`,
 * subprotocol `chaperone.approvals.v1` (shared/src/approval-protocol.ts),
 * authenticated before the upgrade exactly as ingest is (sidecar-upgrade.ts).
 * One connection per held action: one `request`, answered `pending` and then
 * `decided` (or at once `decided` when a grant covers it), then closed by
 * the collector. Pings every APPROVAL_PING_INTERVAL_MS; twice that without a
 * pong ends the connection, and a request still pending is withdrawn.
 *
 * Close codes: 4400 a malformed or refused request (the reason says which
 * field or limit), 4401 the token expired, 4429 the pod's pending requests
 * at their limit, 1011 the collector could not store it, 1001 shutting down.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  APPROVAL_CONNECT_TIMEOUT_MS,
  APPROVAL_PING_INTERVAL_MS,
  APPROVAL_SUBPROTOCOL,
  CLOSE_CODES,
  type Logger,
  MAX_APPROVAL_MESSAGE_BYTES,
  parseApprovalRequest,
  toChaperoneError,
} from '@chaperone/shared';
import { type WebSocket, WebSocketServer } from 'ws';
import type { PodAdmission } from '../auth/pod-admission.ts';
import type { TokenVerifier, VerifiedSidecar } from '../auth/sidecar-identity.ts';
import { authenticateSidecar, refuseUpgrade, upgradeRefusal } from '../auth/sidecar-upgrade.ts';
import type { ApprovalService } from './approval-service.ts';

export const CLOSE_PENDING_LIMIT = 4429;
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ApprovalSocketOptions {
  readonly service: ApprovalService;
  readonly verifier: TokenVerifier;
  readonly admission?: PodAdmission;
  readonly logger: Logger;
  readonly pingIntervalMs?: number;
}

/** A close reason fits in 123 bytes. */
function closeReason(s: string): string {
  let out = s;
  while (Buffer.byteLength(out) > 123) out = `${out.slice(0, Math.max(0, out.length - 8))}…`;
  return out;
}

export class ApprovalSocket {
  readonly #o: ApprovalSocketOptions;
  readonly #wss: WebSocketServer;
  /** Open connections, each with the moment its 'close' has been handled. */
  readonly #open = new Map<WebSocket, Promise<void>>();
  /** Withdrawals under way: shutdown waits for them before the store closes. */
  readonly #withdrawing = new Set<Promise<void>>();

  constructor(opts: ApprovalSocketOptions) {
    this.#o = opts;
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: 2 * MAX_APPROVAL_MESSAGE_BYTES,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(APPROVAL_SUBPROTOCOL) ? APPROVAL_SUBPROTOCOL : false),
    });
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim());
    if (!offered.includes(APPROVAL_SUBPROTOCOL)) {
      refuseUpgrade(socket, {
        status: 400,
        code: 'protocol',
        message: `use the WebSocket subprotocol ${APPROVAL_SUBPROTOCOL}`,
      });
      return;
    }
    authenticateSidecar(req, this.#o.verifier, this.#o.admission)
      .then(
        (who) => {
          if (socket.destroyed) return;
          this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, who));
        },
        (err: unknown) => {
          const r = upgradeRefusal(err);
          if (r.status === 503)
            this.#o.logger.warn({ reason: r.message }, 'cannot verify a sidecar token or its pod');
          else this.#o.logger.info({ status: r.status, reason: r.message }, 'approval connection refused');
          refuseUpgrade(socket, r);
        },
      )
      .catch((err: unknown) => {
        this.#o.logger.error({ err }, 'accepting an approval connection failed');
        socket.destroy();
      });
  }

  #accept(ws: WebSocket, who: VerifiedSidecar): void {
    const log = this.#o.logger.child({ namespace: who.namespace, pod: who.pod });
    this.#open.set(ws, new Promise<void>((resolve) => ws.once('close', () => resolve())));
    let approvalId: string | undefined;
    let received = false;
    let ended = false;
    const timers: NodeJS.Timeout[] = [];
    const close = (code: number, reason: string) => {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, closeReason(reason));
    };
    timers.push(
      setTimeout(() => {
        if (!received) close(CLOSE_CODES.protocolError, 'no request within the time limit');
      }, APPROVAL_CONNECT_TIMEOUT_MS),
    );
    const interval = this.#o.pingIntervalMs ?? APPROVAL_PING_INTERVAL_MS;
    let lastPong = Date.now();
    ws.on('pong', () => {
      lastPong = Date.now();
    });
    timers.push(
      setInterval(() => {
        if (Date.now() - lastPong > 2 * interval) {
          log.info('approval connection lost: no pong');
          ws.terminate();
          return;
        }
        ws.ping();
      }, interval),
    );
    if (who.expiresAtMs !== undefined)
      timers.push(
        setTimeout(
          () => close(CLOSE_CODES.unauthenticated, 'the token expired'),
          Math.min(Math.max(0, who.expiresAtMs - Date.now()), MAX_TIMER_MS),
        ),
      );
    for (const t of timers) t.unref();
    const hold = {
      send: (m: object) => {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
      },
      end: () => {
        ended = true;
        close(1000, 'decided');
      },
    };
    ws.on('message', (data, isBinary) => {
      if (received) {
        close(CLOSE_CODES.protocolError, 'one request per connection');
        return;
      }
      received = true;
      if (isBinary) {
        close(CLOSE_CODES.protocolError, 'send the request as a JSON text message');
        return;
      }
      let req: ReturnType<typeof parseApprovalRequest>;
      try {
        req = parseApprovalRequest((data as Buffer).toString('utf8'));
      } catch (err) {
        const e = toChaperoneError(err);
        log.info({ reason: e.message }, 'malformed approval request');
        close(CLOSE_CODES.protocolError, e.message);
        return;
      }
      this.#o.service
        .submit(who, req, {
          send: (m) => {
            if (m.type === 'pending') {
              approvalId = m.approvalId;
              // Gone while the request was being stored: withdrawn, never left pending.
              if (ws.readyState !== ws.OPEN) this.#withdraw(m.approvalId);
            }
            hold.send(m);
          },
          end: hold.end,
        })
        .catch((err: unknown) => {
          const e = toChaperoneError(err);
          if (e.code === 'limit_exceeded') {
            log.warn({ reason: e.message }, 'approval request refused');
            close(CLOSE_PENDING_LIMIT, e.message);
          } else if (e.code === 'validation_failed') {
            log.info({ reason: e.message }, 'approval request refused');
            close(CLOSE_CODES.protocolError, e.message);
          } else {
            log.error({ err: e }, 'storing an approval request failed');
            close(CLOSE_CODES.internalError, 'the collector could not store the request');
          }
        });
    });
    ws.on('error', () => {});
    ws.on('close', () => {
      this.#open.delete(ws);
      for (const t of timers) clearTimeout(t);
      if (approvalId !== undefined && !ended) this.#withdraw(approvalId);
    });
  }

  #withdraw(id: string): void {
    const p = this.#o.service.withdraw(id).finally(() => this.#withdrawing.delete(p));
    this.#withdrawing.add(p);
  }

  /** Closes every connection (their pending requests are withdrawn) and stops accepting. */
  async close(): Promise<void> {
    const open = [...this.#open];
    for (const [ws] of open) ws.close(CLOSE_CODES.shuttingDown, 'collector shutting down');
    await new Promise((r) => setTimeout(r, 100).unref());
    for (const [ws] of open) ws.terminate();
    await Promise.all(open.map(([, closed]) => closed));
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    // Every connection's 'close' has run: its withdrawal has started.
    await Promise.all(this.#withdrawing);
  }
}
