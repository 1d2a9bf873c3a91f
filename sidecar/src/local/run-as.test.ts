import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lookupUser, parsePasswdLine, runAsCommand, runAsEnv } from './run-as.ts';

describe('--run-as', () => {
  const agent = { name: 'agent', uid: 1001, gid: 1001, home: '/home/agent' };

  it('reads a passwd line', () => {
    assert.deepEqual(parsePasswdLine('agent:x:1001:1001:AI agent:/home/agent:/bin/bash\n'), agent);
    assert.equal(parsePasswdLine('garbage'), undefined);
    assert.equal(parsePasswdLine('a:x:one:1:g:/h:/s'), undefined);
  });

  it('is refused unless chaperone local runs as root, and never to root', () => {
    assert.throws(() => lookupUser('nobody', 1000), /must run as root/);
    assert.throws(() => lookupUser('root', 0), /that is root/);
    assert.throws(() => lookupUser('no-such-user-here', 0), /no such user/);
  });

  it('starts the command with the user’s ids and groups, and names the user in the environment', () => {
    assert.deepEqual(runAsCommand(agent, ['kubectl', 'get', 'pods']), [
      'setpriv',
      '--reuid=1001',
      '--regid=1001',
      '--init-groups',
      '--',
      'kubectl',
      'get',
      'pods',
    ]);
    assert.deepEqual(runAsEnv(agent), { HOME: '/home/agent', USER: 'agent', LOGNAME: 'agent' });
  });
});
