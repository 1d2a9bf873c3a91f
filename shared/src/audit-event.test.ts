import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type AuditEvent,
  canonicalEventForms,
  chainEvent,
  chainEventText,
  GENESIS_HASH,
  hashEvent,
  microTime,
  type UnchainedEvent,
  validateAuditEvent,
  verifyChain,
} from './audit-event.ts';
import { canonicalJson, deepFreeze, sha256Hex } from './canonical-json.ts';
import { ValidationError } from './errors.ts';

/** The chain hash by its definition, written plainly: sha256 of the canonical JSON without chaperone.hash. */
function definitionHash(e: AuditEvent): string {
  const { hash: _omit, ...rest } = e.chaperone;
  return sha256Hex(canonicalJson({ ...e, chaperone: rest }));
}

function sample(i = 0): UnchainedEvent {
  const t = new Date(Date.UTC(2026, 10, 22, 10, 0, i));
  return {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: `6f0c1a52-0d1e-4c7e-9a0b-00000000000${i % 10}`,
    stage: 'ResponseComplete',
    requestURI: '/api/v1/namespaces/agents/secrets/db',
    verb: 'get',
    user: { username: 'system:serviceaccount:agents:agent', groups: ['system:serviceaccounts'] },
    sourceIPs: ['127.0.0.1'],
    userAgent: 'kubectl/v1.32.4',
    objectRef: { resource: 'secrets', namespace: 'agents', name: 'db', apiVersion: 'v1' },
    responseStatus: { metadata: {}, code: 200 },
    requestReceivedTimestamp: microTime(t),
    stageTimestamp: microTime(t, 412),
    annotations: {
      'authorization.k8s.io/decision': 'allow',
      'authorization.k8s.io/reason': 'rule mask-secrets',
    },
    chaperone: {
      schemaVersion: 1,
      protocol: 'kubernetes',
      source: {
        namespace: 'agents',
        pod: 'agent-0',
        serviceAccount: 'agent',
        sidecarId: 'agents/agent-0/uid-1',
      },
      decision: { action: 'mask', rule: 'mask-secrets', reason: 'rule_matched' },
      sessionId: 'sess-1',
      maskedFields: 2,
      latencyMs: 0.42,
    },
  };
}

function reverseKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reverseKeys);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v)
      .reverse()
      .map(([k, x]) => [k, reverseKeys(x)]),
  );
}

function chain(n: number): AuditEvent[] {
  const out: AuditEvent[] = [];
  let prev = GENESIS_HASH;
  for (let i = 1; i <= n; i++) {
    const e = chainEvent(sample(i), i, prev);
    out.push(e);
    prev = e.chaperone.hash;
  }
  return out;
}

describe('audit event', () => {
  it('round-trips through JSON and the validator unchanged', () => {
    const [e] = chain(1);
    const back = validateAuditEvent(JSON.parse(JSON.stringify(e)));
    assert.deepEqual(back, e);
    assert.equal(hashEvent(back), e?.chaperone.hash);
  });

  it('canonical encoding is stable: key order and undefined members do not matter', () => {
    const a = { b: 1, a: [1, { y: 'x', x: null }], c: undefined, é: 'u', Z: true };
    const b = { Z: true, é: 'u', a: [1, { x: null, y: 'x' }], b: 1 };
    assert.equal(canonicalJson(a), canonicalJson(b));
    assert.equal(canonicalJson(a), '{"Z":true,"a":[1,{"x":null,"y":"x"}],"b":1,"é":"u"}');
    const [e] = chain(1);
    const reordered = reverseKeys(e);
    assert.equal(canonicalJson(reordered), canonicalJson(e));
    assert.throws(() => canonicalJson({ x: Number.NaN }), /non-finite/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => canonicalJson(cyclic), /cyclic/);
  });

  it('canonicalEventForms gives the hash input and the canonical event with its hash', () => {
    for (const e of chain(5)) {
      const forms = canonicalEventForms(e);
      assert.equal(sha256Hex(forms.unhashed), definitionHash(e));
      assert.equal(forms.withHash(e.chaperone.hash), canonicalJson(e));
    }
  });

  it('timestamps carry microseconds like the API server writes them', () => {
    assert.equal(microTime(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), 9), '2026-01-02T03:04:05.678009Z');
  });

  it('formats any date, in any order, as its ISO time with microseconds (the per-second cache never leaks)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 4102444800000 }), fc.integer({ min: 0, max: 999 })), {
          minLength: 1,
        }),
        (times) => {
          for (const [t, extra] of times) {
            const d = new Date(t);
            const micros = String(d.getUTCMilliseconds() * 1000 + extra).padStart(6, '0');
            assert.equal(microTime(d, extra), `${d.toISOString().slice(0, 19)}.${micros}Z`);
          }
        },
      ),
    );
  });

  it('rejects malformed events with the path of the problem', () => {
    const [e] = chain(1);
    // biome-ignore lint/suspicious/noExplicitAny: mutating arbitrary paths of a JSON copy
    const cases: [string, (x: Record<string, any>) => void, RegExp][] = [
      ['missing verb', (x) => delete x.verb, /^\/verb: must be a string/],
      ['bad stage', (x) => (x.stage = 'Done'), /^\/stage: must be one of/],
      ['unknown field', (x) => (x.verbb = 'get'), /^\/verbb: unknown field \(did you mean verb\?\)/],
      ['bad action', (x) => (x.chaperone.decision.action = 'maybe'), /\/chaperone\/decision\/action/],
      ['future schema', (x) => (x.chaperone.schemaVersion = 2), /unsupported schema version 2/],
      ['bad hash', (x) => (x.chaperone.hash = 'abc'), /\/chaperone\/hash: must match/],
      ['bad time', (x) => (x.stageTimestamp = 'yesterday'), /\/stageTimestamp/],
      ['bad audit id', (x) => (x.auditID = 'a b'), /\/auditID/],
      ['seq zero', (x) => (x.chaperone.seq = 0), /\/chaperone\/seq: must be at least 1/],
      ['oversized', (x) => (x.requestObject = 'x'.repeat(300_000)), /limit is 262144/],
    ];
    for (const [name, mutate, expected] of cases) {
      const copy = JSON.parse(JSON.stringify(e));
      mutate(copy);
      assert.throws(
        () => validateAuditEvent(copy),
        (err: unknown) => {
          assert.ok(err instanceof ValidationError, name);
          assert.match(err.message, expected, name);
          return true;
        },
      );
    }
    assert.throws(() => validateAuditEvent('[]'), /must be an object/);
  });

  it('a clean chain verifies; tampering, gaps and reordering are each reported', () => {
    const events = chain(5);
    assert.deepEqual(verifyChain(events).problems, []);
    assert.equal(verifyChain(events).head.seq, 5);

    const tampered = structuredClone(events);
    (tampered[2] as AuditEvent).verb = 'delete';
    assert.deepEqual(verifyChain(tampered).problems, [
      { kind: 'hash_mismatch', seq: 3, auditID: tampered[2]?.auditID },
    ]);

    const gap = [events[0], events[1], events[3], events[4]] as AuditEvent[];
    assert.deepEqual(verifyChain(gap).problems, [{ kind: 'gap', expectedSeq: 3, gotSeq: 4 }]);

    const reordered = [events[0], events[2], events[1], events[3]] as AuditEvent[];
    const kinds = verifyChain(reordered).problems.map((p) => p.kind);
    assert.deepEqual(kinds, ['gap', 'reorder']);

    // Re-hashing a tampered event does not help: the next link breaks.
    const rehashed = structuredClone(events);
    const victim = rehashed[1] as AuditEvent;
    victim.verb = 'delete';
    victim.chaperone.hash = hashEvent(victim);
    assert.deepEqual(
      verifyChain(rehashed).problems.map((p) => p.kind),
      ['broken_link'],
    );

    // Verification can resume from a stored head.
    const { head } = verifyChain(events.slice(0, 2));
    assert.deepEqual(verifyChain(events.slice(2), head).problems, []);
  });
});

describe('chainEventText', () => {
  function ev(uri: string, userAgent: string, latencyMs?: number): UnchainedEvent {
    const e = sample(1);
    return { ...e, requestURI: uri, userAgent, chaperone: { ...e.chaperone, latencyMs } };
  }

  it('gives the hash the definition gives, and a text that is the chained event as canonical JSON', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.option(fc.double({ min: 0, max: 1e6, noNaN: true }), { nil: undefined }),
        fc.integer({ min: 1, max: 2 ** 40 }),
        (uri, ua, latency, seq) => {
          const e = ev(uri, ua, latency);
          const fast = chainEventText(e, seq, GENESIS_HASH);
          assert.equal(fast.event.chaperone.hash, definitionHash(fast.event));
          assert.deepEqual(JSON.parse(fast.text), JSON.parse(JSON.stringify(fast.event)));
          assert.equal(definitionHash(JSON.parse(fast.text)), fast.event.chaperone.hash);
          assert.equal(fast.text, canonicalJson(fast.event));
        },
      ),
    );
  });

  it('is not fooled by the member text inside string values', () => {
    const e = ev('/x?"hash":"",', '"hash":"",');
    const fast = chainEventText(e, 7, GENESIS_HASH);
    assert.equal(fast.event.chaperone.hash, definitionHash(fast.event));
  });
});

describe('chainEventText on events of any content', () => {
  /** Strings JSON escapes or encodes in unusual ways: lone surrogates, controls, U+2028/9, astral, long runs. */
  const oddString = fc.oneof(
    fc.string({ unit: 'binary' }),
    fc.string({
      unit: fc.constantFrom(
        '\u2028',
        '\u2029',
        '\u0000',
        '\u001f',
        '\u007f',
        '"',
        '\\',
        '\ud800',
        '\udfff',
        'é',
        '😀',
        'a',
      ),
    }),
    fc
      .tuple(
        fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1000, max: 20_000 }),
      )
      .map(([s, n]) => s.repeat(n)),
  );
  const unknownValue = fc.letrec((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      oddString,
      fc.jsonValue({ maxDepth: 2 }),
      fc.array(tie('v'), { maxLength: 3 }),
      fc.dictionary(oddString, fc.oneof(tie('v'), fc.constant(undefined)), { maxKeys: 4 }),
    ),
  })).v;
  type Order = 'sorted' | 'reversed' | 'as built';
  function ordered(v: unknown, order: Order): unknown {
    if (order === 'as built' || Array.isArray(v) || v === null || typeof v !== 'object') return v;
    const keys = Object.keys(v).sort();
    if (order === 'reversed') keys.reverse();
    return Object.fromEntries(keys.map((k) => [k, ordered((v as Record<string, unknown>)[k], order)]));
  }
  const event = fc
    .record({
      uri: oddString,
      ua: fc.option(oddString, { nil: undefined }),
      message: fc.option(oddString, { nil: undefined }),
      annotations: fc.dictionary(oddString, oddString, { maxKeys: 4 }),
      requestObject: fc.option(unknownValue, { nil: undefined }),
      responseObject: fc.option(unknownValue, { nil: undefined }),
      sql: fc.option(fc.record({ text: oddString, tables: fc.array(oddString, { maxLength: 3 }) }), {
        nil: undefined,
      }),
      argv: fc.option(fc.array(oddString, { maxLength: 3 }), { nil: undefined }),
      latency: fc.option(fc.double({ min: 0, max: 1e6, noNaN: true }), { nil: undefined }),
      frozenIdentity: fc.boolean(),
      order: fc.constantFrom<Order>('sorted', 'reversed', 'as built'),
    })
    .map((r): UnchainedEvent => {
      const e = sample(3);
      const user = {
        groups: ['system:serviceaccounts', r.uri],
        username: 'system:serviceaccount:agents:agent',
      };
      const source = e.chaperone.source;
      const built: UnchainedEvent = {
        ...e,
        requestURI: r.uri,
        userAgent: r.ua,
        annotations: r.annotations,
        requestObject: r.requestObject,
        responseObject: r.responseObject,
        user: r.frozenIdentity ? deepFreeze(user) : user,
        chaperone: {
          ...e.chaperone,
          source: r.frozenIdentity ? deepFreeze({ ...source }) : source,
          decision: { ...e.chaperone.decision, message: r.message },
          latencyMs: r.latency,
          ...(r.sql
            ? { sql: { statements: [{ kind: 'select', tables: r.sql.tables }], text: r.sql.text } }
            : {}),
          ...(r.argv ? { exec: { argv: r.argv } } : {}),
        },
      };
      // Frozen members stay the objects they are (reordering would copy them).
      const { user: u, chaperone, ...rest } = built;
      const { source: s, ...fields } = chaperone;
      return {
        ...(ordered(rest, r.order) as Omit<UnchainedEvent, 'user' | 'chaperone'>),
        user: u,
        chaperone: {
          ...(ordered(fields, r.order) as Omit<UnchainedEvent['chaperone'], 'source'>),
          source: s,
        },
      };
    });

  // Fails if the chain members are placed or encoded wrongly, or if the encoder keeps a stale text (tried).
  it('gives the bytes and hash of the generic canonical JSON, and the collector recomputes both from the text', () => {
    fc.assert(
      fc.property(
        event,
        fc.integer({ min: 1, max: 2 ** 50 }),
        fc.constantFrom(GENESIS_HASH, 'ab'.repeat(32)),
        (e, seq, prev) => {
          const { event: chained, text } = chainEventText(e, seq, prev);
          assert.equal(text, canonicalJson(chained));
          assert.equal(chained.chaperone.hash, definitionHash(chained));
          // The event as given, with its chain members added, and nothing else changed.
          const { seq: s, prevHash: p, hash: _h, ...fields } = chained.chaperone;
          assert.deepEqual([s, p], [seq, prev]);
          assert.deepEqual({ ...chained, chaperone: fields }, e);
          assert.equal(canonicalJson({ ...chained, chaperone: fields }), canonicalJson(e));
          const stored = canonicalEventForms(JSON.parse(text) as AuditEvent);
          assert.equal(sha256Hex(stored.unhashed), chained.chaperone.hash);
          assert.equal(stored.withHash(chained.chaperone.hash), text);
          // A second event sharing the same (possibly frozen) members encodes the same way.
          const again = chainEventText(e, seq, prev);
          assert.equal(again.text, text);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('places seq, prevHash and hash among the members in canonical order when the rest are', () => {
    const e = sample(1);
    const sorted = { ...e, chaperone: ordered(e.chaperone, 'sorted') as UnchainedEvent['chaperone'] };
    const keys = Object.keys(chainEventText(sorted, 4, GENESIS_HASH).event.chaperone);
    assert.deepEqual(keys, [...keys].sort());
    assert.ok(keys.includes('hash') && keys.includes('prevHash') && keys.includes('seq'));
  });

  // The bytes the chain produced before the encoder learned its shortcuts: the collector's stored events hash this way.
  it('gives the same bytes as it always has for a fixed event', () => {
    const { event: chained, text } = chainEventText(sample(2), 42, 'cd'.repeat(32));
    assert.equal(text, GOLDEN_TEXT);
    assert.equal(chained.chaperone.hash, '2950433391ea87b2f6c4142a240d76760e486320983a6d90c47f5ca2946f47e5');
  });
});

const GOLDEN_TEXT =
  '{"annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"rule mask-secrets"},"apiVersion":"audit.k8s.io/v1","auditID":"6f0c1a52-0d1e-4c7e-9a0b-000000000002","chaperone":{"decision":{"action":"mask","reason":"rule_matched","rule":"mask-secrets"},"hash":"2950433391ea87b2f6c4142a240d76760e486320983a6d90c47f5ca2946f47e5","latencyMs":0.42,"maskedFields":2,"prevHash":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd","protocol":"kubernetes","schemaVersion":1,"seq":42,"sessionId":"sess-1","source":{"namespace":"agents","pod":"agent-0","serviceAccount":"agent","sidecarId":"agents/agent-0/uid-1"}},"kind":"Event","level":"Metadata","objectRef":{"apiVersion":"v1","name":"db","namespace":"agents","resource":"secrets"},"requestReceivedTimestamp":"2026-11-22T10:00:02.000000Z","requestURI":"/api/v1/namespaces/agents/secrets/db","responseStatus":{"code":200,"metadata":{}},"sourceIPs":["127.0.0.1"],"stage":"ResponseComplete","stageTimestamp":"2026-11-22T10:00:02.000412Z","user":{"groups":["system:serviceaccounts"],"username":"system:serviceaccount:agents:agent"},"userAgent":"kubectl/v1.32.4","verb":"get"}';
