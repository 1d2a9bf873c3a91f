import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '@chaperone/shared';
import { parseRequest, parseRequestText } from './policy-request.ts';

describe('parseRequestText', () => {
  it('reads an HTTP request line as the sidecar reads the request, undecoded and unnormalised', () => {
    assert.deepEqual(parseRequestText('GET /api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ddb'), {
      protocol: 'kubernetes',
      verb: 'list',
      apiGroup: '',
      apiVersion: 'v1',
      namespace: 'a',
      resource: 'secrets',
      name: 'db',
    });
    assert.equal(parseRequestText('get /api/v1/watch/namespaces/a/pods').verb, 'watch');
  });

  it('says when the sidecar would refuse the request instead of guessing', () => {
    for (const text of [
      'GET /api/v1/namespaces/a/secrets%2Fdb',
      'GET /api/v1/namespaces//secrets',
      'GET /api/v1/namespaces/a/../secrets',
      'GET /api/v1/secrets?a=1;b=2',
    ]) {
      assert.throws(
        () => parseRequestText(text),
        (err: unknown) => {
          assert.ok(err instanceof UsageError, text);
          assert.match((err as Error).message, /the sidecar would refuse this request/);
          return true;
        },
      );
    }
  });
});

describe('parseRequest: SQL', () => {
  it('reads every statement with the classifier the sidecar uses, the SQL text as given', async () => {
    const a = await parseRequest(`sql orders SELECT 'a;b' FROM t; DROP TABLE "x y"`);
    assert.equal(a.protocol, 'postgres');
    assert.equal(a.sql?.database, 'orders');
    assert.deepEqual(
      a.sql?.statements.map((s) => [s.kind, s.tables]),
      [
        ['SelectStmt', ['t']],
        ['DropStmt', ['x y']],
      ],
    );
  });

  it('says what a SQL request looks like when it is not one', async () => {
    await assert.rejects(parseRequest('sql orders'), /"sql <database> <statements>"/);
    await assert.rejects(parseRequest('sql orders -- only a comment'), /holds no SQL statement/);
  });
});
