/**
 * A local HTTPS server standing in for the API server in this folder's unit
 * tests (the real kube-apiserver runs in e2e/): a throw-away CA, a serving
 * certificate for 127.0.0.1 (or the names given), optional client-certificate
 * authentication against a second CA, and a log of what each request carried.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createCA, issueCertificate, type KeyPairPem } from '../tls.ts';

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly authorization: string | undefined;
  readonly contentType: string | undefined;
  readonly userAgent: string | undefined;
  /** Common name of the client certificate presented, '' for none. */
  readonly clientName: string;
  readonly body: string;
}

export interface TestApiServer {
  readonly url: string;
  readonly port: number;
  /** PEM CA that signed the serving certificate. */
  readonly ca: string;
  readonly seen: SeenRequest[];
  readonly server: Server;
  /** Issues a client certificate the server accepts (with `clientAuth`). */
  clientCertificate(commonName: string): KeyPairPem;
  close(): Promise<void>;
}

export type TestHandler = (req: SeenRequest, res: ServerResponse, raw: IncomingMessage) => void;

export interface TestApiServerOptions {
  /** Ask for client certificates and refuse connections without one signed by the client CA. */
  readonly clientAuth?: boolean;
  /** The serving certificate's DNS names (default: none, IP 127.0.0.1 only). */
  readonly dnsNames?: readonly string[];
  /** Whether 127.0.0.1 is in the serving certificate; default true. */
  readonly ipSan?: boolean;
}

/** Writes `body` as JSON with `status`. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export async function startTestApiServer(
  handler: TestHandler,
  opts: TestApiServerOptions = {},
): Promise<TestApiServer> {
  const serverCa = createCA({ commonName: 'kube-test-server-ca' });
  const clientCa = createCA({ commonName: 'kube-test-client-ca' });
  const leaf = issueCertificate({
    ca: serverCa,
    commonName: 'kube-apiserver',
    dnsNames: opts.dnsNames ?? [],
    ipAddresses: opts.ipSan === false ? [] : ['127.0.0.1'],
  });
  const seen: SeenRequest[] = [];
  const server = createServer(
    {
      cert: leaf.cert,
      key: leaf.key,
      ...(opts.clientAuth ? { requestCert: true, rejectUnauthorized: true, ca: clientCa.cert } : {}),
    },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'https://x');
        const peer = (req.socket as TLSSocket).getPeerCertificate?.();
        const r: SeenRequest = {
          method: req.method ?? '',
          path: url.pathname,
          query: url.searchParams,
          authorization: req.headers.authorization,
          contentType: req.headers['content-type'],
          userAgent: req.headers['user-agent'],
          clientName: typeof peer?.subject?.CN === 'string' ? peer.subject.CN : '',
          body: Buffer.concat(chunks).toString('utf8'),
        };
        seen.push(r);
        handler(r, res, req);
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    ca: serverCa.cert,
    seen,
    server,
    clientCertificate: (commonName) =>
      issueCertificate({ ca: clientCa, commonName, server: false, client: true }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
