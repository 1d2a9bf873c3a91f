/**
 * List-then-watch, forever: the level-triggered loop behind every controller
 * here (client-go's reflector, much reduced). After each (re)list `onSync`
 * gets the full state; then each watch event goes to `onEvent`. Watches are
 * resumed from the last resourceVersion (bookmarks included); a 410 Gone
 * means relist; errors back off exponentially (1 s to 30 s).
 */
import type { Logger } from '@chaperone/shared';
import { asStatus, KubeApiError, type KubeClient, type Query, type WatchEvent } from '@chaperone/shared/kube';

export interface ObjectWithMeta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
}

export interface InformerOptions<T extends ObjectWithMeta> {
  readonly client: KubeClient;
  /** Collection path, e.g. `/api/v1/namespaces`. */
  readonly path: string;
  readonly query?: Query;
  readonly name: string;
  readonly onSync: (items: T[]) => void;
  readonly onEvent: (type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T) => void;
  readonly signal: AbortSignal;
  readonly logger?: Logger;
  /** Server-side watch timeout; the loop resumes after it. */
  readonly watchTimeoutSeconds?: number;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

class Gone extends Error {}

export async function runInformer<T extends ObjectWithMeta>(opts: InformerOptions<T>): Promise<void> {
  const { client, signal } = opts;
  let failures = 0;
  while (!signal.aborted) {
    try {
      const list = await client.request('GET', opts.path, { ...(opts.query ? { query: opts.query } : {}) });
      if (list.status !== 200) throw new KubeApiError('LIST', opts.path, list.status, asStatus(list.body));
      const body = list.body as { metadata?: { resourceVersion?: string }; items?: T[] };
      let rv = body.metadata?.resourceVersion ?? '';
      opts.onSync(body.items ?? []);
      failures = 0;
      while (!signal.aborted) {
        await client.watch<T | { code?: number; message?: string }>(
          opts.path,
          {
            ...(opts.query ?? {}),
            resourceVersion: rv,
            allowWatchBookmarks: true,
            timeoutSeconds: opts.watchTimeoutSeconds ?? 300,
          },
          (e: WatchEvent<T | { code?: number; message?: string }>) => {
            if (e.type === 'ERROR') {
              const status = e.object as { code?: number; message?: string };
              if (status.code === 410) throw new Gone(status.message ?? 'resource version too old');
              throw new Error(`watch error: ${status.message ?? JSON.stringify(status)}`);
            }
            const obj = e.object as T;
            const next = obj.metadata?.resourceVersion;
            if (next) rv = next;
            if (e.type !== 'BOOKMARK') opts.onEvent(e.type, obj);
          },
          signal,
        );
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof Gone) {
        opts.logger?.debug({ informer: opts.name }, 'watch expired; relisting');
        continue;
      }
      failures++;
      const delay = Math.min(30_000, 1000 * 2 ** Math.min(failures - 1, 5));
      opts.logger?.warn(
        { informer: opts.name, err: (err as Error).message, retryInMs: delay },
        'list/watch failed',
      );
      await sleep(delay, signal);
    }
  }
}
