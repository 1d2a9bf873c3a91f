import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { splitAt } from '../kube/http1/test-streams.ts';
import { BackendDecoder } from './backend-decoder.ts';
import { type CopyFormat, CopyMasker, copyFormat } from './copy-masker.ts';
import { ProtocolError } from './protocol.ts';
import { type ColumnPlan, MASKED_TEXT } from './result-masker.ts';

// id int4, password text (masked), pin int4 (masked), note text
const columns: ColumnPlan[] = [
  { typeOid: 23 },
  { maskedBy: 'mask-secrets', typeOid: 25 },
  { maskedBy: 'mask-secrets', typeOid: 23 },
  { typeOid: 25 },
];

/** The rows a masker gives for `data` cut at `points`, as one string. */
function run(format: CopyFormat, data: Buffer, points: number[] = []): { out: string; masked: number } {
  const m = new CopyMasker(format, columns, 1 << 16);
  const out: Buffer[] = [];
  let masked = 0;
  for (const chunk of splitAt(data, points)) {
    const r = m.push(chunk);
    // Each message is one CopyData holding whole rows: decode it back.
    for (const msg of new BackendDecoder({ maxMessageBytes: 1 << 16 }).push(Buffer.concat(r.messages))) {
      assert.ok(msg.type === 'CopyData');
      out.push(msg.data);
    }
    for (const n of r.masked.values()) masked += n;
  }
  m.end();
  return { out: Buffer.concat(out).toString('latin1'), masked };
}

function everySplit(format: CopyFormat, data: Buffer, canary: string): string {
  const whole = run(format, data);
  assert.ok(!whole.out.includes(canary), 'the canary is masked');
  for (let i = 1; i < data.length; i++) assert.deepEqual(run(format, data, [i]), whole, `split at ${i}`);
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 1, max: data.length - 1 }), { maxLength: 10 }), (p) => {
      assert.deepEqual(
        run(
          format,
          data,
          p.sort((a, b) => a - b),
        ),
        whole,
      );
    }),
  );
  return whole.out;
}

describe('CopyMasker: COPY … TO STDOUT rows with masked columns', () => {
  it('text: fields split at unescaped delimiters, NULL string for non-text columns, header kept', () => {
    const f = copyFormat(new Map([['header', 'true']]));
    const data = Buffer.from(
      'id\tpassword\tpin\tnote\n1\tcanary\\tsecret\t1234\ta\\\\b\n2\t\\N\t\\N\tx\\ty\n',
      'latin1',
    );
    const out = everySplit(f, data, 'canary');
    assert.equal(
      out,
      `id\tpassword\tpin\tnote\n1\t${MASKED_TEXT}\t\\N\ta\\\\b\n2\t${MASKED_TEXT}\t\\N\tx\\ty\n`,
    );
    assert.equal(run(f, data).masked, 4);
  });

  it('text with another delimiter and NULL string: the marker is escaped where it holds the delimiter', () => {
    const f = copyFormat(
      new Map<string, string | true>([
        ['delimiter', '*'],
        ['null', 'NIL'],
      ]),
    );
    const out = everySplit(f, Buffer.from('7*canary\\*x*5*n\n', 'latin1'), 'canary');
    assert.equal(out, `7*${MASKED_TEXT.replaceAll('*', '\\*')}*NIL*n\n`);
  });

  it('csv: quoted fields with delimiters, quotes and newlines inside; the marker is quoted', () => {
    const f = copyFormat(
      new Map([
        ['format', 'csv'],
        ['header', 'on'],
      ]),
    );
    const data = Buffer.from(
      'id,password,pin,note\n1,"canary, ""quoted""\nline",42,"a,b"\n2,,,\n3,canary,7,"x""\n"\n',
      'latin1',
    );
    const out = everySplit(f, data, 'canary');
    assert.equal(
      out,
      `id,password,pin,note\n1,"${MASKED_TEXT}",,"a,b"\n2,"${MASKED_TEXT}",,\n3,"${MASKED_TEXT}",,"x""\n"\n`,
    );
  });

  it('csv with ESCAPE other than QUOTE', () => {
    const f = copyFormat(
      new Map([
        ['format', 'csv'],
        ['escape', '\\'],
        ['delimiter', ';'],
      ]),
    );
    const out = everySplit(f, Buffer.from('1;"can\\"ary;\\\\";2;"n"\n', 'latin1'), 'can');
    assert.equal(out, `1;"${MASKED_TEXT}";;"n"\n`);
  });

  it('binary: header, tuples with lengths recomputed, NULLs, the trailer', () => {
    const f = copyFormat(new Map([['format', 'binary']]));
    const field = (v: Buffer | null) => {
      const h = Buffer.alloc(4);
      h.writeInt32BE(v === null ? -1 : v.length);
      return v === null ? h : Buffer.concat([h, v]);
    };
    const tuple = (...vs: (Buffer | null)[]) => {
      const n = Buffer.alloc(2);
      n.writeInt16BE(vs.length);
      return Buffer.concat([n, ...vs.map(field)]);
    };
    const int4 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeInt32BE(n);
      return b;
    };
    const header = Buffer.concat([
      Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'),
      int4(0),
      int4(2),
      Buffer.from([9, 9]),
    ]);
    const data = Buffer.concat([
      header,
      tuple(int4(1), Buffer.from('canary-secret'), int4(1234), Buffer.from('n')),
      tuple(int4(2), null, null, null),
      Buffer.from([0xff, 0xff]),
    ]);
    const out = everySplit(f, data, 'canary');
    assert.deepEqual(
      Buffer.from(out, 'latin1'),
      Buffer.concat([
        header,
        tuple(int4(1), Buffer.from(MASKED_TEXT), null, Buffer.from('n')),
        tuple(int4(2), Buffer.from(MASKED_TEXT), null, null),
        Buffer.from([0xff, 0xff]),
      ]),
    );
  });

  it('refuses rows it cannot read as the table: wrong field counts, a half row at the end, OIDs', () => {
    const text = copyFormat(new Map());
    assert.throws(() => run(text, Buffer.from('1\t2\n')), ProtocolError);
    assert.throws(() => run(text, Buffer.from('1\tx\t2\tn')), /ended in the middle of a row/);
    const bin = copyFormat(new Map([['format', 'binary']]));
    const oids = Buffer.concat([
      Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'),
      Buffer.from([0, 1, 0, 0, 0, 0, 0, 0]),
    ]);
    assert.throws(() => run(bin, oids), /OIDs/);
  });

  it('refuses options it cannot read output under', () => {
    assert.throws(() => copyFormat(new Map([['encoding', 'latin1']])), /ENCODING/);
    assert.throws(() => copyFormat(new Map([['delimiter', 'ab']])), /one-byte/);
    assert.throws(() => copyFormat(new Map([['format', 'parquet']])), /not known/);
    assert.equal(copyFormat(new Map([['force_quote', '*']])).format, 'text');
  });
});
