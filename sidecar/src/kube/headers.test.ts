import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { droppedRequestField, upstreamHead } from './headers.ts';
import { AgentRequest } from './http1/agent-connection.ts';
import { RequestDecoder } from './http1/request-decoder.ts';

function agentRequest(raw: string): AgentRequest {
  const parts = new RequestDecoder().push(Buffer.from(raw, 'latin1'));
  const head = parts[0];
  assert.equal(head?.kind, 'head');
  return new AgentRequest(head.head, '127.0.0.1', () => {});
}

/** The upstream head's fields as [lower-cased name, value] pairs. */
function fields(head: string): [string, string][] {
  return head
    .split('\r\n')
    .slice(1)
    .filter((l) => l !== '')
    .map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
    });
}

describe('upstream request head', () => {
  const agent = agentRequest(
    [
      'GET /api/v1/namespaces/a/pods?watch=1 HTTP/1.1',
      'Host: 127.0.0.1:6443',
      'Authorization: Bearer placeholder',
      'Audit-ID: forged-id',
      'X-Forwarded-For: 10.9.9.9',
      'x-forwarded-host: evil',
      'X-Forwarded-Proto: http',
      'X-Forwarded-User: admin',
      'Forwarded: for=10.9.9.9;proto=https',
      'X-Real-Ip: 10.9.9.9',
      'X-Client-IP: 10.9.9.9',
      'True-Client-IP: 10.9.9.9',
      'X-Remote-User: admin',
      'X-Remote-Group: system:masters',
      'X-Remote-Extra-Scopes: all',
      'Impersonate-User: someone',
      'Connection: keep-alive, X-Private',
      'X-Private: hop',
      'Accept: application/json',
      'User-Agent: kubectl/v1.32',
      'X-Request-Id: keep-me',
      '',
      '',
    ].join('\r\n'),
  );

  it('drops the fields that would change who the API server thinks called, or from where', () => {
    const head = upstreamHead(agent, 'api.example:6443', 'Bearer real', 'audit-1', undefined, undefined);
    const got = fields(head);
    const names = got.map(([n]) => n);
    for (const forbidden of [
      'x-forwarded-for',
      'x-forwarded-host',
      'x-forwarded-proto',
      'x-forwarded-user',
      'forwarded',
      'x-real-ip',
      'x-client-ip',
      'true-client-ip',
      'x-remote-user',
      'x-remote-group',
      'x-remote-extra-scopes',
      'x-private',
      'connection',
    ]) {
      assert.equal(names.includes(forbidden), false, `${forbidden} must not go upstream:\n${head}`);
    }
    // One Authorization and one Audit-ID, both the sidecar's.
    assert.deepEqual(
      got.filter(([n]) => n === 'authorization' || n === 'audit-id' || n === 'host'),
      [
        ['host', 'api.example:6443'],
        ['authorization', 'Bearer real'],
        ['audit-id', 'audit-1'],
      ],
    );
    // What the policy decides on, and ordinary fields, pass unchanged.
    for (const kept of [
      ['impersonate-user', 'someone'],
      ['accept', 'application/json'],
      ['user-agent', 'kubectl/v1.32'],
      ['x-request-id', 'keep-me'],
    ]) {
      assert.ok(
        got.some(([n, v]) => n === kept[0] && v === kept[1]),
        `${kept[0]} is kept`,
      );
    }
    // The request line is the agent's, byte for byte.
    assert.ok(head.startsWith('GET /api/v1/namespaces/a/pods?watch=1 HTTP/1.1\r\n'));
  });

  it('classifies field names', () => {
    for (const n of ['x-forwarded-port', 'x-remote-anything', 'forwarded', 'x-real-ip', 'authorization'])
      assert.equal(droppedRequestField(n), true, n);
    for (const n of ['x-request-id', 'accept', 'impersonate-group', 'x-forwarded', 'user-agent'])
      assert.equal(droppedRequestField(n), false, n);
  });
});
