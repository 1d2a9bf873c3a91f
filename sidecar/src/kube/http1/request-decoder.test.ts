import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HttpParseError } from './http-parse-error.ts';
import {
  RequestDecoder,
  type RequestDecoderOptions,
  type RequestHead,
  type RequestPart,
} from './request-decoder.ts';
import { bytes, splitAt, token } from './test-streams.ts';

/** A decoded message: its head (headers as a plain object), body bytes joined, whether 'end' came. */
interface Decoded {
  head: Omit<RequestHead, 'headers'> & { headers: Record<string, string> };
  body: string;
  ended: boolean;
}

/** Folds parts into messages, checking their order (head, body*, end). */
function fold(parts: readonly RequestPart[], into: Decoded[] = []): Decoded[] {
  for (const part of parts) {
    const cur = into[into.length - 1];
    if (part.kind === 'head') {
      assert.ok(cur === undefined || cur.ended, 'a head before the previous message ended');
      into.push({ head: { ...part.head, headers: { ...part.head.headers } }, body: '', ended: false });
    } else {
      assert.ok(cur !== undefined && !cur.ended, `a ${part.kind} part outside a message`);
      if (part.kind === 'body') {
        assert.ok(part.data.length > 0, 'an empty body part');
        cur.body += part.data.toString('latin1');
      } else cur.ended = true;
    }
  }
  return into;
}

function decode(
  input: string | Buffer | readonly (string | Buffer)[],
  opts?: RequestDecoderOptions,
): Decoded[] {
  const d = new RequestDecoder(opts);
  const chunks = typeof input === 'string' || Buffer.isBuffer(input) ? [input] : input;
  const out: Decoded[] = [];
  for (const c of chunks) fold(d.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c), out);
  return out;
}

function rejects(
  input: string | readonly string[],
  status: number,
  opts?: RequestDecoderOptions,
): HttpParseError {
  const d = new RequestDecoder(opts);
  const chunks = typeof input === 'string' ? [input] : input;
  let caught: unknown;
  try {
    for (const c of chunks) d.push(Buffer.from(c, 'latin1'));
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof HttpParseError, `expected HttpParseError(${status}), got ${String(caught)}`);
  assert.equal(caught.status, status, caught.message);
  // Unusable afterwards.
  assert.throws(() => d.push(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n')), HttpParseError);
  assert.equal(d.idle, false);
  return caught;
}

describe('RequestDecoder: valid requests', () => {
  it('GET with a query: head then end, nothing buffered', () => {
    const d = new RequestDecoder();
    const parts = d.push(
      Buffer.from(
        'GET /api/v1/namespaces/default/pods?limit=500&labelSelector=app%3Dweb HTTP/1.1\r\n' +
          'Host: 10.96.0.1:443\r\nUser-Agent: kubectl/v1.31\r\nAccept:application/json \r\n\r\n',
      ),
    );
    assert.equal(parts.length, 2);
    const [head, end] = parts;
    assert.equal(head?.kind, 'head');
    assert.deepEqual(end, { kind: 'end' });
    if (head?.kind !== 'head') return;
    assert.deepEqual(
      { ...head.head, headers: { ...head.head.headers } },
      {
        method: 'GET',
        target: '/api/v1/namespaces/default/pods?limit=500&labelSelector=app%3Dweb',
        version: '1.1',
        headers: { host: '10.96.0.1:443', 'user-agent': 'kubectl/v1.31', accept: 'application/json' },
        rawHeaders: ['Host', '10.96.0.1:443', 'User-Agent', 'kubectl/v1.31', 'Accept', 'application/json'],
        bodyKind: 'none',
        contentLength: 0,
        keepAlive: true,
        upgrade: false,
      },
    );
    assert.equal(Object.getPrototypeOf(head.head.headers), null);
    assert.equal(d.idle, true);
    assert.equal(d.buffered, 0);
  });

  const table: {
    name: string;
    input: string | string[];
    expect: Partial<Decoded['head']>[];
    bodies?: string[];
  }[] = [
    {
      name: 'POST with a Content-Length body',
      input: 'POST /api/v1/namespaces HTTP/1.1\r\nHost: k\r\nContent-Length: 11\r\n\r\n{"a":"b c"}',
      expect: [{ method: 'POST', bodyKind: 'length', contentLength: 11 }],
      bodies: ['{"a":"b c"}'],
    },
    {
      name: 'Content-Length: 0 ends right after the head',
      input: 'DELETE /x HTTP/1.1\r\nHost: k\r\nContent-Length: 0\r\n\r\n',
      expect: [{ method: 'DELETE', bodyKind: 'length', contentLength: 0 }],
      bodies: [''],
    },
    {
      name: 'chunked with extensions and trailers',
      input:
        'PUT /x HTTP/1.1\r\nHost: k\r\nTransfer-Encoding: Chunked\r\n\r\n' +
        '5;name=value;q="a \\"quoted\\" \\\\ str" ;flag\r\nhello\r\n' +
        '0006\r\n world\r\n' +
        'A\r\n0123456789\r\n' +
        '0;last\r\nX-Checksum: abc\r\nX-Other:  x \r\n\r\n',
      expect: [{ bodyKind: 'chunked', contentLength: 0 }],
      bodies: ['hello world0123456789'],
    },
    {
      name: 'pipelined requests in one chunk',
      input:
        'GET /a HTTP/1.1\r\nHost: k\r\n\r\n' +
        'POST /b HTTP/1.1\r\nHost: k\r\nContent-Length: 3\r\n\r\nabc' +
        'PATCH /c HTTP/1.1\r\nHost: k\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n' +
        'GET /d HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n',
      expect: [
        { target: '/a', bodyKind: 'none' },
        { target: '/b', bodyKind: 'length', contentLength: 3 },
        { target: '/c', bodyKind: 'chunked' },
        { target: '/d', keepAlive: false },
      ],
      bodies: ['', 'abc', 'xy', ''],
    },
    {
      name: 'absolute-form targets become origin-form',
      input:
        'GET https://kubernetes.default.svc:443/api/v1/pods?watch=1 HTTP/1.1\r\nHost: kubernetes.default.svc\r\n\r\n' +
        'GET HTTP://[::1]:6443 HTTP/1.1\r\nHost: [::1]:6443\r\n\r\n' +
        'GET http://h?x=1 HTTP/1.1\r\nHost: h\r\n\r\n',
      expect: [{ target: '/api/v1/pods?watch=1' }, { target: '/' }, { target: '/?x=1' }],
    },
    {
      name: 'OPTIONS * is accepted',
      input: 'OPTIONS * HTTP/1.1\r\nHost: k\r\n\r\n',
      expect: [{ method: 'OPTIONS', target: '*' }],
    },
    {
      name: 'HTTP/1.0: keep-alive only when asked, Host optional',
      input:
        'GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n' +
        'GET /b HTTP/1.0\r\n\r\n' +
        'GET /c HTTP/1.1\r\nHost: k\r\nConnection: keep-alive, close\r\n\r\n',
      expect: [
        { version: '1.0', keepAlive: true },
        { version: '1.0', keepAlive: false },
        { version: '1.1', keepAlive: false },
      ],
    },
    {
      name: 'repeated fields are joined, cookie with "; ", raw headers keep case and order',
      input:
        'GET / HTTP/1.1\r\nHost: k\r\nAccept: a\r\nCookie: x=1\r\naccept: b\r\nCOOKIE: y=2\r\nX-Empty:\r\n\r\n',
      expect: [
        {
          headers: { host: 'k', accept: 'a, b', cookie: 'x=1; y=2', 'x-empty': '' },
          rawHeaders: [
            'Host',
            'k',
            'Accept',
            'a',
            'Cookie',
            'x=1',
            'accept',
            'b',
            'COOKIE',
            'y=2',
            'X-Empty',
            '',
          ],
        },
      ],
    },
    {
      name: 'a list of identical Content-Lengths is that length',
      input: 'POST / HTTP/1.1\r\nHost: k\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok',
      expect: [{ bodyKind: 'length', contentLength: 2 }],
      bodies: ['ok'],
    },
    {
      name: 'upgrade needs both the Upgrade header and the connection option',
      input:
        'GET /ws HTTP/1.1\r\nHost: k\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n' +
        'GET /ws HTTP/1.1\r\nHost: k\r\nUpgrade: websocket\r\n\r\n',
      expect: [{ upgrade: true }, { upgrade: false }],
    },
    {
      name: 'empty lines before a request line are skipped (RFC 9112 §2.2)',
      input: [
        'POST /a HTTP/1.1\r\nHost: k\r\nContent-Length: 1\r\n\r\nx\r\n',
        '\r',
        '\n\r\nGET /b HTTP/1.1\r\nHost: k\r\n\r\n',
      ],
      expect: [{ target: '/a' }, { target: '/b' }],
      bodies: ['x', ''],
    },
    {
      name: 'obs-text and tabs in values are kept as latin1',
      input: 'GET / HTTP/1.1\r\nHost: k\r\nX-Name: caf\xe9\tok\t\r\n\r\n',
      expect: [{ headers: { host: 'k', 'x-name': 'caf\xe9\tok' } }],
    },
    {
      name: 'a header named __proto__ is an ordinary field',
      input: 'GET / HTTP/1.1\r\nHost: k\r\n__proto__: x\r\n\r\n',
      expect: [{ headers: { host: 'k', ['__proto__']: 'x' } }],
    },
  ];

  for (const t of table) {
    it(t.name, () => {
      const whole = typeof t.input === 'string' ? t.input : t.input.join('');
      const msgs = decode(t.input);
      assert.equal(msgs.length, t.expect.length);
      msgs.forEach((m, i) => {
        assert.equal(m.ended, true);
        const want = t.expect[i]!;
        for (const key of Object.keys(want) as (keyof Decoded['head'])[]) {
          assert.deepEqual(m.head[key], want[key], `message ${i}: ${key}`);
        }
        if (t.bodies) assert.equal(m.body, t.bodies[i]);
      });
      // Byte by byte gives the same.
      assert.deepEqual(decode([...Buffer.from(whole, 'latin1')].map((b) => Buffer.of(b))), msgs);
    });
  }

  it('hands out body bytes as views of the input, not copies', () => {
    const d = new RequestDecoder();
    const chunk = Buffer.from('POST / HTTP/1.1\r\nHost: k\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n');
    const body = d.push(chunk).find((p) => p.kind === 'body');
    assert.ok(body?.kind === 'body');
    assert.equal(body.data.buffer, chunk.buffer);
    assert.equal(d.idle, false);
  });

  it('is idle only between messages', () => {
    const d = new RequestDecoder();
    assert.equal(d.idle, true);
    d.push(Buffer.from('POST / HTTP/1.1\r\nHost: k\r\n'));
    assert.equal(d.idle, false);
    d.push(Buffer.from('Content-Length: 2\r\n\r\na'));
    assert.equal(d.idle, false);
    d.push(Buffer.from('b'));
    assert.equal(d.idle, true);
    d.push(Buffer.from('G'));
    assert.equal(d.idle, false);
  });
});

describe('RequestDecoder: rejected requests', () => {
  const ok = 'GET / HTTP/1.1\r\nHost: k\r\n';
  const table: { name: string; input: string | string[]; status: number; opts?: RequestDecoderOptions }[] = [
    {
      name: 'Content-Length with Transfer-Encoding',
      input: `${ok}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n`,
      status: 400,
    },
    {
      name: 'two different Content-Lengths',
      input: `${ok}Content-Length: 3\r\nContent-Length: 4\r\n\r\n`,
      status: 400,
    },
    { name: 'a list of different Content-Lengths', input: `${ok}Content-Length: 3, 4\r\n\r\n`, status: 400 },
    { name: 'a signed Content-Length', input: `${ok}Content-Length: +3\r\n\r\n`, status: 400 },
    { name: 'a hex Content-Length', input: `${ok}Content-Length: 0x3\r\n\r\n`, status: 400 },
    { name: 'an empty Content-Length', input: `${ok}Content-Length:\r\n\r\n`, status: 400 },
    { name: 'an absurd Content-Length', input: `${ok}Content-Length: 9007199254740992\r\n\r\n`, status: 413 },
    {
      name: 'gzip as the final transfer coding',
      input: `${ok}Transfer-Encoding: chunked, gzip\r\n\r\n`,
      status: 400,
    },
    { name: 'gzip alone', input: `${ok}Transfer-Encoding: gzip\r\n\r\n`, status: 400 },
    {
      name: 'gzip before chunked (body would stay encoded)',
      input: `${ok}Transfer-Encoding: gzip, chunked\r\n\r\n`,
      status: 501,
    },
    {
      name: 'chunked twice',
      input: `${ok}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n`,
      status: 400,
    },
    {
      name: 'Transfer-Encoding in HTTP/1.0',
      input: 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n',
      status: 400,
    },
    {
      name: 'a chunk size that is not hex',
      input: `${ok}Transfer-Encoding: chunked\r\n\r\nzz\r\n`,
      status: 400,
    },
    { name: 'a chunk size with a sign', input: `${ok}Transfer-Encoding: chunked\r\n\r\n-1\r\n`, status: 400 },
    { name: 'an empty chunk size', input: `${ok}Transfer-Encoding: chunked\r\n\r\n;x\r\n`, status: 400 },
    {
      name: 'whitespace after a chunk size',
      input: `${ok}Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n`,
      status: 400,
    },
    {
      name: 'a chunk size overflowing 2^52',
      input: `${ok}Transfer-Encoding: chunked\r\n\r\n10000000000000\r\n`,
      status: 400,
    },
    {
      name: 'a bare LF inside a chunk extension',
      input: `${ok}Transfer-Encoding: chunked\r\n\r\n3;a\nb\r\nabc\r\n`,
      status: 400,
    },
    {
      name: 'a bare CR in a chunk extension',
      input: `${ok}Transfer-Encoding: chunked\r\n\r\n3;a\rb\r\nabc\r\n`,
      status: 400,
    },
    {
      name: 'missing CRLF after chunk data',
      input: `${ok}Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n`,
      status: 400,
    },
    {
      name: 'LF without CR after chunk data',
      input: `${ok}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n`,
      status: 400,
    },
    {
      name: 'a chunk-size line over the limit',
      input: `${ok}Transfer-Encoding: chunked\r\n\r\n1;${'a'.repeat(200)}`,
      status: 400,
      opts: { maxChunkLineBytes: 100 },
    },
    {
      name: 'a malformed trailer',
      input: `${ok}Transfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n`,
      status: 400,
    },
    { name: 'obs-fold', input: `${ok}X-A: a\r\n  folded\r\n\r\n`, status: 400 },
    { name: 'obs-fold as the first field', input: 'GET / HTTP/1.1\r\n Host: k\r\n\r\n', status: 400 },
    { name: 'a space before the colon', input: `${ok}Content-Length : 3\r\n\r\nabc`, status: 400 },
    { name: 'a tab before the colon', input: `${ok}Content-Length\t: 3\r\n\r\nabc`, status: 400 },
    { name: 'a NUL in a value', input: `${ok}X-A: a\0b\r\n\r\n`, status: 400 },
    { name: 'a bare CR in a value', input: `${ok}X-A: a\rb\r\n\r\n`, status: 400 },
    { name: 'a CR before CRLF', input: `${ok}X-A: ab\r\r\n\r\n`, status: 400 },
    { name: 'DEL in a value', input: `${ok}X-A: a\x7fb\r\n\r\n`, status: 400 },
    { name: 'a header without a colon', input: `${ok}X-A\r\n\r\n`, status: 400 },
    { name: 'an empty header name', input: `${ok}: x\r\n\r\n`, status: 400 },
    { name: 'a bare LF ending the request line', input: 'GET / HTTP/1.1\nHost: k\r\n\r\n', status: 400 },
    { name: 'a bare LF ending a header', input: `${ok}X-A: a\n\r\n`, status: 400 },
    { name: 'bare LF ending the head', input: `${ok}\n`, status: 400 },
    { name: 'a bare LF before the request line', input: '\nGET / HTTP/1.1\r\nHost: k\r\n\r\n', status: 400 },
    { name: 'too many empty lines first', input: `${'\r\n'.repeat(5)}${ok}\r\n`, status: 400 },
    { name: 'a method with an invalid character', input: 'GE@T / HTTP/1.1\r\nHost: k\r\n\r\n', status: 400 },
    {
      name: 'a method with a non-ASCII character',
      input: 'G\xc9T / HTTP/1.1\r\nHost: k\r\n\r\n',
      status: 400,
    },
    { name: 'two spaces after the method', input: 'GET  / HTTP/1.1\r\nHost: k\r\n\r\n', status: 400 },
    { name: 'a tab as separator', input: 'GET\t/ HTTP/1.1\r\nHost: k\r\n\r\n', status: 400 },
    {
      name: 'a trailing space on the request line',
      input: 'GET / HTTP/1.1 \r\nHost: k\r\n\r\n',
      status: 400,
    },
    { name: 'a lower-case version', input: 'GET / http/1.1\r\nHost: k\r\n\r\n', status: 400 },
    { name: 'a malformed version', input: 'GET / HTTP/1.10\r\nHost: k\r\n\r\n', status: 400 },
    { name: 'HTTP/2.0', input: 'GET / HTTP/2.0\r\nHost: k\r\n\r\n', status: 505 },
    { name: 'HTTP/0.9', input: 'GET / HTTP/0.9\r\n\r\n', status: 505 },
    { name: 'HTTP/1.2', input: 'GET / HTTP/1.2\r\nHost: k\r\n\r\n', status: 505 },
    { name: 'a target with a space', input: 'GET /a b HTTP/1.1\r\nHost: k\r\n\r\n', status: 400 },
    { name: 'a target with a fragment', input: 'GET /a#b HTTP/1.1\r\nHost: k\r\n\r\n', status: 400 },
    { name: 'a target with a backslash', input: 'GET /a\\..\\b HTTP/1.1\r\nHost: k\r\n\r\n', status: 400 },
    { name: 'a target with non-ASCII', input: 'GET /caf\xe9 HTTP/1.1\r\nHost: k\r\n\r\n', status: 400 },
    {
      name: 'a target with a bad percent-escape',
      input: 'GET /a%zz HTTP/1.1\r\nHost: k\r\n\r\n',
      status: 400,
    },
    {
      name: 'a target with a cut percent-escape',
      input: 'GET /a%4 HTTP/1.1\r\nHost: k\r\n\r\n',
      status: 400,
    },
    { name: 'a relative target', input: 'GET api/v1 HTTP/1.1\r\nHost: k\r\n\r\n', status: 400 },
    { name: 'authority-form', input: 'CONNECT k:443 HTTP/1.1\r\nHost: k\r\n\r\n', status: 400 },
    { name: '* with GET', input: 'GET * HTTP/1.1\r\nHost: k\r\n\r\n', status: 400 },
    {
      name: 'absolute-form with userinfo',
      input: 'GET https://u:p@k/ HTTP/1.1\r\nHost: k\r\n\r\n',
      status: 400,
    },
    {
      name: 'absolute-form with another scheme',
      input: 'GET ftp://k/ HTTP/1.1\r\nHost: k\r\n\r\n',
      status: 400,
    },
    { name: 'HTTP/1.1 without Host', input: 'GET / HTTP/1.1\r\n\r\n', status: 400 },
    { name: 'two Host lines', input: `${ok}Host: other\r\n\r\n`, status: 400 },
    { name: 'a Host with a path', input: 'GET / HTTP/1.1\r\nHost: k/x\r\n\r\n', status: 400 },
    {
      name: 'a head over maxHeadBytes',
      input: `${ok}X-A: ${'a'.repeat(300)}\r\n\r\n`,
      status: 431,
      opts: { maxHeadBytes: 256 },
    },
    {
      name: 'a head over maxHeadBytes with no end in sight',
      input: [ok, 'X-A: a\r\n'.repeat(40)],
      status: 431,
      opts: { maxHeadBytes: 256 },
    },
    { name: 'a head line over the default 64 KiB', input: [ok, `X-A: ${'a'.repeat(70_000)}`], status: 431 },
    {
      name: 'too many headers',
      input: `${ok}${'X-A: a\r\n'.repeat(10)}\r\n`,
      status: 431,
      opts: { maxHeaders: 10 },
    },
    {
      name: 'too many trailer fields',
      input: `${ok}Transfer-Encoding: chunked\r\n\r\n0\r\n${'X: a\r\n'.repeat(4)}\r\n`,
      status: 431,
      opts: { maxHeaders: 3 },
    },
    {
      name: 'trailers over maxHeadBytes',
      input: `${ok}Transfer-Encoding: chunked\r\n\r\n0\r\nX: ${'a'.repeat(300)}\r\n\r\n`,
      status: 431,
      opts: { maxHeadBytes: 256 },
    },
  ];

  for (const t of table) {
    it(`${t.name} → ${t.status}`, () => {
      rejects(t.input, t.status, t.opts);
      // Split byte by byte, the same error.
      const whole = typeof t.input === 'string' ? t.input : t.input.join('');
      rejects([...whole], t.status, t.opts);
    });
  }

  it('rejects a head at exactly maxHeadBytes + 1, accepts it at maxHeadBytes', () => {
    const head = (n: number) => `GET / HTTP/1.1\r\nHost: k\r\nX: ${'a'.repeat(n)}\r\n\r\n`;
    const base = head(0).length;
    assert.equal(decode(head(100 - base), { maxHeadBytes: 100 }).length, 1);
    rejects(head(101 - base), 431, { maxHeadBytes: 100 });
  });

  it('does not echo header values in its messages', () => {
    const err = rejects('GET / HTTP/1.1\r\nHost: k\r\nAuthorization: Bearer secret-token\0\r\n\r\n', 400);
    assert.doesNotMatch(err.message, /secret-token/);
    assert.match(err.message, /Authorization/);
  });

  it('validates its options', () => {
    assert.throws(() => new RequestDecoder({ maxHeadBytes: 0 }), RangeError);
    assert.throws(() => new RequestDecoder({ maxHeaders: 1.5 }), RangeError);
  });
});

// ---- Property tests --------------------------------------------------------------------------

const RESERVED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade']);
const fieldName = token(16).filter((n) => !RESERVED.has(n.toLowerCase()));
const VALUE_CHARS = ['\t', ' ', 'a', 'Z', '0', ',', ';', '=', '"', '/', '~', '\x80', '\xe9', '\xff'];
const fieldValue = fc
  .string({ unit: fc.constantFrom(...VALUE_CHARS), maxLength: 24 })
  .map((v) => v.replace(/^[\t ]+|[\t ]+$/g, ''));
const ows = fc.constantFrom('', ' ', '\t', '  ', ' \t');
const PATH_CHARS = "abcXYZ019-._~!$&'()*+,;=:@/?".split('');
const target = fc
  .tuple(
    fc.string({ unit: fc.constantFrom(...PATH_CHARS), maxLength: 30 }),
    fc.option(fc.constantFrom('%41', '%2f', '%E9')),
  )
  .map(([p, pct]) => `/${p}${pct ?? ''}`);

type Body =
  | { kind: 'none' }
  | { kind: 'length'; data: Buffer }
  | { kind: 'chunked'; chunks: Buffer[]; exts: string[]; trailers: [string, string][] };

interface Req {
  /** Empty lines before the request line (skipped, RFC 9112 §2.2). */
  lead: number;
  method: string;
  target: string;
  fields: { name: string; value: string; before: string; after: string }[];
  body: Body;
}

const chunkExt = fc.oneof(
  fc.constant(''),
  token(6).map((n) => `;${n}`),
  fc.tuple(token(6), token(6)).map(([n, v]) => ` ; ${n}=${v}`),
  fc
    .tuple(token(6), fc.string({ unit: fc.constantFrom('a', ' ', '\\"', '\\\\', ';'), maxLength: 8 }))
    .map(([n, v]) => `;${n}="${v}"`),
);

const body: fc.Arbitrary<Body> = fc.oneof(
  fc.constant<Body>({ kind: 'none' }),
  bytes(200).map((data): Body => ({ kind: 'length', data })),
  fc
    .record({
      chunks: fc.array(
        bytes(60).filter((b) => b.length > 0),
        { maxLength: 5 },
      ),
      exts: fc.array(chunkExt, { minLength: 6, maxLength: 6 }),
      trailers: fc.array(fc.tuple(fieldName, fieldValue), { maxLength: 3 }),
    })
    .map((b): Body => ({ kind: 'chunked', ...b })),
);

const request: fc.Arbitrary<Req> = fc.record({
  lead: fc.constantFrom(0, 0, 1, 2),
  method: token(10),
  target,
  fields: fc.array(fc.record({ name: fieldName, value: fieldValue, before: ows, after: ows }), {
    maxLength: 8,
  }),
  body,
});

function serialize(r: Req): Buffer {
  let head = `${'\r\n'.repeat(r.lead)}${r.method} ${r.target} HTTP/1.1\r\nHost: example.test\r\n`;
  for (const f of r.fields) head += `${f.name}:${f.before}${f.value}${f.after}\r\n`;
  const parts: Buffer[] = [];
  if (r.body.kind === 'length') head += `Content-Length: ${r.body.data.length}\r\n`;
  if (r.body.kind === 'chunked') head += 'Transfer-Encoding: chunked\r\n';
  parts.push(Buffer.from(`${head}\r\n`, 'latin1'));
  if (r.body.kind === 'length') parts.push(r.body.data);
  if (r.body.kind === 'chunked') {
    r.body.chunks.forEach((c, i) => {
      parts.push(
        Buffer.from(`${c.length.toString(16)}${r.body.kind === 'chunked' ? r.body.exts[i] : ''}\r\n`),
      );
      parts.push(c, Buffer.from('\r\n'));
    });
    let tail = `0${r.body.exts[5]}\r\n`;
    for (const [n, v] of r.body.trailers) tail += `${n}: ${v}\r\n`;
    parts.push(Buffer.from(`${tail}\r\n`, 'latin1'));
  }
  return Buffer.concat(parts);
}

/** What the decoder must produce for `r`, from the model alone. */
function expected(r: Req): Decoded {
  const rawHeaders = ['Host', 'example.test'];
  for (const f of r.fields) rawHeaders.push(f.name, f.value);
  if (r.body.kind === 'length') rawHeaders.push('Content-Length', String(r.body.data.length));
  if (r.body.kind === 'chunked') rawHeaders.push('Transfer-Encoding', 'chunked');
  const joined = new Map<string, string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const k = rawHeaders[i]!.toLowerCase();
    const v = rawHeaders[i + 1]!;
    const prev = joined.get(k);
    joined.set(k, prev === undefined ? v : `${prev}${k === 'cookie' ? '; ' : ', '}${v}`);
  }
  const headers = Object.fromEntries(joined);
  const data =
    r.body.kind === 'none'
      ? ''
      : Buffer.concat(r.body.kind === 'length' ? [r.body.data] : r.body.chunks).toString('latin1');
  return {
    head: {
      method: r.method,
      target: r.target,
      version: '1.1',
      headers,
      rawHeaders,
      bodyKind: r.body.kind,
      contentLength: r.body.kind === 'length' ? r.body.data.length : 0,
      keepAlive: true,
      upgrade: false,
    },
    body: data,
    ended: true,
  };
}

describe('RequestDecoder: properties', () => {
  it('decodes generated pipelined requests as the model says, however the stream is cut', () => {
    fc.assert(
      fc.property(
        fc.array(request, { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (reqs, points) => {
          const stream = Buffer.concat(reqs.map(serialize));
          const want = reqs.map(expected);
          assert.deepEqual(decode(stream), want);
          assert.deepEqual(decode(splitAt(stream, points)), want);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('decodes the same when fed one byte at a time', () => {
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 3 }), (reqs) => {
        const stream = Buffer.concat(reqs.map(serialize));
        const d = new RequestDecoder();
        const msgs: Decoded[] = [];
        for (let i = 0; i < stream.length; i++) {
          fold(d.push(stream.subarray(i, i + 1)), msgs);
          assert.ok(d.buffered <= 64 * 1024);
        }
        assert.deepEqual(msgs, reqs.map(expected));
        assert.equal(d.idle, true);
      }),
      { numRuns: 100 },
    );
  });

  const limits = { maxHeadBytes: 256, maxHeaders: 8, maxChunkLineBytes: 32 };
  const bound = Math.max(limits.maxHeadBytes, limits.maxChunkLineBytes + 1);

  function feed(chunks: Buffer[]): void {
    const d = new RequestDecoder(limits);
    const msgs: Decoded[] = [];
    for (const c of chunks) {
      try {
        fold(d.push(c), msgs);
      } catch (err) {
        if (!(err instanceof HttpParseError)) throw err;
        assert.ok([400, 413, 431, 501, 505].includes(err.status), `status ${err.status}`);
        return;
      }
      assert.ok(d.buffered <= bound, `buffered ${d.buffered} bytes`);
    }
  }

  it('random bytes only ever throw HttpParseError, and the buffer stays bounded', () => {
    fc.assert(
      fc.property(bytes(600), fc.array(fc.nat(), { maxLength: 20 }), (junk, points) =>
        feed(splitAt(junk, points)),
      ),
      { numRuns: 500 },
    );
  });

  it('random bytes after a valid prefix (head, chunked body, trailers) likewise', () => {
    const prefixes = [
      'POST / HTTP/1.1\r\nHost: k\r\n',
      'POST / HTTP/1.1\r\nHost: k\r\nTransfer-Encoding: chunked\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: k\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n',
      'GET / HTTP/1.1\r\nHost: k\r\n\r\n',
    ];
    const alphabet = fc.constantFrom(...'\r\n:; \t0aAF5"\\\x00\x7f\xe9G/'.split(''));
    fc.assert(
      fc.property(
        fc.constantFrom(...prefixes),
        fc.string({ unit: alphabet, maxLength: 400 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (prefix, tail, points) => feed(splitAt(Buffer.from(prefix + tail, 'latin1'), points)),
      ),
      { numRuns: 500 },
    );
  });

  it('a long stream of header bytes split into tiny chunks is rejected without quadratic buffering', () => {
    const d = new RequestDecoder({ maxHeadBytes: 4096 });
    let caught: unknown;
    try {
      d.push(Buffer.from('GET / HTTP/1.1\r\nHost: k\r\nX: '));
      for (let i = 0; i < 10_000; i++) {
        d.push(Buffer.from('aaaa'));
        assert.ok(d.buffered <= 4096);
      }
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof HttpParseError && caught.status === 431);
  });
});
