// The stand-in kubelet, end to end through the REAL kube-apiserver (v1.20) with
// the real kubectl 1.32 and @kubernetes/client-node, admin credentials, no
// sidecar. There is no kubelet on this control plane: the stand-in (a test
// double, kubelet-standin.ts) registers as a Node and answers what the API
// server proxies to the kubelet, running commands as local processes.
//
// What these tests pin down, and what breaks them:
// - client-node's v4 WebSocket exec gets stdout, stderr and the exit code
//   (tried: a wrong ExitCode cause fails it);
// - kubectl's v5-only WebSocket offer is refused with 403 and kubectl falls
//   back to SPDY v4, where the exit code arrives (tried: accepting v5 fails it,
//   kubectl then reads the v4 text Status as JSON and exits 1);
// - piped stdin ends (needs the SPDY half-close; without it cat never ends);
//   a TTY resize reaches the command's terminal, from kubectl (SPDY resize
//   stream) and client-node (WebSocket channel 4); logs, --tail, --timestamps
//   and logs -f; port-forward over SPDY (kubectl) and WebSocket v4
//   (client-node) to a local HTTP server; attach over SPDY and WebSocket.
// - The request log shows what the API server sent the kubelet: the paths,
//   `command=` per argv element, input/output/error/tty, `port=`, the offers.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { kubectlPath, kubectlAsync as kubectlWith } from './kubectl.ts';
import { PTY_RELAY, python3 } from './kubelet/container-command.ts';
import { createBoundPod, registerNode, type StandinNode } from './kubelet/node.ts';
import { type KubeletStandin, type StandinRequest, startKubeletStandin } from './kubelet-standin.ts';
import { waitFor } from './process.ts';

const kube = kubeInfo();

/** Processes a test leaves running when it fails half-way; killed at the end. */
const background = new Set<ChildProcess>();

/** A long-running kubectl (logs -f, port-forward) whose output the test watches. */
function kubectlBackground(args: readonly string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(kubectlPath(), args, {
    env: { ...process.env, KUBECONFIG: kube.kubeconfigPath },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  background.add(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  return { child, output: () => out };
}

/** kubectl as admin, without blocking the event loop (the stand-in answers from this process). */
const kubectlAsync = (args: readonly string[], opts: { input?: string } = {}) =>
  kubectlWith(kube.kubeconfigPath, args, { timeoutMs: 30_000, ...opts });

const exited = (child: ChildProcess) =>
  new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('close', r)));

function collect(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => text };
}

describe('stand-in kubelet through the real API server', {
  skip:
    kube.mode !== 'local' &&
    'the stand-in listens on this machine’s loopback, which only the local control plane reaches',
}, () => {
  let standin: KubeletStandin;
  let node: StandinNode;
  let ns: TestNamespace;
  const pod = 'app';
  let seen = 0;
  /** Requests the stand-in received since the last call. */
  const newRequests = (): StandinRequest[] => {
    const fresh = standin.requests.slice(seen);
    seen = standin.requests.length;
    return fresh;
  };

  /** Waits until the latest session has received a resize to width × height. */
  const resized = (width: number, height: number) =>
    waitFor(
      async () => standin.requests.at(-1)?.resizes.some((r) => r.width === width && r.height === height),
      {
        what: `a resize to ${width}x${height} at the stand-in (${JSON.stringify(standin.requests.at(-1))})`,
        timeoutMs: 15_000,
      },
    );

  before(async () => {
    standin = await startKubeletStandin({ lifetimeMs: 5 * 60_000 });
    node = registerNode(kube.kubeconfigPath, { port: standin.port });
    ns = await createNamespace('standin');
    await createBoundPod(kube.kubeconfigPath, {
      namespace: ns.name,
      name: pod,
      node: node.name,
      containers: [{ name: 'main', stdin: true, stdinOnce: true }, { name: 'other' }],
    });
  });

  after(async () => {
    for (const child of background) child.kill('SIGKILL');
    await ns?.delete();
    node?.delete();
    await standin?.stop();
  });

  it('runs a v4 WebSocket exec from @kubernetes/client-node: output, stderr and the exit code', async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    const out = collect();
    const err = collect();
    const status = await new Promise<k8s.V1Status>((resolve, reject) => {
      new k8s.Exec(kc)
        .exec(
          ns.name,
          pod,
          'main',
          ['sh', '-c', 'echo "to stdout"; echo "to stderr" >&2; exit 3'],
          out.stream,
          err.stream,
          null,
          false,
          resolve,
        )
        .catch(reject);
    });
    assert.equal(out.text(), 'to stdout\n');
    assert.equal(err.text(), 'to stderr\n');
    assert.equal(status.status, 'Failure');
    assert.equal(status.reason, 'NonZeroExitCode');
    assert.deepEqual(status.details?.causes, [{ reason: 'ExitCode', message: '3' }]);

    // What the API server sent: the kubelet's path and query, the client's offer passed through.
    const [req] = newRequests();
    assert.equal(req?.kind, 'exec');
    assert.equal(req.transport, 'websocket');
    assert.equal(req.protocol, 'v4.channel.k8s.io');
    assert.deepEqual(req.offered, [
      'v5.channel.k8s.io',
      'v4.channel.k8s.io',
      'v3.channel.k8s.io',
      'v2.channel.k8s.io',
      'channel.k8s.io',
    ]);
    assert.equal(new URL(req.url, 'https://x').pathname, `/exec/${ns.name}/${pod}/main`);
    assert.deepEqual(req.query.getAll('command'), [
      'sh',
      '-c',
      'echo "to stdout"; echo "to stderr" >&2; exit 3',
    ]);
    assert.equal(req.query.get('output'), '1');
    assert.equal(req.query.get('error'), '1');
    assert.equal(req.query.get('input'), null);
  });

  it('answers kubectl’s v5-only WebSocket offer with 403, and kubectl’s SPDY fallback returns the exit code', async () => {
    const r = await kubectlAsync([
      'exec',
      '-n',
      ns.name,
      pod,
      '-c',
      'main',
      '--',
      'sh',
      '-c',
      'echo hello; exit 7',
    ]);
    assert.equal(r.stdout, 'hello\n');
    assert.equal(r.code, 7, r.stderr);
    const reqs = newRequests();
    assert.deepEqual(
      reqs.map((q) => [q.method, q.transport, q.status, q.protocol]),
      [
        ['GET', 'websocket', 403, undefined],
        ['POST', 'spdy', 101, 'v4.channel.k8s.io'],
      ],
    );
    assert.deepEqual(reqs[0]!.offered, ['v5.channel.k8s.io']);
    assert.equal(
      reqs[1]!.offered[0],
      'v5.channel.k8s.io',
      'kubectl offers v5 over SPDY too; the kubelet picks v4',
    );
  });

  it('passes piped stdin to cat over SPDY, and the end of stdin ends the command', async () => {
    const input = 'line one\nline two\n'.repeat(500);
    const r = await kubectlAsync(['exec', '-i', '-n', ns.name, pod, '--', 'cat'], { input });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, input);
    assert.equal(newRequests().at(-1)?.query.get('input'), '1');
  });

  it('runs a TTY session for kubectl -it on a pseudo-terminal and applies a resize', async () => {
    // kubectl itself needs a terminal: it runs under the same pty relay, whose fd 3 resizes kubectl's terminal.
    const py = python3();
    const child = spawn(
      py.command,
      [
        ...py.args,
        PTY_RELAY,
        kubectlPath(),
        'exec',
        '-it',
        '-n',
        ns.name,
        pod,
        '--',
        'sh',
        '-c',
        'read x; stty size; read x; stty size',
      ],
      { env: { ...process.env, KUBECONFIG: kube.kubeconfigPath }, stdio: ['pipe', 'pipe', 'pipe', 'pipe'] },
    );
    background.add(child);
    let screen = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (screen += d));
    const resize = child.stdio[3] as NodeJS.WritableStream;
    resize.write('100 30\n');
    // The command waits for a line before its first `stty size`: the first size reaches the
    // terminal only once the stand-in has it, as on a real node, where the process may start first.
    await resized(100, 30);
    child.stdin!.write('\r');
    await waitFor(async () => /30 100/.test(screen), { what: 'the first `stty size`', timeoutMs: 15_000 });
    resize.write('120 40\n');
    // kubectl turns SIGWINCH into a resize event; type only once the stand-in has it.
    await resized(120, 40);
    child.stdin!.write('\r');
    const code = await exited(child);
    assert.equal(code, 0, screen);
    assert.match(screen, /30 100\r\n[\s\S]*40 120\r\n/);
    const req = newRequests().at(-1)!;
    assert.equal(req.query.get('tty'), '1');
    assert.equal(req.query.get('error'), null, 'kubectl asks for no stderr with a TTY');
  });

  it('serves kubectl logs, --tail and --timestamps', async () => {
    const c = standin.container(ns.name, pod, 'other');
    c.appendLog('first line\nsecond line\n');
    let r = await kubectlAsync(['logs', '-n', ns.name, pod, '-c', 'other']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'first line\nsecond line\n');
    r = await kubectlAsync(['logs', '-n', ns.name, pod, '-c', 'other', '--tail=1', '--timestamps']);
    assert.match(r.stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z second line\n$/);
    const req = newRequests().at(-1)!;
    assert.equal(new URL(req.url, 'https://x').pathname, `/containerLogs/${ns.name}/${pod}/other`);
    assert.equal(req.query.get('tailLines'), '1');
    assert.equal(req.query.get('timestamps'), 'true');
  });

  it('streams kubectl logs -f until the container terminates', async () => {
    const follow = standin.container(ns.name, pod, 'main');
    follow.appendLog('before\n');
    const { child, output } = kubectlBackground(['logs', '-f', '-n', ns.name, pod, '-c', 'main']);
    await waitFor(async () => output().includes('before\n'), {
      what: 'the first log line',
      timeoutMs: 15_000,
    });
    follow.appendLog('after\n');
    await waitFor(async () => output().includes('after\n'), {
      what: 'a line appended while following',
      timeoutMs: 15_000,
    });
    follow.endLog();
    assert.equal(await exited(child), 0, output());
    assert.equal(output(), 'before\nafter\n');
    assert.equal(newRequests().at(-1)?.query.get('follow'), 'true');
  });

  it('forwards a port with kubectl port-forward (SPDY after the WebSocket attempt) to a local server', async () => {
    const server: Server = createServer((req, res) => res.end(`hello from ${req.url}`));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const target = (server.address() as AddressInfo).port;
    const { child, output } = kubectlBackground(['port-forward', '-n', ns.name, `pod/${pod}`, `:${target}`]);
    try {
      const local = await waitFor(async () => /Forwarding from 127\.0\.0\.1:(\d+)/.exec(output())?.[1], {
        what: 'kubectl port-forward to listen',
        timeoutMs: 15_000,
      });
      for (const path of ['/one', '/two']) {
        const res = await fetch(`http://127.0.0.1:${local}${path}`);
        assert.equal(await res.text(), `hello from ${path}`);
      }
    } finally {
      child.kill('SIGTERM');
      await exited(child);
      server.close();
    }
    const reqs = newRequests().filter((q) => q.kind === 'portForward');
    const spdy = reqs.find((q) => q.transport === 'spdy');
    assert.equal(spdy?.status, 101);
    assert.equal(spdy.protocol, 'portforward.k8s.io');
    assert.deepEqual(spdy.forwardedPorts, [target, target]);
  });

  it('attaches kubectl attach -i to the container’s running process', async () => {
    const c = standin.container(ns.name, pod, 'main');
    c.run(['cat'], { stdinOnce: true });
    const r = await kubectlAsync(['attach', '-i', '-n', ns.name, pod, '-c', 'main'], { input: 'ping\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ping\n');
    assert.equal(c.running, false, 'stdinOnce: the end of the attached stdin ended cat');
    const req = newRequests().at(-1)!;
    assert.equal(req.kind, 'attach');
    assert.equal(req.transport, 'spdy');
  });

  it('runs a client-node TTY exec with resize events on the pseudo-terminal', async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    const out = collect();
    // A "terminal" for client-node: it reads columns/rows and listens for 'resize'.
    const terminal = Object.assign(out.stream, { columns: 90, rows: 20 });
    const stdin = new PassThrough();
    const done = new Promise<k8s.V1Status>((resolve, reject) => {
      new k8s.Exec(kc)
        .exec(
          ns.name,
          pod,
          'main',
          ['sh', '-c', 'read x; stty size; read x; stty size'],
          terminal,
          null,
          stdin,
          true,
          resolve,
        )
        .catch(reject);
    });
    // client-node sends the first size once connected; the command may start before it lands,
    // so it reads a line first and the test types only once the stand-in has the size.
    await resized(90, 20);
    stdin.write('\r');
    await waitFor(async () => /20 90/.test(out.text()), { what: 'the first `stty size`', timeoutMs: 15_000 });
    Object.assign(terminal, { columns: 132, rows: 43 });
    terminal.emit('resize');
    await resized(132, 43);
    stdin.write('\r');
    const status = await done;
    assert.equal(status.status, 'Success');
    assert.match(out.text(), /20 90\r\n[\s\S]*43 132\r\n/);
  });

  it('forwards a port for @kubernetes/client-node over WebSocket v4 (port= channels)', async () => {
    const server: Server = createServer((_req, res) => res.end('over websocket'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const target = (server.address() as AddressInfo).port;
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    const out = collect();
    const input = new PassThrough();
    try {
      const ws = await new k8s.PortForward(kc).portForward(ns.name, pod, [target], out.stream, null, input);
      input.write('GET /ws HTTP/1.0\r\n\r\n');
      await waitFor(async () => out.text().includes('over websocket'), {
        what: 'the HTTP answer',
        timeoutMs: 15_000,
      });
      (ws as { close(): void }).close();
    } finally {
      server.close();
    }
    assert.match(out.text(), /^HTTP\/1\.[01] 200 OK\r\n/);
    const req = newRequests().at(-1)!;
    assert.equal(req.transport, 'websocket');
    assert.equal(req.protocol, 'v4.channel.k8s.io');
    assert.deepEqual(req.query.getAll('port'), [String(target)]);
    assert.deepEqual(req.forwardedPorts, [target]);
  });

  it('attaches @kubernetes/client-node over WebSocket v4; the process runs on after it leaves', async () => {
    const c = standin.container(ns.name, pod, 'other');
    c.run(['sh', '-c', 'while read line; do echo "got $line"; done']);
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    const out = collect();
    const input = new PassThrough();
    const ws = await new k8s.Attach(kc).attach(ns.name, pod, 'other', out.stream, null, input, false);
    input.write('one\n');
    await waitFor(async () => out.text() === 'got one\n', { what: 'the echoed line', timeoutMs: 15_000 });
    const req = newRequests().at(-1)!;
    assert.equal(req.kind, 'attach');
    assert.equal(req.protocol, 'v4.channel.k8s.io');
    (ws as { close(): void }).close();
    // Gone from the attached clients, still running: a line typed now reaches no one but the log.
    await waitFor(async () => c.logEntries().some((e) => e.data.toString() === 'got one\n'), {
      what: 'the main process output in the log',
      timeoutMs: 5000,
    });
    assert.equal(c.running, true, 'detaching leaves the main process running');
  });
});
