// Output masking and the input guard in exec sessions, through the whole
// request pipeline: a `ws` client plays the agent, the stand-in API server of
// test-exec-upstream.ts plays the upstream (v5, and v4 where the end of
// stdin differs). No kubelet or shell runs here: the stand-in's `cat` and
// `sh` echo what reaches them, so the test sees exactly what the pod got.
// The end-to-end test with real kubectl and a real shell is
// e2e/src/sidecar-exec-shell.test.ts.
//
// What breaks these tests (each was tried):
// - the named Secret's values not given to the masker: the password reaches the agent;
// - the session not starting the output filter (no `emit`): the lone "e" waits;
// - the line-editor check skipped: `stty raw …` is forwarded with its Enter;
// - `endStdin` ignored by the session: the lines after the refused one reach
//   the pod (v5 gets no close of stdin; v4 gets no Status).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AuditEvent, validateAuditEvent, verifyChain } from '@chaperone/shared';
import WebSocket from 'ws';
import { readSpoolDir, readSpoolRecordings } from '../../audit/spool.ts';
import { CANCEL_LINE } from '../../exec-text/index.ts';
import { startTestPipeline, type TestPipeline } from '../test-pipeline.ts';
import { REFUSED_STDIN_MESSAGE } from './session.ts';
import { type FakeExecUpstream, startFakeExecUpstream } from './test-exec-upstream.ts';
import { execTextHooks } from './text-hooks.ts';

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: t }
spec:
  defaultAction: allow
  rules:
    - name: no-rm
      match: { protocols: [exec], exec: { argv0: [rm] } }
      action: deny
      message: removing files is not allowed
    - name: mask-db
      match: { protocols: [exec], exec: { argv0: [cat] } }
      action: mask
      mask: { secrets: [db-creds, not-there] }
    - name: mask-locked
      match: { protocols: [exec], exec: { argv0: [locked] } }
      action: mask
      mask: { secrets: [locked] }
`;

// A JWT-shaped canary (header {"alg":"HS256","typ":"JWT"}).
const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjYW5hcnkiLCJpYXQiOjE3MDAwMDAwMDB9.c2lnbmF0dXJlLW9mLXRoZS1jYW5hcnktdG9rZW4';
const DB_PASSWORD = 'pa55-w0rd-of-the-db';

interface Agent {
  readonly ws: WebSocket;
  /** Resolves when the session has closed (fails the test after 3 s). */
  closed(): Promise<void>;
  /** One channel's payloads so far, joined. */
  text(channel: number): string;
  send(channel: number, data: string | Buffer): void;
}

async function until(what: string, test: () => boolean, ms = 3000): Promise<void> {
  for (let t = 0; t < ms / 10; t++) {
    if (test()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

function agent(base: string, path: string): Promise<Agent> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}${path}`, ['v5.channel.k8s.io'], {
    perMessageDeflate: false,
  });
  const got: [number, Buffer][] = [];
  ws.on('message', (data: Buffer) => got.push([data[0] as number, Buffer.from(data.subarray(1))]));
  let isClosed = false;
  ws.on('close', () => {
    isClosed = true;
  });
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () =>
      resolve({
        ws,
        closed: () => until('the session to close', () => isClosed),
        text: (ch) => Buffer.concat(got.filter(([c]) => c === ch).map(([, d]) => d)).toString(),
        send: (ch, data) => ws.send(Buffer.concat([Buffer.of(ch), Buffer.from(data)])),
      }),
    );
  });
}

const EXEC = '/api/v1/namespaces/a/pods/p/exec';
const path = (argv: string[], flags: string) =>
  `${EXEC}?${argv.map((a) => `command=${encodeURIComponent(a)}`).join('&')}&container=app&stdout=true&${flags}`;

/** The events of the session that ran `argv` (open, lines, close). */
function sessionEvents(sc: TestPipeline, sessionId: string): AuditEvent[] {
  return readSpoolDir(sc.spoolDir).filter((e) => e.chaperone.sessionId === sessionId);
}

async function endEvent(sc: TestPipeline, argv0: string): Promise<AuditEvent> {
  let end: AuditEvent | undefined;
  await until('the close event', () => {
    end = readSpoolDir(sc.spoolDir).findLast(
      (e) => e.chaperone.exec?.argv[0] === argv0 && e.chaperone.exec.durationMs !== undefined,
    );
    return end !== undefined;
  });
  return end as AuditEvent;
}

/** The output the recording of session `id` holds (its asciicast "o" events), joined. */
function recordedOutput(sc: TestPipeline, id: string): string {
  const lines = readSpoolRecordings(sc.spoolDir)
    .filter((c) => c.sessionId === id)
    .map((c) => c.data)
    .join('')
    .split('\n');
  return lines
    .slice(1)
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as [number, string, string])
    .filter(([, kind]) => kind === 'o')
    .map(([, , data]) => data)
    .join('');
}

for (const version of [5, 4] as const) {
  describe(`exec text hooks, upstream speaking up to v${version}`, () => {
    let up: FakeExecUpstream;
    let sc: TestPipeline;
    let dir: string;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'exec-text-'));
      writeFileSync(join(dir, 'token'), 'real-token');
      writeFileSync(join(dir, 'policy.yaml'), POLICY);
      up = await startFakeExecUpstream(version);
      up.secrets.set('db-creds', { password: Buffer.from(DB_PASSWORD).toString('base64') });
      up.secrets.set('locked', 403);
      sc = await startTestPipeline({
        dir,
        upstreamUrl: up.url,
        ca: up.ca,
        exec: { session: { stdinEndGraceMs: 300, closeTimeoutMs: 1000 } },
        execHooks: (deps) => execTextHooks(deps),
      });
    });
    after(async () => {
      await sc.close();
      await up.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('masks a JWT split across output frames and a named Secret value, for the agent and in the spool; the close event counts them', async () => {
      // Unmasked, the agent would get the JWT and the password back as cat echoes them.
      const s = await agent(sc.base, path(['cat'], 'stdin=true'));
      s.send(0, `token ${JWT.slice(0, 20)}`);
      s.send(0, JWT.slice(20, 70));
      s.send(0, `${JWT.slice(70)} and ${DB_PASSWORD}\n`);
      await until('the masked line', () => s.text(1).includes('\n'));
      if (version === 5) s.send(255, Buffer.of(0));
      else s.ws.close();
      await s.closed();
      // A JWT's public `eyJ` goes out at once when the frame ends inside the token (cat may join frames).
      assert.match(s.text(1), /^token (eyJ)?\[masked:jwt\] and \[masked:secret\]\n$/);
      const end = await endEvent(sc, 'cat');
      assert.equal(end.chaperone.maskedFields, 2);
      assert.equal(end.chaperone.decision.rule, 'mask-db');
      // The recording gets the output as the agent got it; the events hold no values.
      assert.equal(recordedOutput(sc, end.chaperone.sessionId as string), s.text(1));
      const events = JSON.stringify(readSpoolDir(sc.spoolDir));
      assert.ok(!events.includes(JWT.slice(40, 80)) && !events.includes(DB_PASSWORD));
      // The Secret was read with the sidecar's credentials; the missing one did not stop the session.
      assert.ok(up.requests.some((r) => r.startsWith('GET /api/v1/namespaces/a/secrets/db-creds')));
      assert.ok(up.requests.some((r) => r.startsWith('GET /api/v1/namespaces/a/secrets/not-there')));
    });

    it('releases held-back output after a pause: a typed "e" is echoed before anything follows it', async () => {
      // Without the idle release the "e" (which may start a JWT) would wait for the next byte.
      const s = await agent(sc.base, path(['cat'], 'stdin=true'));
      s.send(0, 'see');
      await until('the echo of "see"', () => s.text(1) === 'see');
      s.ws.close();
      await s.closed();
    });

    it('refuses a session whose mask rule names a Secret that cannot be read', async () => {
      const s = await agent(sc.base, path(['locked'], 'stdin=false'));
      await s.closed();
      const status = JSON.parse(s.text(3)) as { code: number; message: string };
      assert.equal(status.code, 503);
      assert.match(
        status.message,
        /rule "mask-locked" masks the values of Secret a\/locked .* could not be read \(HTTP 403\)/,
      );
      assert.equal(
        up.sessions.filter((x) => x.url.searchParams.get('command') === 'locked').length,
        0,
        'the session never reached the API server',
      );
    });

    it('judges each line typed in a TTY: an allowed line runs, a denied one is cancelled with the message on the terminal, every line is an event', async () => {
      const before = up.sessions.length;
      const s = await agent(sc.base, path(['cat'], 'stdin=true&tty=true'));
      await until('the upstream session', () => up.sessions.length > before);
      const seen = up.sessions[before];
      const toPod = () =>
        Buffer.concat((seen?.received ?? []).filter(([c]) => c === 0).map(([, d]) => d)).toString('latin1');
      s.send(0, 'ls -l');
      s.send(0, '\r');
      await until('the allowed line', () => toPod() === 'ls -l\r');
      s.send(0, 'rm -rf /');
      s.send(0, '\r');
      await until('the message', () => s.text(1).includes('denied by rule "no-rm"'));
      s.send(0, `stty raw ${JWT}\r`);
      await until('the second refusal', () => s.text(1).includes('chaperone-no-line-editor-changes'));
      s.send(0, 'echo ok\r');
      await until('the last line', () => toPod().endsWith('echo ok\r'));
      // The keys of a refused line reach the pod's line editor (it echoes them), its Enter never does.
      const cancel = CANCEL_LINE.toString('latin1');
      assert.equal(toPod(), `ls -l\rrm -rf /${cancel}stty raw ${JWT}${cancel}echo ok\r`);
      assert.match(s.text(1), /\r\nchaperone: denied by rule "no-rm": removing files is not allowed\r\n/);
      s.ws.close();
      await s.closed();
      const end = await endEvent(sc, 'cat');
      const id = end.chaperone.sessionId as string;
      const lines = sessionEvents(sc, id).filter((e) => e.chaperone.exec?.line !== undefined);
      assert.deepEqual(
        lines.map((e) => [e.chaperone.exec?.line, e.chaperone.decision.rule, e.responseStatus?.code]),
        [
          ['ls -l', 'default', 200],
          ['rm -rf /', 'no-rm', 403],
          ['stty raw [masked:jwt]', 'chaperone-no-line-editor-changes', 403],
          ['echo ok', 'default', 200],
        ],
      );
      assert.deepEqual(
        lines.map((e) => e.auditID === id),
        [false, false, false, false],
      );
      assert.equal(lines[2]?.chaperone.maskedFields, 1);
      assert.equal(end.chaperone.exec?.linesEvaluated, 4);
      assert.equal(end.chaperone.exec?.linesDenied, 2);
      // What the collector will take: each event passes the schema and the chain holds.
      for (const e of sessionEvents(sc, id)) validateAuditEvent(JSON.parse(JSON.stringify(e)));
      assert.deepEqual(verifyChain(readSpoolDir(sc.spoolDir)).problems, []);
    });

    it('ends piped stdin to a shell at a refused line; the lines after it never reach the pod', async () => {
      const before = up.sessions.length;
      const s = await agent(sc.base, path(['sh'], 'stdin=true&stderr=true'));
      s.send(0, 'echo one\nrm -rf /\necho two\n');
      await until('the refusal on stderr', () => s.text(2).includes('denied by rule "no-rm"'));
      if (version === 4) {
        // The agent's own end of stdin is not needed: the refusal ended it.
        await s.closed();
        const status = JSON.parse(s.text(3)) as { code: number; reason: string; message: string };
        assert.equal(status.reason, 'Forbidden');
        assert.equal(
          status.message,
          REFUSED_STDIN_MESSAGE.replace(
            '{why}',
            'chaperone: denied by rule "no-rm": removing files is not allowed',
          ).replace('{grace}', '0.3 s'),
        );
      } else {
        await s.closed();
        assert.equal(JSON.parse(s.text(3)).status, 'Success');
      }
      const seen = up.sessions[before];
      assert.deepEqual(
        seen?.received.filter(([c]) => c === 0 || c === 255).map(([c, d]) => [c, d.toString()]),
        version === 5
          ? [
              [0, 'echo one\n'],
              [255, '\u0000'],
            ]
          : [[0, 'echo one\n']],
      );
      assert.equal(s.text(1), 'echo one\n');
      assert.match(s.text(2), /stdin ends here/);
      const end = await endEvent(sc, 'sh');
      assert.equal(end.chaperone.exec?.linesEvaluated, 2);
      assert.equal(end.chaperone.exec?.linesDenied, 1);
    });

    it('leaves the input of a command that reads data (cat) unjudged, however it looks', async () => {
      const before = up.sessions.length;
      const s = await agent(sc.base, path(['cat', '-'], 'stdin=true'));
      s.send(0, 'rm -rf /\n');
      await until('the echo', () => s.text(1) === 'rm -rf /\n');
      if (version === 5) s.send(255, Buffer.of(0));
      else s.ws.close();
      await s.closed();
      assert.equal(up.sessions[before]?.received.filter(([c]) => c === 0).length, 1);
    });
  });
}
