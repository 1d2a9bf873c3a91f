import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import forge from 'node-forge';
import { ChaperoneError } from '../errors.ts';
import {
  children,
  namedBits,
  octetString,
  oid,
  readOid,
  readTlv,
  sequence,
  setOf,
  smallInteger,
  TAG,
  tlv,
  unsignedInteger,
  x509Time,
} from './der.ts';

describe('DER', () => {
  it('reads back every TLV it writes, short and long lengths, nested', () => {
    // Lengths of every size class: short form, one, two and three length bytes.
    const leaf = fc
      .tuple(
        fc.integer({ min: 1, max: 0x1e }),
        fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 70_000 })),
        fc.integer({ min: 0, max: 255 }),
      )
      .map(([tag, length, fill]) => ({ tag, bytes: Buffer.alloc(length, fill) }));
    fc.assert(
      fc.property(fc.array(fc.array(leaf, { maxLength: 4 }), { maxLength: 4 }), (groups) => {
        const der = sequence(...groups.map((g) => sequence(...g.map((l) => tlv(l.tag, l.bytes)))));
        const outer = readTlv(der);
        assert.equal(outer.raw.length, der.length);
        const read = children(outer.value).map((g) =>
          children(g.value).map((l) => ({ tag: l.tag, bytes: Buffer.from(l.value) })),
        );
        assert.deepEqual(read, groups);
      }),
    );
    // X.690 8.1.3: the short form below 128, else the fewest length bytes.
    for (const [length, header] of [
      [127, '047f'],
      [128, '048180'],
      [255, '0481ff'],
      [256, '04820100'],
      [65_536, '0483010000'],
    ] as const)
      assert.equal(
        tlv(TAG.OCTET_STRING, Buffer.alloc(length))
          .subarray(0, header.length / 2)
          .toString('hex'),
        header,
      );
  });

  it('refuses truncated or otherwise unreadable input with its own error, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          children(Buffer.from(bytes));
        } catch (err) {
          assert.ok(err instanceof ChaperoneError, String(err));
          assert.match(err.message, /^malformed DER: /);
        }
      }),
    );
    const der = sequence(tlv(TAG.OCTET_STRING, Buffer.alloc(200)));
    for (let cut = 0; cut < der.length; cut++)
      assert.throws(() => readTlv(der.subarray(0, cut)), /malformed DER/);
  });

  it('writes non-negative integers in their fewest bytes, as two’s complement reads them', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 24 }), (magnitude) => {
        const t = readTlv(unsignedInteger(magnitude));
        assert.equal(t.tag, TAG.INTEGER);
        const hex = Buffer.from(magnitude).toString('hex') || '0';
        assert.equal(
          BigInt.asIntN(t.value.length * 8, BigInt(`0x${t.value.toString('hex')}`)),
          BigInt(`0x${hex}`),
        );
        // Minimal: no leading 0x00 before a byte below 0x80, no leading 0xff.
        if (t.value.length > 1) assert.ok(!(t.value[0] === 0 && ((t.value[1] as number) & 0x80) === 0));
      }),
    );
    assert.equal(unsignedInteger(Buffer.of(0x80)).toString('hex'), '02020080');
    assert.equal(unsignedInteger(Buffer.of(0, 0, 1)).toString('hex'), '020101');
  });

  it('writes object identifiers that read back, large arcs included', () => {
    const dotted = fc
      .tuple(
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 0, max: 39 }),
        fc.array(fc.integer({ min: 0, max: 2 ** 40 }), { maxLength: 6 }),
      )
      .map(([a, b, rest]) => [a, b, ...rest].join('.'));
    fc.assert(fc.property(dotted, (d) => assert.equal(readOid(readTlv(oid(d)).value), d)));
    // RFC 5280's id-ce-subjectAltName, as every certificate spells it.
    assert.equal(oid('2.5.29.17').toString('hex'), '0603551d11');
    assert.equal(oid('1.2.840.10045.4.3.2').toString('hex'), '06082a8648ce3d040302');
    assert.throws(() => oid('3.1'), /not an object identifier/);
  });

  it('writes named bits with trailing zero bits dropped (X.690 11.2.2)', () => {
    assert.equal(namedBits([0]).toString('hex'), '03020780');
    assert.equal(namedBits([0, 5, 6]).toString('hex'), '03020186');
    assert.equal(namedBits([8]).toString('hex'), '0303070080');
    assert.equal(namedBits([]).toString('hex'), '030100');
  });

  it('orders a SET OF by encoding, and writes UTCTime through 2049 and GeneralizedTime after', () => {
    assert.deepEqual(setOf(Buffer.of(2, 1, 9), Buffer.of(2, 1, 1)), Buffer.of(0x31, 6, 2, 1, 1, 2, 1, 9));
    assert.equal(
      x509Time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59, 999)))
        .subarray(2)
        .toString(),
      '491231235959Z',
    );
    assert.equal(
      x509Time(new Date(Date.UTC(2050, 0, 1)))
        .subarray(2)
        .toString(),
      '20500101000000Z',
    );
    assert.equal(x509Time(new Date(Date.UTC(2050, 0, 1)))[0], TAG.GENERALIZED_TIME);
    assert.throws(() => x509Time(new Date(Number.NaN)), /cannot be written as an X.509 time/);
  });
});

// A second, independent reader: node-forge's ASN.1 decoder (strict) reads what
// der.ts writes to the same OIDs, integers, times and nesting. node-forge made
// the certificates before; it no longer runs outside tests.
describe('DER read by another implementation (node-forge)', () => {
  const arc = fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 2 ** 40 }));
  const dotted = fc
    .tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 39 }), fc.array(arc, { maxLength: 6 }))
    .map(([a, b, rest]) => [a, b, ...rest].join('.'));
  const fromDer = (der: Buffer) => forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')), true);
  const bytesOf = (v: unknown) => Buffer.from(v as string, 'binary');

  it('OIDs, integers and nesting read the same', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(dotted, fc.integer({ min: 0, max: 0xffff_ffff }), fc.uint8Array({ maxLength: 300 })),
          {
            maxLength: 5,
          },
        ),
        (items) => {
          const der = sequence(
            ...items.map(([o, n, b]) => sequence(oid(o), smallInteger(n), octetString(b))),
          );
          const outer = fromDer(der);
          const read = (outer.value as forge.asn1.Asn1[]).map((item) => {
            const [o, n, b] = item.value as forge.asn1.Asn1[];
            return [
              forge.asn1.derToOid(forge.util.createBuffer(o?.value as string)),
              Number.parseInt(bytesOf(n?.value).toString('hex') || '0', 16),
              new Uint8Array(bytesOf(b?.value)),
            ];
          });
          assert.deepEqual(read, items);
        },
      ),
    );
  });

  it('times read as the same instant, UTCTime through 2049 and GeneralizedTime after', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(1950, 0, 1) / 1000, max: Date.UTC(9999, 11, 31) / 1000 }),
        (s) => {
          const date = new Date(s * 1000);
          const t = fromDer(x509Time(date));
          const text = t.value as string;
          const back =
            t.type === forge.asn1.Type.UTCTIME
              ? forge.asn1.utcTimeToDate(text)
              : forge.asn1.generalizedTimeToDate(text);
          assert.equal(
            t.type,
            date.getUTCFullYear() < 2050 ? forge.asn1.Type.UTCTIME : forge.asn1.Type.GENERALIZEDTIME,
          );
          assert.equal(back.getTime(), date.getTime());
        },
      ),
    );
  });
});
