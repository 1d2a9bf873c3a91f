/**
 * Signs checkpoints of the chain heads periodically and once more on
 * shutdown. Each is written twice: first appended (and fsynced) to a log
 * file outside the database — the copy a database administrator cannot
 * rewrite — then stored with the events. The heads are read from the store
 * (not hooked into ingest), so a checkpoint only ever claims what was
 * committed. With several replicas on one database, the holder of the
 * `checkpoints` lease signs.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, type Logger } from '@chaperone/shared';
import { nowMicros } from '../events/time.ts';
import type { AuditStore, ChainInfo } from '../store/store.ts';
import {
  CHECKPOINT_TYPE,
  type CheckpointHead,
  flattenedJws,
  MAX_CHAINS_PER_CHECKPOINT,
  type StoredCheckpoint,
  signCheckpoint,
} from './checkpoints.ts';
import {
  loadOrCreateSigningKey,
  loadSigningKey,
  type PublicKey,
  type SigningKey,
} from './checkpoints-key.ts';

export interface CheckpointWriterOptions {
  store: AuditStore;
  key: SigningKey;
  /** Append-only log of checkpoints outside the database (one compact JWS per line); none: store only. */
  logPath?: string;
  logger: Logger;
  intervalMs: number;
  retentionMs: number;
  /** µs since the epoch. */
  now?: () => number;
}

/** Appends one line and fsyncs it before returning. */
export function appendCheckpointLog(path: string, jws: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const fd = openSync(path, 'a', 0o600);
  try {
    writeSync(fd, `${jws}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function headOf(c: ChainInfo): CheckpointHead {
  return {
    sidecarId: c.sidecarId,
    namespace: c.owner.namespace,
    pod: c.owner.pod,
    ...(c.owner.podUID === undefined ? {} : { podUID: c.owner.podUID }),
    serviceAccount: c.owner.serviceAccount,
    seq: c.head.seq,
    hash: c.head.hash,
    prunedSeq: c.pruned.seq,
    prunedHash: c.pruned.hash,
  };
}

interface Signed {
  readonly state: string;
  readonly seq: number;
}

const stateOf = (h: CheckpointHead) => `${h.seq}:${h.hash}:${h.prunedSeq}:${h.prunedHash}`;

export class CheckpointWriter {
  readonly #o: CheckpointWriterOptions;
  readonly #abort = new AbortController();
  /** What this process last signed per chain; empty after start or a lease change, so all are signed again. */
  #signed = new Map<string, Signed>();
  /** When this process last read and signed every changed head (the state in #signed held then). */
  #lastRunUs: number | undefined;
  #loop: Promise<void> | undefined;
  #running: Promise<number> = Promise.resolve(0);

  constructor(opts: CheckpointWriterOptions) {
    this.#o = opts;
  }

  /** The signing key's public half (the query API checks checkpoints with it: query/chain-route.ts). */
  get publicKey(): PublicKey {
    return { publicKey: this.#o.key.publicKey, kid: this.#o.key.kid };
  }

  start(): void {
    this.#loop ??= (async () => {
      while (!this.#abort.signal.aborted) {
        await this.#safeRun();
        await sleep(this.#o.intervalMs, undefined, { signal: this.#abort.signal }).catch(() => {});
      }
    })();
  }

  /** Stops the timer and signs a last checkpoint of what was committed before. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    await this.#safeRun();
  }

  async #safeRun(): Promise<void> {
    try {
      await this.runOnce();
    } catch (err) {
      this.#o.logger.error({ err }, 'signing a checkpoint of the chain heads failed');
    }
  }

  /** Signs and writes checkpoints for every chain that changed; returns how many chains were signed. */
  runOnce(): Promise<number> {
    // One pass at a time (the timer and stop() may overlap).
    this.#running = this.#running.catch(() => 0).then(() => this.#run());
    return this.#running;
  }

  async #run(): Promise<number> {
    const { store, key, logger } = this.#o;
    if (!(await store.tryLease('checkpoints'))) {
      this.#signed = new Map();
      this.#lastRunUs = undefined;
      return 0;
    }
    const timeUs = this.#o.now?.() ?? nowMicros();
    const prevUs = this.#lastRunUs;
    // Until this pass has written everything, the previous state is not vouched for.
    this.#lastRunUs = undefined;
    const changed: CheckpointHead[] = [];
    for (const h of (await store.listChains()).map(headOf)) {
      const before = this.#signed.get(h.sidecarId);
      if (before?.state === stateOf(h)) continue;
      changed.push(prevUs === undefined ? h : { ...h, prevSeq: before?.seq ?? 0, prevUs });
    }
    for (let i = 0; i < changed.length; i += MAX_CHAINS_PER_CHECKPOINT) {
      const chains = changed.slice(i, i + MAX_CHAINS_PER_CHECKPOINT);
      const cp: StoredCheckpoint = await signCheckpoint(key, {
        typ: CHECKPOINT_TYPE,
        kid: key.kid,
        timeUs,
        retentionMs: this.#o.retentionMs,
        chains,
      });
      // A third copy on stdout: the cluster's log pipeline carries it off the node,
      // where neither a database administrator nor this pod's volume can lose it
      // (`audit verify --checkpoint-log` reads these log lines as well). In the JWS
      // JSON serialisation: the log's redaction hides anything shaped like a JWT.
      logger.info(
        { checkpoint: flattenedJws(cp.jws), chains: chains.length, kid: key.kid },
        'signed a checkpoint',
      );
      if (this.#o.logPath) {
        try {
          appendCheckpointLog(this.#o.logPath, cp.jws);
        } catch (err) {
          logger.error({ err, path: this.#o.logPath }, 'appending to the checkpoint log failed');
        }
      }
      await store.appendCheckpoint(cp);
      for (const h of chains) this.#signed.set(h.sidecarId, { state: stateOf(h), seq: h.seq });
    }
    this.#lastRunUs = timeUs;
    if (changed.length > 0)
      logger.debug({ chains: changed.length, kid: key.kid }, 'checkpointed the changed chains');
    return changed.length;
  }
}

export const DEFAULT_KEY_FILE = 'checkpoint-key.pem';
export const DEFAULT_LOG_FILE = 'checkpoints.log';

export interface CheckpointSettings {
  readonly storage: 'embedded' | 'postgres';
  readonly dataDir: string;
  readonly checkpointKeyFile?: string | undefined;
  readonly checkpointLog?: string | undefined;
  readonly checkpointInterval: number;
  readonly retention: number;
  readonly withoutCheckpoints?: boolean;
}

/**
 * The checkpoint writer for a collector's settings, validated at start: a
 * configured key must be a readable Ed25519 key and the log must be
 * writable. Without a key, the embedded store gets one generated in its
 * data directory (with a warning: that key sits beside the database, so it
 * is only as safe as the directory). PostgreSQL needs one key for all its
 * replicas (checkCollectorConfig refuses to start without one) unless the
 * operator said --without-checkpoints, which runs without and warns.
 */
export function createCheckpointWriter(
  c: CheckpointSettings,
  store: AuditStore,
  logger: Logger,
): CheckpointWriter | undefined {
  let key: SigningKey;
  if (c.checkpointKeyFile) key = loadSigningKey(c.checkpointKeyFile);
  else if (c.storage === 'embedded') {
    const path = join(c.dataDir, DEFAULT_KEY_FILE);
    const { key: k, created } = loadOrCreateSigningKey(path);
    key = k;
    logger.warn(
      { path, kid: key.kid, created },
      'no --checkpoint-key-file: checkpoints are signed with a key in the data directory; anyone who can write the database file can read it — mount a key from a Secret for tamper evidence against them',
    );
  } else if (c.withoutCheckpoints) {
    logger.warn(
      '--without-checkpoints: chain heads are not checkpointed, and `audit verify` cannot tell a deleted tail, a deleted chain, a rewritten chain or a forged retention watermark from an intact store',
    );
    return undefined;
  } else {
    throw new ConfigError(
      '--storage postgres needs --checkpoint-key-file (one key for every replica), or --without-checkpoints',
    );
  }
  const logPath = c.checkpointLog ?? join(c.dataDir, DEFAULT_LOG_FILE);
  try {
    mkdirSync(dirname(logPath), { recursive: true, mode: 0o700 });
    closeSync(openSync(logPath, 'a', 0o600));
  } catch (err) {
    throw new ConfigError(
      `cannot append to the checkpoint log ${logPath}: ${(err as Error).message} (set --checkpoint-log to a writable file)`,
    );
  }
  logger.info({ kid: key.kid, log: logPath }, 'signing checkpoints of the chain heads');
  return new CheckpointWriter({
    store,
    key,
    logPath,
    logger,
    intervalMs: c.checkpointInterval,
    retentionMs: c.retention,
  });
}
