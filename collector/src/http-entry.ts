/**
 * Where the collector's HTTP servers meet the network. The collector runs
 * two: on the ingest listener every upgrade goes to ingest (or a 400/404)
 * and requests to the probes; on the query listener requests go to the
 * query API and every upgrade is refused. Both paths are written so
 * that nothing a client sends — a malformed target, odd headers, a socket
 * that goes away mid-handshake — can throw past them: what is wrong with the
 * request is answered, what is wrong with the collector is logged and
 * answered 500, and the server keeps serving.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { APPROVALS_PATH, INGEST_PATH, type Logger } from '@chaperone/shared';
import { ConnectionBudget } from './connection-budget.ts';
import { parseRequestTarget } from './query/request-target.ts';

export interface IngestEntry {
  /** Ingest's upgrade handler (ingest-server.ts). */
  readonly upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Ingest connections (upgrades, open or being verified) at once, in all. */
  readonly maxIngestConnections: number;
  /** …and from one address (one pod: sidecars connect from their pod's IP). */
  readonly maxIngestConnectionsPerAddress: number;
}

export interface ApprovalsEntry {
  readonly upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Approval connections (one per held action, open or being verified) at once, in all. */
  readonly maxApprovalConnections: number;
  /** …and from one address. */
  readonly maxApprovalConnectionsPerAddress: number;
}

export interface HttpEntryOptions {
  /** Answers every request and never rejects (http-api.ts: the query API, or the ingest port's probes). */
  readonly api: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  /** Ingest on this listener; without it every upgrade is refused 404. */
  readonly ingest?: IngestEntry;
  /** The sidecars' approvals WebSocket (APPROVALS_PATH) on the ingest listener (approvals/approval-socket.ts). */
  readonly approvals?: ApprovalsEntry;
  readonly logger: Logger;
}

const REFUSALS = {
  400: ['Bad Request', 'usage'],
  404: ['Not Found', 'not_found'],
  429: ['Too Many Requests', 'limit_exceeded'],
  500: ['Internal Server Error', 'internal'],
  503: ['Service Unavailable', 'unavailable'],
} as const;

function refuseUpgrade(socket: Duplex, status: keyof typeof REFUSALS, message: string): void {
  const [reason, code] = REFUSALS[status];
  const body = JSON.stringify({ error: { code, message } });
  if (socket.destroyed) return;
  const retry = status === 429 || status === 503 ? 'Retry-After: 5\r\n' : '';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${retry}Connection: close\r\n\r\n${body}`,
  );
}

export interface HttpEntry {
  /**
   * Destroys every connection still open. Sockets handed over in an upgrade
   * are no longer the HTTP server's: `server.close()` waits for them and
   * `closeAllConnections()` does not see them, so one a client left half
   * open would hold shutdown forever.
   */
  destroyAll(): void;
}

/** Attaches the request and upgrade handlers to `server`. */
export function attachHttpEntry(server: Server, opts: HttpEntryOptions): HttpEntry {
  const { api, ingest, logger } = opts;
  const sockets = new Set<Duplex>();
  const ingestBudget = ingest
    ? new ConnectionBudget({
        max: ingest.maxIngestConnections,
        maxPerAddress: ingest.maxIngestConnectionsPerAddress,
      })
    : undefined;
  const approvalBudget = opts.approvals
    ? new ConnectionBudget({
        max: opts.approvals.maxApprovalConnections,
        maxPerAddress: opts.approvals.maxApprovalConnectionsPerAddress,
      })
    : undefined;
  /**
   * Admits an upgrade into `budget` (before its token is verified), or
   * answers the refusal naming the limit and its flag; true when admitted.
   */
  const admit = (
    budget: ConnectionBudget,
    socket: Duplex,
    address: string,
    kind: string,
    flag: string,
  ): boolean => {
    const refused = budget.admit(socket, address);
    if (refused === 503) {
      logger.warn({ limit: budget.limits.max, kind }, `${kind} connection limit reached`);
      refuseUpgrade(
        socket,
        503,
        `the collector holds ${budget.limits.max} ${kind} connections, its limit (--max-${flag}): retry, or add a replica`,
      );
    } else if (refused === 429) {
      logger.warn(
        { address, limit: budget.limits.maxPerAddress, kind },
        `${kind} connections per address limit reached`,
      );
      refuseUpgrade(
        socket,
        429,
        `${address} already holds ${budget.limits.maxPerAddress} ${kind} connections, the limit per pod (--max-${flag}-per-address): close one first`,
      );
    }
    return refused === undefined;
  };
  server.on('connection', (socket: Duplex) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    api(req, res).catch((err: unknown) => {
      logger.error({ err }, 'the query API failed to answer a request');
      res.destroy();
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    try {
      let path: string;
      try {
        path = parseRequestTarget(req.url).pathname;
      } catch (err) {
        refuseUpgrade(socket, 400, (err as Error).message);
        return;
      }
      if (!ingest)
        refuseUpgrade(
          socket,
          404,
          `no WebSocket endpoint on the query listener: ingest (${INGEST_PATH}) is served on the ingest port (--listen-port)`,
        );
      else if (path === INGEST_PATH && ingestBudget) {
        if (admit(ingestBudget, socket, req.socket.remoteAddress ?? '', 'ingest', 'ingest-connections'))
          ingest.upgrade(req, socket, head);
      } else if (path === APPROVALS_PATH && opts.approvals && approvalBudget) {
        if (admit(approvalBudget, socket, req.socket.remoteAddress ?? '', 'approval', 'approval-connections'))
          opts.approvals.upgrade(req, socket, head);
      } else refuseUpgrade(socket, 404, `no WebSocket endpoint here: ingest is ${INGEST_PATH}`);
    } catch (err) {
      logger.error({ err }, 'handling a WebSocket upgrade failed');
      try {
        refuseUpgrade(socket, 500, 'the collector failed to handle this upgrade');
      } catch {
        socket.destroy();
      }
    }
  });
  return {
    destroyAll() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
  };
}
