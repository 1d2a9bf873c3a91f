import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  boolean,
  describeConfig,
  duration,
  integer,
  list,
  oneOf,
  parseConfig,
  port,
  string,
  url,
} from './config.ts';
import { ConfigError } from './errors.ts';

const schema = {
  listenPort: port({ description: 'port to listen on', default: 8443 }),
  upstream: url({ description: 'API server URL', required: true, protocols: ['https'] }),
  logLevel: oneOf(['info', 'debug', 'warn'] as const, { description: 'log level', default: 'info' }),
  failOpen: boolean({ description: 'allow traffic when the spool is full', default: false }),
  spoolMaxBytes: integer({ description: 'spool size', default: 1024, min: 1 }),
  flushInterval: duration({ description: 'flush interval', default: 1000 }),
  upstreams: list({ description: 'declared upstreams', default: [] }),
  token: string({ description: 'static token', secret: true }),
};

describe('parseConfig', () => {
  it('reads env and flags, flags winning, and freezes the result', () => {
    const cfg = parseConfig(schema, {
      env: { CHAPERONE_UPSTREAM: 'https://10.0.0.1:6443', CHAPERONE_LISTEN_PORT: '9000', PATH: '/bin' },
      flags: ['--listen-port', '9443', '--fail-open', '--flush-interval=1m30s', '--upstreams', 'a, b,,c'],
    });
    assert.equal(cfg.listenPort, 9443);
    assert.equal(cfg.upstream, 'https://10.0.0.1:6443');
    assert.equal(cfg.logLevel, 'info');
    assert.equal(cfg.failOpen, true);
    assert.equal(cfg.flushInterval, 90_000);
    assert.deepEqual(cfg.upstreams, ['a', 'b', 'c']);
    assert.equal(cfg.token, undefined);
    assert.ok(Object.isFrozen(cfg));
    assert.throws(() => {
      (cfg as { listenPort: number }).listenPort = 1;
    }, TypeError);
  });

  it('rejects an unknown environment key and suggests the right one', () => {
    assert.throws(
      () => parseConfig(schema, { env: { CHAPERONE_UPSTREAM: 'https://x', CHAPERONE_LISTN_PORT: '1' } }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.code === 'config_invalid' &&
        /unknown setting CHAPERONE_LISTN_PORT \(did you mean CHAPERONE_LISTEN_PORT\?\)/.test(err.message),
    );
  });

  it('rejects an unknown flag (argv or record) and suggests the right one', () => {
    assert.throws(
      () => parseConfig(schema, { env: { CHAPERONE_UPSTREAM: 'https://x' }, flags: ['--log-levl', 'debug'] }),
      /unknown flag --log-levl \(did you mean --log-level\?\)/,
    );
    assert.throws(
      () => parseConfig(schema, { env: { CHAPERONE_UPSTREAM: 'https://x' }, flags: { failOpn: true } }),
      /unknown flag --fail-opn \(did you mean --fail-open\?\)/,
    );
  });

  it('reports every problem at once, with the source of each value', () => {
    try {
      parseConfig(schema, {
        env: { CHAPERONE_LISTEN_PORT: '70000', CHAPERONE_LOG_LEVEL: 'debgu' },
        flags: ['--spool-max-bytes', 'lots'],
      });
      assert.fail('expected an error');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const msg = err.message;
      assert.match(msg, /CHAPERONE_LISTEN_PORT="70000" must be at most 65535/);
      assert.match(msg, /--upstream \(or CHAPERONE_UPSTREAM\) is required/);
      assert.match(
        msg,
        /CHAPERONE_LOG_LEVEL="debgu" must be one of info, debug, warn \(did you mean debug\?\)/,
      );
      assert.match(msg, /--spool-max-bytes="lots" must be a whole number/);
    }
  });

  it('never echoes a secret value in an error', () => {
    const secretSchema = { token: integer({ description: 'x', secret: true }) };
    assert.throws(
      () => parseConfig(secretSchema, { env: { CHAPERONE_TOKEN: 'hunter2-canary' } }),
      (err: unknown) =>
        err instanceof Error && !err.message.includes('hunter2') && /<hidden>/.test(err.message),
    );
  });

  it('accepts --no-<flag> for booleans and ignores listed foreign env vars', () => {
    const cfg = parseConfig(schema, {
      env: { CHAPERONE_UPSTREAM: 'https://x', CHAPERONE_FAIL_OPEN: 'true', CHAPERONE_E2E_KUBECONFIG: '/k' },
      flags: ['--no-fail-open'],
      ignoreEnv: ['CHAPERONE_E2E_KUBECONFIG'],
    });
    assert.equal(cfg.failOpen, false);
  });

  it('validates URLs and durations', () => {
    assert.throws(() => parseConfig(schema, { env: { CHAPERONE_UPSTREAM: 'http://x' } }), /must use https/);
    assert.throws(
      () => parseConfig(schema, { env: { CHAPERONE_UPSTREAM: 'https://x', CHAPERONE_FLUSH_INTERVAL: '10' } }),
      /must be a duration/,
    );
  });

  it('describes every field for help output', () => {
    const text = describeConfig(schema);
    assert.match(text, /--listen-port <port>\s+CHAPERONE_LISTEN_PORT\s+port to listen on \(default: 8443\)/);
  });
});
