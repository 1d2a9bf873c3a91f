// Which commands read commands from stdin (their input is then judged line
// by line) and which take it as data. Table tests; each row's argv is what
// `kubectl exec -i pod -- <argv>` sends.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readsCommandsFromStdin } from './stdin-reader.ts';

describe('readsCommandsFromStdin', () => {
  const reads: string[][] = [
    ['sh'],
    ['/bin/bash'],
    ['bash', '-i'],
    ['bash', '-l'],
    ['bash', '-s', 'arg'],
    ['bash', '-o', 'pipefail'],
    ['sh', '-'],
    ['zsh'],
    ['ash'],
    ['busybox', 'sh'],
    ['/bin/busybox', 'ash'],
    ['fish'],
    ['python3'],
    ['python3.12', '-'],
    ['python', '-i', '-c', 'x=1'],
    ['python3', '-u'],
    ['perl'],
    ['ruby'],
    ['node'],
    ['node', '--interactive'],
    ['php'],
    ['psql'],
    ['psql', '-h', 'db', '-U', 'app', 'appdb'],
    ['psql', '-f', '-'],
    ['mysql', '-h', 'db', 'app'],
    ['redis-cli', '-h', 'cache'],
    ['sqlite3', 'app.db'],
    ['ssh', 'host'],
    ['ssh', '-p', '22', 'user@host'],
    ['irb'],
    // Code that starts an interpreter reading stdin.
    ['sh', '-c', 'exec bash'],
    ['sh', '-ec', 'cd /tmp && sh'],
    ['bash', '-c', 'cat | python3'],
    ['python3', '-c', 'import pty; pty.spawn("/bin/bash")'],
    ['ssh', 'host', 'sh'],
    // Wrappers.
    ['env', 'sh'],
    ['env', '-i', 'PATH=/bin', 'bash'],
    ['timeout', '60', 'sh'],
    ['nice', '-n', '5', 'python3'],
    ['sudo', '-u', 'root', 'bash'],
    ['sudo', '-i'],
    ['su'],
    ['su', '-', 'postgres'],
    ['script', '-q', '-c', 'sh', '/dev/null'],
    // Unknown programs that name an interpreter.
    ['socat', '-', 'EXEC:/bin/bash'],
  ];
  const data: string[][] = [
    [],
    ['cat'],
    ['tar', '-xmf', '-', '-C', '/tmp/dest'],
    ['tar', 'cf', '-', '/data'],
    ['sh', '-c', 'ls -l'],
    ['sh', '-c', 'cat > /tmp/x'],
    ['bash', '-ec', 'tar xf - -C /srv'],
    ['sh', 'script.sh'],
    ['python3', '-c', 'import sys; print(sys.stdin.read())'],
    ['python3', 'app.py'],
    ['python3', '-m', 'json.tool'],
    ['perl', '-ne', 'print if /x/'],
    ['ruby', '-e', 'puts STDIN.read'],
    ['node', 'server.js'],
    ['node', '-e', 'process.stdin.pipe(process.stdout)'],
    ['psql', '-c', 'select 1'],
    ['psql', '-f', 'dump.sql'],
    ['psql', '--command=select 1'],
    ['mysql', '-e', 'select 1'],
    ['redis-cli', 'get', 'k'],
    ['sqlite3', 'app.db', 'select 1'],
    ['ssh', 'host', 'uptime'],
    ['env', 'FOO=1', 'cat'],
    ['timeout', '5', 'sh', 'job.sh'],
    ['sudo', '-u', 'root', 'id'],
    ['su', '-c', 'ls', 'postgres'],
    ['grep', 'x'],
  ];
  for (const argv of reads)
    it(`${JSON.stringify(argv)} reads commands`, () => assert.equal(readsCommandsFromStdin(argv), true));
  for (const argv of data)
    it(`${JSON.stringify(argv)} reads data`, () => assert.equal(readsCommandsFromStdin(argv), false));
});
