/**
 * The collector's last line: an error no handler caught is logged and the
 * process keeps serving. Every entry point answers its own errors
 * (http-entry.ts, http-api.ts, ingest-server.ts); reaching this is a bug to
 * fix, but one client's request must never take the audit trail down for
 * every sidecar. Installed once, by `chaperone collector` only.
 */
import type { Logger } from '@chaperone/shared';

export function installLastResortNet(logger: Logger, proc: NodeJS.Process = process): () => void {
  const uncaught = (err: unknown) => logger.error({ err }, 'uncaught exception (kept serving)');
  const unhandled = (err: unknown) => logger.error({ err }, 'unhandled promise rejection (kept serving)');
  proc.on('uncaughtException', uncaught);
  proc.on('unhandledRejection', unhandled);
  return () => {
    proc.off('uncaughtException', uncaught);
    proc.off('unhandledRejection', unhandled);
  };
}
