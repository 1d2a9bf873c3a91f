/**
 * `chaperone wait-for-sidecar`: run by the kubelet as the sidecar's
 * postStart hook, it returns once the sidecar is ready for agents — the
 * placeholder service-account files are written and the local Kubernetes API
 * port accepts connections — so the kubelet starts the agent containers only
 * then (start ordering, for classic and native sidecars alike).
 */
import { statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ChaperoneError } from '@chaperone/shared';
import { sleep } from '../controllers/informer.ts';
import { SIDECAR_AGENT_SA_PATH } from '../names.ts';

export interface WaitOptions {
  readonly port: number;
  readonly dir?: string;
  readonly timeoutMs: number;
  readonly intervalMs?: number;
}

function filesReady(dir: string): string | undefined {
  for (const f of ['ca.crt', 'token', 'namespace']) {
    try {
      if (statSync(join(dir, f)).size === 0) return `${join(dir, f)} is empty`;
    } catch {
      return `${join(dir, f)} does not exist yet`;
    }
  }
  return undefined;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.setTimeout(1000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
  });
}

export async function waitForSidecar(o: WaitOptions): Promise<void> {
  const dir = o.dir ?? SIDECAR_AGENT_SA_PATH;
  const deadline = Date.now() + o.timeoutMs;
  let why = '';
  for (;;) {
    const files = filesReady(dir);
    if (!files && (await portOpen(o.port))) return;
    why = files ?? `nothing listens on 127.0.0.1:${o.port} yet`;
    if (Date.now() >= deadline) {
      throw new ChaperoneError('timeout', `the sidecar was not ready after ${o.timeoutMs} ms: ${why}`);
    }
    await sleep(o.intervalMs ?? 200);
  }
}
