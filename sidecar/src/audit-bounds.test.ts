// The audit delivery settings: their defaults, and what start-up refuses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '@chaperone/shared';
import { sidecarSchema } from './config.ts';
import { validateAuditBounds } from './main.ts';

const required = { CHAPERONE_POD_NAME: 'p', CHAPERONE_POD_NAMESPACE: 'a' };

describe('audit delivery settings', () => {
  it('bound the collector at 2 minutes and drain for 20 s by default (under the usual 30 s grace period)', () => {
    const c = parseConfig(sidecarSchema, { env: required });
    assert.equal(c.collectorMaxLag, 120_000);
    assert.equal(c.shutdownDrainTimeout, 20_000);
    validateAuditBounds(c);
  });

  it('0s turns the collector bound off; a bound shorter than a reconnect is refused at start', () => {
    const off = parseConfig(sidecarSchema, { env: { ...required, CHAPERONE_COLLECTOR_MAX_LAG: '0s' } });
    assert.equal(off.collectorMaxLag, 0);
    validateAuditBounds(off);
    const short = parseConfig(sidecarSchema, { env: { ...required, CHAPERONE_COLLECTOR_MAX_LAG: '5s' } });
    assert.throws(
      () => validateAuditBounds(short),
      (err: unknown) =>
        err instanceof ConfigError && /must be 0s \(no bound\) or at least 30s/.test(err.message),
    );
    assert.throws(() =>
      parseConfig(sidecarSchema, { env: { ...required, CHAPERONE_COLLECTOR_MAX_LAG: 'soon' } }),
    );
    const long = parseConfig(sidecarSchema, { env: { ...required, CHAPERONE_SHUTDOWN_DRAIN_TIMEOUT: '1h' } });
    assert.throws(() => validateAuditBounds(long), /at most 10m/);
  });
});
