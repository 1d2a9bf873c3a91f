import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { splitAt } from '../kube/http1/test-streams.ts';
import { BackendDecoder, type BackendMessage, type FieldDescription } from './backend-decoder.ts';
import type { CatalogRelation } from './catalog.ts';
import * as enc from './encode.ts';
import { ProtocolError } from './protocol.ts';
import {
  type ColumnPlan,
  MASKED_TEXT,
  maskedValue,
  maskRow,
  resultPlan,
  withoutValues,
} from './result-masker.ts';
import { masksOf } from './test-masks.ts';

const masks = masksOf(`
    - name: mask-secrets
      match: { sql: { tables: [users], columns: [password, pin, token] } }
      action: mask
`);

const users: CatalogRelation = {
  oid: 16386,
  schema: 'public',
  name: 'users',
  kind: 'r',
  columns: new Map([
    [1, { name: 'id', typeOid: 23 }],
    [2, { name: 'password', typeOid: 25 }],
    [3, { name: 'pin', typeOid: 23 }],
    [5, { name: 'token', typeOid: 1043 }],
  ]),
  members: [],
  ancestors: [],
  triggerFunctions: [],
  ruleFunctions: [],
};
const parent: CatalogRelation = {
  ...users,
  oid: 16400,
  name: 'people',
  members: [{ schema: 'public', name: 'users', kind: 'r' }],
};
const relations = new Map([
  [users.oid, users],
  [parent.oid, parent],
]);

const field = (name: string, tableOid: number, column: number, typeOid: number, format = 0) =>
  ({ name, tableOid, column, typeOid, typeSize: -1, typeModifier: -1, format }) as FieldDescription;

describe('resultPlan: which result columns are masked', () => {
  it('attributes columns by table OID and attribute number, whatever they are called in the result', () => {
    const plan = resultPlan(
      [
        field('id', users.oid, 1, 23),
        field('not_a_password', users.oid, 2, 25),
        field('pin', users.oid, 3, 23, 1),
        field('password', 0, 0, 25),
        field('other', 99999, 2, 25),
      ],
      (o) => relations.get(o),
      masks,
    );
    assert.deepEqual(
      plan.map((c) => c.maskedBy),
      [undefined, 'mask-secrets', 'mask-secrets', undefined, undefined],
    );
  });

  it("masks a parent's columns of the names masked in a child, and an attribute the catalog does not know", () => {
    const plan = resultPlan(
      [field('password', parent.oid, 2, 25), field('id', parent.oid, 1, 23), field('new', users.oid, 9, 25)],
      (o) => relations.get(o),
      masks,
    );
    assert.deepEqual(
      plan.map((c) => c.maskedBy),
      ['mask-secrets', undefined, 'mask-secrets'],
    );
  });
});

describe('resultPlan: children and partitions', () => {
  // Fails if a relation took only its own and its members' masks (result-masker.ts relationMasks): a
  // partition or inheritance child of the masked table, read by its own name, would come back whole.
  it("masks a child's or partition's columns of the names masked in the table it belongs to", () => {
    const child: CatalogRelation = {
      ...users,
      oid: 16600,
      name: 'users_2026',
      ancestors: [{ schema: 'public', name: 'users', kind: 'p' }],
    };
    const plan = resultPlan(
      [field('password', child.oid, 2, 25), field('id', child.oid, 1, 23)],
      (o) => (o === child.oid ? child : undefined),
      masks,
    );
    assert.deepEqual(
      plan.map((c) => c.maskedBy),
      ['mask-secrets', undefined],
    );
  });
});

describe('resultPlan: generated columns', () => {
  // Fails if a generated column were judged by its own name only: md5(password) is the password's.
  it('masks a column generated from a masked column', () => {
    const withHash: CatalogRelation = {
      ...users,
      oid: 16500,
      columns: new Map([...users.columns, [6, { name: 'password_md5', typeOid: 25, generatedFrom: [2] }]]),
    };
    const plan = resultPlan(
      [field('password_md5', withHash.oid, 6, 25), field('id', withHash.oid, 1, 23)],
      () => withHash,
      masks,
    );
    assert.deepEqual(
      plan.map((c) => c.maskedBy),
      ['mask-secrets', undefined],
    );
  });
});

describe('maskRow: DataRow values replaced, lengths recomputed', () => {
  const plan: ColumnPlan[] = [
    { typeOid: 23 },
    { maskedBy: 'mask-secrets', typeOid: 25 },
    { maskedBy: 'mask-secrets', typeOid: 23 },
    { maskedBy: 'mask-secrets', typeOid: 1043 },
  ];

  it('replaces text-typed values with the marker and others with NULL, in text and binary format', () => {
    const int4 = Buffer.from([0, 0, 0, 42]);
    const { raw, masked } = maskRow([int4, Buffer.from('hunter2'), Buffer.from('1234'), null], plan);
    const [m] = new BackendDecoder({ maxMessageBytes: 1 << 16 }).push(raw);
    assert.ok(m?.type === 'DataRow');
    assert.deepEqual(m.values, [int4, Buffer.from(MASKED_TEXT), null, Buffer.from(MASKED_TEXT)]);
    assert.deepEqual([...masked], [['mask-secrets', 3]]);
    // Binary int4 (4 bytes) masked to NULL: a client's binary decoder never sees a value of the wrong size.
    assert.equal(maskedValue(23), null);
    assert.deepEqual(maskedValue(25), Buffer.from(MASKED_TEXT));
  });

  // Fails if the replacement depended on the value (its length, content or NULL-ness).
  it('gives the same bytes whatever the masked values were', () => {
    fc.assert(
      fc.property(
        fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }),
        fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }),
        fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }),
        (a, b, c) => {
          const row = (x: Uint8Array | null) => (x === null ? null : Buffer.from(x));
          const one = maskRow([Buffer.from([1]), row(a), row(b), row(c)], plan).raw;
          const two = maskRow([Buffer.from([1]), Buffer.from('x'), null, Buffer.from('yyyy')], plan).raw;
          assert.deepEqual(one, two);
        },
      ),
    );
  });

  it('refuses a row whose column count is not its description’s', () => {
    assert.throws(() => maskRow([null], plan), ProtocolError);
  });

  // Fails if masking depended on how the server's bytes were cut into chunks.
  it('masks the same for a stream split at every byte boundary', () => {
    const fields = [field('id', users.oid, 1, 23, 1), field('password', users.oid, 2, 25, 1)];
    const stream = Buffer.concat([
      enc.rowDescription(fields),
      enc.dataRow([Buffer.from([0, 0, 0, 1]), Buffer.from('canary-secret-1')]),
      enc.dataRow([Buffer.from([0, 0, 0, 2]), null]),
      enc.dataRow([Buffer.from([0, 0, 0, 3]), Buffer.from('')]),
      enc.commandComplete('SELECT 3'),
    ]);
    const run = (chunks: Buffer[]) => {
      const d = new BackendDecoder({ maxMessageBytes: 1 << 16 });
      let plan: ColumnPlan[] | undefined;
      const out: Buffer[] = [];
      for (const m of chunks.flatMap((c) => d.push(c)) as BackendMessage[]) {
        if (m.type === 'RowDescription') plan = resultPlan(m.fields, (o) => relations.get(o), masks);
        out.push(m.type === 'DataRow' && plan ? maskRow(m.values, plan).raw : m.raw);
      }
      return Buffer.concat(out);
    };
    const whole = run([stream]);
    assert.ok(!whole.includes('canary-secret-1'));
    assert.equal(whole.toString('latin1').split(MASKED_TEXT).length - 1, 3);
    for (let i = 1; i < stream.length; i++)
      assert.deepEqual(run(splitAt(stream, [i])), whole, `split at ${i}`);
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }),
        (points) => {
          assert.deepEqual(
            run(
              splitAt(
                stream,
                points.sort((a, b) => a - b),
              ),
            ),
            whole,
          );
        },
      ),
    );
  });
});

describe('withoutValues: errors and notices of statements reading masked tables', () => {
  it('keeps what names things, drops what may quote values, withholds PL/pgSQL RAISE messages', () => {
    assert.deepEqual(
      withoutValues({
        S: 'ERROR',
        V: 'ERROR',
        C: '23514',
        M: 'new row for relation "users" violates check constraint "c"',
        D: 'Failing row contains (1, hunter2).',
        W: 'SQL function "f"',
        t: 'users',
        n: 'c',
        F: 'execMain.c',
        R: 'ExecConstraints',
      }),
      {
        S: 'ERROR',
        V: 'ERROR',
        C: '23514',
        M: 'new row for relation "users" violates check constraint "c"',
        t: 'users',
        n: 'c',
      },
    );
    const raised = withoutValues({ S: 'NOTICE', C: '00000', M: 'hunter2', R: 'exec_stmt_raise' });
    assert.ok(!JSON.stringify(raised).includes('hunter2'));
  });
});
