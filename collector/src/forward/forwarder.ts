/**
 * At-least-once forwarding of stored events to an external system, apart
 * from ingest: the forwarder reads the store in commit order from a cursor
 * persisted in the store, delivers, and only then moves the cursor. A slow
 * or dead destination makes the forwarder fall behind (see the lag metrics);
 * it never slows ingest, which does not wait for it.
 *
 * - Retries with exponential back-off and jitter (honouring Retry-After);
 * - a body the destination finds too large is split in halves;
 * - a batch the destination refuses as bad (HTTP 400) is split too, so only
 *   the offending event is dropped — counted and logged, never silently;
 * - with several replicas, one holds the lease per forwarder and forwards.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@chaperone/shared';
import type { CollectorMetrics } from '../collector-metrics.ts';
import type { AuditStore } from '../store/store.ts';
import type { Delivery } from './http-delivery.ts';

export interface Sink {
  readonly name: string;
  /** Largest request body to send. */
  readonly maxBodyBytes: number;
  /** Turns stored event JSON into a request body. */
  encode(events: readonly string[]): string;
  deliver(body: string): Promise<Delivery>;
}

export interface ForwarderOptions {
  store: AuditStore;
  sink: Sink;
  logger: Logger;
  metrics: CollectorMetrics;
  batchSize?: number;
  pollMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export class Forwarder {
  readonly #o: Required<Omit<ForwarderOptions, 'logger' | 'metrics' | 'store' | 'sink'>> & ForwarderOptions;
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #lagCheckedAt = 0;
  readonly #log: Logger;

  constructor(opts: ForwarderOptions) {
    this.#o = { batchSize: 500, pollMs: 1000, initialBackoffMs: 500, maxBackoffMs: 30_000, ...opts };
    this.#log = opts.logger.child({ forwarder: opts.sink.name });
  }

  get name(): string {
    return this.#o.sink.name;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  async #pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.#abort.signal }).catch(() => {});
  }

  async #run(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      try {
        const r = await this.runOnce();
        if (r !== 'sent') await this.#pause(r === 'not_leader' ? 5 * this.#o.pollMs : this.#o.pollMs);
      } catch (err) {
        this.#log.error({ err }, 'forwarder cycle failed');
        await this.#pause(this.#o.maxBackoffMs);
      }
    }
  }

  /** One read-deliver-advance cycle. */
  async runOnce(): Promise<'idle' | 'sent' | 'not_leader' | 'stopped'> {
    const { store, sink, metrics } = this.#o;
    const lease = `forward:${sink.name}`;
    if (!(await store.tryLease(lease))) return 'not_leader';
    const cursor = await store.getForwardCursor(sink.name);
    const page = await store.readArrival(cursor, this.#o.batchSize);
    await this.#updateLag(page.events.length === 0 ? page.cursor : cursor);
    if (page.events.length === 0) {
      if (cursor !== page.cursor) await store.setForwardCursor(sink.name, page.cursor);
      return 'idle';
    }
    for (const chunk of chunksBySize(page.events, sink.maxBodyBytes)) {
      if (!(await this.#deliver(chunk))) return 'stopped';
    }
    await store.setForwardCursor(sink.name, page.cursor);
    metrics.forwarderSent.inc({ forwarder: sink.name }, page.events.length);
    return 'sent';
  }

  async #updateLag(cursor: string | undefined): Promise<void> {
    if (Date.now() - this.#lagCheckedAt < 5000) return;
    this.#lagCheckedAt = Date.now();
    const b = await this.#o.store.backlog(cursor);
    const labels = { forwarder: this.#o.sink.name };
    this.#o.metrics.forwarderLagEvents.set(labels, b.events);
    this.#o.metrics.forwarderLagSeconds.set(
      labels,
      b.oldestReceivedUs === undefined ? 0 : Math.max(0, Date.now() / 1000 - b.oldestReceivedUs / 1e6),
    );
  }

  /** Delivers all of `events` (or drops refused ones); false when stopped first. */
  async #deliver(events: readonly string[]): Promise<boolean> {
    const { sink, metrics } = this.#o;
    let backoff = this.#o.initialBackoffMs;
    for (;;) {
      if (this.#abort.signal.aborted) return false;
      const d = await sink.deliver(sink.encode(events));
      if (d.kind === 'ok') return true;
      if ((d.kind === 'too_large' || d.kind === 'reject') && events.length > 1) {
        const half = Math.ceil(events.length / 2);
        return (await this.#deliver(events.slice(0, half))) && this.#deliver(events.slice(half));
      }
      if (d.kind === 'too_large' || d.kind === 'reject') {
        metrics.forwarderDropped.inc({ forwarder: sink.name });
        const id = (JSON.parse(events[0] as string) as { auditID?: string }).auditID;
        this.#log.error(
          { auditID: id, reason: d.reason },
          'the destination refused an event for good; it is not forwarded',
        );
        return true;
      }
      metrics.forwarderErrors.inc({ forwarder: sink.name });
      const wait = Math.min(this.#o.maxBackoffMs, d.retryAfterMs ?? backoff * (0.5 + Math.random()));
      this.#log.warn({ reason: d.reason, retryInMs: Math.round(wait) }, 'delivery failed; retrying');
      await this.#pause(wait);
      backoff = Math.min(this.#o.maxBackoffMs, backoff * 2);
    }
  }
}

/** Splits events into runs whose combined JSON stays under `maxBytes` (one oversized event goes alone). */
export function chunksBySize(events: readonly string[], maxBytes: number): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let size = 0;
  for (const e of events) {
    const n = Buffer.byteLength(e) + 1;
    if (cur.length > 0 && size + n > maxBytes) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(e);
    size += n;
  }
  if (cur.length) out.push(cur);
  return out;
}
