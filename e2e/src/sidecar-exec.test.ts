// kubectl exec through the sidecar, end to end: the real kubectl 1.32 (which
// opens exec as a WebSocket offering only v5.channel.k8s.io) → a real
// `chaperone sidecar` process → the real kube-apiserver (v1.20, which passes
// the upgrade on unchanged) → the stand-in kubelet. There is no kubelet on
// this control plane: the stand-in (a test double, kubelet-standin.ts)
// registers as the pod's Node and speaks what a 1.20 kubelet speaks —
// WebSocket up to v4 and SPDY, not v5 — so the sidecar must translate
// between kubectl's v5 and the kubelet's v4.
//
// What breaks these tests:
// - the sidecar passing kubectl's v5-only offer upstream (the stand-in answers
//   403, kubectl falls back to SPDY, which the sidecar refuses): no output;
// - a denial answered as plain HTTP instead of 101 + Status (tried: kubectl
//   then prints "Error from server (Forbidden): …", not "error: chaperone: …"
//   from the error channel);
// - the sidecar container not refused: the stand-in records an exec into it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { readSpoolDir } from '@chaperone/sidecar';
import { kubeInfo } from './environment.ts';
import { kubectlAsync } from './kubectl.ts';
import type { KubeletStandin } from './kubelet-standin.ts';
import { waitFor } from './process.ts';
import { type ExecStage, execStageSkip, startExecStage } from './sidecar-exec-stage.ts';
import type { SidecarUnderTest } from './sidecar-harness.ts';

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e-exec }
spec:
  defaultAction: allow
  rules:
    - name: no-rm
      match: { protocols: [exec], exec: { argv0: [rm] } }
      action: deny
      message: agents may not remove files in pods
`;

const kube = kubeInfo();

describe('sidecar: kubectl exec guarded and recorded', { skip: execStageSkip }, () => {
  let stage: ExecStage;
  let standin: KubeletStandin;
  let sc: SidecarUnderTest;
  const pod = 'target';
  const agent = (args: string[], input?: string) => stage.agent(args, input);
  const execRequests = () => standin.requests.filter((r) => r.kind === 'exec');

  before(async () => {
    // A pod shaped like an injected one: the agent's container and the sidecar's.
    stage = await startExecStage({ namespace: 'sexec', policy: POLICY, pod });
    ({ standin, sc } = stage);
  });
  after(() => stage?.stop());

  it('an allowed exec prints the output and returns the exit code; the kubelet spoke v4, and both ends are recorded', async () => {
    const before = execRequests().length;
    const r = await agent(['exec', pod, '-c', 'main', '--', 'sh', '-c', 'echo hello from the pod; exit 3']);
    assert.equal(r.stdout, 'hello from the pod\n');
    assert.equal(r.code, 3, r.stderr);
    const reqs = execRequests().slice(before);
    // One WebSocket session reached the kubelet: no SPDY fallback.
    assert.deepEqual(
      reqs.map((q) => [q.method, q.transport, q.status, q.protocol]),
      [['GET', 'websocket', 101, 'v4.channel.k8s.io']],
    );
    assert.deepEqual(reqs[0]?.offered, ['v5.channel.k8s.io', 'v4.channel.k8s.io']);
    const events = await waitFor(
      async () => {
        const all = readSpoolDir(sc.spoolDir).filter((e: AuditEvent) => e.chaperone.protocol === 'exec');
        const end = all.find((e) => e.stage === 'ResponseComplete' && e.chaperone.exec?.argv[0] === 'sh');
        return end ? all : undefined;
      },
      { what: 'the end event of the session', timeoutMs: 10_000, intervalMs: 100 },
    );
    const open = events.find((e) => e.stage === 'ResponseStarted');
    const end = events.find((e) => e.stage === 'ResponseComplete' && e.chaperone.sessionId === open?.auditID);
    assert.deepEqual(open?.chaperone.exec, {
      argv: ['sh', '-c', 'echo hello from the pod; exit 3'],
      container: 'main',
      stdin: false,
      tty: false,
    });
    assert.equal(open?.verb, 'create');
    assert.equal(end?.chaperone.exec?.exitCode, 3);
    assert.equal(end?.chaperone.exec?.bytesToAgent, 'hello from the pod\n'.length);
  });

  it('a denied command prints the rule and its message, exits non-zero, and never reaches the kubelet', async () => {
    const before = standin.requests.length;
    const r = await agent(['exec', pod, '-c', 'main', '--', 'rm', '-rf', '/important']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^error: chaperone: denied by rule "no-rm": agents may not remove files in pods$/m,
    );
    // Not the SPDY refusal: kubectl did not fall back.
    assert.doesNotMatch(r.stderr, /SPDY/);
    assert.equal(standin.requests.length, before);
  });

  it('exec into the sidecar container is refused, named or defaulted, and never reaches the kubelet', async () => {
    const before = standin.requests.length;
    const named = await agent(['exec', pod, '-c', 'chaperone-sidecar', '--', 'cat', '/proc/self/environ']);
    assert.notEqual(named.code, 0);
    assert.match(named.stderr, /denied by rule "chaperone-no-exec-into-sidecar"/);
    // kubectl picks the default container itself (the annotation names the sidecar here) and sends it.
    const annotated = await kubectlAsync(kube.kubeconfigPath, [
      'annotate',
      'pod',
      pod,
      '-n',
      stage.ns.name,
      'kubectl.kubernetes.io/default-container=chaperone-sidecar',
      '--overwrite',
    ]);
    assert.equal(annotated.code, 0, annotated.stderr);
    const defaulted = await agent(['exec', pod, '--', 'id']);
    assert.notEqual(defaulted.code, 0);
    assert.match(defaulted.stderr, /denied by rule "chaperone-no-exec-into-sidecar"/);
    const attach = await agent(['attach', pod, '-c', 'chaperone-sidecar']);
    assert.notEqual(attach.code, 0);
    assert.match(attach.stderr, /denied by rule "chaperone-no-exec-into-sidecar": attach into/);
    assert.equal(standin.requests.length, before);
  });

  it('piped stdin reaches the command; its end cannot pass a v1.20 kubelet, and the session says so', async () => {
    const r = await agent(['exec', '-i', pod, '-c', 'main', '--', 'cat'], 'piped line\n');
    assert.equal(r.stdout, 'piped line\n');
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /stdin ended, but the API server passes exec sessions to the kubelet over v4\.channel\.k8s\.io/,
    );
  });
});
