/**
 * The anchor for the injector benchmark: a webhook that admits every pod
 * unchanged, served the same way as the injector — the same HTTPS server
 * code (TLS, bounded body read, AdmissionReview decoding and checks, response
 * encoding), the same certificate, in its own fresh Node process. The
 * difference to `chaperone injector` is exactly what injection costs: mutate,
 * the JSON patch, the admission counter. The server's own metrics (request
 * duration, bad requests) are on, on a registry made the same way.
 *
 *   node bench/src/injector-noop-webhook.ts <port> <cert.pem> <key.pem> [patch-bytes]
 *
 * With `patch-bytes`, it answers every review with a constant (meaningless)
 * patch of that many bytes: the same response size as the injector's, which
 * separates what carrying a patch costs from what computing it costs.
 */
import { readFileSync } from 'node:fs';
import { createInjectorMetrics, startAdmissionServer } from '@chaperone/injector';
import { createRegistry } from '@chaperone/shared';

const [portArg, certPath, keyPath, patchBytes] = process.argv.slice(2);
if (!portArg || !certPath || !keyPath) {
  process.stderr.write('usage: injector-noop-webhook.ts <port> <cert.pem> <key.pem> [patch-bytes]\n');
  process.exit(2);
}
const patch = patchBytes ? Buffer.alloc(Number(patchBytes), 0x20).toString('base64') : undefined;

const server = await startAdmissionServer({
  host: '127.0.0.1',
  port: Number(portArg),
  certificate: { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') },
  path: '/mutate',
  maxRequestBytes: 4 * 1024 * 1024,
  metrics: createInjectorMetrics(createRegistry({ component: 'injector' })),
  handle: (req) =>
    patch ? { uid: req.uid, allowed: true, patchType: 'JSONPatch', patch } : { uid: req.uid, allowed: true },
});
process.stdout.write(`listening ${server.url}\n`);
process.once('SIGTERM', () => {
  server.close(1000).then(() => process.exit(0));
});
