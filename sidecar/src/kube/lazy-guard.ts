/**
 * A guard whose code loads at the first request that needs it. Exec, attach
 * and port-forward sessions bring their own protocol, masking and recording
 * code, which most pods never use: it stays out of the sidecar's memory and
 * start-up until the first such request. Requests `wants` says no to go
 * straight on; the others wait for the module once, then go through the
 * guard as if it had been there from the start.
 */
import type { Guard, Handler, KubeRequestContext } from './context.ts';

export function lazyGuard(wants: (ctx: KubeRequestContext) => boolean, load: () => Promise<Guard>): Guard {
  return (next) => {
    let loaded: Handler | undefined;
    const handler = loadOnce(async () => {
      loaded = (await load())(next);
      return loaded;
    });
    return (ctx) => {
      if (loaded) return loaded(ctx);
      if (!wants(ctx)) return next(ctx);
      return handler().then((h) => h(ctx));
    };
  };
}

/**
 * `load`, run once: every caller shares its promise. A failed load is tried
 * again at the next call rather than kept.
 */
export function loadOnce<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= load();
    loading.catch(() => {
      loading = undefined;
    });
    return loading;
  };
}
