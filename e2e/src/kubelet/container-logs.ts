/**
 * `GET /containerLogs/{namespace}/{pod}/{container}` as the kubelet serves it
 * (pkg/kubelet/server/server.go getContainerLogs, v1.20): the query is a
 * v1.PodLogOptions — follow, previous, timestamps, sinceSeconds, sinceTime,
 * tailLines (or the legacy `tail`), limitBytes — validated like
 * ValidatePodLogOptions (422 `{"message": "Invalid request."}`); the body is
 * chunked text, timestamps in Go's RFC3339Nano; with follow=true it streams
 * until the container terminates (its log ends) or the client leaves.
 * `previous=true` finds no terminated container here, so it is a 400, as on a
 * kubelet whose container never restarted.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ContainerState, LogEntry } from './containers.ts';

export interface LogOptions {
  readonly follow: boolean;
  readonly previous: boolean;
  readonly timestamps: boolean;
  readonly sinceSeconds?: number;
  readonly sinceTime?: Date;
  readonly tailLines?: number;
  readonly limitBytes?: number;
}

function bool(v: string | null): boolean | undefined {
  if (v === null) return undefined;
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(v)) return false;
  throw new Error(`invalid boolean ${v}`);
}

function int(v: string | null): number | undefined {
  if (v === null) return undefined;
  if (!/^-?\d+$/.test(v)) throw new Error(`invalid integer ${v}`);
  return Number(v);
}

/** Decodes and validates the query; a string is the error body to send with its status. */
export function parseLogOptions(query: URLSearchParams): LogOptions | { status: number; body: string } {
  const q = new URLSearchParams(query);
  const tail = q.get('tail');
  if (tail) {
    if (tail === 'all') q.delete('tailLines');
    else q.set('tailLines', tail);
  }
  let opts: LogOptions;
  try {
    const sinceTime = q.get('sinceTime');
    const date = sinceTime === null ? undefined : new Date(sinceTime);
    if (date && Number.isNaN(date.getTime())) throw new Error('invalid time');
    opts = {
      follow: bool(q.get('follow')) ?? false,
      previous: bool(q.get('previous')) ?? false,
      timestamps: bool(q.get('timestamps')) ?? false,
      sinceSeconds: int(q.get('sinceSeconds')),
      sinceTime: date,
      tailLines: int(q.get('tailLines')),
      limitBytes: int(q.get('limitBytes')),
    };
  } catch {
    return { status: 400, body: '{"message": "Unable to decode query."}' };
  }
  const invalid =
    (opts.tailLines !== undefined && opts.tailLines < 0) ||
    (opts.limitBytes !== undefined && opts.limitBytes < 1) ||
    (opts.sinceSeconds !== undefined && opts.sinceSeconds < 1) ||
    (opts.sinceSeconds !== undefined && opts.sinceTime !== undefined);
  if (invalid) return { status: 422, body: '{"message": "Invalid request."}' };
  return opts;
}

/** Go's time.RFC3339Nano for a UTC time: fraction without trailing zeros, none when zero. */
export function rfc3339Nano(t: Date): string {
  const iso = t.toISOString(); // 2006-01-02T15:04:05.123Z
  const fraction = iso.slice(20, 23).replace(/0+$/, '');
  return `${iso.slice(0, 19)}${fraction ? `.${fraction}` : ''}Z`;
}

export function serveContainerLogs(
  req: IncomingMessage,
  res: ServerResponse,
  container: ContainerState,
  opts: LogOptions,
): void {
  if (opts.previous) {
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(
      `previous terminated container "${container.id.container}" in pod "${container.id.pod}" not found`,
    );
    return;
  }
  const since =
    opts.sinceTime?.getTime() ??
    (opts.sinceSeconds !== undefined ? Date.now() - opts.sinceSeconds * 1000 : undefined);
  let budget = opts.limitBytes ?? Number.POSITIVE_INFINITY;
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'transfer-encoding': 'chunked' });
  const write = (e: LogEntry): boolean => {
    if (since !== undefined && e.time.getTime() < since) return true;
    const line = opts.timestamps ? Buffer.concat([Buffer.from(`${rfc3339Nano(e.time)} `), e.data]) : e.data;
    const part = line.length > budget ? line.subarray(0, budget) : line;
    budget -= part.length;
    res.write(part);
    return budget > 0;
  };
  let entries = container.logEntries();
  if (opts.tailLines !== undefined) entries = opts.tailLines === 0 ? [] : entries.slice(-opts.tailLines);
  for (const e of entries) {
    if (!write(e)) {
      res.end();
      return;
    }
  }
  if (!opts.follow || container.logEnded) {
    res.end();
    return;
  }
  const stop = container.followLog((e) => {
    if (e === null || !write(e)) {
      stop();
      res.end();
    }
  });
  req.socket.once('close', stop);
  res.once('close', stop);
}
