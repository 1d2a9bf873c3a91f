/**
 * Diagnostic floors for the PostgreSQL benchmark.
 *
 * Without `--audit`: the thinnest Node relay between a client and the server —
 * bytes piped both ways, nothing decoded, no start-up of its own (the client
 * authenticates with the server through it). Its CPU per statement is what a
 * Node process in the path costs before the sidecar reads a single message.
 *
 * With `--audit <dir>`: the same relay, plus what the guard may not skip for
 * any statement: one audit event, placed in the hash chain and written to a
 * real audit spool (the sidecar's own Spool, synchronous write) before the
 * server's answer goes on to the client. The relay reads only the length
 * prefixes of the server's messages, to count the statements that ended
 * (CommandComplete); nothing is classified, judged or masked. The spool is
 * acknowledged every 1,000 events, as a collector would, so it stays small.
 *
 * With `--audit-batched <dir>`: the events are chained one by one as before,
 * but written together, one write per turn of the event loop for every
 * connection's statements, and the answers they hold back go on after it
 * (a group commit; the record format is the spool's, without its index).
 * It shows what batching the writes could buy a guard, at best.
 *
 *   node bench/src/postgres-pipe.ts <port> <upstream-host> <upstream-port> [--audit|--audit-batched <dir>]
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { chainEventText, GENESIS_HASH } from '@chaperone/shared';
import { Spool, spoolRecord } from '@chaperone/sidecar';
import { sqlStatementEvent } from './audit-event.ts';

const [portArg, host, upstreamPort, flag, auditDir] = process.argv.slice(2);
const flags = ['--audit', '--audit-batched'];
if (!portArg || !host || !upstreamPort || (flag !== undefined && (!flags.includes(flag) || !auditDir))) {
  process.stderr.write(
    'usage: postgres-pipe.ts <port> <upstream-host> <upstream-port> [--audit|--audit-batched <dir>]\n',
  );
  process.exit(2);
}
const spool = auditDir && flag === '--audit' ? Spool.open(auditDir, { maxBytes: 1 << 30 }) : undefined;
let events = 0;

/** --audit-batched: chained events waiting for the turn's one write, and the answers behind them. */
const batched = auditDir && flag === '--audit-batched' ? openBatchFile(auditDir) : undefined;
let head = { seq: 0, hash: GENESIS_HASH };
let records: Buffer[] = [];
let held: [Socket, Buffer][] = [];
let flushing = false;
let written = 0;

function openBatchFile(dir: string): { fd: number } {
  mkdirSync(dir, { recursive: true });
  return { fd: openSync(join(dir, 'segment.log'), 'w') };
}

/** Chains one event and keeps its record (the spool's: length, CRC-32, JSON) for the turn's write. */
function chainBatched(): void {
  const { event, text } = chainEventText(sqlStatementEvent(++events), head.seq + 1, head.hash);
  head = { seq: event.chaperone.seq, hash: event.chaperone.hash };
  records.push(spoolRecord(text));
}

/** One write for every record of the turn, then the answers that waited for it. */
function flushBatch(): void {
  flushing = false;
  if (!batched) return;
  if (records.length > 0) {
    const all = Buffer.concat(records);
    // Start again at the top now and then, as an acknowledged spool drops its segments.
    if (written > 64 * 1024 * 1024) written = 0;
    writeSync(batched.fd, all, 0, all.length, written);
    written += all.length;
    records = [];
  }
  const out = held;
  held = [];
  for (const [agent, chunk] of out) agent.write(chunk);
}

/**
 * Counts the CommandComplete messages of the server's side of a connection,
 * reading only type bytes and lengths. The server's first byte may be a lone
 * answer to the client's SSLRequest (`N`), which has no length.
 */
class CommandCounter {
  #header = Buffer.alloc(5);
  #headerBytes = 0;
  #skip = 0;
  #lone: boolean;

  constructor(sslRequested: boolean) {
    this.#lone = sslRequested;
  }

  push(chunk: Buffer): number {
    let n = 0;
    let at = 0;
    if (this.#lone && chunk.length > 0) {
      this.#lone = false;
      at = 1;
    }
    while (at < chunk.length) {
      if (this.#skip > 0) {
        const step = Math.min(this.#skip, chunk.length - at);
        this.#skip -= step;
        at += step;
        continue;
      }
      const step = Math.min(5 - this.#headerBytes, chunk.length - at);
      chunk.copy(this.#header, this.#headerBytes, at, at + step);
      this.#headerBytes += step;
      at += step;
      if (this.#headerBytes === 5) {
        if (this.#header[0] === 0x43) n++; // 'C': CommandComplete
        this.#skip = this.#header.readUInt32BE(1) - 4;
        this.#headerBytes = 0;
      }
    }
    return n;
  }
}

function relay(agent: Socket, up: Socket): void {
  if (!spool && !batched) {
    agent.pipe(up);
    up.pipe(agent);
    return;
  }
  let counter: CommandCounter | undefined;
  agent.on('data', (chunk: Buffer) => {
    // The first message decides whether the server's first byte is an SSL answer (SSLRequest: length 8, code 80877103).
    counter ??= new CommandCounter(
      chunk.length >= 8 && chunk.readUInt32BE(0) === 8 && chunk.readUInt32BE(4) === 80877103,
    );
    up.write(chunk);
  });
  up.on('data', (chunk: Buffer) => {
    const ended = counter?.push(chunk) ?? 0;
    if (batched) {
      for (let i = 0; i < ended; i++) chainBatched();
      held.push([agent, chunk]);
      if (!flushing) {
        flushing = true;
        setImmediate(flushBatch);
      }
      return;
    }
    for (let i = 0; i < ended; i++) {
      spool?.append(sqlStatementEvent(++events));
      if (events % 1000 === 0) spool?.ack(spool.head.seq);
    }
    agent.write(chunk);
  });
}

const server = createServer((agent) => {
  const up = connect(Number(upstreamPort), host);
  agent.setNoDelay(true);
  up.setNoDelay(true);
  relay(agent, up);
  agent.on('error', () => up.destroy());
  up.on('error', () => agent.destroy());
  agent.on('close', () => up.destroy());
  up.on('close', () => agent.destroy());
});
server.listen(Number(portArg), '127.0.0.1');
process.once('SIGTERM', () => {
  server.close();
  spool?.close();
  if (batched) closeSync(batched.fd);
});
