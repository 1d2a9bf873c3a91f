import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '@chaperone/shared';
import { Command } from 'commander';
import { register } from './cli.ts';

function program(env: Record<string, string> = {}) {
  const p = new Command('chaperone').exitOverride();
  register(p, { env, version: '0.1.0' });
  for (const c of p.commands) c.exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
  return p;
}

describe('injector CLI', () => {
  it('registers injector, check-inject and wait-for-sidecar', () => {
    assert.deepEqual(
      program().commands.map((c) => c.name()),
      ['injector', 'check-inject', 'wait-for-sidecar'],
    );
  });
  it('documents every setting with its environment variable', () => {
    const help =
      program()
        .commands.find((c) => c.name() === 'injector')
        ?.helpInformation() ?? '';
    for (const flag of [
      '--webhook-url',
      '--tls-cert-file',
      '--sidecar-mode',
      '--revision',
      '--api-server-endpoints',
    ]) {
      assert.ok(help.includes(flag), flag);
    }
  });
  it('rejects invalid settings before doing anything', async () => {
    await assert.rejects(
      program().parseAsync(['injector', '--port', 'http'], { from: 'user' }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /--port="http" must be a whole number/);
        return true;
      },
    );
    await assert.rejects(
      program({ CHAPERONE_SIDECAR_MODE: 'sidecar' }).parseAsync(['injector'], { from: 'user' }),
      /must be one of auto, native, classic/,
    );
    await assert.rejects(
      program().parseAsync(['injector', '--tls-cert-file', '/x', '--manage-webhook'], { from: 'user' }),
      /--tls-cert-file and --tls-key-file go together/,
    );
    // The API server refuses projected tokens shorter than 10 minutes: caught at start-up, not on the first pod.
    await assert.rejects(
      program().parseAsync(['injector', '--token-expiration', '5m'], { from: 'user' }),
      /--token-expiration must be at least 10m/,
    );
    await assert.rejects(
      program().parseAsync(['injector', '--lease-duration', '10s', '--lease-renew-deadline', '15s'], {
        from: 'user',
      }),
      /--lease-renew-deadline must be shorter than --lease-duration/,
    );
  });
});
