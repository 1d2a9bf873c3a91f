import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type MaskOptions, maskBody } from './mask.ts';
import { maskJsonBytes } from './mask-bytes.ts';

const LAST = 'kubectl.kubernetes.io/last-applied-configuration';
const CANARY = 'c3VwZXItc2VjcmV0LWNhbmFyeQ==';

/** What the decode-mask-encode path makes of `value`. */
function slow(value: unknown, opts: MaskOptions): { value: unknown; masked: number } {
  const copy: unknown = JSON.parse(JSON.stringify(value));
  const masked = maskBody(copy, opts);
  return { value: copy, masked };
}

/** The last-applied annotation compared by what it holds (the byte path keeps the copy's own formatting). */
function normalise(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalise);
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === LAST && typeof x === 'string') {
      try {
        out[k] = { json: normalise(JSON.parse(x)) };
        continue;
      } catch {
        // not JSON: compared as the string
      }
    }
    out[k] = normalise(x);
  }
  return out;
}

function check(value: unknown, opts: MaskOptions, text = JSON.stringify(value)): boolean {
  const fast = maskJsonBytes(Buffer.from(text, 'utf8'), opts);
  if (!fast) return false;
  const expected = slow(value, opts);
  const whole = fast.body.toBuffer();
  assert.equal(whole.length, fast.body.byteLength);
  // Written into a caller's buffer at an offset: the same bytes, and nothing beside them touched.
  const into = Buffer.alloc(whole.length + 5, 0x2a);
  assert.equal(fast.body.copyTo(into, 3), whole.length + 3);
  assert.deepEqual(into.subarray(3, 3 + whole.length), whole);
  assert.equal(into.toString('latin1', 0, 3) + into.toString('latin1', whole.length + 3), '*****');
  assert.deepEqual(normalise(JSON.parse(whole.toString('utf8'))), normalise(expected.value));
  assert.equal(fast.masked, expected.masked);
  return true;
}

// Values shaped like Kubernetes responses, with arbitrary JSON mixed in where shapes vary.
const anyJson = fc.jsonValue({ maxDepth: 2 });
const key = fc.oneof(
  fc.constantFrom(
    'data',
    'stringData',
    'binaryData',
    'kind',
    'type',
    'object',
    'items',
    'rows',
    'metadata',
    'name',
    'annotations',
    LAST,
  ),
  fc.string({ maxLength: 6 }),
);
const map = fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.constant(null), anyJson), {
  maxKeys: 4,
});
const lastApplied = fc.oneof(
  fc
    .record({ kind: fc.constant('Secret'), data: map, stringData: map }, { requiredKeys: [] })
    .map((o) => JSON.stringify(o)),
  fc.string(),
  fc.constant('[1,2]'),
  fc.constant('{not json'),
);
const metadata = fc.record(
  {
    name: fc.string(),
    annotations: fc.oneof(
      fc.record({ [LAST]: lastApplied, other: fc.string() }, { requiredKeys: [] }),
      anyJson,
    ),
    managedFields: anyJson,
  },
  { requiredKeys: [] },
);
const resource = fc.record(
  {
    kind: fc.oneof(fc.constantFrom('Secret', 'ConfigMap', 'Status', 'Table', 'SecretList', ''), anyJson),
    apiVersion: fc.constant('v1'),
    metadata: fc.oneof(metadata, anyJson),
    data: fc.oneof(map, fc.string(), anyJson),
    stringData: fc.oneof(map, fc.string()),
    binaryData: map,
    type: fc.oneof(fc.string(), anyJson),
    extra: fc.dictionary(key, anyJson, { maxKeys: 3 }),
  },
  { requiredKeys: [] },
);
const list = fc.record(
  {
    kind: fc.oneof(fc.constantFrom('SecretList', 'List', '', 'Secret', 'Status'), anyJson),
    metadata: anyJson,
    items: fc.oneof(fc.array(fc.oneof(resource, anyJson), { maxLength: 4 }), anyJson),
  },
  { requiredKeys: [] },
);
const table = fc.record(
  {
    kind: fc.constantFrom('Table', 'TableList', 'Secret'),
    rows: fc.array(
      fc.oneof(
        fc.record({ cells: anyJson, object: fc.oneof(resource, list, anyJson) }, { requiredKeys: [] }),
        anyJson,
      ),
      { maxLength: 3 },
    ),
    columnDefinitions: anyJson,
  },
  { requiredKeys: [] },
);
const event = fc.record(
  {
    type: fc.oneof(fc.constantFrom('ADDED', 'MODIFIED'), anyJson),
    object: fc.oneof(resource, table, anyJson),
    kind: anyJson,
  },
  { requiredKeys: ['object'] },
);
const body = fc.oneof(resource, list, table, event);
const options = fc.record({
  fields: fc.constantFrom(['data', 'stringData'], ['data'], ['binaryData', 'data'], ['spec', 'data']),
  secrets: fc.boolean(),
});

describe('maskJsonBytes', () => {
  it('gives what decode, maskBody and encode give, for Kubernetes-shaped JSON in any member order', () => {
    let handled = 0;
    fc.assert(
      fc.property(body, options, (value, opts) => {
        if (check(value, opts)) handled++;
      }),
      { numRuns: 2000 },
    );
    assert.ok(handled > 1900, `the byte path should handle nearly every input (handled ${handled} of 2000)`);
  });

  it('gives the same when the keys that decide are written with escapes', () => {
    // Any "kind" or "data" token (a key, or a value) written another way decodes to the same string.
    const escaped: readonly [string, string][] = [
      ['"kind"', '"\\u006bind"'],
      ['"data"', '"d\\u0061ta"'],
      ['"items"', '"item\\u0073"'],
      ['"metadata"', '"met\\u0061data"'],
      ['"stringData"', '"stringD\\u0061ta"'],
    ];
    fc.assert(
      fc.property(body, options, fc.subarray([0, 1, 2, 3, 4]), (value, opts, which) => {
        let text = JSON.stringify(value);
        for (const i of which) text = text.replaceAll(...(escaped[i] as [string, string]));
        check(value, opts, text);
      }),
      { numRuns: 500 },
    );
  });

  it('leaves objects nested deeper than its limit to the decoding path, never running out of stack', () => {
    for (const [open, close] of [
      ['{"type":"x","object":', '}'],
      ['{"items":[', ']}'],
      ['{"kind":"Table","rows":[{"object":', '}]}'],
    ]) {
      for (const depth of [999, 5000]) {
        const text = `${(open as string).repeat(depth)}{"kind":"Secret","data":{"k":"dg=="}}${(close as string).repeat(depth)}`;
        const r = maskJsonBytes(Buffer.from(text), { fields: ['data'], secrets: true });
        if (depth === 999) assert.ok(r && r.masked === 1, `${open} × ${depth}`);
        else assert.equal(r, undefined, `${open} × ${depth}`);
      }
    }
  });

  it('leaves a policy with more masked fields than it tracks to the decoding path', () => {
    const fields = Array.from({ length: 30 }, (_, i) => `f${i}`);
    const text = JSON.stringify({ kind: 'ConfigMap', f3: { k: 'v' } });
    assert.equal(maskJsonBytes(Buffer.from(text), { fields, secrets: false }), undefined);
    assert.ok(maskJsonBytes(Buffer.from(text), { fields: fields.slice(0, 24), secrets: false }));
  });

  it('keeps every byte it does not mask, white space included', () => {
    const text = '{ "kind" : "Secret",\n "data" : { "a" : "eA==" , "b":null },\n "x": [1, {"data":"y"}] }';
    const r = maskJsonBytes(Buffer.from(text), { fields: ['data'], secrets: true });
    assert.ok(r);
    assert.equal(
      r.body.toBuffer().toString(),
      '{ "kind" : "Secret",\n "data" : { "a" : "KiptYXNrZWQqKg==" , "b":null },\n "x": [1, {"data":"y"}] }',
    );
    assert.equal(r.masked, 1);
  });

  it('masks a list of Secrets as the API server writes it, leaving no canary', () => {
    const items = Array.from({ length: 5 }, (_, i) => ({
      metadata: {
        name: `s${i}`,
        annotations: { [LAST]: JSON.stringify({ kind: 'Secret', data: { p: CANARY } }) },
      },
      data: { p: CANARY, q: CANARY },
      type: 'Opaque',
    }));
    const value = { kind: 'SecretList', apiVersion: 'v1', metadata: { resourceVersion: '1' }, items };
    assert.ok(check(value, { fields: ['data', 'stringData'], secrets: true }));
    const r = maskJsonBytes(Buffer.from(JSON.stringify(value)), {
      fields: ['data', 'stringData'],
      secrets: true,
    });
    assert.equal(r?.body.toBuffer().toString().includes(CANARY), false);
    assert.equal(r?.masked, 15);
  });

  it('masks a last-applied copy seen before exactly as the first time, for each set of fields and base64 rule', () => {
    // The same copy under options that mask it differently, each twice (the second time from what was remembered).
    const copy = JSON.stringify({ data: { p: CANARY }, stringData: { q: CANARY } });
    const value = { kind: 'Secret', metadata: { name: 's', annotations: { [LAST]: copy } } };
    const base64 = { fields: ['data', 'stringData'], secrets: true };
    const text = { fields: base64.fields, secrets: false };
    const stringOnly = { fields: ['stringData'], secrets: true };
    const seen: string[] = [];
    for (const opts of [base64, text, stringOnly, base64, text, stringOnly]) {
      assert.ok(check(value, opts));
      const r = maskJsonBytes(Buffer.from(JSON.stringify(value)), opts);
      seen.push(JSON.parse(r?.body.toBuffer().toString() ?? '{}').metadata.annotations[LAST]);
    }
    assert.deepEqual(seen.slice(3), seen.slice(0, 3));
    assert.equal(new Set(seen).size, 3);
    assert.equal(seen[2]?.includes(CANARY), true, 'data is not masked when only stringData is');
    assert.equal(seen[0]?.includes(CANARY), false);
  });

  it('masks each Secret of a list from its own copy when several copies are remembered', () => {
    const items = Array.from({ length: 6 }, (_, i) => ({
      kind: 'Secret',
      metadata: {
        name: `s${i % 3}`,
        annotations: { [LAST]: JSON.stringify({ kind: 'Secret', data: { [`k${i % 3}`]: CANARY } }) },
      },
      data: { [`k${i % 3}`]: CANARY },
    }));
    const value = { kind: 'SecretList', items };
    const opts = { fields: ['data', 'stringData'], secrets: true };
    for (let round = 0; round < 2; round++) {
      assert.ok(check(value, opts));
      const r = maskJsonBytes(Buffer.from(JSON.stringify(value)), opts);
      assert.equal(r?.masked, 12);
      assert.equal(r?.body.toBuffer().toString().includes(CANARY), false);
    }
  });

  it('gives up (for the ordinary path) on duplicate deciding keys, bad structure and trailing bytes', () => {
    const opts = { fields: ['data'], secrets: true };
    for (const text of [
      '{"kind":"Status","kind":"Secret","data":{"a":"b"}}',
      '{"data":{"a":"b"},"data":"c"}',
      '{"kind":"Secret","data":{"a":"b"}',
      '{"kind":"Secret","data":{"a":"b"]}',
      '{"kind":"Secret"} x',
      '{"kind":"Secret","data":{"a":"b}}',
      '{"kind" "Secret"}',
      '[{"data":{"a":"b"}}]',
      '',
    ]) {
      assert.equal(maskJsonBytes(Buffer.from(text), opts), undefined, text);
    }
  });

  it('decodes escaped keys and values where they decide', () => {
    const text = '{"kind":"Se\\u0063ret","d\\u0061ta":{"k":"v"}}';
    const r = maskJsonBytes(Buffer.from(text), { fields: ['data'], secrets: false });
    assert.ok(r);
    assert.deepEqual(JSON.parse(r.body.toBuffer().toString()), {
      kind: 'Secret',
      data: { k: 'KiptYXNrZWQqKg==' },
    });
  });
});
