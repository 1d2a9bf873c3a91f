/**
 * Tests only: a server speaking the collector's side of the approvals
 * protocol (approval-protocol.ts), so the review client's every path can be
 * staged — a test double, since the collector's own endpoint is its own
 * component with its own tests. Each connection is handed to `onRequest`
 * with the request it sent (checked with the contract's parser).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  APPROVAL_SUBPROTOCOL,
  APPROVALS_PATH,
  type ApprovalRequestMessage,
  type ApprovalServerMessage,
  parseApprovalRequest,
} from '@chaperone/shared';
import { type WebSocket, WebSocketServer } from 'ws';

export interface HeldConnection {
  readonly request: ApprovalRequestMessage;
  readonly authorization: string | undefined;
  readonly ws: WebSocket;
  send(m: ApprovalServerMessage | string): void;
  /** Resolves with the close code once the connection has ended. */
  readonly closed: Promise<number>;
}

export const TEST_TOKEN = 'test-collector-token';

export class TestApprovalServer {
  readonly wss: WebSocketServer;
  readonly dir: string;
  readonly tokenFile: string;
  readonly connections: HeldConnection[] = [];
  onRequest: (c: HeldConnection) => void = () => {};
  /** Answer the upgrade with this HTTP status and the collector's JSON error instead. */
  refuseWith: { status: number; message: string } | undefined;

  private constructor(wss: WebSocketServer) {
    this.wss = wss;
    this.dir = mkdtempSync(join(tmpdir(), 'chaperone-review-'));
    this.tokenFile = join(this.dir, 'token');
    writeFileSync(this.tokenFile, `${TEST_TOKEN}\n`);
    wss.on('connection', (ws, req) => {
      const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
      ws.once('message', (data) => {
        const c: HeldConnection = {
          request: parseApprovalRequest(String(data)),
          authorization: req.headers.authorization,
          ws,
          send: (m) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)),
          closed,
        };
        this.connections.push(c);
        this.onRequest(c);
      });
    });
  }

  static async start(o: { autoPong?: boolean } = {}): Promise<TestApprovalServer> {
    let server: TestApprovalServer | undefined;
    const wss = new WebSocketServer({
      port: 0,
      host: '127.0.0.1',
      path: APPROVALS_PATH,
      autoPong: o.autoPong ?? true,
      handleProtocols: (p) => (p.has(APPROVAL_SUBPROTOCOL) ? APPROVAL_SUBPROTOCOL : false),
      verifyClient: (_info, cb) => {
        const r = server?.refuseWith;
        if (r) cb(false, r.status, JSON.stringify({ error: { code: 'refused', message: r.message } }));
        else cb(true);
      },
    });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    server = new TestApprovalServer(wss);
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.wss.address() as AddressInfo).port}`;
  }

  /** Stops listening (the collector is gone); the token file stays. */
  async stop(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
