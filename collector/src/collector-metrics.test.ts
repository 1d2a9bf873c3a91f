import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRegistry } from '@chaperone/shared';
import { createCollectorMetrics } from './collector-metrics.ts';
import { prepareEvent } from './events/incoming-event.ts';
import { makeChain, TEST_SOURCE } from './testing/test-events.ts';

const T0 = Date.parse('2026-03-01T10:00:00Z');

describe('collector metrics', () => {
  it('count stored denials by namespace, rule and protocol, and how long each event took to be stored', async () => {
    const registry = createRegistry({ component: 'collector', defaultMetrics: false });
    const m = createCollectorMetrics(registry);
    const events = makeChain(TEST_SOURCE, 4, {
      spec: (i) => ({
        protocol: i === 4 ? 'postgres' : 'kubernetes',
        action: i === 1 ? 'allow' : 'deny',
        rule: i === 1 ? 'default' : 'no-deletes',
        time: new Date(T0 + i * 1000),
      }),
    });
    // Stored 90 s after the last request: lags 93, 92, 91 and 90 s.
    m.countStored(
      events.map((e) => prepareEvent(e, T0 * 1000)),
      T0 + 94_000,
    );
    const text = await registry.metrics();
    assert.match(
      text,
      /^chaperone_collector_blocked_events_total\{namespace="agents",rule="no-deletes",protocol="kubernetes",component="collector"\} 2$/m,
    );
    assert.match(
      text,
      /^chaperone_collector_blocked_events_total\{namespace="agents",rule="no-deletes",protocol="postgres",component="collector"\} 1$/m,
    );
    assert.match(text, /^chaperone_collector_event_lag_seconds_count\{component="collector"\} 4$/m);
    assert.match(text, /^chaperone_collector_event_lag_seconds_sum\{component="collector"\} 366$/m);
    assert.match(text, /^chaperone_collector_event_lag_seconds_bucket\{le="60",component="collector"\} 0$/m);
    assert.match(text, /^chaperone_collector_event_lag_seconds_bucket\{le="300",component="collector"\} 4$/m);
  });
});
