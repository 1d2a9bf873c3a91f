// Clients that use exec for more than a command, through the sidecar, end to
// end: `kubectl cp` both ways (an exec of `tar` with the archive on stdin or
// stdout) and @kubernetes/client-node's Exec. The real kubectl 1.32 and
// client-node → a real `chaperone sidecar` process → the real kube-apiserver
// (v1.20, which passes the upgrade on unchanged) → the stand-in kubelet. There
// is no kubelet on this control plane: the stand-in (a test double,
// kubelet-standin.ts) registers as the pod's Node, speaks WebSocket up to v4
// and SPDY like a 1.20 kubelet, and runs each command as a local process in
// the container's scratch directory — the "pod's filesystem" here.
//
// What breaks these tests:
// - the masker or the translation changing bytes of a binary stream: the
//   copied file differs (the file has every byte value and a canary JWT the
//   value detectors would rewrite if they ran on it — they do: the copy from
//   the pod carries the archive as the agent sees it, so the JWT is masked
//   in it, which the test states);
// - the audit not carrying argv: the events do not show `tar`;
// - the agent's stdin end lost silently on a v4 kubelet: kubectl cp into the
//   pod hangs instead of ending with the sidecar's message.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { readSpoolDir } from '@chaperone/sidecar';
import * as k8s from '@kubernetes/client-node';
import { waitFor } from './process.ts';
import { type ExecStage, execStageSkip, startExecStage } from './sidecar-exec-stage.ts';

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e-exec-clients }
spec:
  defaultAction: allow
  rules:
    - name: no-rm
      match: { protocols: [exec], exec: { argv0: [rm] } }
      action: deny
      message: agents may not remove files in pods
`;

/** A fake JWT: the value detectors mask it in what the agent reads. */
const CANARY_JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnktY3AifQ.c2lnbmF0dXJlLWNhbmFyeS1jcC0xMjM0';

/** Session end events of exec sessions whose argv starts with `program`. */
function ends(spoolDir: string, program: string): AuditEvent[] {
  return (readSpoolDir(spoolDir) as AuditEvent[]).filter(
    (e) =>
      e.chaperone.protocol === 'exec' &&
      e.stage === 'ResponseComplete' &&
      e.chaperone.exec?.argv[0] === program,
  );
}

describe('sidecar: kubectl cp and @kubernetes/client-node exec', { skip: execStageSkip }, () => {
  let stage: ExecStage;
  let local: string;
  const pod = 'files';
  /** The pod's filesystem as the stand-in runs its commands. */
  const podDir = () => stage.standin.container(stage.ns.name, pod, 'main').workDir;

  before(async () => {
    stage = await startExecStage({ namespace: 'scp', policy: POLICY, pod });
    local = mkdtempSync(join(tmpdir(), 'chaperone-cp-'));
  });
  after(async () => {
    await stage?.stop();
    if (local) rmSync(local, { recursive: true, force: true });
  });

  it('kubectl cp from the pod: tar over stdout arrives whole, audited with its argv', async () => {
    const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256));
    writeFileSync(join(podDir(), 'data.bin'), bytes);
    const r = await stage.agent(['cp', '-c', 'main', `${pod}:${podDir()}/data.bin`, join(local, 'data.bin')]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(join(local, 'data.bin')), bytes);
    const end = await waitFor(async () => ends(stage.sc.spoolDir, 'tar')[0], {
      what: 'the end event of the tar session',
      timeoutMs: 10_000,
    });
    assert.equal(end.chaperone.exec?.argv.includes('cf'), true, JSON.stringify(end.chaperone.exec?.argv));
    // kubectl may close the session as soon as the archive is whole, before the kubelet's status frame is
    // read (the two come over different sockets): the exit code is recorded when it came, and is then 0.
    assert.ok(
      end.chaperone.exec?.exitCode === undefined || end.chaperone.exec.exitCode === 0,
      JSON.stringify(end.chaperone.exec),
    );
    assert.equal(end.chaperone.exec?.stdin, false);
  });

  it('kubectl cp from the pod never brings a secret out: the archive is output, masked as any', async () => {
    writeFileSync(join(podDir(), 'token.txt'), `token=${CANARY_JWT}\n`);
    const r = await stage.agent([
      'cp',
      '-c',
      'main',
      `${pod}:${podDir()}/token.txt`,
      join(local, 'token.txt'),
    ]);
    // The JWT is replaced inside the tar stream, so the member is shorter than its header says: tar
    // reports the archive cut short or writes the masked text. Either way the token stays in the pod.
    let copied = '';
    try {
      copied = readFileSync(join(local, 'token.txt'), 'latin1');
    } catch {
      // not written
    }
    assert.ok(!`${copied}${r.stdout}${r.stderr}`.includes(CANARY_JWT.slice(20)), `${r.code} ${r.stderr}`);
  });

  it('kubectl cp into the pod: the archive arrives on stdin; a v4 kubelet cannot be told stdin ended, and the session says so', async () => {
    const content = `copied in ${'x'.repeat(10_000)}\n`;
    writeFileSync(join(local, 'in.txt'), content);
    const r = await stage.agent(['cp', '-c', 'main', join(local, 'in.txt'), `${pod}:${podDir()}/in.txt`]);
    // tar read the archive, then waited for the end of its stdin (GNU tar fills its 10 KiB record
    // before it writes the last part), which the v1.20 kubelet cannot be sent (v4.channel.k8s.io has
    // no half-close): the sidecar ends the session after its grace period, and the kubelet closes the
    // command's stdin as the connection goes, so tar then finishes the file — after kubectl returned.
    const complete = await waitFor(
      async () => {
        const arrived = readFileSync(join(podDir(), 'in.txt'), 'utf8');
        return arrived === content ? arrived.length : undefined;
      },
      { what: `the copied file to be complete (kubectl: ${r.code} ${r.stderr})`, timeoutMs: 10_000 },
    );
    assert.equal(complete, content.length);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /stdin ended, but the API server passes exec sessions to the kubelet over v4\.channel\.k8s\.io/,
    );
    // The end of the previous test's `tar cf` session may be written after this one starts, so the
    // session is picked by its arguments (kubectl runs `tar -xmf - -C <dir>` for a copy in).
    const isExtract = (e: AuditEvent) =>
      (e.chaperone.exec?.argv ?? []).some((a) => a.startsWith('-') && a.includes('x'));
    const end = await waitFor(async () => ends(stage.sc.spoolDir, 'tar').find(isExtract), {
      what: 'the end event of the tar x session',
      timeoutMs: 10_000,
    });
    assert.equal(end.chaperone.exec?.stdin, true);
    assert.ok((end.chaperone.exec?.bytesToPod ?? 0) >= content.length);
  });

  it('@kubernetes/client-node Exec: output, the exit status, and the rule of a denied command', async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(stage.sc.agentKubeconfig);
    const exec = new k8s.Exec(kc);
    const collect = () => {
      let text = '';
      const w = new Writable({
        write(chunk: Buffer, _enc, cb) {
          text += chunk.toString('utf8');
          cb();
        },
      });
      return { w, text: () => text };
    };
    const run = async (argv: string[]) => {
      const out = collect();
      const err = collect();
      const status = await new Promise<k8s.V1Status>((resolve, reject) => {
        exec
          .exec(stage.ns.name, pod, 'main', argv, out.w, err.w, null, false, (s) => resolve(s))
          .then((ws) =>
            ws.on('close', () => setTimeout(() => reject(new Error('closed without a status')), 2000)),
          )
          .catch(reject);
      });
      return { status, stdout: out.text(), stderr: err.text() };
    };
    const before = stage.standin.requests.length;
    const ok = await run(['sh', '-c', 'echo out; echo err >&2; exit 4']);
    assert.equal(ok.stdout, 'out\n');
    assert.equal(ok.stderr, 'err\n');
    assert.equal(ok.status.status, 'Failure');
    assert.deepEqual(ok.status.details?.causes, [{ reason: 'ExitCode', message: '4' }]);
    // client-node offers v5 first: the sidecar speaks it with the client and v4 with the 1.20 kubelet.
    const [req] = stage.standin.requests.slice(before).filter((q) => q.kind === 'exec');
    assert.equal(req?.protocol, 'v4.channel.k8s.io');

    // Wrapped in sh -c, rm is still judged as its own argv (exec-decision.ts).
    const seen = stage.standin.requests.length;
    const denied = await run(['sh', '-c', 'rm -rf /important']);
    assert.equal(denied.status.status, 'Failure');
    assert.match(
      String(denied.status.message),
      /denied by rule "no-rm": agents may not remove files in pods/,
    );
    assert.equal(stage.standin.requests.length, seen, 'the denied command never reached the kubelet');
  });
});
