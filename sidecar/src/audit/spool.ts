/**
 * The audit spool: an append-only log on local disk (an emptyDir in the pod)
 * where every event lands before it is shipped to the collector. It is also
 * where the sidecar's hash chain lives: `append` gives each event the next
 * sequence number and links it to the previous event's hash, so the chain
 * survives sidecar restarts.
 *
 * Files: `segment-<first seq>.log` (records), `acked` (the highest sequence
 * number the collector has made durable). A record is
 *
 *   u32 BE payload length | u32 BE CRC-32 of payload | payload (UTF-8 JSON)
 *
 * On open every segment is scanned; a torn or corrupt record (a crash in the
 * middle of a write) ends its segment: it is cut off, nothing before it is
 * lost. Segments whose records are all acknowledged are deleted.
 */
import {
  closeSync,
  existsSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import {
  type AuditEvent,
  ChaperoneError,
  chainEventText,
  GENESIS_HASH,
  type UnchainedEvent,
} from '@chaperone/shared';

const HEADER = 8;
/** A single event can't be larger than this (Falco's limit is 256 KiB; leave room). */
export const MAX_RECORD_BYTES = 1024 * 1024;

export interface SpoolOptions {
  /** Capacity for unacknowledged events; beyond it `hasCapacity()` is false. */
  maxBytes: number;
  /** Rotate to a new segment file after this many bytes. */
  segmentBytes?: number;
  /** Told about torn records found on open. */
  onRecovery?: (what: string) => void;
  /** Told when a background flush fails (the records stay due for the next flush). */
  onSyncError?: (err: Error) => void;
  /** The positional write the spool uses (fs.writeSync); tests pass one that fails like a full or broken disk. */
  write?: (fd: number, buffer: Buffer, offset: number, length: number, position: number) => number;
}

interface Segment {
  readonly firstSeq: number;
  readonly path: string;
  fd: number;
  size: number;
  lastSeq: number;
}

interface IndexEntry {
  readonly seq: number;
  readonly segment: Segment;
  readonly offset: number;
  readonly length: number;
  readonly appendedAt: number;
}

export class SpoolError extends ChaperoneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unavailable', message, options);
    this.name = 'SpoolError';
  }
}

function segmentName(firstSeq: number): string {
  return `segment-${String(firstSeq).padStart(20, '0')}.log`;
}

export class Spool {
  readonly dir: string;
  readonly #maxBytes: number;
  readonly #segmentBytes: number;
  #segments: Segment[] = [];
  /** Unacknowledged records, in sequence order. */
  #index: IndexEntry[] = [];
  #unackedBytes = 0;
  #head = { seq: 0, hash: GENESIS_HASH };
  #acked = 0;
  #dirty = false;
  /** The segment whose fdatasync is running on the thread pool, if any. */
  #syncing: Segment | undefined;
  #listeners = new Set<() => void>();
  readonly #onSyncError: (err: Error) => void;
  readonly #write: NonNullable<SpoolOptions['write']>;
  /** Why the last append failed, until an append succeeds again. */
  #writeFailure: string | undefined;

  private constructor(dir: string, opts: SpoolOptions) {
    this.dir = dir;
    this.#onSyncError = opts.onSyncError ?? (() => {});
    this.#write = opts.write ?? writeSync;
    this.#maxBytes = opts.maxBytes;
    this.#segmentBytes = opts.segmentBytes ?? 4 * 1024 * 1024;
  }

  static open(dir: string, opts: SpoolOptions): Spool {
    mkdirSync(dir, { recursive: true });
    const spool = new Spool(dir, opts);
    spool.#recover(opts.onRecovery ?? (() => {}));
    return spool;
  }

  #recover(report: (what: string) => void): void {
    const ackedPath = join(this.dir, 'acked');
    if (existsSync(ackedPath)) {
      const n = Number(readFileSync(ackedPath, 'utf8').trim());
      if (Number.isSafeInteger(n) && n >= 0) this.#acked = n;
    }
    const names = readdirSync(this.dir)
      .filter((n) => /^segment-\d{20}\.log$/.test(n))
      .sort();
    for (const name of names) {
      const path = join(this.dir, name);
      const fd = openSync(path, 'r+');
      const size = fstatSync(fd).size;
      const seg: Segment = { firstSeq: Number(name.slice(8, 28)), path, fd, size, lastSeq: 0 };
      const valid = this.#scan(seg, size);
      if (valid < size) {
        report(`${name}: cut off ${size - valid} bytes of a torn or corrupt record at offset ${valid}`);
        ftruncateSync(fd, valid);
        seg.size = valid;
      }
      if (seg.size === 0 && seg.lastSeq === 0) {
        closeSync(fd);
        unlinkSync(path);
        continue;
      }
      this.#segments.push(seg);
    }
    if (this.#acked > this.#head.seq) this.#acked = this.#head.seq;
    this.#dropAcked();
  }

  /** Reads records of a segment, indexing the unacknowledged ones; returns the end of the last valid record. */
  #scan(seg: Segment, size: number): number {
    let offset = 0;
    const header = Buffer.alloc(HEADER);
    while (offset + HEADER <= size) {
      readSync(seg.fd, header, 0, HEADER, offset);
      const length = header.readUInt32BE(0);
      const crc = header.readUInt32BE(4);
      if (length === 0 || length > MAX_RECORD_BYTES || offset + HEADER + length > size) break;
      const payload = Buffer.alloc(length);
      readSync(seg.fd, payload, 0, length, offset + HEADER);
      if (crc32(payload) !== crc) break;
      let event: AuditEvent;
      try {
        event = JSON.parse(payload.toString('utf8')) as AuditEvent;
      } catch {
        break;
      }
      const seq = event.chaperone.seq;
      if (seq !== this.#head.seq + 1 && this.#head.seq !== 0) break;
      this.#head = { seq, hash: event.chaperone.hash };
      seg.lastSeq = seq;
      if (seq > this.#acked) {
        this.#index.push({ seq, segment: seg, offset, length: HEADER + length, appendedAt: Date.now() });
        this.#unackedBytes += HEADER + length;
      }
      offset += HEADER + length;
    }
    return offset;
  }

  /** Sequence number and hash of the last event appended. */
  get head(): { readonly seq: number; readonly hash: string } {
    return this.#head;
  }

  get ackedSeq(): number {
    return this.#acked;
  }

  /** Unacknowledged events. */
  get depth(): number {
    return this.#index.length;
  }

  get unackedBytes(): number {
    return this.#unackedBytes;
  }

  /** When the oldest unacknowledged event was appended (ms since epoch), or undefined. */
  get oldestUnackedAt(): number | undefined {
    return this.#index[0]?.appendedAt;
  }

  hasCapacity(): boolean {
    return this.#unackedBytes < this.#maxBytes;
  }

  /**
   * Why the last append failed (the disk is full, the volume is gone, …), or
   * undefined when it succeeded. Cleared by the next append that succeeds.
   */
  get writeFailure(): string | undefined {
    return this.#writeFailure;
  }

  /** Called (synchronously) after every append. */
  onAppend(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Places the event in the chain and writes it. The write is synchronous: when
   * this returns the event is in the file (the page cache survives a crash of
   * this process; `sync()` runs periodically for the rest).
   */
  append(event: UnchainedEvent): AuditEvent {
    const { event: chained, text } = chainEventText(event, this.#head.seq + 1, this.#head.hash);
    const length = Buffer.byteLength(text, 'utf8');
    if (length > MAX_RECORD_BYTES) {
      throw new SpoolError(
        `audit event ${chained.auditID} is ${length} bytes; the limit is ${MAX_RECORD_BYTES}`,
      );
    }
    // The text encoded straight into the record: no intermediate buffer.
    const record = Buffer.allocUnsafe(HEADER + length);
    record.writeUInt32BE(length, 0);
    record.write(text, HEADER, 'utf8');
    record.writeUInt32BE(crc32(record.subarray(HEADER)), 4);
    let seg = this.#segments.at(-1);
    try {
      if (!seg || seg.size >= this.#segmentBytes) seg = this.#newSegment(chained.chaperone.seq);
    } catch (err) {
      throw this.#failed(err);
    }
    try {
      // A short write (a full disk part-way through) is a failure too.
      const n = this.#write(seg.fd, record, 0, record.length, seg.size);
      if (n !== record.length) throw new Error(`wrote ${n} of ${record.length} bytes`);
    } catch (err) {
      // Leave nothing half-written behind.
      try {
        ftruncateSync(seg.fd, seg.size);
      } catch {
        // the next open() cuts it off
      }
      throw this.#failed(err);
    }
    this.#writeFailure = undefined;
    this.#index.push({
      seq: chained.chaperone.seq,
      segment: seg,
      offset: seg.size,
      length: record.length,
      appendedAt: Date.now(),
    });
    seg.size += record.length;
    seg.lastSeq = chained.chaperone.seq;
    this.#unackedBytes += record.length;
    this.#head = { seq: chained.chaperone.seq, hash: chained.chaperone.hash };
    this.#dirty = true;
    for (const l of this.#listeners) l();
    return chained;
  }

  #failed(err: unknown): SpoolError {
    const message = (err as Error).message ?? String(err);
    this.#writeFailure = message;
    return new SpoolError(`could not write to the audit spool in ${this.dir}: ${message}`, { cause: err });
  }

  #newSegment(firstSeq: number): Segment {
    const path = join(this.dir, segmentName(firstSeq));
    const fd = openSync(path, 'w+');
    const seg: Segment = { firstSeq, path, fd, size: 0, lastSeq: 0 };
    this.#segments.push(seg);
    return seg;
  }

  /**
   * Up to `maxEvents` unacknowledged events after `afterSeq`, in order, within
   * about `maxBytes` (always at least one).
   */
  read(afterSeq: number, maxEvents: number, maxBytes = 4 * 1024 * 1024): AuditEvent[] {
    const out: AuditEvent[] = [];
    let start = 0;
    let lo = 0;
    let hi = this.#index.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.#index[mid] as IndexEntry).seq <= afterSeq) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
    let bytes = 0;
    for (let i = start; i < this.#index.length && out.length < maxEvents; i++) {
      const e = this.#index[i] as IndexEntry;
      if (out.length > 0 && bytes + e.length > maxBytes) break;
      const buf = Buffer.alloc(e.length - HEADER);
      readSync(e.segment.fd, buf, 0, buf.length, e.offset + HEADER);
      out.push(JSON.parse(buf.toString('utf8')) as AuditEvent);
      bytes += e.length;
    }
    return out;
  }

  /** The collector has made every event up to `seq` durable. */
  ack(seq: number): void {
    const upTo = Math.min(seq, this.#head.seq);
    if (upTo <= this.#acked) return;
    this.#acked = upTo;
    const tmp = join(this.dir, 'acked.tmp');
    writeFileSync(tmp, `${upTo}\n`);
    renameSync(tmp, join(this.dir, 'acked'));
    this.#dropAcked();
  }

  #dropAcked(): void {
    let n = 0;
    while (n < this.#index.length && (this.#index[n] as IndexEntry).seq <= this.#acked) {
      this.#unackedBytes -= (this.#index[n] as IndexEntry).length;
      n++;
    }
    if (n > 0) this.#index.splice(0, n);
    // Delete whole segments that are acknowledged, except the one being written.
    while (this.#segments.length > 1) {
      const first = this.#segments[0] as Segment;
      if (first.lastSeq > this.#acked || first === this.#syncing) break;
      closeSync(first.fd);
      first.fd = -1;
      unlinkSync(first.path);
      this.#segments.shift();
    }
  }

  /** Flushes written records to the disk, blocking until they are. */
  sync(): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    for (const seg of this.#segments.slice(-2)) fdatasyncSync(seg.fd);
  }

  /**
   * Flushes written records to the disk on the thread pool, so the event
   * loop (and every request in flight) does not wait for the disk. At most
   * one runs at a time; a segment being flushed is not deleted meanwhile.
   */
  syncInBackground(): void {
    if (!this.#dirty || this.#syncing) return;
    this.#dirty = false;
    // The previous segment too, in case the spool rotated since the last flush.
    const segs = this.#segments.slice(-2);
    const next = (i: number) => {
      const seg = segs[i];
      if (!seg || seg.fd < 0) {
        this.#syncing = undefined;
        return;
      }
      this.#syncing = seg;
      fdatasync(seg.fd, (err) => {
        if (err) {
          // Not on disk yet: flush again next time, and say so.
          this.#dirty = true;
          this.#onSyncError(err);
        }
        next(i + 1);
      });
    };
    next(0);
  }

  close(): void {
    this.#dirty = this.#dirty || this.#syncing !== undefined;
    this.sync();
    for (const s of this.#segments) {
      closeSync(s.fd);
      s.fd = -1;
    }
    this.#segments = [];
    this.#listeners.clear();
  }
}

/**
 * Reads every intact event in a spool directory without changing anything
 * (safe while a sidecar is writing to it): for inspection and tests.
 */
export function readSpoolDir(dir: string): AuditEvent[] {
  const out: AuditEvent[] = [];
  const names = readdirSync(dir)
    .filter((n) => /^segment-\d{20}\.log$/.test(n))
    .sort();
  for (const name of names) {
    const data = readFileSync(join(dir, name));
    let offset = 0;
    while (offset + HEADER <= data.length) {
      const length = data.readUInt32BE(offset);
      const crc = data.readUInt32BE(offset + 4);
      if (length === 0 || offset + HEADER + length > data.length) break;
      const payload = data.subarray(offset + HEADER, offset + HEADER + length);
      if (crc32(payload) !== crc) break;
      out.push(JSON.parse(payload.toString('utf8')) as AuditEvent);
      offset += HEADER + length;
    }
  }
  return out;
}
