import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MaskedCopyCache } from './masked-copy-cache.ts';

describe('MaskedCopyCache', () => {
  it('masks the same bytes once, wherever they are, and different bytes each on their own', () => {
    const cache = new MaskedCopyCache();
    let calls = 0;
    const mask = (text: string) => () => {
      calls++;
      return { text, masked: calls };
    };
    const a = Buffer.from('xx"{\\"data\\":{\\"k\\":\\"v\\"}}"yy');
    const b = Buffer.from('"{\\"data\\":{\\"k\\":\\"v\\"}}"');
    const c = Buffer.from('"{\\"data\\":{\\"k\\":\\"w\\"}}"');
    const first = cache.get(a, 2, a.length - 2, mask('"first"'));
    assert.deepEqual(first, { text: '"first"', masked: 1 });
    assert.equal(cache.get(b, 0, b.length, mask('"other"')), first);
    assert.deepEqual(cache.get(c, 0, c.length, mask('"third"')), { text: '"third"', masked: 2 });
    assert.equal(calls, 2);
  });

  it('keeps at most its bound, dropping the oldest', () => {
    const cache = new MaskedCopyCache(2);
    let calls = 0;
    const mask = () => {
      calls++;
      return { text: '""', masked: 0 };
    };
    const bufs = ['"a"', '"b"', '"c"'].map((s) => Buffer.from(s));
    for (const buf of bufs) cache.get(buf, 0, buf.length, mask);
    assert.equal(cache.size, 2);
    cache.get(bufs[2] as Buffer, 0, 3, mask);
    assert.equal(calls, 3, 'the newest is kept');
    cache.get(bufs[0] as Buffer, 0, 3, mask);
    assert.equal(calls, 4, 'the oldest was dropped');
  });

  it('keeps at most its bound in characters, and nothing larger than it', () => {
    const cache = new MaskedCopyCache(100, 10);
    let calls = 0;
    const mask = (text: string) => () => {
      calls++;
      return { text, masked: 1 };
    };
    const a = Buffer.from('"a"');
    const b = Buffer.from('"b"');
    const c = Buffer.from('"c"');
    cache.get(a, 0, 3, mask('123456'));
    cache.get(b, 0, 3, mask('1234'));
    assert.equal(cache.size, 2);
    cache.get(c, 0, 3, mask('12345'));
    assert.equal(cache.size, 2, 'the oldest made room');
    cache.get(a, 0, 3, mask('123456'));
    assert.equal(calls, 4, 'the oldest was dropped');
    const big = Buffer.from('"big"');
    cache.get(big, 0, 5, mask('12345678901'));
    cache.get(big, 0, 5, mask('12345678901'));
    assert.equal(calls, 6, 'a result over the bound is not kept');
  });

  it('does not keep what it was not given: a failed masking is not remembered', () => {
    const cache = new MaskedCopyCache();
    const buf = Buffer.from('"x"');
    assert.throws(() =>
      cache.get(buf, 0, 3, () => {
        throw new Error('cannot mask');
      }),
    );
    assert.equal(cache.size, 0);
  });
});
