import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from './logger.ts';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, destination, text: () => lines.join('') };
}

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJlLWNhbmFyeQ';
const OPAQUE_TOKEN = 'opaque-canary-token-7f3a9';
const PASSWORD = 's3cr3t-Canary-pw!';
const SECRET_VALUE = 'c2VjcmV0LWNhbmFyeQ==';

describe('logger redaction', () => {
  it('never writes a bearer token or a password, wherever it appears', async () => {
    const out = capture();
    const log = createLogger({ name: 'test', level: 'trace', destination: out.destination });
    log.info(
      { req: { headers: { authorization: `Bearer ${OPAQUE_TOKEN}`, accept: 'application/json' } } },
      'request',
    );
    log.info({ headers: { Authorization: `Bearer ${TOKEN}` } }, 'upper-case header');
    log.info({ config: { database: { password: PASSWORD, user: 'agent' } } }, 'nested password');
    log.info({ token: OPAQUE_TOKEN }, 'token field');
    log.warn(`upstream said: Authorization: Bearer ${OPAQUE_TOKEN}`);
    log.info(`connecting to postgres://agent:${PASSWORD}@127.0.0.1:5432/app`);
    log.info(`retrying with password=${PASSWORD} and token: ${OPAQUE_TOKEN}`);
    log.error({ err: new Error(`login failed for Bearer ${OPAQUE_TOKEN} password=${PASSWORD}`) }, 'boom');
    log.child({ connection: { authorization: `Bearer ${OPAQUE_TOKEN}` } }).info('child bindings');
    log.debug({ jwt: TOKEN }, 'raw jwt in an innocuous field');
    const text = out.text();
    for (const canary of [TOKEN, OPAQUE_TOKEN, PASSWORD]) {
      assert.equal(text.includes(canary), false, `canary ${canary.slice(0, 12)}… leaked:\n${text}`);
    }
    assert.match(text, /\[REDACTED\]/);
    // Useful content survives.
    assert.match(text, /"accept":"application\/json"/);
    assert.match(text, /"user":"agent"/);
    assert.match(text, /127\.0\.0\.1:5432\/app/);
    assert.equal(out.lines.length, 10);
  });

  it('masks Kubernetes Secret data but keeps its keys', () => {
    const out = capture();
    const log = createLogger({ name: 'test', destination: out.destination });
    log.info(
      {
        object: {
          kind: 'Secret',
          metadata: { name: 'db' },
          data: { password: SECRET_VALUE, username: 'YWdlbnQ=' },
        },
      },
      'secret seen',
    );
    const line = JSON.parse(out.text());
    assert.deepEqual(line.object.data, { password: '[REDACTED]', username: '[REDACTED]' });
    assert.equal(line.object.metadata.name, 'db');
    assert.equal(out.text().includes(SECRET_VALUE), false);
  });

  it('writes one JSON object per line with level and component', () => {
    const out = capture();
    createLogger({ name: 'sidecar', destination: out.destination }).warn({ n: 1 }, 'hello');
    const line = JSON.parse(out.text());
    assert.equal(line.level, 'warn');
    assert.equal(line.component, 'sidecar');
    assert.equal(line.msg, 'hello');
    assert.equal(line.n, 1);
    assert.match(line.time, /^\d{4}-\d{2}-\d{2}T/);
  });
});
