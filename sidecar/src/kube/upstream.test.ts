import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLogger } from '@chaperone/shared';
import { derivedAuditID, Upstream } from './upstream.ts';

describe('upstream credentials', () => {
  const dir = mkdtempSync(join(tmpdir(), 'upstream-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('re-reads a rotated token, and never takes one that could break the request head', async () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'first.token-value\n');
    const up = new Upstream({
      url: 'https://127.0.0.1:1',
      ca: '',
      tokenFile: file,
      log: createLogger({ name: 't', level: 'silent' }),
    });
    try {
      assert.equal(up.authorization, 'Bearer first.token-value');
      writeFileSync(file, 'second.token-value');
      up.refreshToken();
      assert.equal(up.authorization, 'Bearer second.token-value');
      writeFileSync(file, 'evil\r\nimpersonate-user: admin');
      up.refreshToken();
      assert.equal(up.authorization, 'Bearer second.token-value');
    } finally {
      await up.close();
    }
  });
});

describe('derived Audit-IDs', () => {
  it('names the guard’s own calls after the request, within what the API server adopts', () => {
    const id = '0b9c1d6e-7f1a-4c2b-9d3e-5f6a7b8c9d0e';
    assert.equal(derivedAuditID(id, 1), `${id}-check-1`);
    assert.throws(() => derivedAuditID('evil\r\nimpersonate-user: admin', 1));
    assert.throws(() => derivedAuditID('a'.repeat(250), 1));
  });
});
