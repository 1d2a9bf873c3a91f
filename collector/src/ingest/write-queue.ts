/**
 * The bounded write queue between ingest connections and the store, with
 * group commit: while a group of batches is being committed, new batches
 * wait; the next group takes all of them (up to a size limit) into one
 * transaction, so one fsync covers many batches from many sidecars. A
 * recording chunk is queued like a batch (of its connection's chain), so it
 * commits after the events that came before it.
 *
 * Bounded: `full` turns true at the event or byte limit; connections then
 * stop reading their sockets until `drained` fires (at half the limit).
 * Up to `concurrency` groups commit at once (PostgreSQL: while one group's
 * rows are being written by the server, the next is prepared and sent, as
 * two replicas would), but never two groups with a batch of the same chain:
 * each sidecar's batches are committed one group after another, in the
 * order they arrived. If a group fails, its batches are retried one by one,
 * so one bad batch cannot take others down with it.
 */
import type { Logger } from '@chaperone/shared';
import type { CollectorMetrics } from '../collector-metrics.ts';
import type { AuditStore, IncomingWrite, OutcomeOf } from '../store/store.ts';

export interface QueuedBatch<W extends IncomingWrite = IncomingWrite> {
  /** The chain (sidecarId) the batch extends. */
  readonly chain: string;
  /** Built when the batch joins a group, so it sees its connection's latest state. */
  build(): W;
  /** Events it carries (a recording chunk counts as one). */
  readonly events: number;
  readonly bytes: number;
}

interface Entry {
  readonly item: QueuedBatch;
  resolve(o: OutcomeOf<IncomingWrite>): void;
  reject(err: unknown): void;
}

export interface WriteQueueOptions {
  store: AuditStore;
  logger: Logger;
  metrics: CollectorMetrics;
  maxEvents: number;
  maxBytes: number;
  /** Most events committed in one transaction. */
  groupEvents: number;
  /** Most groups committing at once (on different chains); default 1. */
  concurrency?: number;
}

/**
 * Groups committing at once for a store: PostgreSQL overlaps one group's
 * server-side writes with the next group's preparation (chains are locked
 * per transaction, as with several replicas); the embedded store writes
 * synchronously, one transaction at a time.
 */
export function groupCommitConcurrency(store: Pick<AuditStore, 'backend'>): number {
  return store.backend === 'postgres' ? 2 : 1;
}

export class WriteQueue {
  readonly #opts: WriteQueueOptions;
  readonly #pending: Entry[] = [];
  #events = 0;
  #bytes = 0;
  readonly #running = new Set<Promise<void>>();
  /** Chains with a batch in a group being committed. */
  readonly #busy = new Set<string>();
  readonly #drainListeners = new Set<() => void>();
  #closed = false;

  constructor(opts: WriteQueueOptions) {
    this.#opts = opts;
  }

  get full(): boolean {
    return this.#events >= this.#opts.maxEvents || this.#bytes >= this.#opts.maxBytes;
  }

  get depth(): { events: number; bytes: number } {
    return { events: this.#events, bytes: this.#bytes };
  }

  /** Called once each time the queue falls to half its limits after being full. */
  onDrained(listener: () => void): () => void {
    this.#drainListeners.add(listener);
    return () => this.#drainListeners.delete(listener);
  }

  /** Resolves with the batch's outcome once committed; rejects when the store failed. */
  submit<W extends IncomingWrite>(item: QueuedBatch<W>): Promise<OutcomeOf<W>> {
    if (this.#closed) return Promise.reject(new Error('the collector is shutting down'));
    return new Promise((resolve, reject) => {
      this.#pending.push({ item, resolve: resolve as Entry['resolve'], reject });
      this.#events += item.events;
      this.#bytes += item.bytes;
      this.#opts.metrics.queueEvents.set(this.#events);
      this.#kick();
    });
  }

  #kick(): void {
    while (this.#running.size < (this.#opts.concurrency ?? 1) && this.#pending.length > 0) {
      const group = this.#take();
      if (group.length === 0) return;
      for (const e of group) this.#busy.add(e.item.chain);
      const running: Promise<void> = this.#commit(group).finally(() => {
        this.#running.delete(running);
        for (const e of group) this.#busy.delete(e.item.chain);
        this.#kick();
      });
      this.#running.add(running);
    }
  }

  /** The next group: waiting batches in arrival order, up to the size limit, skipping busy chains. */
  #take(): Entry[] {
    const group: Entry[] = [];
    let events = 0;
    for (let i = 0; i < this.#pending.length; ) {
      const next = this.#pending[i] as Entry;
      if (this.#busy.has(next.item.chain)) {
        i++;
        continue;
      }
      if (group.length > 0 && events + next.item.events > this.#opts.groupEvents) break;
      group.push(next);
      this.#pending.splice(i, 1);
      events += next.item.events;
    }
    return group;
  }

  async #commit(group: readonly Entry[]): Promise<void> {
    const batches = group.map((e) => e.item.build());
    const t0 = performance.now();
    try {
      const outcomes = await this.#opts.store.commit(batches);
      this.#opts.metrics.commitLatency.observe((performance.now() - t0) / 1000);
      for (const [i, e] of group.entries()) e.resolve(outcomes[i] as OutcomeOf<IncomingWrite>);
    } catch (err) {
      if (group.length === 1) {
        (group[0] as Entry).reject(err);
      } else {
        this.#opts.logger.warn(
          { err, batches: group.length },
          'group commit failed; retrying its batches one by one',
        );
        for (const e of group) {
          try {
            const [o] = await this.#opts.store.commit([e.item.build()]);
            e.resolve(o as OutcomeOf<IncomingWrite>);
          } catch (one) {
            e.reject(one);
          }
        }
      }
    } finally {
      const wasFull = this.full;
      for (const e of group) {
        this.#events -= e.item.events;
        this.#bytes -= e.item.bytes;
      }
      this.#opts.metrics.queueEvents.set(this.#events);
      if (
        (wasFull || this.#drainListeners.size > 0) &&
        this.#events <= this.#opts.maxEvents / 2 &&
        this.#bytes <= this.#opts.maxBytes / 2
      ) {
        for (const l of [...this.#drainListeners]) l();
      }
    }
  }

  /** Stops accepting batches and waits for everything queued to be committed. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#running.size > 0 || this.#pending.length > 0) {
      this.#kick();
      await Promise.all(this.#running);
    }
  }
}
