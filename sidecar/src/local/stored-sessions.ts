/**
 * The embedded collector's query API for `chaperone local status|audit|replay`:
 * the running session's collector, or — when no session runs — one started
 * from the state directory's store for the length of the call.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '@chaperone/shared';
import { startEmbeddedCollector } from './embedded-collector.ts';
import { createLocalIssuer } from './local-issuer.ts';
import { readSessionRecord, type SessionRecord } from './session-record.ts';
import type { StateLayout } from './state-dir.ts';

export interface QueryAccess {
  readonly queryUrl: string;
  readonly queryTokenFile: string;
  /** The session running now, if any. */
  readonly running?: SessionRecord;
}

export async function withStoredSessions<T>(
  layout: StateLayout,
  o: { readonly cli: readonly string[]; readonly env: Readonly<Record<string, string | undefined>> },
  fn: (q: QueryAccess) => Promise<T>,
): Promise<T> {
  const running = readSessionRecord(layout.sessionFile);
  if (running?.queryUrl && running.queryTokenFile)
    return fn({ queryUrl: running.queryUrl, queryTokenFile: running.queryTokenFile, running });
  if (running)
    throw new UsageError(`the running session ships its events to ${running.collectorUrl}; query them there`);
  if (!existsSync(join(layout.collectorDir, 'data')))
    throw new UsageError(`no chaperone local session has been recorded in ${layout.root}`);
  const collector = await startEmbeddedCollector({
    cli: o.cli,
    dir: layout.collectorDir,
    issuer: createLocalIssuer(),
    env: o.env,
  });
  try {
    return await fn({ queryUrl: collector.queryUrl, queryTokenFile: collector.queryTokenFile });
  } finally {
    await collector.stop();
  }
}
