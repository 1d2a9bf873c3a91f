/**
 * `audit verify` against signed checkpoints: the store's heads and retention
 * watermarks are not trusted, the checkpoints are (their signature is
 * checked with the public key). Checkpoints are read from the store and from
 * the append-only log outside it, and folded: per chain, the newest entry is
 * what the store must still show, and every entry bounds how far retention
 * may have moved the watermark since. Findings:
 *
 * - tail_deleted: the chain ends before the seq a checkpoint signed;
 * - chain_deleted: a chain in a checkpoint is not in the store at all;
 * - history_rewritten: the event at the signed seq has another hash (the
 *   chain was rewritten and re-hashed), or the chain's owner changed;
 * - watermark_forged: the retention watermark differs from the signed one
 *   further than the retention period allows since that checkpoint;
 * - checkpoint_invalid: a stored or logged checkpoint whose signature does
 *   not verify (forged, or edited).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ChainHead, ConfigError } from '@chaperone/shared';
import { microsToRfc3339, nowMicros } from '../events/time.ts';
import type { AuditStore, ChainInfo } from '../store/store.ts';
import type { ChainReport, VerifyProblem } from './audit-verify.ts';
import { type CheckpointHead, compactJws, openCheckpoint } from './checkpoints.ts';
import { loadPublicKey, type PublicKey } from './checkpoints-key.ts';
import { DEFAULT_KEY_FILE, DEFAULT_LOG_FILE } from './checkpoints-writer.ts';

export type CheckpointProblemKind =
  | 'tail_deleted'
  | 'chain_deleted'
  | 'history_rewritten'
  | 'watermark_forged'
  | 'checkpoint_invalid';

/**
 * Events committed shortly after a checkpoint read the heads may have been
 * received (their retention clock starts) shortly before it: the watermark
 * bound allows for that much commit delay.
 */
export const RECEIPT_GRACE_US = 10 * 60 * 1_000_000;
const PAGE = 500;

interface ChainCheckpoints {
  newest: CheckpointHead & { readonly timeUs: number };
  /** Every signed (time, seq) of the chain. */
  readonly points: { timeUs: number; seq: number }[];
}

export interface CheckpointSummary {
  readonly kid: string;
  /** Checkpoints whose signature verified (each counted once, from the store or the log). */
  readonly verified: number;
  readonly fromStore: number;
  readonly fromLog: number;
  /** Signed by another key: not used. */
  readonly otherKey: number;
  readonly invalid: readonly string[];
  readonly newestUs?: number;
  readonly chains: number;
}

/**
 * The checkpoint a log line holds: the checkpoint log has one compact JWS a
 * line; the collector's own log (collected by the cluster's log pipeline,
 * `kubectl logs`) has JSON lines, of which "signed a checkpoint" carries one
 * in `checkpoint` (flattened JWS JSON). Other log lines hold none.
 */
function checkpointOfLine(line: string): string | undefined {
  if (line === '') return undefined;
  if (!line.startsWith('{')) return line;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return line; // a torn or altered line: reported as not a JWS
  }
  return typeof v === 'object' && v !== null
    ? compactJws((v as { checkpoint?: unknown }).checkpoint)
    : undefined;
}

export class CheckpointCheck {
  readonly #key: PublicKey;
  readonly #chains = new Map<string, ChainCheckpoints>();
  readonly #seen = new Set<string>();
  readonly #invalid: string[] = [];
  #retentionMs = 0;
  #newestUs = -1;
  #fromStore = 0;
  #fromLog = 0;
  #otherKey = 0;
  #verified = 0;
  readonly #now: () => number;

  constructor(key: PublicKey, now: () => number = nowMicros) {
    this.#key = key;
    this.#now = now;
  }

  /** Reads every checkpoint stored with the events. */
  async loadFromStore(store: AuditStore): Promise<void> {
    let after = 0;
    for (;;) {
      const rows = await store.listCheckpoints(after, PAGE);
      for (const r of rows) {
        after = r.id;
        if (await this.add(r.jws, `stored checkpoint ${r.id}`)) this.#fromStore++;
      }
      if (rows.length < PAGE) break;
    }
  }

  /** Reads the append-only log (one compact JWS a line). A missing log is an error: it is the copy that matters. */
  async loadFromLog(path: string): Promise<void> {
    const lines = readFileSync(path, 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const jws = checkpointOfLine((lines[i] as string).trim());
      if (jws === undefined) continue;
      if (await this.add(jws, `${path} line ${i + 1}`)) this.#fromLog++;
    }
  }

  /** Adds one checkpoint; true when it was new and verified. */
  async add(jws: string, where: string): Promise<boolean> {
    if (this.#seen.has(jws)) return false;
    this.#seen.add(jws);
    const opened = await openCheckpoint(this.#key, jws);
    if (opened.kind === 'other_key') {
      this.#otherKey++;
      return false;
    }
    if (opened.kind === 'invalid') {
      this.#invalid.push(`${where}: ${opened.reason}`);
      return false;
    }
    this.#verified++;
    const p = opened.payload;
    if (p.timeUs > this.#newestUs) {
      this.#newestUs = p.timeUs;
      this.#retentionMs = p.retentionMs;
    }
    for (const h of p.chains) {
      const entry = { ...h, timeUs: p.timeUs };
      const points = [{ timeUs: p.timeUs, seq: h.seq }];
      if (h.prevSeq !== undefined && h.prevUs !== undefined)
        points.push({ timeUs: h.prevUs, seq: h.prevSeq });
      const known = this.#chains.get(h.sidecarId);
      if (!known) this.#chains.set(h.sidecarId, { newest: entry, points });
      else {
        known.points.push(...points);
        const n = known.newest;
        if (p.timeUs > n.timeUs || (p.timeUs === n.timeUs && h.seq > n.seq)) known.newest = entry;
      }
    }
    return true;
  }

  summary(): CheckpointSummary {
    return {
      kid: this.#key.kid,
      verified: this.#verified,
      fromStore: this.#fromStore,
      fromLog: this.#fromLog,
      otherKey: this.#otherKey,
      invalid: [...this.#invalid],
      ...(this.#newestUs >= 0 ? { newestUs: this.#newestUs } : {}),
      chains: this.#chains.size,
    };
  }

  /** The problems of one stored chain against its newest checkpoint, added to its report. */
  async check(store: AuditStore, chain: ChainInfo, report: ChainReport): Promise<ChainReport> {
    const cp = this.#chains.get(chain.sidecarId);
    if (!cp) return report;
    let problems: VerifyProblem[];
    try {
      problems = await this.#problems(store, chain, report.verifiedHead, cp);
    } catch (err) {
      // One chain that cannot be checked is reported; the others are still verified.
      problems = [
        {
          kind: 'checkpoint_invalid',
          message: `could not check this chain against its checkpoint: ${(err as Error).message}`,
          recordedAtIngest: false,
        },
      ];
    }
    if (problems.length === 0) return report;
    return { ...report, problems: [...report.problems, ...problems], status: 'tampered' };
  }

  async #problems(
    store: AuditStore,
    chain: ChainInfo,
    verifiedHead: ChainHead,
    cp: ChainCheckpoints,
  ): Promise<VerifyProblem[]> {
    const e = cp.newest;
    const at = microsToRfc3339(e.timeUs);
    const out: VerifyProblem[] = [];
    const problem = (kind: CheckpointProblemKind, message: string, seq?: number) =>
      out.push({ kind, ...(seq === undefined ? {} : { seq }), message, recordedAtIngest: false });

    if (e.namespace !== chain.owner.namespace || e.pod !== chain.owner.pod)
      problem(
        'history_rewritten',
        `the checkpoint of ${at} binds this chain to ${e.namespace}/${e.pod}, the store to ${chain.owner.namespace}/${chain.owner.pod}`,
      );

    const end = Math.min(chain.head.seq, verifiedHead.seq);
    if (end < e.seq)
      problem(
        'tail_deleted',
        `the checkpoint of ${at} signed head seq ${e.seq}, the stored chain ends at seq ${end}: events ${end + 1}..${e.seq} were deleted`,
        e.seq,
      );
    else if (e.seq > chain.pruned.seq) {
      const hashes = await store.eventHashesAt(chain.sidecarId, e.seq);
      if (!hashes.includes(e.hash))
        problem(
          'history_rewritten',
          hashes.length === 0
            ? `the checkpoint of ${at} signed seq ${e.seq}, which is no longer stored`
            : `the event at seq ${e.seq} does not have the hash the checkpoint of ${at} signed: the chain was rewritten`,
          e.seq,
        );
    } else if (e.seq === chain.pruned.seq && e.hash !== chain.pruned.hash)
      problem(
        'history_rewritten',
        `the retention watermark at seq ${e.seq} has another hash than the checkpoint of ${at} signed for that seq`,
        e.seq,
      );

    const w = chain.pruned;
    if (w.seq < e.prunedSeq)
      problem(
        'watermark_forged',
        `the retention watermark is at seq ${w.seq}, behind seq ${e.prunedSeq} that the checkpoint of ${at} signed`,
        w.seq,
      );
    else if (w.seq === e.prunedSeq && w.hash !== e.prunedHash)
      problem(
        'watermark_forged',
        `the retention watermark at seq ${w.seq} has another hash than the checkpoint of ${at} signed`,
        w.seq,
      );
    else if (w.seq > e.prunedSeq) {
      const reason = this.#watermarkTooFar(cp, w.seq);
      if (reason) problem('watermark_forged', reason, w.seq);
    }
    return out;
  }

  /**
   * Retention removes events received more than the retention period ago.
   * The latest checkpoint whose head was below the watermark shows that the
   * event at the watermark arrived after it: if that is within the
   * retention period, retention cannot have removed it.
   */
  #watermarkTooFar(cp: ChainCheckpoints, watermark: number): string | undefined {
    if (this.#retentionMs === 0)
      return `the retention watermark moved to seq ${watermark} past the signed seq ${cp.newest.prunedSeq}, but retention is off (events are kept forever)`;
    let before: { timeUs: number; seq: number } | undefined;
    for (const p of cp.points) if (p.seq < watermark && (!before || p.timeUs > before.timeUs)) before = p;
    if (!before) return undefined;
    const cutoff = this.#now() - this.#retentionMs * 1000;
    if (before.timeUs - RECEIPT_GRACE_US < cutoff) return undefined;
    return `the retention watermark is at seq ${watermark}, but seq ${before.seq + 1} onwards arrived after the checkpoint of ${microsToRfc3339(before.timeUs)}, within the retention period of ${this.#retentionMs / 86_400_000} days: those events were deleted`;
  }

  /** Reports for chains a checkpoint signed that are not in the store at all. */
  missing(present: ReadonlySet<string>): ChainReport[] {
    const out: ChainReport[] = [];
    for (const [sidecarId, cp] of this.#chains) {
      if (present.has(sidecarId)) continue;
      const e = cp.newest;
      out.push({
        sidecarId,
        owner: {
          namespace: e.namespace,
          pod: e.pod,
          ...(e.podUID === undefined ? {} : { podUID: e.podUID }),
          serviceAccount: e.serviceAccount,
        },
        events: 0,
        head: { seq: e.seq, hash: e.hash },
        verifiedHead: { seq: 0, hash: '' },
        problems: [
          {
            kind: 'chain_deleted',
            seq: e.seq,
            message: `the checkpoint of ${microsToRfc3339(e.timeUs)} signed this chain at head seq ${e.seq}; the store has no such chain: it was deleted`,
            recordedAtIngest: false,
          },
        ],
        status: 'tampered',
      });
    }
    return out.sort((a, b) => (a.sidecarId < b.sidecarId ? -1 : 1));
  }
}

export interface CheckpointSources {
  readonly storage: 'embedded' | 'postgres';
  readonly dataDir: string;
  /** SPKI PEM public key (or a private key, whose public half is used). */
  readonly checkpointPublicKey?: string | undefined;
  readonly checkpointKeyFile?: string | undefined;
  readonly checkpointLog?: string | undefined;
}

export interface LoadedCheckpoints {
  readonly check?: CheckpointCheck;
  /** What an operator must know about what was (not) checked. */
  readonly warnings: readonly string[];
}

/**
 * The checks `audit verify` runs: the key from --checkpoint-public-key or
 * --checkpoint-key-file (for the embedded store, the generated key in the
 * data directory when neither is given); checkpoints from the store and the
 * log (--checkpoint-log, default <data-dir>/checkpoints.log).
 */
export async function loadCheckpoints(s: CheckpointSources, store: AuditStore): Promise<LoadedCheckpoints> {
  const warnings: string[] = [];
  const generated = join(s.dataDir, DEFAULT_KEY_FILE);
  const keyPath =
    s.checkpointPublicKey ??
    s.checkpointKeyFile ??
    (s.storage === 'embedded' && existsSync(generated) ? generated : undefined);
  if (!keyPath) {
    warnings.push(
      'no checkpoint key (--checkpoint-public-key or --checkpoint-key-file): chain heads and retention watermarks are trusted as stored',
    );
    return { warnings };
  }
  const check = new CheckpointCheck(loadPublicKey(keyPath));
  const logPath = s.checkpointLog ?? join(s.dataDir, DEFAULT_LOG_FILE);
  if (existsSync(logPath)) await check.loadFromLog(logPath);
  else if (s.checkpointLog) throw new ConfigError(`no checkpoint log at ${logPath}`);
  else
    warnings.push(
      `no checkpoint log at ${logPath} (--checkpoint-log): only the checkpoints stored in the database were checked, and whoever can write it can delete them`,
    );
  await check.loadFromStore(store);
  if (check.summary().verified === 0)
    warnings.push(
      'no checkpoint signed by this key was found: chain heads and retention watermarks are unchecked',
    );
  return { check, warnings };
}
