/**
 * Playing an asciicast v2 recording in the operator's terminal, for
 * `chaperone replay`: the output events ("o") in order, at their times
 * (divided by `speed`, pauses capped at `maxIdleMs`) or all at once, each
 * through a ReplayFilter (replay-filter.ts says what reaches the terminal).
 * Input ("i") is not shown (a terminal echoes what it shows of it in the
 * output), resizes ("r") cannot resize the operator's terminal, and markers
 * ("m": the exit status, a truncation) are collected for the line after the
 * replay.
 */
import { ChaperoneError } from '@chaperone/shared';
import { ReplayFilter } from './replay-filter.ts';

export interface Cast {
  readonly width: number;
  readonly height: number;
  /** [seconds since the start, code, data] */
  readonly events: readonly (readonly [number, string, string])[];
}

/** Reads an asciicast v2 file (as the collector serves it); throws naming the line it cannot read. */
export function parseCast(text: string): Cast {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const bad = (n: number, why: string) =>
    new ChaperoneError('validation_failed', `the recording's line ${n} ${why}`);
  let header: { version?: unknown; width?: unknown; height?: unknown };
  try {
    header = JSON.parse(lines[0] ?? '') as typeof header;
  } catch {
    throw bad(1, 'is not an asciicast header');
  }
  if (header?.version !== 2) throw bad(1, 'is not an asciicast v2 header');
  const events: [number, string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    let e: unknown;
    try {
      e = JSON.parse(lines[i] as string);
    } catch {
      throw bad(i + 1, 'is not JSON');
    }
    if (!Array.isArray(e) || typeof e[0] !== 'number' || typeof e[1] !== 'string' || typeof e[2] !== 'string')
      throw bad(i + 1, 'is not an event [time, code, data]');
    events.push([e[0], e[1], e[2]]);
  }
  return {
    width: typeof header.width === 'number' ? header.width : 80,
    height: typeof header.height === 'number' ? header.height : 24,
    events,
  };
}

export interface PlayOptions {
  /** Wait between events as the session did (false: print at once). */
  readonly realTime: boolean;
  /** 2 plays twice as fast. */
  readonly speed: number;
  /** Longest pause, in ms of the recording (default: none). */
  readonly maxIdleMs?: number;
  readonly write: (text: string) => void;
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Stops the replay (Ctrl-C). */
  readonly signal?: AbortSignal;
}

export interface PlayResult {
  /** The markers, in order ("exit 0", "recording truncated …"). */
  readonly markers: readonly string[];
  /** Control sequences not passed to the terminal. */
  readonly dropped: number;
  /** Seconds of the recording played (after capping pauses, before the speed). */
  readonly duration: number;
  readonly interrupted: boolean;
  /** The output ended at the start of a line. */
  readonly atLineStart: boolean;
}

/** Seconds of the recording's output, with pauses capped as `maxIdleMs` says. */
export function castDuration(cast: Cast, maxIdleMs?: number): number {
  let prev = 0;
  let total = 0;
  for (const [t] of cast.events) {
    const gap = Math.max(0, t - prev);
    total += maxIdleMs === undefined ? gap : Math.min(gap, maxIdleMs / 1000);
    prev = Math.max(prev, t);
  }
  return total;
}

const sleepFor = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

export async function playCast(cast: Cast, o: PlayOptions): Promise<PlayResult> {
  const filter = new ReplayFilter();
  const sleep = o.sleep ?? sleepFor;
  const markers: string[] = [];
  let prev = 0;
  let played = 0;
  let last = '\n';
  let interrupted = false;
  const started = performance.now();
  for (const [t, code, data] of cast.events) {
    if (o.signal?.aborted) {
      interrupted = true;
      break;
    }
    const gap = Math.max(0, t - prev);
    prev = Math.max(prev, t);
    played += o.maxIdleMs === undefined ? gap : Math.min(gap, o.maxIdleMs / 1000);
    if (code === 'm') {
      markers.push(data);
      continue;
    }
    if (code !== 'o') continue;
    if (o.realTime) {
      // Against the start, so the time spent writing does not add up.
      const due = (played * 1000) / o.speed - (performance.now() - started);
      if (due > 0) await sleep(due, o.signal);
      if (o.signal?.aborted) {
        interrupted = true;
        break;
      }
    }
    const shown = filter.push(data);
    if (shown.length > 0) {
      o.write(shown);
      last = shown;
    }
  }
  o.write(filter.end());
  return {
    markers,
    dropped: filter.dropped,
    duration: played,
    interrupted,
    atLineStart: last.endsWith('\n'),
  };
}
