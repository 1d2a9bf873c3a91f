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
import { canonicalJson, sha256Hex } from './canonical-json.ts';
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
