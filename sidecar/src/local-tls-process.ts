/**
 * The pod's local TLS material, made by a short-lived child process
 * (local-tls-worker.ts): the sidecar's own heap never loads node-forge, which
 * with the work of issuing certificates stays resident otherwise (~12 MiB for
 * the life of the pod; a worker thread keeps its memory too). Where the
 * worker file is not beside this module (a build that did not emit it), the
 * work is done in this process instead.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { siblingEntry } from '@chaperone/shared';
import type { LocalTls } from './local-tls.ts';

export async function createLocalTls(
  tlsDir: string,
  podName: string,
  onInProcess?: () => void,
): Promise<LocalTls> {
  const entryUrl = siblingEntry(import.meta.url, 'local-tls-worker');
  const entry = entryUrl && fileURLToPath(entryUrl);
  if (!entry) {
    onInProcess?.();
    const { ensureLocalTls } = await import('./local-tls.ts');
    return ensureLocalTls(tlsDir, podName);
  }
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      [entry, tlsDir, podName],
      { encoding: 'utf8', maxBuffer: 1 << 20, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err)
          reject(new Error(`creating the local TLS certificate failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
  });
  let msg: { ca: LocalTls['ca']; leaf: LocalTls['leaf']; leafNotAfter: number };
  try {
    msg = JSON.parse(out);
  } catch {
    // Not JSON.parse's message: it quotes the output, which holds the private keys.
    throw new Error(
      'creating the local TLS certificate failed: its process wrote something other than the result',
    );
  }
  return { ca: msg.ca, leaf: msg.leaf, leafNotAfter: new Date(msg.leafNotAfter) };
}
