import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { splitPemBundle } from '@chaperone/shared/tls';
import {
  type CertificatePlanSettings,
  type CertificateSet,
  planCertificates,
  servingProblem,
} from './certificate-plan.ts';

const DAY = 86_400_000;
const S: CertificatePlanSettings = {
  commonName: 'chaperone-injector.chaperone-system.svc',
  dnsNames: ['chaperone-injector.chaperone-system.svc'],
  ipAddresses: ['127.0.0.1'],
  leafValidityMs: 7 * DAY,
  caValidityMs: 365 * DAY,
  propagationDelayMs: 60_000,
};
const T0 = Date.parse('2030-01-01T00:00:00Z');

const serial = (pem: string) => new X509Certificate(pem).serialNumber;
const issuer = (leaf: string, bundle: string) =>
  splitPemBundle(bundle).findIndex((ca) =>
    new X509Certificate(leaf).verify(new X509Certificate(ca).publicKey),
  );

function apply(set: Partial<CertificateSet> | undefined, now: number, s = S): CertificateSet {
  const plan = planCertificates(set, s, now);
  return (plan?.next ?? set) as CertificateSet;
}

describe('planCertificates', () => {
  const first = planCertificates(undefined, S, T0);
  assert.ok(first);
  const set = first.next;

  it('creates a CA and a serving certificate when there is nothing', () => {
    assert.deepEqual(first.issued, ['ca', 'serving']);
    assert.equal(splitPemBundle(set.caBundle).length, 1);
    assert.equal(issuer(set.cert, set.caBundle), 0);
    const leaf = new X509Certificate(set.cert);
    assert.match(leaf.subjectAltName ?? '', /DNS:chaperone-injector\.chaperone-system\.svc/);
    assert.match(leaf.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    assert.equal(servingProblem(set, new X509Certificate(set.caBundle), S, T0), undefined);
  });

  it('is stable: nothing to do while the certificate is young', () => {
    assert.equal(planCertificates(set, S, T0), undefined);
    assert.equal(planCertificates(set, S, T0 + 6 * DAY), undefined);
  });

  it('renews the serving certificate in the last 10 % of its life, from the same CA', () => {
    const plan = planCertificates(set, S, T0 + 6.5 * DAY);
    assert.ok(plan);
    assert.deepEqual(plan.issued, ['serving']);
    assert.equal(plan.next.caBundle, set.caBundle);
    assert.notEqual(serial(plan.next.cert), serial(set.cert));
    assert.match(plan.reason, /due for renewal/);
  });

  it('honours renewBefore', () => {
    assert.ok(planCertificates(set, { ...S, renewBeforeMs: 2 * DAY }, T0 + 5.5 * DAY));
    assert.equal(planCertificates(set, { ...S, renewBeforeMs: 2 * DAY }, T0 + 4 * DAY), undefined);
  });

  it('reissues at once when a required name is missing or the key does not match', () => {
    const more = planCertificates(set, { ...S, dnsNames: [...S.dnsNames, 'extra.example'] }, T0);
    assert.match(more?.reason ?? '', /lacks extra\.example/);
    const other = planCertificates(undefined, S, T0)?.next as CertificateSet;
    const swapped = planCertificates({ ...set, key: other.key }, S, T0);
    assert.match(swapped?.reason ?? '', /key does not match/);
  });

  it('replaces an unusable CA (broken, expired, key missing) together with the certificate', () => {
    for (const broken of [
      { ...set, caKey: '' },
      { ...set, caBundle: 'garbage' },
    ]) {
      const plan = planCertificates(broken, S, T0);
      assert.deepEqual(plan?.issued, ['ca', 'serving']);
    }
    const late = planCertificates(set, S, T0 + 400 * DAY);
    assert.deepEqual(late?.issued, ['ca', 'serving']);
  });

  it('rotates the CA ahead of expiry: new CA trusted first, certificate moved after the propagation delay', () => {
    const L = { ...S, leafValidityMs: 30 * DAY };
    // A serving certificate issued just before the rotation point (80 % of the CA's life)…
    const fresh = apply({ ...set }, T0 + 291 * DAY, { ...L, renewBeforeMs: 100 * DAY });
    assert.equal(fresh.caBundle, set.caBundle);
    const nearEnd = T0 + 300 * DAY;
    const rotated = planCertificates(fresh, L, nearEnd);
    assert.ok(rotated);
    assert.deepEqual(rotated.issued, ['ca']);
    const bundle = splitPemBundle(rotated.next.caBundle);
    assert.equal(bundle.length, 2, 'old and new CA both trusted');
    assert.equal(rotated.next.cert, fresh.cert, 'still the old certificate');
    assert.equal(issuer(rotated.next.cert, rotated.next.caBundle), 1);
    // Within the propagation delay: wait.
    assert.equal(planCertificates(rotated.next, L, nearEnd + 30_000), undefined);
    // After it: a certificate from the new CA.
    const moved = planCertificates(rotated.next, L, nearEnd + 61_000);
    assert.deepEqual(moved?.issued, ['serving']);
    assert.equal(issuer(moved?.next.cert ?? '', moved?.next.caBundle ?? ''), 0);
    assert.equal(splitPemBundle(moved?.next.caBundle ?? '').length, 2);
    // Once the old CA has expired it leaves the bundle.
    const pruned = planCertificates(moved?.next, L, T0 + 366 * DAY);
    assert.equal(splitPemBundle(pruned?.next.caBundle ?? '').length, 1);
  });
});
