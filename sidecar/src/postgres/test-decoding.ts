/** What both PostgreSQL decoder property tests check. Test-only. */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from './protocol.ts';

/**
 * Well-framed messages of each of `types` with random bodies, decoded after
 * `prefix`: each gives messages or a ProtocolError, never another exception.
 */
export function assertRandomBodiesDecodeOrRefuse(
  types: string,
  decode: (input: Buffer) => unknown,
  prefix: Buffer = Buffer.alloc(0),
): void {
  const codes = [...types].map((c) => c.charCodeAt(0));
  fc.assert(
    fc.property(fc.constantFrom(...codes), fc.uint8Array({ maxLength: 64 }), (type, body) => {
      const msg = Buffer.alloc(5 + body.length);
      msg[0] = type;
      msg.writeInt32BE(4 + body.length, 1);
      Buffer.from(body).copy(msg, 5);
      try {
        decode(Buffer.concat([prefix, msg]));
      } catch (err) {
        assert.ok(err instanceof ProtocolError, String(err));
      }
    }),
    { numRuns: 3000 },
  );
}
