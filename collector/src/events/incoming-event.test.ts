import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AuditEvent,
  canonicalJson,
  chainEvent,
  GENESIS_HASH,
  hashEvent,
  MAX_EVENT_BYTES,
  ValidationError,
  validateAuditEvent,
} from '@chaperone/shared';
import fc from 'fast-check';
import { makeChain, TEST_SOURCE as SOURCE, sampleEvent } from '../testing/test-events.ts';
import { toEventRow } from './event-row.ts';
import { prepareEvent, validateIncoming } from './incoming-event.ts';

describe('prepareEvent', () => {
  it('serialises to canonical JSON and hashes as hashEvent does, whatever the members', () => {
    // Keys that sort around "hash" and "chaperone", array-index-like keys, odd strings.
    const key = fc.oneof(
      fc.constantFrom('a', 'h', 'hash', 'hasi', 'has', 'chaperone', 'chap', 'z', '1', '10', '2', '__proto__'),
      fc.string({ maxLength: 6 }),
    );
    const value = fc.jsonValue({ maxDepth: 3 });
    fc.assert(
      fc.property(
        fc.dictionary(key, value, { maxKeys: 6 }),
        fc.dictionary(key, value, { maxKeys: 6 }),
        fc.boolean(),
        (extra, extraChaperone, withExec) => {
          const base = sampleEvent(
            SOURCE,
            3,
            withExec ? { protocol: 'exec', argv: ['sh', '-c', 'a\tb\n"c"'] } : {},
          );
          const event = JSON.parse(
            JSON.stringify({
              ...base,
              requestObject: extra,
              chaperone: { ...base.chaperone, sql: extraChaperone },
            }),
          ) as typeof base;
          // Also as members of the event and of chaperone themselves.
          for (const [k, v] of Object.entries(extra))
            if (k !== 'chaperone')
              Object.defineProperty(event, k, {
                value: v,
                enumerable: true,
                configurable: true,
                writable: true,
              });
          for (const [k, v] of Object.entries(extraChaperone))
            if (k !== 'hash')
              Object.defineProperty(event.chaperone, k, {
                value: v,
                enumerable: true,
                configurable: true,
                writable: true,
              });
          const chained = chainEvent(event, 7, GENESIS_HASH);
          const p = prepareEvent(chained, 5);
          assert.equal(p.row.json, canonicalJson(chained));
          assert.deepEqual(p.row, toEventRow(chained, 5, canonicalJson(chained)));
          assert.equal(p.computedHash, hashEvent(chained));
          assert.equal(p.computedHash, chained.chaperone.hash);
          assert.deepEqual(JSON.parse(p.row.json), JSON.parse(JSON.stringify(chained)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps the hash the event carries, and computes the one it should carry', () => {
    const [e] = makeChain(SOURCE, 1) as [AuditEvent];
    const edited = { ...e, verb: 'delete' };
    const p = prepareEvent(edited, 1);
    assert.equal((JSON.parse(p.row.json) as AuditEvent).chaperone.hash, e.chaperone.hash);
    assert.equal(p.chaperone.hash, e.chaperone.hash);
    assert.notEqual(p.computedHash, e.chaperone.hash);
    assert.equal(p.computedHash, hashEvent(edited));
  });
});

describe('validateIncoming', () => {
  it('accepts and refuses exactly what validateAuditEvent does, size limit included', () => {
    const [e] = makeChain(SOURCE, 1) as [AuditEvent];
    const pad = (n: number) => ({ ...e, annotations: { pad: 'x'.repeat(n) } });
    const base = Buffer.byteLength(JSON.stringify(pad(0)));
    for (const v of [
      e,
      pad(MAX_EVENT_BYTES - base),
      pad(MAX_EVENT_BYTES - base + 1),
      { ...e, verb: 42 },
      { ...e, kind: 'List' },
    ]) {
      const plain = (() => {
        try {
          validateAuditEvent(v);
          return 'ok';
        } catch (err) {
          assert.ok(err instanceof ValidationError);
          return `${err.path} ${err.message}`;
        }
      })();
      const incoming = (() => {
        try {
          validateIncoming(v, 1);
          return 'ok';
        } catch (err) {
          assert.ok(err instanceof ValidationError);
          return `${err.path} ${err.message}`;
        }
      })();
      assert.equal(incoming, plain);
    }
  });
});
