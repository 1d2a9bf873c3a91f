/**
 * The console as collector.ts starts it: the built page loaded once, and the
 * warnings an operator needs at start (page not built; a proxy header trusted).
 */
import type { Logger } from '@chaperone/shared';
import { findAssetsDir, loadAssets, NOT_BUILT } from './console-assets.ts';
import { type Console, createConsole } from './console-handler.ts';
import type { RequestHandler } from './in-process-api.ts';

export function openConsole(opts: {
  readonly api: RequestHandler;
  readonly tls: boolean;
  readonly proxyTokenHeader: string | undefined;
  readonly logger: Logger;
}): Console {
  const dir = findAssetsDir();
  if (!dir) opts.logger.warn(`${NOT_BUILT}; /console/ answers 503 until then`);
  if (opts.proxyTokenHeader)
    opts.logger.warn(
      { header: opts.proxyTokenHeader },
      'the console takes approvers’ tokens from a request header (--console-proxy-token-header): only safe when every request reaches the query listener through the authenticating proxy, which must set that header itself and drop it from what clients send',
    );
  return createConsole({
    api: opts.api,
    assets: dir ? loadAssets(dir) : undefined,
    tls: opts.tls,
    ...(opts.proxyTokenHeader ? { proxyTokenHeader: opts.proxyTokenHeader } : {}),
    logger: opts.logger,
  });
}
