import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HttpParseError } from './http-parse-error.ts';
import { ResponseDecoder, type ResponseHead, type ResponsePart } from './response-decoder.ts';
import { bytes, splitAt, token } from './test-streams.ts';

interface Decoded {
  head: Omit<ResponseHead, 'headers'> & { headers: Record<string, string> };
  body: string;
  ended: boolean;
}

function fold(parts: readonly ResponsePart[], into: Decoded[]): Decoded[] {
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

/** Expects `methods`, pushes `chunks`, then (with `close`) ends the connection. */
function decode(methods: readonly string[], chunks: readonly (string | Buffer)[], close = false): Decoded[] {
  const d = new ResponseDecoder();
  for (const m of methods) d.expect(m);
  const out: Decoded[] = [];
  for (const c of chunks) fold(d.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c), out);
  if (close) fold(d.end(), out);
  return out;
}

function bytewise(s: string): string[] {
  return [...s];
}

function rejects(methods: readonly string[], chunks: readonly string[], close = false): HttpParseError {
  const d = new ResponseDecoder();
  for (const m of methods) d.expect(m);
  let caught: unknown;
  try {
    for (const c of chunks) d.push(Buffer.from(c, 'latin1'));
    if (close) d.end();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof HttpParseError, `expected HttpParseError(502), got ${String(caught)}`);
  assert.equal(caught.status, 502, caught.message);
  d.expect('GET');
  assert.throws(() => d.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')), HttpParseError);
  assert.throws(() => d.end(), HttpParseError);
  return caught;
}

const ok = (body: string, extra = '') =>
  `HTTP/1.1 200 OK\r\n${extra}Content-Length: ${body.length}\r\n\r\n${body}`;

describe('ResponseDecoder: valid responses', () => {
  it('a 200 with Content-Length', () => {
    const d = new ResponseDecoder();
    d.expect('GET');
    assert.equal(d.idle, true);
    const parts = d.push(
      Buffer.from(
        'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nAudit-Id: x\r\n\r\n{}',
      ),
    );
    assert.equal(parts.length, 3);
    const head = parts[0];
    assert.ok(head?.kind === 'head');
    assert.deepEqual(
      { ...head.head, headers: { ...head.head.headers } },
      {
        statusCode: 200,
        reason: 'OK',
        version: '1.1',
        headers: { 'content-type': 'application/json', 'content-length': '2', 'audit-id': 'x' },
        rawHeaders: ['Content-Type', 'application/json', 'Content-Length', '2', 'Audit-Id', 'x'],
        bodyKind: 'length',
        contentLength: 2,
        keepAlive: true,
      },
    );
    assert.equal(Object.getPrototypeOf(head.head.headers), null);
    assert.deepEqual(parts.slice(1), [{ kind: 'body', data: Buffer.from('{}') }, { kind: 'end' }]);
    assert.equal(d.idle, true);
    assert.deepEqual(d.end(), []);
  });

  const table: {
    name: string;
    methods: string[];
    input: string;
    close?: boolean;
    expect: Partial<Decoded['head']>[];
    bodies: string[];
  }[] = [
    {
      name: 'HEAD response with Content-Length has no body',
      methods: ['HEAD', 'GET'],
      input: `HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n${ok('ab')}`,
      expect: [{ bodyKind: 'none', contentLength: 0, keepAlive: true }, { bodyKind: 'length' }],
      bodies: ['', 'ab'],
    },
    {
      name: '204 and 304 have no body',
      methods: ['DELETE', 'GET', 'GET'],
      input: `HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n${ok('x')}`,
      expect: [
        { statusCode: 204, bodyKind: 'none' },
        { statusCode: 304, bodyKind: 'none' },
        { statusCode: 200, bodyKind: 'length' },
      ],
      bodies: ['', '', 'x'],
    },
    {
      name: '100 Continue and 103 Early Hints before the final response are skipped',
      methods: ['POST'],
      input: `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n${ok('done')}`,
      expect: [{ statusCode: 200, headers: { 'content-length': '4' } }],
      bodies: ['done'],
    },
    {
      name: 'a close-delimited body is completed by end()',
      methods: ['GET'],
      input: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this\r\n\r\nHTTP/1.1 is body',
      close: true,
      expect: [{ bodyKind: 'close', keepAlive: false }],
      bodies: ['all of this\r\n\r\nHTTP/1.1 is body'],
    },
    {
      name: 'chunked with extensions and trailers',
      methods: ['GET'],
      input:
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nwiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\n',
      expect: [{ bodyKind: 'chunked', keepAlive: true }],
      bodies: ['wikipedia'],
    },
    {
      name: 'HTTP/1.0: keep-alive only when announced',
      methods: ['GET', 'GET'],
      input:
        'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\na' +
        'HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb',
      expect: [
        { version: '1.0', keepAlive: true },
        { version: '1.0', keepAlive: false },
      ],
      bodies: ['a', 'b'],
    },
    {
      name: 'connection: close',
      methods: ['GET'],
      input: ok('a', 'Connection: close\r\n'),
      expect: [{ keepAlive: false }],
      bodies: ['a'],
    },
    {
      name: 'bare LF line endings are accepted',
      methods: ['GET'],
      input: 'HTTP/1.1 200 OK\nX-A: 1\r\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n',
      expect: [{ rawHeaders: ['X-A', '1', 'Transfer-Encoding', 'chunked'], bodyKind: 'chunked' }],
      bodies: ['abc'],
    },
    {
      name: 'obs-fold is replaced by a space',
      methods: ['GET'],
      input:
        'HTTP/1.1 200 OK\r\nX-Long: one\r\n   two\r\n\tthree \r\n \r\nX-Empty:\r\n\tb\r\nContent-Length: 0\r\n\r\n',
      expect: [{ headers: { 'x-long': 'one two three', 'x-empty': 'b', 'content-length': '0' } }],
      bodies: [''],
    },
    {
      name: 'set-cookie only in rawHeaders; other repeats joined',
      methods: ['GET'],
      input: ok('', 'Set-Cookie: a=1\r\nVary: a\r\nSet-Cookie: b=2\r\nvary: b\r\n'),
      expect: [
        {
          headers: { vary: 'a, b', 'content-length': '0' },
          rawHeaders: [
            'Set-Cookie',
            'a=1',
            'Vary',
            'a',
            'Set-Cookie',
            'b=2',
            'vary',
            'b',
            'Content-Length',
            '0',
          ],
        },
      ],
      bodies: [''],
    },
    {
      name: 'a status line without a reason phrase',
      methods: ['GET', 'GET'],
      input: 'HTTP/1.1 404\r\nContent-Length: 0\r\n\r\nHTTP/1.1 500 \r\nContent-Length: 0\r\n\r\n',
      expect: [
        { statusCode: 404, reason: '' },
        { statusCode: 500, reason: '' },
      ],
      bodies: ['', ''],
    },
    {
      name: 'identical Content-Lengths',
      methods: ['GET'],
      input: 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc',
      expect: [{ contentLength: 3 }],
      bodies: ['abc'],
    },
  ];

  for (const t of table) {
    it(t.name, () => {
      const msgs = decode(t.methods, [t.input], t.close);
      assert.equal(msgs.length, t.expect.length);
      msgs.forEach((m, i) => {
        assert.equal(m.ended, true);
        const want = t.expect[i]!;
        for (const key of Object.keys(want) as (keyof Decoded['head'])[]) {
          assert.deepEqual(m.head[key], want[key], `message ${i}: ${key}`);
        }
        assert.equal(m.body, t.bodies[i]);
      });
      assert.deepEqual(decode(t.methods, bytewise(t.input), t.close), msgs);
    });
  }

  it('end() with a response due but no byte of it yet returns [] (the caller sees no head)', () => {
    const d = new ResponseDecoder();
    d.expect('GET');
    assert.deepEqual(d.end(), []);
  });

  it('is not idle between an interim response and the final one', () => {
    const d = new ResponseDecoder();
    d.expect('POST');
    assert.deepEqual(d.push(Buffer.from('HTTP/1.1 100 Continue\r\n\r\n')), []);
    assert.equal(d.idle, false);
    assert.throws(
      () => d.end(),
      (e: unknown) => e instanceof HttpParseError && e.status === 502,
    );
  });
});

describe('ResponseDecoder: rejected responses (502)', () => {
  const table: { name: string; methods?: string[]; input: string; close?: boolean }[] = [
    {
      name: 'a body cut short by the close',
      input: 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc',
      close: true,
    },
    { name: 'a head cut short by the close', input: 'HTTP/1.1 200 OK\r\nContent-Le', close: true },
    {
      name: 'a chunked body cut short',
      input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab',
      close: true,
    },
    {
      name: 'a chunked body missing its last chunk',
      input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n',
      close: true,
    },
    { name: 'unsolicited bytes: nothing expected', methods: [], input: 'HTTP/1.1 200 OK\r\n\r\n' },
    { name: 'unsolicited bytes after a complete response', input: `${ok('ab')}x` },
    { name: 'a second response before the next expect()', input: ok('a') + ok('b') },
    {
      name: '101 Switching Protocols',
      input: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n',
    },
    { name: 'HTTP/2.0', input: 'HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n' },
    { name: 'a garbage status line', input: 'SSH-2.0-OpenSSH\r\n\r\n' },
    { name: 'a two-digit status', input: 'HTTP/1.1 20 OK\r\n\r\n' },
    { name: 'a status under 100', input: 'HTTP/1.1 099 Odd\r\n\r\n' },
    { name: 'an empty line before the status line', input: `\r\n${ok('')}` },
    {
      name: 'Transfer-Encoding with Content-Length',
      input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n',
    },
    { name: 'a non-chunked transfer coding', input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n' },
    { name: 'Transfer-Encoding in HTTP/1.0', input: 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' },
    {
      name: 'different Content-Lengths',
      input: 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n',
    },
    { name: 'a non-numeric Content-Length', input: 'HTTP/1.1 200 OK\r\nContent-Length: 3a\r\n\r\n' },
    { name: 'a bad chunk size', input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n' },
    {
      name: 'missing CRLF after chunk data',
      input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n',
    },
    { name: 'a NUL in a value', input: 'HTTP/1.1 200 OK\r\nX: a\0\r\nContent-Length: 0\r\n\r\n' },
    { name: 'a space before the colon', input: 'HTTP/1.1 200 OK\r\nX : a\r\nContent-Length: 0\r\n\r\n' },
    { name: 'obs-fold before any field', input: 'HTTP/1.1 200 OK\r\n X: a\r\nContent-Length: 0\r\n\r\n' },
    { name: 'a head over 64 KiB', input: `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(70_000)}\r\n\r\n` },
    { name: 'more than 200 headers', input: `HTTP/1.1 200 OK\r\n${'X: a\r\n'.repeat(201)}\r\n` },
  ];

  for (const t of table) {
    it(t.name, () => {
      rejects(t.methods ?? ['GET'], [t.input], t.close);
      rejects(t.methods ?? ['GET'], bytewise(t.input), t.close);
    });
  }

  it('honours its options', () => {
    const d = new ResponseDecoder({ maxHeadBytes: 64, maxHeaders: 2, maxChunkLineBytes: 8 });
    d.expect('GET');
    assert.throws(
      () => d.push(Buffer.from(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(60)}\r\n\r\n`)),
      HttpParseError,
    );
    const e = new ResponseDecoder({ maxChunkLineBytes: 8 });
    e.expect('GET');
    assert.throws(
      () => e.push(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;abcdefghij\r\n')),
      HttpParseError,
    );
  });
});

// ---- Property tests --------------------------------------------------------------------------

const RESERVED = new Set(['content-length', 'transfer-encoding', 'connection']);
const fieldName = fc.oneof(
  token(16).filter((n) => !RESERVED.has(n.toLowerCase())),
  fc.constantFrom('Set-Cookie', 'Vary'),
);
const fieldValue = fc
  .string({
    unit: fc.constantFrom('\t', ' ', 'a', 'Z', '0', ',', ';', '=', '"', '\x80', '\xff'),
    maxLength: 24,
  })
  .map((v) => v.replace(/^[\t ]+|[\t ]+$/g, ''));
const eol = fc.constantFrom('\r\n', '\n');

type Body =
  | { kind: 'none' }
  | { kind: 'length'; data: Buffer }
  | { kind: 'chunked'; chunks: Buffer[]; trailers: [string, string][] }
  | { kind: 'close'; data: Buffer };

interface Res {
  method: string;
  interim: number[];
  status: number;
  reason: string;
  fields: { name: string; value: string; eol: string }[];
  body: Body;
}

const response = (last: boolean): fc.Arbitrary<Res> =>
  fc
    .record({
      method: fc.constantFrom('GET', 'HEAD', 'POST'),
      interim: fc.array(fc.constantFrom(100, 102, 103), { maxLength: 2 }),
      status: fc.constantFrom(200, 201, 204, 304, 404, 500),
      reason: fc.constantFrom('OK', 'Whatever It Is', ''),
      fields: fc.array(fc.record({ name: fieldName, value: fieldValue, eol }), { maxLength: 6 }),
      kind: fc.constantFrom(...(last ? ['length', 'chunked', 'close'] : ['length', 'chunked'])),
      data: bytes(150),
      cuts: fc.array(fc.nat(), { maxLength: 4 }),
      trailers: fc.array(fc.tuple(fieldName, fieldValue), { maxLength: 2 }),
    })
    .map(({ kind, data, cuts, trailers, ...rest }): Res => {
      let body: Body;
      if (rest.method === 'HEAD' || rest.status === 204 || rest.status === 304) body = { kind: 'none' };
      else if (kind === 'length') body = { kind: 'length', data };
      else if (kind === 'close') body = { kind: 'close', data };
      else body = { kind: 'chunked', chunks: splitAt(data, cuts).filter((c) => c.length > 0), trailers };
      return { ...rest, body };
    });

function serialize(r: Res): Buffer {
  let head = '';
  for (const s of r.interim) head += `HTTP/1.1 ${s} Interim\r\nX-Hint: ${s}\r\n\r\n`;
  head += `HTTP/1.1 ${r.status} ${r.reason}\r\n`;
  for (const f of r.fields) head += `${f.name}: ${f.value}${f.eol}`;
  const b = r.body;
  if (b.kind === 'length') head += `Content-Length: ${b.data.length}\r\n`;
  if (b.kind === 'chunked') head += 'Transfer-Encoding: chunked\r\n';
  if (b.kind === 'none' && r.method === 'HEAD') head += 'Content-Length: 99\r\n';
  const parts: Buffer[] = [Buffer.from(`${head}\r\n`, 'latin1')];
  if (b.kind === 'length' || b.kind === 'close') parts.push(b.data);
  if (b.kind === 'chunked') {
    for (const c of b.chunks) parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
    let tail = '0\r\n';
    for (const [n, v] of b.trailers) tail += `${n}: ${v}\r\n`;
    parts.push(Buffer.from(`${tail}\r\n`, 'latin1'));
  }
  return Buffer.concat(parts);
}

function expected(r: Res): Decoded {
  const rawHeaders: string[] = [];
  for (const f of r.fields) rawHeaders.push(f.name, f.value);
  const b = r.body;
  if (b.kind === 'length') rawHeaders.push('Content-Length', String(b.data.length));
  if (b.kind === 'chunked') rawHeaders.push('Transfer-Encoding', 'chunked');
  if (b.kind === 'none' && r.method === 'HEAD') rawHeaders.push('Content-Length', '99');
  const joined = new Map<string, string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const k = rawHeaders[i]!.toLowerCase();
    if (k === 'set-cookie') continue;
    const prev = joined.get(k);
    joined.set(k, prev === undefined ? rawHeaders[i + 1]! : `${prev}, ${rawHeaders[i + 1]}`);
  }
  const data =
    b.kind === 'none' ? '' : Buffer.concat(b.kind === 'chunked' ? b.chunks : [b.data]).toString('latin1');
  return {
    head: {
      statusCode: r.status,
      reason: r.reason,
      version: '1.1',
      headers: Object.fromEntries(joined),
      rawHeaders,
      bodyKind: b.kind,
      contentLength: b.kind === 'length' ? b.data.length : 0,
      keepAlive: b.kind !== 'close',
    },
    body: data,
    ended: true,
  };
}

const responses = fc
  .tuple(fc.array(response(false), { maxLength: 3 }), response(true))
  .map(([rest, last]) => [...rest, last]);

describe('ResponseDecoder: properties', () => {
  it('decodes generated responses as the model says, however the stream is cut', () => {
    fc.assert(
      fc.property(responses, fc.array(fc.nat(), { maxLength: 12 }), (rs, points) => {
        const stream = Buffer.concat(rs.map(serialize));
        const methods = rs.map((r) => r.method);
        const close = rs[rs.length - 1]!.body.kind === 'close';
        const want = rs.map(expected);
        assert.deepEqual(decode(methods, [stream], close), want);
        assert.deepEqual(decode(methods, splitAt(stream, points), close), want);
      }),
      { numRuns: 300 },
    );
  });

  it('decodes the same when fed one byte at a time', () => {
    fc.assert(
      fc.property(responses, (rs) => {
        const stream = Buffer.concat(rs.map(serialize));
        const close = rs[rs.length - 1]!.body.kind === 'close';
        const chunks = [...stream].map((b) => Buffer.of(b));
        assert.deepEqual(
          decode(
            rs.map((r) => r.method),
            chunks,
            close,
          ),
          rs.map(expected),
        );
      }),
      { numRuns: 100 },
    );
  });

  const limits = { maxHeadBytes: 256, maxHeaders: 8, maxChunkLineBytes: 32 };
  const bound = Math.max(limits.maxHeadBytes, limits.maxChunkLineBytes + 1);

  function feed(chunks: Buffer[], close: boolean): void {
    const d = new ResponseDecoder(limits);
    for (let i = 0; i < 5; i++) d.expect(i % 2 === 0 ? 'GET' : 'HEAD');
    const msgs: Decoded[] = [];
    try {
      for (const c of chunks) {
        fold(d.push(c), msgs);
        assert.ok(d.buffered <= bound, `buffered ${d.buffered} bytes`);
      }
      if (close) fold(d.end(), msgs);
    } catch (err) {
      if (!(err instanceof HttpParseError)) throw err;
      assert.equal(err.status, 502);
    }
  }

  it('random bytes only ever throw HttpParseError(502), and the buffer stays bounded', () => {
    fc.assert(
      fc.property(bytes(600), fc.array(fc.nat(), { maxLength: 20 }), fc.boolean(), (junk, points, close) =>
        feed(splitAt(junk, points), close),
      ),
      { numRuns: 500 },
    );
  });

  it('random bytes after a valid prefix likewise', () => {
    const prefixes = [
      'HTTP/1.1 200 OK\r\n',
      'HTTP/1.1 100 Continue\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc',
    ];
    const alphabet = fc.constantFrom(...'\r\n:; \t0aAF5"\\\x00\xe9HTP/1. '.split(''));
    fc.assert(
      fc.property(
        fc.constantFrom(...prefixes),
        fc.string({ unit: alphabet, maxLength: 400 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.boolean(),
        (prefix, tail, points, close) => feed(splitAt(Buffer.from(prefix + tail, 'latin1'), points), close),
      ),
      { numRuns: 500 },
    );
  });
});
