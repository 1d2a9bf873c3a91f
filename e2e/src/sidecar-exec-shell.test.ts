// Shells and secrets in exec sessions, end to end: the real kubectl 1.32 →
// a real `chaperone sidecar` process → the real kube-apiserver (v1.20, which
// hands the session to the kubelet over v4.channel.k8s.io) → the stand-in
// kubelet (a test double: there is no kubelet on this control plane;
// kubelet-standin.ts), which runs each command as a local process in the
// container's scratch directory — on a pseudo-terminal for `kubectl exec -it`,
// where kubectl itself runs under the same pty relay, as a person's terminal.
// Real dash and bash read what the sidecar lets through.
//
// What breaks these tests:
// - the input guard off, or the refused line's Enter passed on: denied-file is
//   created and allowed-file removed;
// - CANCEL_LINE not cancelling the line in dash's or bash's editor: the next
//   line runs with the refused text in front of it, and after-file is not
//   created (or the refused line runs);
// - piped stdin passed whole: piped-after is created;
// - output masking off, or the named Secret not read: the canary values reach
//   kubectl's stdout and the spool (events and recording).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { readSpoolDir } from '@chaperone/sidecar';
import { kubeInfo } from './environment.ts';
import { kubectl, kubectlPath } from './kubectl.ts';
import { PTY_RELAY, python3 } from './kubelet/container-command.ts';
import { waitFor } from './process.ts';
import { type ExecStage, execStageSkip, startExecStage } from './sidecar-exec-stage.ts';

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e-exec-shell }
spec:
  defaultAction: allow
  rules:
    - name: no-rm
      match: { protocols: [exec], exec: { argv0: [rm] } }
      action: deny
      message: agents may not remove files in pods
    - name: mask-canary
      match: { protocols: [exec], exec: { commands: [canary] } }
      action: mask
      mask: { secrets: [canary-secret] }
`;

const DENIED = 'chaperone: denied by rule "no-rm": agents may not remove files in pods';

// Canaries: a JWT-shaped value, a real private key, and the value of a Secret the mask rule names.
const JWT =
  'eyJhbGciOiJSUzI1NiIsImtpZCI6ImNhbmFyeSJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2FuYXJ5In0.Y2FuYXJ5LXNpZ25hdHVyZS1ieXRlcy0xMjM0NTY3ODkw';
const KEY = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
  type: 'pkcs8',
  format: 'pem',
}) as string;
const KEY_LINE = KEY.split('\n')[5] as string;
const SECRET_VALUE = 'canary-db-password-7f3a9c';

const kube = kubeInfo();

/** Every exec event of the session whose close event matches `test`, once it is written. */
async function sessionEvents(
  spoolDir: string,
  test: (end: AuditEvent) => boolean,
): Promise<{ end: AuditEvent; lines: AuditEvent[] }> {
  return waitFor(
    async () => {
      const all = readSpoolDir(spoolDir) as AuditEvent[];
      const end = all.find((e) => e.chaperone.exec?.durationMs !== undefined && test(e));
      if (!end) return undefined;
      const lines = all.filter(
        (e) => e.chaperone.sessionId === end.chaperone.sessionId && e.chaperone.exec?.line !== undefined,
      );
      return { end, lines };
    },
    { what: 'the close event of the session', timeoutMs: 10_000, intervalMs: 100 },
  );
}

describe('sidecar: shells and secrets in kubectl exec', { skip: execStageSkip }, () => {
  let stage: ExecStage;
  let workDir: string;
  const background = new Set<ChildProcess>();

  before(async () => {
    stage = await startExecStage({ namespace: 'sshell', policy: POLICY });
    workDir = stage.standin.container(stage.ns.name, stage.pod, 'main').workDir;
  });
  after(async () => {
    for (const c of background) c.kill('SIGKILL');
    await stage?.stop();
  });

  /** `kubectl exec -it` on a pseudo-terminal: what the screen shows, and keys typed into it. */
  function terminal(argv: readonly string[]) {
    const py = python3();
    const child = spawn(
      py.command,
      [
        ...py.args,
        PTY_RELAY,
        kubectlPath(),
        '--cache-dir',
        join(stage.sc.dir, 'kube-cache'),
        'exec',
        '-it',
        stage.pod,
        '-c',
        'main',
        '--',
        ...argv,
      ],
      {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, KUBECONFIG: stage.sc.agentKubeconfig },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    background.add(child);
    let screen = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      screen += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      screen += d;
    });
    const exited = new Promise<number | null>((r) => child.once('close', r));
    const shows = async (what: string | RegExp, timeoutMs = 15_000) => {
      try {
        await waitFor(async () => (typeof what === 'string' ? screen.includes(what) : what.test(screen)), {
          what: `the terminal to show ${what}`,
          timeoutMs,
          intervalMs: 50,
        });
      } catch (err) {
        throw new Error(`${(err as Error).message}; it shows ${JSON.stringify(screen)}`);
      }
    };
    return { type: (keys: string) => child.stdin?.write(keys), screen: () => screen, shows, exited };
  }

  const file = (name: string) => join(workDir, name);
  const appears = (name: string) =>
    waitFor(async () => existsSync(file(name)), {
      what: `${name} to be created`,
      timeoutMs: 15_000,
      intervalMs: 50,
    });

  for (const [shell, argv] of [
    ['dash (the kernel edits its lines)', ['sh']],
    ['bash (readline edits its lines)', ['bash', '--norc', '--noprofile']],
  ] as const) {
    it(`kubectl exec -it -- ${argv[0]}: ${shell}: an allowed line runs, a denied one never does and its message is shown`, async () => {
      const tag = argv[0];
      const t = terminal(argv);
      await t.shows(/[$#] $/);
      t.type(`touch ${tag}-allowed\r`);
      await appears(`${tag}-allowed`);
      t.type(`touch ${tag}-denied; rm -f ${tag}-allowed\r`);
      await t.shows(DENIED);
      t.type('stty -echo\r');
      await t.shows('chaperone-no-line-editor-changes');
      // A line after the refusals runs: had the refused one reached the shell, it would have run by now.
      t.type(`touch ${tag}-after\r`);
      await appears(`${tag}-after`);
      assert.equal(existsSync(file(`${tag}-denied`)), false, 'the refused line ran');
      assert.equal(existsSync(file(`${tag}-allowed`)), true, 'the refused rm ran');
      t.type('exit\r');
      assert.equal(await t.exited, 0, t.screen());

      const { end, lines } = await sessionEvents(
        stage.sc.spoolDir,
        (e) => e.chaperone.exec?.argv[0] === argv[0] && e.chaperone.exec.tty === true,
      );
      assert.deepEqual(
        lines.map((e) => [e.chaperone.exec?.line, e.chaperone.decision.rule, e.responseStatus?.code]),
        [
          [`touch ${tag}-allowed`, 'default', 200],
          [`touch ${tag}-denied; rm -f ${tag}-allowed`, 'no-rm', 403],
          ['stty -echo', 'chaperone-no-line-editor-changes', 403],
          [`touch ${tag}-after`, 'default', 200],
          ['exit', 'default', 200],
        ],
      );
      assert.equal(end.chaperone.exec?.linesEvaluated, 5);
      assert.equal(end.chaperone.exec?.linesDenied, 2);
    });
  }

  it('piped stdin to sh ends at a denied line: the lines before it run, the ones after never do', async () => {
    const r = await stage.agent(
      ['exec', '-i', stage.pod, '-c', 'main', '--', 'sh'],
      'touch piped-before\nrm -f piped-before\ntouch piped-after\n',
    );
    // API server v1.20: stdin cannot end alone over v4, so the session ends with the refusal.
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.includes(`${DENIED}\n`), r.stderr);
    assert.match(
      r.stderr,
      /^error: chaperone: denied by rule "no-rm": .*; the command's stdin ends at that line/m,
    );
    assert.equal(existsSync(file('piped-before')), true);
    assert.equal(existsSync(file('piped-after')), false);
    const { end } = await sessionEvents(
      stage.sc.spoolDir,
      (e) => e.chaperone.exec?.argv.join(' ') === 'sh' && e.chaperone.exec.tty === false,
    );
    assert.equal(end.chaperone.exec?.linesDenied, 1);
    assert.equal(end.responseStatus?.reason, 'Forbidden');
  });

  it('a canary secret printed by a command is masked for the agent and in the spool', async () => {
    writeFileSync(file('canary.txt'), `jwt: ${JWT}\nkey:\n${KEY}password: ${SECRET_VALUE}\n`);
    const made = kubectl(kube.kubeconfigPath, [
      'create',
      'secret',
      'generic',
      'canary-secret',
      '-n',
      stage.ns.name,
      `--from-literal=password=${SECRET_VALUE}`,
    ]);
    assert.equal(made.code, 0, made.stderr);
    const r = await stage.agent(['exec', stage.pod, '-c', 'main', '--', 'cat', 'canary.txt']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^jwt: \[masked:jwt\]\nkey:\n\[masked:private-key\]/);
    assert.match(r.stdout, /password: \[masked:secret\]\n$/);
    for (const v of [JWT, KEY_LINE, SECRET_VALUE]) assert.ok(!r.stdout.includes(v), r.stdout);
    const { end } = await sessionEvents(stage.sc.spoolDir, (e) => e.chaperone.exec?.argv[1] === 'canary.txt');
    assert.equal(end.chaperone.maskedFields, 3);
    assert.equal(end.chaperone.decision.rule, 'mask-canary');
    // Nothing in the spool — events or the session's recording — holds a canary.
    const spool = readdirSync(stage.sc.spoolDir)
      .map((f) => readFileSync(join(stage.sc.spoolDir, f), 'latin1'))
      .join('');
    assert.match(spool, /masked:private-key/);
    for (const v of [JWT, KEY_LINE, SECRET_VALUE]) assert.ok(!spool.includes(v), `the spool holds ${v}`);
  });
});
