/**
 * Retention by age: events received longer ago than the retention period
 * are deleted in small batches (one short transaction each, yielding to the
 * event loop in between), so ingest is never blocked for long. Alerts,
 * recordings, approval requests that ended and grants that ended older than
 * the period go too, and so do the console's rollups whose period ended before
 * it (store.prune). Each chain keeps a watermark of
 * its last deleted event, from which `audit verify` continues the chain.
 */
import { setTimeout as sleep, setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Logger } from '@chaperone/shared';
import type { CollectorMetrics } from '../collector-metrics.ts';
import { nowMicros } from '../events/time.ts';
import type { AuditStore } from './store.ts';

export interface RetentionOptions {
  store: AuditStore;
  logger: Logger;
  metrics: CollectorMetrics;
  retentionMs: number;
  intervalMs: number;
  batchSize?: number;
  now?: () => number;
}

export class Retention {
  readonly #o: RetentionOptions;
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(opts: RetentionOptions) {
    this.#o = opts;
  }

  start(): void {
    this.#loop ??= (async () => {
      while (!this.#abort.signal.aborted) {
        try {
          await this.runOnce();
        } catch (err) {
          this.#o.logger.error({ err }, 'retention pass failed');
        }
        await sleep(this.#o.intervalMs, undefined, { signal: this.#abort.signal }).catch(() => {});
      }
    })();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  /** Deletes everything past retention; returns how many events went. */
  async runOnce(): Promise<number> {
    const { store, metrics } = this.#o;
    if (!(await store.tryLease('retention'))) return 0;
    const batch = this.#o.batchSize ?? 1000;
    const cutoff = (this.#o.now?.() ?? nowMicros()) - this.#o.retentionMs * 1000;
    let total = 0;
    for (;;) {
      if (this.#abort.signal.aborted) break;
      const n = await store.prune(cutoff, batch);
      total += n;
      metrics.retentionDeleted.inc(n);
      if (n < batch) break;
      await yieldToLoop();
    }
    if (!this.#abort.signal.aborted) await store.approvals.prune(Math.floor(cutoff / 1000));
    if (total > 0) this.#o.logger.info({ deleted: total }, 'retention removed old events');
    return total;
  }
}
