// kubectl exec sessions recorded as asciicast v2 and streamed to the collector while they run:
// the real kubectl 1.32 → a real `chaperone sidecar` process → the real kube-apiserver (v1.20)
// → the stand-in kubelet, with the sidecar shipping its spool to a real `chaperone collector`
// process (pod-bound token from the TokenRequest API, as in collector-sidecar.test.ts). There
// is no kubelet on this control plane: the stand-in (a test double, kubelet-standin.ts)
// registers as the target pod's Node, speaks what a 1.20 kubelet speaks and runs each command
// as a local process. The recordings are then read with Debian's asciinema 2.2 (`cat` and
// `play`), as an operator would after `chaperone recording export`.
//
// What breaks these tests:
// - the sidecar recording output before its masking/filter hook or dropping a frame, or the
//   collector storing chunks out of order: `asciinema cat` then differs from kubectl's output;
// - chunks acknowledged before they are stored, or not sent again after the collector comes
//   back (tried: the shipper resending nothing after a welcome): the recording never gets
//   its end, or has a hole the collector refuses;
// - the size cap not applied, or its marker missing from the recording or the close event.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { boundToken, clusterCollectorArgs, createAgentPod } from './collector-kube.ts';
import {
  CHAPERONE_BIN,
  type CollectorProcess,
  childEnv,
  startCollectorProcess,
} from './collector-process.ts';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { kubectl, kubectlAsync } from './kubectl.ts';
import { createBoundPod, registerNode, type StandinNode } from './kubelet/node.ts';
import { type KubeletStandin, startKubeletStandin } from './kubelet-standin.ts';
import { freePort } from './ports.ts';
import { waitFor } from './process.ts';
import { type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';
import { ensurePackages } from './system-packages.ts';

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e-exec-recording }
spec:
  defaultAction: allow
  rules: []
`;
const QUERY_TOKEN = 'exec-recording-query-token-0123';
/** The sidecar's per-session recording limit here (--exec-recording-max-bytes). */
const CAP = 64 * 1024;
const TRUNCATED = `\r\n\x1b[7m[chaperone: the recording of this session stops here: it reached its limit of ${CAP} bytes; the session went on unrecorded]\x1b[0m\r\n`;

const kube = kubeInfo();

describe('sidecar: exec sessions recorded and streamed to the collector', {
  skip:
    kube.mode !== 'local' &&
    'the stand-in kubelet listens on this machine’s loopback, which only the local control plane reaches',
}, () => {
  let standin: KubeletStandin;
  let node: StandinNode;
  let ns: TestNamespace;
  let dir: string;
  let collector: CollectorProcess;
  let sc: SidecarUnderTest;
  const target = 'target';

  const startCollector = (name: string, port: number, queryPort?: number) =>
    startCollectorProcess({
      name,
      port,
      ...(queryPort ? { queryPort } : {}),
      logDir: dir,
      args: [
        ...clusterCollectorArgs(join(dir, 'data')),
        '--query-tokens-file',
        join(dir, 'query-tokens'),
        '--log-level',
        'warn',
      ],
    });

  const agent = (args: string[]) =>
    kubectlAsync(sc.agentKubeconfig, ['--cache-dir', join(dir, 'kube-cache'), ...args], {
      timeoutMs: 60_000,
    });

  const query = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${collector.queryUrl}${path}`, {
      headers: { authorization: `Bearer ${QUERY_TOKEN}` },
    });
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    return (await res.json()) as T;
  };

  /** The session id of the exec of `argv`, from its open event at the collector. */
  const sessionOf = (argv: readonly string[]) =>
    waitFor(
      async () => {
        const { items } = await query<{ items: AuditEvent[] }>(
          `/v1/events?namespace=${ns.name}&protocol=exec&limit=100`,
        );
        return items.find(
          (e) =>
            e.stage === 'ResponseStarted' && JSON.stringify(e.chaperone.exec?.argv) === JSON.stringify(argv),
        )?.chaperone.sessionId;
      },
      { what: 'the open event of the session at the collector', timeoutMs: 30_000, intervalMs: 100 },
    );

  /** The recording as the collector serves it, once `done` says it is. */
  const recordingWhen = (session: string, done: (text: string) => boolean, what: string) =>
    waitFor(
      async () => {
        const res = await fetch(`${collector.queryUrl}/v1/sessions/${session}/recording`, {
          headers: { authorization: `Bearer ${QUERY_TOKEN}` },
        });
        const text = await res.text();
        return res.status === 200 && done(text) ? text : undefined;
      },
      { what, timeoutMs: 60_000, intervalMs: 100 },
    );

  /** The close event of a session at the collector. */
  const closeEventOf = (session: string) =>
    waitFor(
      async () => {
        const s = await query<{ events: AuditEvent[] }>(`/v1/sessions/${session}`);
        return s.events.find((e) => e.stage === 'ResponseComplete');
      },
      { what: 'the close event of the session', timeoutMs: 30_000, intervalMs: 100 },
    );

  const chaperone = (args: string[]) =>
    spawnSync(process.execPath, [CHAPERONE_BIN, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
      env: childEnv({ CHAPERONE_COLLECTOR_URL: collector.queryUrl, CHAPERONE_TOKEN: QUERY_TOKEN }),
    });

  /** `chaperone recording export`, then the file. */
  const exported = (session: string): string => {
    const file = join(dir, `${session}.cast`);
    const r = chaperone(['recording', 'export', session, '-o', file]);
    assert.equal(r.status, 0, r.stderr);
    return readFileSync(file, 'utf8');
  };

  /**
   * What Debian's asciinema prints for a .cast file. `asciinema cat` reads keys from /dev/tty,
   * so it runs under script(1)'s pseudo-terminal; its output goes to a file, byte for byte.
   */
  const asciinema = (args: string[], cast: string): string => {
    const file = join(dir, 'play.cast');
    const out = join(dir, 'asciinema.out');
    writeFileSync(file, cast);
    const r = spawnSync('script', ['-qec', `asciinema ${args.join(' ')} '${file}' > '${out}'`, '/dev/null'], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LANG: 'C.UTF-8' },
    });
    assert.equal(r.status, 0, `asciinema ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return readFileSync(out, 'utf8');
  };

  before(async () => {
    ensurePackages(['asciinema'], 'asciinema for the exec recording end-to-end test', (l) =>
      process.stderr.write(`${l}\n`),
    );
    dir = mkdtempSync(join(tmpdir(), 'chaperone-exec-rec-'));
    standin = await startKubeletStandin({ lifetimeMs: 10 * 60_000 });
    node = registerNode(kube.kubeconfigPath, { port: standin.port });
    ns = await createNamespace('srec');
    await createBoundPod(kube.kubeconfigPath, {
      namespace: ns.name,
      name: target,
      node: node.name,
      containers: [{ name: 'main' }],
    });
    // The sidecar's own pod, which its collector token is bound to.
    const sa = kubectl(kube.kubeconfigPath, ['create', 'serviceaccount', 'agent', '-n', ns.name]);
    assert.equal(sa.code, 0, sa.stderr);
    const pod = createAgentPod(ns.name, 'agent-0', 'agent');
    writeFileSync(join(dir, 'query-tokens'), `${QUERY_TOKEN} security *\n`, { mode: 0o600 });
    const tokenFile = join(dir, 'collector-token');
    writeFileSync(tokenFile, boundToken(pod), { mode: 0o600 });
    collector = await startCollector('collector-exec-rec', await freePort());
    sc = await startSidecar({
      namespace: ns.name,
      policy: POLICY,
      pod: 'agent-0',
      extraArgs: [
        '--pod-uid',
        pod.uid,
        '--collector-url',
        collector.url,
        '--collector-token-file',
        tokenFile,
        '--exec-recording-max-bytes',
        String(CAP),
      ],
    });
  });
  after(async () => {
    await sc?.stop();
    await collector?.stop();
    await ns?.delete();
    node?.delete();
    await standin?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a recording replays with asciinema to exactly what the agent saw; the close event sizes it', async () => {
    const argv = [
      'sh',
      '-c',
      "printf 'hello \\033[1;32mgreen\\033[0m é ✓\\tcol\\r\\nsecond line\\n'; printf 'last, no newline'; exit 3",
    ];
    const r = await agent(['exec', target, '-c', 'main', '--', ...argv]);
    assert.equal(r.code, 3, r.stderr);
    const seen = r.stdout;
    assert.equal(seen, 'hello \x1b[1;32mgreen\x1b[0m é ✓\tcol\r\nsecond line\nlast, no newline');
    const session = await sessionOf(argv);
    const stored = await recordingWhen(session, (t) => t.includes('"m","exit 3"'), 'the whole recording');
    const cast = exported(session);
    assert.equal(cast, stored);
    assert.equal(asciinema(['cat'], cast), seen);
    assert.equal(asciinema(['play', '-s', '100', '-i', '0.1'], cast), seen);
    const end = await closeEventOf(session);
    assert.deepEqual(
      [
        end.chaperone.exec?.exitCode,
        end.chaperone.exec?.recordingBytes,
        end.chaperone.exec?.recordingTruncated,
      ],
      [3, Buffer.byteLength(stored), false],
    );
    // The operator's replay: the events, then the output (colours pass, nothing else was in it).
    const replay = chaperone(['replay', session, '--cat']);
    assert.equal(replay.status, 0, replay.stderr);
    const played = replay.stdout.split('--- recording ---\n')[1] ?? '';
    assert.equal(played, `${seen}\x1b[0m\r\n--- end of recording: exit 3 ---\n`);
  });

  it('the collector killed during a session and restarted: the recording arrives complete', async () => {
    const argv = ['sh', '-c', 'i=1; while [ $i -le 30 ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done'];
    const running = agent(['exec', target, '-c', 'main', '--', ...argv]);
    const session = await sessionOf(argv);
    // Some of it is at the collector, then the collector dies (chunks in flight are lost with it).
    await recordingWhen(session, (t) => t.includes('line 3\\n'), 'the first lines at the collector');
    await collector.kill9();
    // The session goes on and ends while the collector is down: the rest waits in the spool.
    const r = await running;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, Array.from({ length: 30 }, (_, i) => `line ${i + 1}\n`).join(''));
    collector = await startCollector(
      'collector-exec-rec-2',
      Number(new URL(collector.url).port),
      collector.queryPort,
    );
    const stored = await recordingWhen(
      session,
      (t) => t.includes('"m","exit 0"'),
      'the rest of the recording after the restart',
    );
    assert.equal(asciinema(['cat'], exported(session)), r.stdout);
    const end = await closeEventOf(session);
    assert.equal(end.chaperone.exec?.recordingBytes, Buffer.byteLength(stored));
  });

  it('a recording past the size limit stops with a marker; the session goes on; the close event says so', async () => {
    const line = (i: number) => `line ${i} of an output longer than the recording limit`;
    const argv = [
      'sh',
      '-c',
      'i=0; while [ $i -lt 2000 ]; do echo "line $i of an output longer than the recording limit"; i=$((i+1)); done',
    ];
    const r = await agent(['exec', target, '-c', 'main', '--', ...argv]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, Array.from({ length: 2000 }, (_, i) => `${line(i)}\n`).join(''));
    const session = await sessionOf(argv);
    const stored = await recordingWhen(session, (t) => t.includes('"m","exit 0"'), 'the capped recording');
    assert.ok(Buffer.byteLength(stored) <= CAP, `${Buffer.byteLength(stored)} bytes`);
    assert.match(stored, new RegExp(`"m","recording truncated at its limit of ${CAP} bytes"`));
    const shown = asciinema(['cat'], exported(session));
    assert.ok(shown.endsWith(TRUNCATED), JSON.stringify(shown.slice(-200)));
    const before = shown.slice(0, -TRUNCATED.length);
    assert.ok(before.length > CAP / 2, `${before.length} characters recorded`);
    assert.ok(before === r.stdout.slice(0, before.length), 'what was recorded is what the agent saw');
    const end = await closeEventOf(session);
    assert.deepEqual(
      [end.chaperone.exec?.recordingTruncated, end.chaperone.exec?.recordingBytes],
      [true, Buffer.byteLength(stored)],
    );
  });
});
