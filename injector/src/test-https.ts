/** HTTPS helpers for the injector's unit tests (a test CA, a client). */
import { type Agent, request } from 'node:https';
import { createCA, issueCertificate, type KeyPairPem } from '@chaperone/shared/tls';

export interface TestPki {
  readonly ca: KeyPairPem;
  leaf(): KeyPairPem;
}

export function testPki(): TestPki {
  const ca = createCA({ commonName: 'injector-test-ca' });
  return {
    ca,
    leaf: () =>
      issueCertificate({ ca, commonName: 'injector', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }),
  };
}

export interface HttpsResult {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Serial number of the certificate the server presented. */
  readonly serial: string;
}

export function httpsRequest(
  url: string,
  opts: {
    ca: string;
    method?: string;
    body?: string | Buffer;
    headers?: Record<string, string>;
    agent?: Agent;
  },
): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: opts.method ?? 'GET',
        ca: opts.ca,
        headers: opts.headers ?? {},
        ...(opts.agent ? { agent: opts.agent } : { agent: false }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        const serial =
          (res.socket as import('node:tls').TLSSocket).getPeerCertificate?.()?.serialNumber ?? '';
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            headers: res.headers,
            serial,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}
