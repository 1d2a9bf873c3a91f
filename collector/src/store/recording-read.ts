/**
 * Reading a recording without loading it: its row (owner, namespace, size)
 * alone, or the bytes [offset, offset + length) cut from only the chunks
 * that hold them (the last one starting at or before `offset`, then each one
 * starting before the end), found through the chunks' primary key
 * (session_id, start_byte). The same SQL in both backends.
 */

import type { Dialect } from './query-sql.ts';
import type { RunSql } from './rollup-sql.ts';
import type { RecordingInfo } from './store.ts';
import { rowToRecordingInfo } from './store-rows.ts';

export async function readRecordingInfo(
  run: RunSql,
  d: Dialect,
  sessionId: string,
): Promise<RecordingInfo | undefined> {
  const [r] = await run(
    `SELECT session_id, sidecar_id, namespace, pod, size, updated_us FROM recordings WHERE session_id = ${d.placeholder(1)}`,
    [sessionId],
  );
  return r ? rowToRecordingInfo(r) : undefined;
}

export async function readRecordingBytes(
  run: RunSql,
  d: Dialect,
  sessionId: string,
  offset: number,
  length: number,
): Promise<Buffer | undefined> {
  const info = await readRecordingInfo(run, d, sessionId);
  if (!info) return undefined;
  const end = Math.min(info.size, offset + Math.max(0, length));
  if (offset >= end) return Buffer.alloc(0);
  const p = (n: number) => d.placeholder(n);
  const chunks = await run(
    `SELECT start_byte, data FROM recording_chunks
      WHERE session_id = ${p(1)} AND start_byte < ${p(2)}
        AND start_byte >= coalesce((SELECT max(start_byte) FROM recording_chunks WHERE session_id = ${p(3)} AND start_byte <= ${p(4)}), 0)
      ORDER BY start_byte`,
    [sessionId, end, sessionId, offset],
  );
  const first = chunks[0];
  if (!first) return Buffer.alloc(0);
  const from = offset - Number(first.start_byte);
  return Buffer.concat(chunks.map((c) => Buffer.from(String(c.data), 'utf8'))).subarray(
    from,
    from + (end - offset),
  );
}
