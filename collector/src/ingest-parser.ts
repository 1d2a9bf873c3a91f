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
 * Messages are answered in the order they were sent. If the worker dies,
 * the messages it held fail (their connections are closed and the sidecars
 * resend) and the next message starts a new worker.
 */
import { Worker } from 'node:worker_threads';
import { siblingEntry } from '@chaperone/shared';
import { type PackedMessage, type ParsedMessage, parseIngestMessage, unpackMessage } from './ingest-parse.ts';

export interface MessageParser {
  /** Parses a message that arrived at `receivedUs` (µs since the epoch). */
  parse(text: string, receivedUs: number): Promise<ParsedMessage>;
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

export class WorkerParser implements MessageParser {
  readonly #entry: URL;
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #closed = false;

  constructor(entry: URL = new URL('./ingest-parse-worker.ts', import.meta.url)) {
    this.#entry = entry;
  }

  parse(text: string, receivedUs: number): Promise<ParsedMessage> {
    if (this.#closed) return Promise.reject(new Error('the collector is shutting down'));
    const worker = this.#worker ?? this.#start();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, text, receivedUs });
    });
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
    });
    const fail = (err: Error) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      const pending = [...this.#pending.values()];
      this.#pending.clear();
      for (const p of pending) p.reject(err);
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
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(new Error('the collector is shutting down'));
    await worker?.terminate();
  }
}
