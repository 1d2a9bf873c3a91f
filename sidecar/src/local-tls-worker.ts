/**
 * Child-process entry: creates (or loads) the pod's local CA and issues the
 * serving certificate, and prints them as JSON on stdout. Run as a separate
 * process so node-forge and the memory of building certificates are gone
 * with it instead of staying resident in the proxy for the life of the pod
 * (a worker thread does not give its memory back).
 *
 *   node local-tls-worker.(ts|mjs) <tls-dir> <pod-name>
 */
import { ensureLocalTls } from './local-tls.ts';

const [tlsDir, podName] = process.argv.slice(2);
if (!tlsDir || !podName) {
  process.stderr.write('usage: local-tls-worker <tls-dir> <pod-name>\n');
  process.exit(2);
}
const tls = ensureLocalTls(tlsDir, podName);
process.stdout.write(
  JSON.stringify({ ca: tls.ca, leaf: tls.leaf, leafNotAfter: tls.leafNotAfter.getTime() }),
);
