import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { prepareEvent } from '../events/incoming-event.ts';
import { SqliteStore } from '../store/sqlite-store.ts';
import { makeChain, TEST_SOURCE } from '../testing/test-events.ts';
import { memoryLogger } from '../testing/test-harness.ts';
import { CHECKPOINT_TYPE, type CheckpointPayload, openCheckpoint, signCheckpoint } from './checkpoints.ts';
import { generateSigningKey, loadPublicKey, loadSigningKey, publicKeyPem } from './checkpoints-key.ts';
import { CheckpointCheck, loadCheckpoints } from './checkpoints-verify.ts';
import { CheckpointWriter, createCheckpointWriter, DEFAULT_KEY_FILE } from './checkpoints-writer.ts';

const T0 = Date.UTC(2026, 0, 15, 12, 0, 0) * 1000;

function payload(kid: string, over: Partial<CheckpointPayload> = {}): CheckpointPayload {
  return {
    typ: CHECKPOINT_TYPE,
    kid,
    timeUs: T0,
    retentionMs: 0,
    chains: [
      {
        sidecarId: 'sc-0',
        namespace: 'agents',
        pod: 'agent-0',
        serviceAccount: 'agent',
        seq: 3,
        hash: 'a'.repeat(64),
        prunedSeq: 0,
        prunedHash: '0'.repeat(64),
      },
    ],
    ...over,
  };
}

const pub = (k: ReturnType<typeof generateSigningKey>) => ({ publicKey: k.publicKey, kid: k.kid });

describe('signed checkpoints', () => {
  it('open what was signed with the key, and nothing else', async () => {
    const key = generateSigningKey();
    const cp = await signCheckpoint(key, payload(key.kid));
    const opened = await openCheckpoint(pub(key), cp.jws);
    assert.equal(opened.kind, 'valid');
    assert.deepEqual(opened.kind === 'valid' && opened.payload, payload(key.kid));

    // The payload edited (head moved back) with the signature kept.
    const [h, , sig] = cp.jws.split('.');
    const edited = Buffer.from(JSON.stringify(payload(key.kid, { retentionMs: 1 }))).toString('base64url');
    const tampered = await openCheckpoint(pub(key), `${h}.${edited}.${sig}`);
    assert.equal(tampered.kind, 'invalid');

    // Signed by another key that claims this key's id: a forgery.
    const other = generateSigningKey();
    const forged = await signCheckpoint({ ...other, kid: key.kid }, payload(key.kid));
    assert.equal((await openCheckpoint(pub(key), forged.jws)).kind, 'invalid');

    // Signed by another key under its own id (before a rotation): not used, not a forgery.
    const rotated = await signCheckpoint(other, payload(other.kid));
    assert.deepEqual(await openCheckpoint(pub(key), rotated.jws), { kind: 'other_key', kid: other.kid });

    assert.equal((await openCheckpoint(pub(key), 'not a jws')).kind, 'invalid');
    const bad = await signCheckpoint(key, { ...payload(key.kid), chains: [{ sidecarId: 'x' }] } as never);
    assert.deepEqual(await openCheckpoint(pub(key), bad.jws), {
      kind: 'invalid',
      reason: 'a chain entry has no namespace',
    });
  });

  it('a forged checkpoint is reported and not trusted; each checkpoint counts once', async () => {
    const key = generateSigningKey();
    const check = new CheckpointCheck(pub(key), () => T0);
    const good = await signCheckpoint(key, payload(key.kid));
    assert.equal(await check.add(good.jws, 'log line 1'), true);
    assert.equal(await check.add(good.jws, 'stored checkpoint 1'), false);
    const other = generateSigningKey();
    const forged = await signCheckpoint(
      { ...other, kid: key.kid },
      payload(key.kid, { chains: [{ ...payload(key.kid).chains[0], sidecarId: 'sc-ghost' } as never] }),
    );
    assert.equal(await check.add(forged.jws, 'stored checkpoint 2'), false);
    const s = check.summary();
    assert.equal(s.verified, 1);
    assert.equal(s.chains, 1, 'the forged chain is not believed');
    assert.equal(s.invalid.length, 1);
    assert.match(s.invalid[0] as string, /^stored checkpoint 2: signature does not verify/);
    assert.deepEqual(
      check.missing(new Set()).map((r) => [r.sidecarId, r.problems[0]?.kind]),
      [['sc-0', 'chain_deleted']],
    );
  });
});

describe('checkpoint keys', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-cp-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('loads Ed25519 keys, derives the public half, and refuses other keys with the fix', () => {
    const key = generateSigningKey();
    const priv = join(dir, 'key.pem');
    writeFileSync(priv, key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    const pubFile = join(dir, 'pub.pem');
    writeFileSync(pubFile, publicKeyPem(key));
    assert.equal(loadSigningKey(priv).kid, key.kid);
    assert.equal(loadPublicKey(priv).kid, key.kid, 'the public half of the private key');
    assert.equal(loadPublicKey(pubFile).kid, key.kid);
    const rsa = join(dir, 'rsa.pem');
    writeFileSync(
      rsa,
      generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({
        type: 'pkcs8',
        format: 'pem',
      }) as string,
    );
    assert.throws(() => loadSigningKey(rsa), /holds a rsa key; checkpoints are signed with Ed25519/);
    writeFileSync(join(dir, 'junk.pem'), 'hello');
    assert.throws(() => loadSigningKey(join(dir, 'junk.pem')), /is not a PEM private key.*openssl genpkey/);
    assert.throws(() => loadSigningKey(join(dir, 'none.pem')), /cannot read the checkpoint signing key/);
  });

  it('embedded without a key: generates one (0600) and warns; PostgreSQL needs one or an explicit --without-checkpoints', async () => {
    const store = new SqliteStore({ dataDir: join(dir, 'data') });
    try {
      const logs: string[] = [];
      const base = { dataDir: join(dir, 'data'), checkpointInterval: 60_000, retention: 0 };
      const w = createCheckpointWriter({ ...base, storage: 'embedded' }, store, memoryLogger(logs));
      assert.ok(w);
      const keyFile = join(dir, 'data', DEFAULT_KEY_FILE);
      assert.equal(statSync(keyFile).mode & 0o777, 0o600);
      assert.match(logs.join(''), /no --checkpoint-key-file/);
      const again = createCheckpointWriter({ ...base, storage: 'embedded' }, store, memoryLogger([]));
      assert.ok(again, 'the generated key is reused');
      assert.equal(loadSigningKey(keyFile).kid, loadPublicKey(keyFile).kid);
      // PostgreSQL: replicas need one key, so none is generated; without one the collector does not
      // start unless the operator said --without-checkpoints (fails if the writer went on keyless).
      assert.throws(
        () => createCheckpointWriter({ ...base, storage: 'postgres' }, store, memoryLogger([])),
        /--storage postgres needs --checkpoint-key-file/,
      );
      const pgLogs: string[] = [];
      assert.equal(
        createCheckpointWriter(
          { ...base, storage: 'postgres', withoutCheckpoints: true },
          store,
          memoryLogger(pgLogs),
        ),
        undefined,
      );
      assert.match(pgLogs.join(''), /--without-checkpoints: chain heads are not checkpointed/);
      assert.throws(
        () =>
          createCheckpointWriter(
            { ...base, storage: 'postgres', checkpointKeyFile: keyFile, checkpointLog: join(keyFile, 'x') },
            store,
            memoryLogger([]),
          ),
        /cannot append to the checkpoint log/,
      );
    } finally {
      await store.close();
    }
  });

  it('the writer appends each checkpoint to the log and the store, and signs once more on stop', async () => {
    const store = new SqliteStore({ dataDir: join(dir, 'data') });
    try {
      const key = generateSigningKey();
      const log = join(dir, 'cp.log');
      let now = T0;
      const stdout: string[] = [];
      const w = new CheckpointWriter({
        store,
        key,
        logPath: log,
        logger: memoryLogger(stdout),
        intervalMs: 3_600_000,
        retentionMs: 0,
        now: () => now,
      });
      const { sidecarId, ...identity } = TEST_SOURCE;
      const events = makeChain(TEST_SOURCE, 4);
      const append = (from: number, to: number) =>
        store.append([
          {
            sidecarId,
            identity,
            events: events.slice(from, to).map((e) => prepareEvent(e, now)),
            receivedUs: now,
            rejectLeadingGap: false,
          },
        ]);
      await append(0, 2);
      w.start();
      await new Promise((r) => setTimeout(r, 50));
      now += 1_000_000;
      await append(2, 4);
      await w.stop();
      const lines = readFileSync(log, 'utf8').trim().split('\n');
      const stored = await store.listCheckpoints(0, 10);
      assert.deepEqual(
        stored.map((c) => c.jws),
        lines,
        'the same checkpoints in the log and the store, in order',
      );
      const heads = [];
      for (const jws of lines) {
        const o = await openCheckpoint(pub(key), jws);
        assert.equal(o.kind, 'valid');
        if (o.kind === 'valid') heads.push(...o.payload.chains.map((c) => [c.seq, c.prevSeq, c.prevUs]));
      }
      assert.deepEqual(heads, [
        [2, undefined, undefined],
        [4, 2, T0],
      ]);
      // verify's loader reads both and finds them the same checkpoints.
      const loaded = await loadCheckpoints(
        {
          storage: 'embedded',
          dataDir: join(dir, 'data'),
          checkpointPublicKey: undefined,
          checkpointLog: log,
        },
        store,
      );
      assert.deepEqual(loaded.warnings, [
        'no checkpoint key (--checkpoint-public-key or --checkpoint-key-file): chain heads and retention watermarks are trusted as stored',
      ]);
      const pubFile = join(dir, 'pub.pem');
      writeFileSync(pubFile, publicKeyPem(key));
      const withKey = await loadCheckpoints(
        { storage: 'embedded', dataDir: join(dir, 'data'), checkpointPublicKey: pubFile, checkpointLog: log },
        store,
      );
      assert.deepEqual(withKey.warnings, []);
      assert.deepEqual(
        [withKey.check?.summary().fromLog, withKey.check?.summary().fromStore],
        [2, 0],
        'the stored copies are the same checkpoints',
      );
      // The copy on stdout, as the cluster's log pipeline keeps it (other log lines mixed in): verify
      // reads the same checkpoints from it (fails if the writer stops logging them).
      const podLog = join(dir, 'collector-pod.log');
      writeFileSync(podLog, `${stdout.join('')}{"level":30,"msg":"unrelated"}\n`);
      const fromPodLog = await loadCheckpoints(
        {
          storage: 'embedded',
          dataDir: join(dir, 'empty'),
          checkpointPublicKey: pubFile,
          checkpointLog: podLog,
        },
        store,
      );
      assert.deepEqual(
        [fromPodLog.check?.summary().fromLog, fromPodLog.check?.summary().invalid],
        [2, []],
        'both checkpoints read back from the collector log',
      );
      await assert.rejects(
        loadCheckpoints(
          {
            storage: 'embedded',
            dataDir: dir,
            checkpointPublicKey: pubFile,
            checkpointLog: join(dir, 'gone.log'),
          },
          store,
        ),
        /no checkpoint log at/,
      );
    } finally {
      await store.close();
    }
  });
});
