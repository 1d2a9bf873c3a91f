import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ProtobufError, protobufObjectName } from './protobuf-name.ts';

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}
const field = (num: number, payload: Buffer) =>
  Buffer.concat([varint((num << 3) | 2), varint(payload.length), payload]);
const str = (num: number, s: string) => field(num, Buffer.from(s));

/** A ConfigMap as kubectl sends it: envelope(typeMeta, raw(ConfigMap(metadata(name, namespace), data))). */
function configMapBody(name: string, extra: Buffer = Buffer.alloc(0)): Buffer {
  const meta = Buffer.concat([str(1, name), str(3, 'agents'), Buffer.from([0x20, 0x05])]); // plus a varint field 4
  const cm = Buffer.concat([
    field(1, meta),
    field(2, Buffer.concat([str(1, 'policy.yaml'), str(2, 'x')])),
    extra,
  ]);
  const typeMeta = Buffer.concat([str(1, 'v1'), str(2, 'ConfigMap')]);
  return Buffer.concat([Buffer.from('k8s\0', 'latin1'), field(1, typeMeta), field(2, cm), str(4, '')]);
}

describe('protobufObjectName', () => {
  it('finds the name of a ConfigMap in a kubectl-style protobuf body', () => {
    assert.deepEqual(protobufObjectName(configMapBody('chaperone-policy')), { name: 'chaperone-policy' });
  });

  it('finds generateName', () => {
    const meta = str(2, 'job-');
    const body = Buffer.concat([Buffer.from('k8s\0', 'latin1'), field(2, field(1, meta))]);
    assert.deepEqual(protobufObjectName(body), { generateName: 'job-' });
  });

  it('skips fixed-width fields', () => {
    const meta = Buffer.concat([
      Buffer.from([0x39]),
      Buffer.alloc(8),
      Buffer.from([0x45]),
      Buffer.alloc(4),
      str(1, 'n'),
    ]);
    const body = Buffer.concat([Buffer.from('k8s\0', 'latin1'), field(2, field(1, meta))]);
    assert.deepEqual(protobufObjectName(body), { name: 'n' });
  });

  it('refuses a name, metadata or object that occurs twice (Go keeps the last or merges), or a name of another wire type', () => {
    const envelope = (raw: Buffer) => Buffer.concat([Buffer.from('k8s\0', 'latin1'), raw]);
    const twoNames = envelope(
      field(2, field(1, Buffer.concat([str(1, 'benign'), str(1, 'chaperone-policy')]))),
    );
    const twoMetas = envelope(
      field(2, Buffer.concat([field(1, str(1, 'benign')), field(1, str(1, 'chaperone-policy'))])),
    );
    const twoObjects = envelope(
      Buffer.concat([field(2, field(1, str(1, 'benign'))), field(2, field(1, str(1, 'x')))]),
    );
    const varintName = envelope(
      field(2, field(1, Buffer.concat([Buffer.from([0x08, 0x01]), str(2, 'gen-')]))),
    );
    for (const body of [twoNames, twoMetas, twoObjects, varintName]) {
      assert.throws(() => protobufObjectName(body), ProtobufError);
    }
    // Repeated fields the name does not depend on stay readable (a ConfigMap's data entries).
    const data = Buffer.concat([field(2, str(1, 'a')), field(2, str(1, 'b'))]);
    const body = envelope(field(2, Buffer.concat([field(1, str(1, 'cm')), data])));
    assert.deepEqual(protobufObjectName(body), { name: 'cm' });
  });

  it('rejects what is not Kubernetes protobuf, and truncations, with an error', () => {
    assert.throws(() => protobufObjectName(Buffer.from('{"metadata":{}}')), ProtobufError);
    const good = configMapBody('x');
    for (let i = 4; i < good.length - 1; i++) {
      try {
        protobufObjectName(good.subarray(0, i));
      } catch (err) {
        assert.ok(err instanceof ProtobufError);
      }
    }
  });

  it('random bytes never crash or hang it', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          protobufObjectName(Buffer.concat([Buffer.from('k8s\0', 'latin1'), Buffer.from(bytes)]));
        } catch (err) {
          assert.ok(err instanceof ProtobufError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
