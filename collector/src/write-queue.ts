/**
 * The bounded write queue between ingest connections and the store, with
 * group commit: while one group of batches is being committed, new batches
 * wait; the next group takes all of them (up to a size limit) into one
 * transaction, so one fsync covers many batches from many sidecars.
 *
 * Bounded: `full` turns true at the event or byte limit; connections then
 * stop reading their sockets until `drained` fires (at half the limit). One
 * group commits at a time, in arrival order, so each sidecar's batches are
 * committed in the order they arrived. If a group fails, its batches are
 * retried one by one, so one bad batch cannot take others down with it.
 */
import type { Logger } from '@chaperone/shared';
import type { CollectorMetrics } from './collector-metrics.ts';
import type { AuditStore, BatchOutcome, IncomingBatch } from './store.ts';

export interface QueuedBatch {
  /** Built when the batch joins a group, so it sees its connection's latest state. */
  build(): IncomingBatch;
  readonly events: number;
  readonly bytes: number;
}

interface Entry {
  readonly item: QueuedBatch;
  resolve(o: BatchOutcome): void;
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
}

export class WriteQueue {
  readonly #opts: WriteQueueOptions;
  readonly #pending: Entry[] = [];
  #events = 0;
  #bytes = 0;
  #running: Promise<void> | undefined;
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
  submit(item: QueuedBatch): Promise<BatchOutcome> {
    if (this.#closed) return Promise.reject(new Error('the collector is shutting down'));
    return new Promise((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      this.#events += item.events;
      this.#bytes += item.bytes;
      this.#opts.metrics.queueEvents.set(this.#events);
      this.#kick();
    });
  }

  #kick(): void {
    if (this.#running || this.#pending.length === 0) return;
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
      this.#kick();
    });
  }

  async #drain(): Promise<void> {
    const group: Entry[] = [];
    let events = 0;
    while (this.#pending.length > 0) {
      const next = this.#pending[0] as Entry;
      if (group.length > 0 && events + next.item.events > this.#opts.groupEvents) break;
      group.push(next);
      this.#pending.shift();
      events += next.item.events;
    }
    const batches = group.map((e) => e.item.build());
    const t0 = performance.now();
    try {
      const outcomes = await this.#opts.store.append(batches);
      this.#opts.metrics.commitLatency.observe((performance.now() - t0) / 1000);
      for (const [i, e] of group.entries()) e.resolve(outcomes[i] as BatchOutcome);
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
            const [o] = await this.#opts.store.append([e.item.build()]);
            e.resolve(o as BatchOutcome);
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
    while (this.#running || this.#pending.length > 0) {
      this.#kick();
      await this.#running;
    }
  }
}
