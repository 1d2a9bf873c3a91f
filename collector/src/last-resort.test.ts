import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { installLastResortNet } from './last-resort.ts';
import { memoryLogger } from './testing/test-harness.ts';

describe('last-resort net', () => {
  // Fails if installLastResortNet does not listen (the emit below then throws): tried.
  it('logs uncaught errors and rejections instead of letting them end the process, until removed', () => {
    const lines: string[] = [];
    const proc = new EventEmitter();
    const remove = installLastResortNet(memoryLogger(lines), proc as unknown as NodeJS.Process);
    proc.emit('uncaughtException', new Error('boom'));
    proc.emit('unhandledRejection', new Error('late'));
    assert.equal(lines.length, 2);
    assert.match(
      lines[0] as string,
      /"level":"error".*"message":"boom".*uncaught exception \(kept serving\)/,
    );
    assert.match(lines[1] as string, /"message":"late".*unhandled promise rejection \(kept serving\)/);
    remove();
    assert.equal(proc.listenerCount('uncaughtException') + proc.listenerCount('unhandledRejection'), 0);
  });
});
