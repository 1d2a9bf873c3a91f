/**
 * Parses ingest messages on a worker thread. Parsing, validating,
 * serialising and hashing every event is most of the collector's work per
 * event; on the main thread it would hold up everything else (commits,
 * acks, other connections) for the length of each batch. On the worker it
 * runs beside the main thread, which keeps the identity and chain checks,
 * the write and the ack. What comes back is the events' rows and chain
 * links (incoming-event.ts), not the parsed events — that is what the rest
 * needs — packed one array per field, which is much cheaper to copy
 * between threads.
 *
 * Each connection's messages are answered in the order they were sent, and
 * connections take turns (one message each) on the worker. If the worker dies,
 * the message it held fails (its connection is closed and the sidecar
 * resends) and the next message starts a new worker.
 */
import { Worker } from 'node:worker_threads';
import { siblingEntry } from '@chaperone/shared';
import { type PackedMessage, type ParsedMessage, parseIngestMessage, unpackMessage } from './ingest-parse.ts';

export interface MessageParser {
  /**
   * Parses a message that arrived at `receivedUs` (µs since the epoch) from
   * `source` (the connection: sources take turns, see WorkerParser).
   */
  parse(text: string, receivedUs: number, source?: unknown): Promise<ParsedMessage>;
  close(): Promise<void>;
}

/** Parses on the calling thread. */
const inlineParser: MessageParser = {
  parse: async (text, receivedUs) => parseIngestMessage(text, receivedUs),
  close: async () => {},
};

interface Pending {
  resolve(p: ParsedMessage): void;
  reject(err: Error): void;
}

/**
 * A worker parser, or, where this module runs without its worker entry
 * beside it (a bundle that did not build it), parsing on this thread.
 */
export function createMessageParser(onInline?: () => void): MessageParser {
  const entry = siblingEntry(import.meta.url, 'ingest-parse-worker');
  if (entry) return new WorkerParser(entry);
  onInline?.();
  return inlineParser;
}

interface Job extends Pending {
  readonly text: string;
  readonly receivedUs: number;
}

/**
 * The worker is given one message at a time, taken from the senders in turn
 * (round robin over the connections with messages waiting), so a connection
 * that sends 8 MB messages back to back delays another connection's message
 * by the one on the worker and at most one more of its turn, not by
 * everything it has queued.
 */
export class WorkerParser implements MessageParser {
  readonly #entry: URL;
  #worker: Worker | undefined;
  /** Messages on the worker now (at most one). */
  readonly #pending = new Map<number, Pending>();
  /** Messages waiting, per source, and the sources with messages waiting in turn order. */
  readonly #waiting = new Map<unknown, Job[]>();
  readonly #turns: unknown[] = [];
  #nextId = 0;
  #closed = false;

  constructor(entry: URL = new URL('./ingest-parse-worker.ts', import.meta.url)) {
    this.#entry = entry;
  }

  parse(text: string, receivedUs: number, source: unknown = this): Promise<ParsedMessage> {
    if (this.#closed) return Promise.reject(new Error('the collector is shutting down'));
    return new Promise((resolve, reject) => {
      let queue = this.#waiting.get(source);
      if (!queue) {
        queue = [];
        this.#waiting.set(source, queue);
        this.#turns.push(source);
      }
      queue.push({ text, receivedUs, resolve, reject });
      this.#pump();
    });
  }

  /** Hands the next source's oldest message to the worker when it is idle. Never throws. */
  #pump(): void {
    while (this.#pending.size === 0 && this.#turns.length > 0) {
      const source = this.#turns.shift();
      const queue = this.#waiting.get(source) as Job[];
      const job = queue.shift() as Job;
      if (queue.length > 0) this.#turns.push(source);
      else this.#waiting.delete(source);
      const id = this.#nextId++;
      this.#pending.set(id, job);
      try {
        (this.#worker ?? this.#start()).postMessage({ id, text: job.text, receivedUs: job.receivedUs });
      } catch (err) {
        // A worker that cannot start fails this message, not the caller's event handler.
        this.#pending.delete(id);
        job.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  #start(): Worker {
    const worker = new Worker(this.#entry, {
      name: 'chaperone-ingest-parse',
    });
    // The collector's servers keep the process alive; a worker waiting for work must not.
    worker.unref();
    worker.on('message', ({ id, packed }: { id: number; packed: PackedMessage }) => {
      const p = this.#pending.get(id);
      this.#pending.delete(id);
      p?.resolve(unpackMessage(packed));
      this.#pump();
    });
    const fail = (err: Error) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      const pending = [...this.#pending.values()];
      this.#pending.clear();
      for (const p of pending) p.reject(err);
      // Messages still waiting go to a new worker.
      if (!this.#closed) this.#pump();
    };
    worker.on('error', (err) => fail(err));
    worker.on('exit', (code) => fail(new Error(`the ingest parse worker exited with code ${code}`)));
    this.#worker = worker;
    return worker;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    const pending = [...this.#pending.values(), ...[...this.#waiting.values()].flat()];
    this.#pending.clear();
    this.#waiting.clear();
    this.#turns.length = 0;
    for (const p of pending) p.reject(new Error('the collector is shutting down'));
    await worker?.terminate();
  }
}
