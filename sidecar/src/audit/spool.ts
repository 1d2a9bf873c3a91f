/**
 * The audit spool: an append-only log on local disk (an emptyDir in the pod)
 * where every event, and every chunk of an exec session's recording, lands
 * before it is shipped to the collector. It is also where the sidecar's hash
 * chain lives: `append` gives each event the next sequence number and links
 * it to the previous event's hash, so the chain survives sidecar restarts.
 *
 * Files: `segment-<n>.log` (records; n increases, and is the first event's
 * sequence number where a segment starts with one), `acked` (the highest
 * sequence number the collector has made durable), `acked-position` (`<n>
 * <offset>`: every record before that place, of either kind, is durable at
 * the collector). A record is
 *
 *   u32 BE payload length | u32 BE CRC-32 of payload | payload (UTF-8 JSON)
 *
 * and its payload is an event (`"kind":"Event"`, chained) or a recording
 * chunk (`"kind":"RecordingChunk"`: sessionId, offset, data — not chained;
 * the collector places it by offset). Both are written the same way:
 * synchronously, before the caller goes on.
 *
 * On open every segment is scanned; a torn or corrupt record (a crash in the
 * middle of a write) ends its segment: it is cut off, nothing before it is
 * lost. Events are acknowledged by sequence number, recording chunks one by
 * one (after a restart, chunks past `acked-position` are sent again: the
 * collector recognises them by offset). Segments whose records are all
 * acknowledged are deleted.
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
  /**
   * Flush in the background at most this long after a record is written
   * (a timer armed by the first write not yet on disk, so an idle spool sets
   * none). 0 or absent: only when `sync` or `syncInBackground` is called.
   */
  flushWithinMs?: number;
  /** The positional write the spool uses (fs.writeSync); tests pass one that fails like a full or broken disk. */
  write?: (fd: number, buffer: Buffer, offset: number, length: number, position: number) => number;
  /** The background flush (fs.fdatasync); tests pass one that records, delays or fails. */
  fdatasync?: (fd: number, done: (err: Error | null) => void) => void;
}

interface Segment {
  /** The number in its name. */
  readonly number: number;
  readonly path: string;
  fd: number;
  size: number;
  /** Position of its last record. */
  lastPos: number;
  /** Records written to it by this process… */
  writes: number;
  /** …of which the first `synced` are known to be on disk (an fdatasync that began after them succeeded). */
  synced: number;
}

interface IndexEntry {
  /** The record's place in this process's numbering of the spool (from 1, in file order). */
  readonly pos: number;
  /** The event's sequence number; 0 for a recording chunk. */
  readonly seq: number;
  readonly segment: Segment;
  readonly offset: number;
  readonly length: number;
  readonly appendedAt: number;
  acked: boolean;
}

/** A chunk of an exec session's asciicast recording, as the spool keeps and the shipper sends it. */
export interface RecordingChunk {
  readonly sessionId: string;
  /** UTF-8 bytes of the recording before `data`. */
  readonly offset: number;
  /** Whole asciicast v2 lines. */
  readonly data: string;
}

/** A spooled record, in spool order (`pos`). */
export type SpoolRecord =
  | { readonly kind: 'event'; readonly pos: number; readonly event: AuditEvent }
  | { readonly kind: 'recording'; readonly pos: number; readonly chunk: RecordingChunk };

const RECORDING_KIND = 'RecordingChunk';

/** The recording chunk a record's payload holds, or undefined when it holds something else. */
function recordingChunkOf(payload: unknown): RecordingChunk | undefined {
  const p = payload as { kind?: unknown; sessionId?: unknown; offset?: unknown; data?: unknown };
  if (p?.kind !== RECORDING_KIND) return undefined;
  if (typeof p.sessionId !== 'string' || typeof p.data !== 'string') return undefined;
  if (typeof p.offset !== 'number' || !Number.isSafeInteger(p.offset) || p.offset < 0) return undefined;
  return { sessionId: p.sessionId, offset: p.offset, data: p.data };
}

function isRecordingPayload(payload: unknown): boolean {
  return (payload as { kind?: unknown })?.kind === RECORDING_KIND;
}

/**
 * A record as the spool writes it (header, then the UTF-8 text encoded straight
 * into it: no intermediate buffer). `length`: the text's UTF-8 byte length.
 */
export function spoolRecord(text: string, length = Buffer.byteLength(text, 'utf8')): Buffer {
  const record = Buffer.allocUnsafe(HEADER + length);
  record.writeUInt32BE(length, 0);
  record.write(text, HEADER, 'utf8');
  record.writeUInt32BE(crc32(record.subarray(HEADER)), 4);
  return record;
}

export class SpoolError extends ChaperoneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unavailable', message, options);
    this.name = 'SpoolError';
  }
}

function segmentName(n: number): string {
  return `segment-${String(n).padStart(20, '0')}.log`;
}

export class Spool {
  readonly dir: string;
  readonly #maxBytes: number;
  readonly #segmentBytes: number;
  #segments: Segment[] = [];
  /** Records from the first unacknowledged one on, in spool order (later ones may be acknowledged already). */
  #records: IndexEntry[] = [];
  /** Unacknowledged events, in sequence order (a subset of #records). */
  #events: IndexEntry[] = [];
  #pendingRecordings = 0;
  #unackedBytes = 0;
  #nextPos = 1;
  #head = { seq: 0, hash: GENESIS_HASH };
  #acked = 0;
  /** Every record before this place (segment number, offset) is acknowledged. */
  #ackedPosition = { segment: 0, offset: 0 };
  /** The segment whose fdatasync is running on the thread pool, if any. */
  #syncing: Segment | undefined;
  readonly #flushWithinMs: number;
  /** The background flush due for records not yet on disk (flushWithinMs). */
  #flushTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #listeners = new Set<() => void>();
  readonly #onSyncError: (err: Error) => void;
  readonly #write: NonNullable<SpoolOptions['write']>;
  readonly #fdatasync: NonNullable<SpoolOptions['fdatasync']>;
  /** Why the last append failed, until an append succeeds again. */
  #writeFailure: string | undefined;

  private constructor(dir: string, opts: SpoolOptions) {
    this.dir = dir;
    this.#onSyncError = opts.onSyncError ?? (() => {});
    this.#write = opts.write ?? writeSync;
    this.#fdatasync = opts.fdatasync ?? fdatasync;
    this.#maxBytes = opts.maxBytes;
    this.#segmentBytes = opts.segmentBytes ?? 4 * 1024 * 1024;
    this.#flushWithinMs = opts.flushWithinMs ?? 0;
  }

  /** A record is written that is not on disk yet: a background flush is due within flushWithinMs (one timer for all). */
  #flushSoon(): void {
    if (this.#flushWithinMs <= 0 || this.#flushTimer || this.#closed) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      this.syncInBackground();
    }, this.#flushWithinMs);
    this.#flushTimer.unref();
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
    const positionPath = join(this.dir, 'acked-position');
    if (existsSync(positionPath)) {
      const [segment, offset] = readFileSync(positionPath, 'utf8').trim().split(' ').map(Number);
      if (Number.isSafeInteger(segment) && Number.isSafeInteger(offset))
        this.#ackedPosition = { segment: segment as number, offset: offset as number };
    }
    const names = readdirSync(this.dir)
      .filter((n) => /^segment-\d{20}\.log$/.test(n))
      .sort();
    for (const name of names) {
      const path = join(this.dir, name);
      const fd = openSync(path, 'r+');
      const size = fstatSync(fd).size;
      const seg: Segment = {
        number: Number(name.slice(8, 28)),
        path,
        fd,
        size,
        lastPos: 0,
        writes: 0,
        synced: 0,
      };
      const valid = this.#scan(seg, size);
      if (valid < size) {
        report(`${name}: cut off ${size - valid} bytes of a torn or corrupt record at offset ${valid}`);
        ftruncateSync(fd, valid);
        seg.size = valid;
      }
      if (seg.size === 0) {
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
      let record: unknown;
      try {
        record = JSON.parse(payload.toString('utf8'));
      } catch {
        break;
      }
      let seq = 0;
      let acked: boolean;
      if (isRecordingPayload(record)) {
        if (!recordingChunkOf(record)) break;
        const p = this.#ackedPosition;
        acked = seg.number < p.segment || (seg.number === p.segment && offset < p.offset);
      } else {
        const event = record as AuditEvent;
        seq = event?.chaperone?.seq;
        if (!Number.isSafeInteger(seq) || seq < 1 || (seq !== this.#head.seq + 1 && this.#head.seq !== 0))
          break;
        this.#head = { seq, hash: event.chaperone.hash };
        acked = seq <= this.#acked;
      }
      const pos = this.#nextPos++;
      seg.lastPos = pos;
      if (!acked) this.#track(seg, pos, seq, offset, HEADER + length);
      offset += HEADER + length;
    }
    return offset;
  }

  /** Adds an unacknowledged record to the index. */
  #track(segment: Segment, pos: number, seq: number, offset: number, length: number): void {
    const entry: IndexEntry = { pos, seq, segment, offset, length, appendedAt: Date.now(), acked: false };
    this.#records.push(entry);
    if (seq > 0) this.#events.push(entry);
    else this.#pendingRecordings++;
    this.#unackedBytes += length;
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
    return this.#events.length;
  }

  /** Unacknowledged recording chunks. */
  get pendingRecordings(): number {
    return this.#pendingRecordings;
  }

  /** Unacknowledged records of both kinds: zero when the collector holds everything. */
  get pending(): number {
    return this.#events.length + this.#pendingRecordings;
  }

  /** Bytes of unacknowledged records (events and recording chunks). */
  get unackedBytes(): number {
    return this.#unackedBytes;
  }

  /** When the oldest unacknowledged record was appended (ms since epoch), or undefined. */
  get oldestUnackedAt(): number | undefined {
    return this.#records[0]?.appendedAt;
  }

  /** Position of the last record appended (0 before any). */
  get lastPos(): number {
    return this.#nextPos - 1;
  }

  /** Whether every record written is known to be on disk (flushed, no flush running). */
  get onDisk(): boolean {
    return this.#syncing === undefined && this.#unsynced().length === 0;
  }

  /** Open segments holding records not known to be on disk. */
  #unsynced(): Segment[] {
    return this.#segments.filter((seg) => seg.fd >= 0 && seg.writes > seg.synced);
  }

  /** Whether a background flush is waiting on its timer (flushWithinMs). */
  get flushDue(): boolean {
    return this.#flushTimer !== undefined;
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
    this.#writeRecord(text, chained.chaperone.seq, () => `audit event ${chained.auditID}`);
    this.#head = { seq: chained.chaperone.seq, hash: chained.chaperone.hash };
    for (const l of this.#listeners) l();
    return chained;
  }

  /**
   * Writes a chunk of a session's recording, the same way as an event (but
   * outside the chain). Returns its position.
   */
  appendRecording(chunk: RecordingChunk): number {
    const text = JSON.stringify({
      data: chunk.data,
      kind: RECORDING_KIND,
      offset: chunk.offset,
      sessionId: chunk.sessionId,
    });
    const pos = this.#writeRecord(text, 0, () => `recording chunk of session ${chunk.sessionId}`);
    for (const l of this.#listeners) l();
    return pos;
  }

  /** Writes one record (an event with its `seq`, or a recording chunk with 0) and indexes it; returns its position. */
  #writeRecord(text: string, seq: number, what: () => string): number {
    const length = Buffer.byteLength(text, 'utf8');
    if (length > MAX_RECORD_BYTES) {
      throw new SpoolError(`${what()} is ${length} bytes; the limit is ${MAX_RECORD_BYTES}`);
    }
    const record = spoolRecord(text, length);
    let seg = this.#segments.at(-1);
    try {
      if (!seg || seg.size >= this.#segmentBytes) seg = this.#newSegment();
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
    const pos = this.#nextPos++;
    this.#track(seg, pos, seq, seg.size, record.length);
    seg.size += record.length;
    seg.lastPos = pos;
    seg.writes++;
    this.#flushSoon();
    return pos;
  }

  #failed(err: unknown): SpoolError {
    const message = (err as Error).message ?? String(err);
    this.#writeFailure = message;
    return new SpoolError(`could not write to the audit spool in ${this.dir}: ${message}`, { cause: err });
  }

  #newSegment(): Segment {
    // Names keep increasing, so the files sort in spool order; a segment that starts with an event is named by its seq.
    const number = Math.max((this.#segments.at(-1)?.number ?? 0) + 1, this.#head.seq + 1);
    const path = join(this.dir, segmentName(number));
    const fd = openSync(path, 'w+');
    const seg: Segment = { number, path, fd, size: 0, lastPos: 0, writes: 0, synced: 0 };
    this.#segments.push(seg);
    return seg;
  }

  #payload(e: IndexEntry): unknown {
    const buf = Buffer.alloc(e.length - HEADER);
    readSync(e.segment.fd, buf, 0, buf.length, e.offset + HEADER);
    return JSON.parse(buf.toString('utf8'));
  }

  /**
   * Up to `maxEvents` unacknowledged events after `afterSeq`, in order, within
   * about `maxBytes` (always at least one).
   */
  read(afterSeq: number, maxEvents: number, maxBytes = 4 * 1024 * 1024): AuditEvent[] {
    const out: AuditEvent[] = [];
    let bytes = 0;
    const start = firstAfter(this.#events, (e) => e.seq <= afterSeq);
    for (let i = start; i < this.#events.length && out.length < maxEvents; i++) {
      const e = this.#events[i] as IndexEntry;
      if (out.length > 0 && bytes + e.length > maxBytes) break;
      out.push(this.#payload(e) as AuditEvent);
      bytes += e.length;
    }
    return out;
  }

  /**
   * The next unacknowledged records after position `afterPos`, as the shipper
   * sends them: one recording chunk, or a run of up to `maxEvents` events
   * (within about `maxBytes`, at least one) that stops before the next chunk.
   */
  readRun(afterPos: number, maxEvents: number, maxBytes = 4 * 1024 * 1024): SpoolRecord[] {
    const out: SpoolRecord[] = [];
    let bytes = 0;
    for (
      let i = firstAfter(this.#records, (e) => e.pos <= afterPos);
      i < this.#records.length && out.length < maxEvents;
      i++
    ) {
      const e = this.#records[i] as IndexEntry;
      if (e.acked) continue;
      if (e.seq === 0) {
        if (out.length > 0) break;
        const chunk = recordingChunkOf(this.#payload(e));
        if (!chunk) throw new SpoolError(`the spool record at position ${e.pos} is not a recording chunk`);
        return [{ kind: 'recording', pos: e.pos, chunk }];
      }
      if (out.length > 0 && bytes + e.length > maxBytes) break;
      out.push({ kind: 'event', pos: e.pos, event: this.#payload(e) as AuditEvent });
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
    let n = 0;
    while (n < this.#events.length && (this.#events[n] as IndexEntry).seq <= upTo) {
      const e = this.#events[n] as IndexEntry;
      e.acked = true;
      this.#unackedBytes -= e.length;
      n++;
    }
    if (n > 0) this.#events.splice(0, n);
    this.#dropAcked();
  }

  /** The collector has made the recording chunk at position `pos` durable (or refused it for good). */
  ackRecording(pos: number): void {
    const i = firstAfter(this.#records, (e) => e.pos < pos);
    const e = this.#records[i];
    if (!e || e.pos !== pos || e.seq !== 0 || e.acked) return;
    e.acked = true;
    this.#unackedBytes -= e.length;
    this.#pendingRecordings--;
    this.#dropAcked();
  }

  #dropAcked(): void {
    let n = 0;
    let chunks = false;
    while (n < this.#records.length && (this.#records[n] as IndexEntry).acked) {
      if ((this.#records[n] as IndexEntry).seq === 0) chunks = true;
      n++;
    }
    if (n > 0) this.#records.splice(0, n);
    const first = this.#records[0];
    if (chunks) {
      // Where acknowledged records end, for the next start: chunks before it are not sent again.
      const last = this.#segments.at(-1);
      const p = first
        ? { segment: first.segment.number, offset: first.offset }
        : { segment: last?.number ?? 0, offset: last?.size ?? 0 };
      this.#ackedPosition = p;
      const tmp = join(this.dir, 'acked-position.tmp');
      writeFileSync(tmp, `${p.segment} ${p.offset}\n`);
      renameSync(tmp, join(this.dir, 'acked-position'));
    }
    // Delete whole segments that are acknowledged, except the one being written.
    while (this.#segments.length > 1) {
      const seg = this.#segments[0] as Segment;
      if ((first && seg.lastPos >= first.pos) || seg === this.#syncing) break;
      closeSync(seg.fd);
      seg.fd = -1;
      unlinkSync(seg.path);
      this.#segments.shift();
    }
  }

  /** Flushes written records to the disk, blocking until they are. */
  sync(): void {
    for (const seg of this.#unsynced()) {
      const upTo = seg.writes;
      fdatasyncSync(seg.fd);
      seg.synced = upTo;
    }
  }

  /**
   * Flushes written records to the disk on the thread pool, so the event
   * loop (and every request in flight) does not wait for the disk: every
   * segment written since its last flush, however many the spool rotated
   * through. At most one runs at a time; one due meanwhile runs when it ends.
   * A segment being flushed is not deleted meanwhile.
   */
  syncInBackground(): void {
    if (this.#syncing) return;
    const due = this.#unsynced();
    const next = (i: number) => {
      const seg = due[i];
      if (!seg) {
        this.#syncing = undefined;
        // Written while this flush ran, or a flush failed: due again.
        if (this.#unsynced().length > 0) this.#flushSoon();
        return;
      }
      // Acknowledged and deleted since the flush began: nothing left to keep.
      if (seg.fd < 0) {
        next(i + 1);
        return;
      }
      const upTo = seg.writes;
      this.#syncing = seg;
      this.#fdatasync(seg.fd, (err) => {
        if (!err) seg.synced = Math.max(seg.synced, upTo);
        // Not on disk yet: flushed again next time, and said (unless the spool closed under it).
        else if (!this.#closed) this.#onSyncError(err);
        next(i + 1);
      });
    };
    next(0);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    // Every segment not known to be on disk, one whose background flush is still running included.
    this.sync();
    for (const s of this.#segments) {
      closeSync(s.fd);
      s.fd = -1;
    }
    this.#segments = [];
    this.#listeners.clear();
  }
}

/** Every intact record payload in a spool directory, in order, without changing anything. */
function readPayloads(dir: string): unknown[] {
  const out: unknown[] = [];
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
      out.push(JSON.parse(payload.toString('utf8')));
      offset += HEADER + length;
    }
  }
  return out;
}

/**
 * Reads every intact event in a spool directory without changing anything
 * (safe while a sidecar is writing to it): for inspection and tests.
 */
export function readSpoolDir(dir: string): AuditEvent[] {
  return readPayloads(dir).filter((p) => !isRecordingPayload(p)) as AuditEvent[];
}

/** Every intact recording chunk in a spool directory, in order (like readSpoolDir). */
export function readSpoolRecordings(dir: string): RecordingChunk[] {
  return readPayloads(dir).flatMap((p) => recordingChunkOf(p) ?? []);
}

/** Index of the first entry for which `before` is false (entries are in the order `before` splits). */
function firstAfter(entries: readonly IndexEntry[], before: (e: IndexEntry) => boolean): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(entries[mid] as IndexEntry)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
