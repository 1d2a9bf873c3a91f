import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LineSplitter, LineTooLongError } from './line-splitter.ts';
import { MASKED_BASE64, MASKED_TEXT, maskBody } from './mask.ts';

const CANARY = 'c3VwZXItc2VjcmV0LWNhbmFyeQ=='; // "super-secret-canary"
const secretOpts = { fields: ['data', 'stringData'], secrets: true } as const;

function secret(name: string) {
  return {
    metadata: {
      name,
      annotations: {
        'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name },
          data: { password: CANARY },
        }),
      },
    },
    type: 'Opaque',
    data: { password: CANARY, user: 'YWdlbnQ=' },
  };
}

describe('maskBody', () => {
  it('masks a single Secret: values replaced, keys kept, base64 stays valid', () => {
    const s = { kind: 'Secret', apiVersion: 'v1', ...secret('db'), stringData: { token: 'raw-canary' } };
    const n = maskBody(s, secretOpts);
    assert.equal(n, 4); // 2 data + 1 stringData + 1 in last-applied
    assert.deepEqual(s.data, { password: MASKED_BASE64, user: MASKED_BASE64 });
    assert.deepEqual(s.stringData, { token: MASKED_TEXT });
    assert.equal(Buffer.from(MASKED_BASE64, 'base64').toString(), MASKED_TEXT);
    assert.equal(JSON.stringify(s).includes(CANARY), false);
    assert.equal(JSON.stringify(s).includes('raw-canary'), false);
    assert.equal(s.metadata.name, 'db');
  });

  it('masks list items even though they carry no kind', () => {
    const list = { kind: 'SecretList', apiVersion: 'v1', metadata: {}, items: [secret('a'), secret('b')] };
    assert.equal(maskBody(list, secretOpts), 6);
    assert.equal(JSON.stringify(list).includes(CANARY), false);
  });

  it('masks objects inside a Table (full objects and partial metadata)', () => {
    const table = {
      kind: 'Table',
      apiVersion: 'meta.k8s.io/v1',
      columnDefinitions: [{ name: 'Name' }],
      rows: [
        { cells: ['a', 'Opaque', 2, '1m'], object: { kind: 'Secret', apiVersion: 'v1', ...secret('a') } },
        {
          cells: ['b'],
          object: {
            kind: 'PartialObjectMetadata',
            apiVersion: 'meta.k8s.io/v1',
            metadata: secret('b').metadata,
          },
        },
      ],
    };
    assert.equal(maskBody(table, secretOpts), 4);
    assert.equal(JSON.stringify(table).includes(CANARY), false);
    assert.deepEqual(table.rows[0]?.cells, ['a', 'Opaque', 2, '1m']);
  });

  it('masks watch events and leaves Status and bookmarks alone', () => {
    const ev = { type: 'ADDED', object: { kind: 'Secret', apiVersion: 'v1', ...secret('a') } };
    assert.equal(maskBody(ev, secretOpts), 3);
    const status = {
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      message: 'x',
      details: { data: { a: 1 } },
    };
    assert.equal(maskBody(status, secretOpts), 0);
    const bookmark = { type: 'BOOKMARK', object: { kind: 'Secret', metadata: { resourceVersion: '5' } } };
    assert.equal(maskBody(bookmark, secretOpts), 0);
  });

  it('masks other fields when a rule asks (ConfigMap data and binaryData)', () => {
    const cm = {
      kind: 'ConfigMap',
      metadata: { name: 'c' },
      data: { url: 'postgres://x' },
      binaryData: { b: 'AAE=' },
    };
    assert.equal(maskBody(cm, { fields: ['data', 'binaryData'], secrets: false }), 2);
    assert.deepEqual(cm.data, { url: MASKED_TEXT });
    assert.deepEqual(cm.binaryData, { b: MASKED_BASE64 });
  });

  it('an unparseable last-applied annotation is masked whole', () => {
    const s = {
      kind: 'Secret',
      metadata: {
        annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `{"data":{"p":"${CANARY}"` },
      },
    };
    assert.equal(maskBody(s, secretOpts), 1);
    assert.equal(JSON.stringify(s).includes(CANARY), false);
  });
});

describe('LineSplitter', () => {
  const events = Array.from({ length: 5 }, (_, i) =>
    JSON.stringify({ type: 'MODIFIED', object: { kind: 'Secret', apiVersion: 'v1', ...secret(`s${i}`) } }),
  );
  const stream = Buffer.from(`${events.join('\n')}\n`);

  function maskStream(chunks: Buffer[]): string {
    const splitter = new LineSplitter(1 << 20);
    const out: string[] = [];
    for (const c of chunks) {
      for (const line of splitter.push(c)) {
        const ev = JSON.parse(line.toString('utf8'));
        maskBody(ev, secretOpts);
        out.push(JSON.stringify(ev));
      }
    }
    assert.equal(splitter.end(), undefined);
    return out.join('\n');
  }

  it('any chunking of a watch stream gives the same masked output', () => {
    const expected = maskStream([stream]);
    assert.equal(expected.includes(CANARY), false);
    assert.equal(expected.split('\n').length, 5);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 40 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const p of [...points, stream.length]) {
          chunks.push(stream.subarray(prev, p));
          prev = p;
        }
        assert.equal(maskStream(chunks), expected);
      }),
      { numRuns: 300 },
    );
  });

  it('splits at every single byte boundary', () => {
    const expected = maskStream([stream]);
    for (let i = 0; i <= stream.length; i++) {
      assert.equal(maskStream([stream.subarray(0, i), stream.subarray(i)]), expected);
    }
  });

  it('refuses a line over the limit instead of buffering it', () => {
    const s = new LineSplitter(16);
    assert.deepEqual(s.push(Buffer.from('0123456789')), []);
    assert.throws(() => s.push(Buffer.from('0123456789')), LineTooLongError);
  });

  it('random bytes never crash the splitter', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), (chunks) => {
        const s = new LineSplitter(4096);
        let total = 0;
        for (const c of chunks) for (const line of s.push(Buffer.from(c))) total += line.length;
        total += s.end()?.length ?? 0;
        const input = Buffer.concat(chunks.map((c) => Buffer.from(c)));
        assert.equal(total, input.length - input.filter((b) => b === 10).length);
      }),
    );
  });
});
