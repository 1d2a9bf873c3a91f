/**
 * The record of the running `chaperone local` session in its state directory:
 * what `chaperone local status|audit` read to find the guard and its
 * collector, and what keeps a second session from sharing the directory (the
 * embedded store has one writer).
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { ChaperoneError } from '@chaperone/shared';
import { writeAtomic } from '../write-atomic.ts';

export interface SessionRecord {
  readonly pid: number;
  readonly startedAt: string;
  readonly context: string;
  readonly apiServer: string;
  readonly namespace: string;
  /** The guard agents reach, `https://127.0.0.1:<port>`. */
  readonly guard: string;
  readonly agentKubeconfig: string;
  /** The chain of this session's events (`sidecarId` in the collector). */
  readonly sidecarId: string;
  /** The collector's query API and its token file (the embedded collector), when known. */
  readonly queryUrl?: string;
  readonly queryTokenFile?: string;
  readonly collectorUrl: string;
  readonly databases: Readonly<Record<string, number>>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The running session's record, or undefined (none, or one left by a session that died). */
export function readSessionRecord(file: string): SessionRecord | undefined {
  if (!existsSync(file)) return undefined;
  let r: SessionRecord;
  try {
    r = JSON.parse(readFileSync(file, 'utf8')) as SessionRecord;
  } catch {
    return undefined;
  }
  return typeof r.pid === 'number' && alive(r.pid) ? r : undefined;
}

/** Refuses when another live session holds the state directory. */
export function claimStateDir(file: string, root: string): void {
  const other = readSessionRecord(file);
  if (other && other.pid !== process.pid)
    throw new ChaperoneError(
      'conflict',
      `another chaperone local session (pid ${other.pid}, context ${other.context}) is using the state directory ${root}; run this one with --state-dir <another directory>, or ship to a shared collector with --collector-url`,
    );
}

export function writeSessionRecord(file: string, r: SessionRecord): void {
  writeAtomic(file, `${JSON.stringify(r, null, 2)}\n`, 0o600);
}

/** Ends the running session's record, keeping it as the last session's (`last`). */
export function endSessionRecord(file: string, last: string): void {
  if (existsSync(file)) renameSync(file, last);
}

/** The last session that ended, or undefined. */
export function readLastSession(last: string): SessionRecord | undefined {
  try {
    return JSON.parse(readFileSync(last, 'utf8')) as SessionRecord;
  } catch {
    return undefined;
  }
}
