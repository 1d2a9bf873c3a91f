import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chainEvent, GENESIS_HASH } from '@chaperone/shared';
import { sampleEvent, TEST_SOURCE } from '../testing/test-events.ts';
import { ROW_COLUMNS, ROW_KEYS, toEventRow } from './event-row.ts';

describe('event rows', () => {
  it('ROW_KEYS lists every member of a row exactly once, one per column', () => {
    const row = toEventRow(chainEvent(sampleEvent(TEST_SOURCE, 1), 1, GENESIS_HASH), 1);
    assert.deepEqual([...ROW_KEYS].sort(), Object.keys(row).sort());
    assert.equal(new Set(ROW_COLUMNS).size, ROW_KEYS.length);
  });
});
