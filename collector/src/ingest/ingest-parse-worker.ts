/**
 * The parse worker's entry point: messages in ({id, text, receivedUs}),
 * parsed messages out ({id, packed}), in order. See ingest-parser.ts.
 */
import { parentPort } from 'node:worker_threads';
import { packMessage, parseIngestMessage } from './ingest-parse.ts';

parentPort?.on('message', ({ id, text, receivedUs }: { id: number; text: string; receivedUs: number }) => {
  parentPort?.postMessage({ id, packed: packMessage(parseIngestMessage(text, receivedUs)) });
});
