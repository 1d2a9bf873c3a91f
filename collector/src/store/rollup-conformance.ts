/**
 * The console's rollups in the storage conformance suite (store-conformance.ts
 * registers these cases for every backend): overview counts, agents, rules,
 * sessions and the access report, each checked against answers worked out
 * here by hand or by a plain count over the inputs, never against either
 * backend; resends counted once, the backfill of the rollup migration, and
 * retention.
 */
import assert from 'node:assert/strict';
import { type AuditEvent, chainEvent, GENESIS_HASH, type UnchainedEvent } from '@chaperone/shared';
import { prepareEvent } from '../events/incoming-event.ts';
import { rfc3339ToMicros } from '../events/time.ts';
import { type EventSpec, sampleEvent } from '../testing/test-events.ts';
import type { AuditStore, BatchOutcome, Identity, IncomingBatch, RollupQuery } from './store.ts';
import type { StoreHarness } from './store-conformance.ts';

type Pod = Identity & { sidecarId: string };

const A: Pod = {
  namespace: 'agents',
  pod: 'agent-0',
  podUID: 'ua',
  serviceAccount: 'agent',
  sidecarId: 'sc-a',
};
const B: Pod = {
  namespace: 'payments',
  pod: 'worker-7',
  podUID: 'ub',
  serviceAccount: 'worker',
  sidecarId: 'sc-b',
};
const C: Pod = {
  namespace: 'agents',
  pod: 'agent-1',
  podUID: 'uc',
  serviceAccount: 'agent',
  sidecarId: 'sc-c',
};

const at = (hms: string, day = 15) => new Date(`2026-01-${day}T${hms}Z`);
const us = (text: string) => rfc3339ToMicros(text);

type Spec = EventSpec & { edit?: (e: UnchainedEvent) => void };

function chainOf(who: Pod, specs: readonly Spec[]): AuditEvent[] {
  let prev = GENESIS_HASH;
  return specs.map((spec, i) => {
    const e = sampleEvent(who, i + 1, spec);
    spec.edit?.(e);
    const chained = chainEvent(e, i + 1, prev);
    prev = chained.chaperone.hash;
    return chained;
  });
}

function batchOf(who: Pod, events: readonly AuditEvent[]): IncomingBatch {
  const { sidecarId, ...identity } = who;
  const receivedUs = us('2026-01-16T12:00:00Z');
  return {
    sidecarId,
    identity,
    events: events.map((e) => prepareEvent(e, receivedUs)),
    receivedUs,
    rejectLeadingGap: false,
  };
}

function approval(state: 'approved' | 'denied') {
  return (e: UnchainedEvent) => {
    e.chaperone.decision.approval = { state, id: 'req-1', by: 'alice' };
  };
}

const execArgs = (argv: string[], sessionId: string): Spec => ({
  protocol: 'exec',
  resource: 'pods',
  subresource: 'exec',
  argv,
  sessionId,
});

function fixture() {
  const a = chainOf(A, [
    { verb: 'get', resource: 'secrets', action: 'mask', rule: 'mask-secrets', time: at('10:01:00') },
    { verb: 'list', resource: 'pods', time: at('10:02:00') },
    { ...execArgs(['sh', '-c', 'ls'], 'sx-1'), time: at('10:03:00') },
    {
      ...execArgs(['sh', '-c', 'ls'], 'sx-1'),
      action: 'deny',
      rule: 'no-rm',
      time: at('10:04:00'),
      edit: (e) => {
        if (e.chaperone.exec) e.chaperone.exec.line = 'rm -rf /';
      },
    },
    {
      ...execArgs(['sh', '-c', 'ls'], 'sx-1'),
      time: at('10:05:00'),
      edit: (e) => {
        if (e.chaperone.exec) e.chaperone.exec.durationMs = 5000;
      },
    },
    {
      verb: 'create',
      resource: 'configmaps',
      action: 'review',
      rule: 'review-writes',
      time: at('10:06:00'),
      edit: approval('approved'),
    },
    {
      verb: 'delete',
      resource: 'deployments',
      action: 'review',
      rule: 'review-writes',
      time: at('10:07:00'),
      edit: approval('denied'),
    },
    { protocol: 'postgres', sessionId: 'pg-1', time: at('10:08:00') },
    {
      protocol: 'postgres',
      sqlText: 'DROP TABLE orders',
      time: at('10:09:00'),
      edit: (e) => {
        if (e.chaperone.sql) e.chaperone.sql.statements = [{ kind: 'DropStmt', tables: ['orders'] }];
      },
    },
    {
      verb: 'get',
      resource: 'configmaps',
      time: at('10:10:00'),
      edit: (e) => {
        e.chaperone.maskedFields = 1;
      },
    },
  ]);
  const b = chainOf(B, [
    { verb: 'get', resource: 'secrets', action: 'mask', rule: 'mask-secrets', time: at('10:01:00') },
    { verb: 'delete', resource: 'pods', action: 'deny', rule: 'no-deletes', time: at('10:02:00') },
    { ...execArgs(['bash'], 'sx-2'), time: at('10:03:30') },
  ]);
  const c = chainOf(C, [
    { verb: 'list', resource: 'pods', time: at('10:02:00') },
    { verb: 'get', resource: 'pods', time: at('00:30:00', 16) },
  ]);
  return { a, b, c };
}

async function storeAll(s: AuditStore, ...batches: IncomingBatch[]): Promise<void> {
  for (const o of await s.append(batches))
    assert.equal(o.kind, 'stored', (o as BatchOutcome & { message?: string }).message);
}

const HOUR: RollupQuery = { sinceUs: us('2026-01-15T10:00:00Z'), untilUs: us('2026-01-15T11:00:00Z') };

const sum = (xs: readonly { [k: string]: unknown }[], k: string) => xs.reduce((n, x) => n + Number(x[k]), 0);

export function rollupConformance(
  run: (title: string, fn: (s: AuditStore, h: StoreHarness) => Promise<void>) => void,
): void {
  run('rolls up the overview: outcomes over time, rules, namespaces, protocols and agents', async (s) => {
    const { a, b, c } = fixture();
    await storeAll(s, batchOf(A, a), batchOf(B, b), batchOf(C, c));
    const o = await s.overview({ ...HOUR, sinceUs: HOUR.sinceUs + 30_000_000 });
    assert.equal(o.since, '2026-01-15T10:00:00.000000Z', 'since is rounded down to the minute');
    assert.equal(o.until, '2026-01-15T11:00:00.000000Z');
    assert.equal(o.bucketSeconds, 60);
    assert.equal(o.series.length, 60);
    assert.deepEqual(o.series[1], {
      t: '2026-01-15T10:01:00.000000Z',
      allowed: 2,
      blocked: 0,
      masked: 2,
      approved: 0,
    });
    assert.deepEqual(o.series[7], {
      t: '2026-01-15T10:07:00.000000Z',
      allowed: 0,
      blocked: 1,
      masked: 0,
      approved: 0,
    });
    assert.equal(sum(o.series, 'allowed'), 11);
    assert.equal(sum(o.series, 'blocked'), 3);
    assert.equal(sum(o.series, 'masked'), 3);
    assert.equal(sum(o.series, 'approved'), 1);
    assert.deepEqual(o.byRule, [
      { rule: 'mask-secrets', action: 'mask', count: 2 },
      { rule: 'review-writes', action: 'review', count: 2 },
      { rule: 'no-deletes', action: 'deny', count: 1 },
      { rule: 'no-rm', action: 'deny', count: 1 },
    ]);
    assert.deepEqual(o.byNamespace, [
      { namespace: 'agents', total: 11, blocked: 2, masked: 2, approved: 1 },
      { namespace: 'payments', total: 3, blocked: 1, masked: 1, approved: 0 },
    ]);
    assert.deepEqual(o.byProtocol, [
      { protocol: 'exec', total: 4, blocked: 1, masked: 0, approved: 0 },
      { protocol: 'kubernetes', total: 8, blocked: 2, masked: 3, approved: 1 },
      { protocol: 'postgres', total: 2, blocked: 0, masked: 0, approved: 0 },
    ]);
    assert.deepEqual(o.agents, [
      {
        namespace: 'agents',
        serviceAccount: 'agent',
        pods: 2,
        total: 11,
        blocked: 2,
        masked: 2,
        approved: 1,
        lastSeen: '2026-01-15T10:10:00.000000Z',
      },
      {
        namespace: 'payments',
        serviceAccount: 'worker',
        pods: 1,
        total: 3,
        blocked: 1,
        masked: 1,
        approved: 0,
        lastSeen: '2026-01-15T10:03:30.000000Z',
      },
    ]);
    const payments = await s.overview({ ...HOUR, namespace: ['payments'], protocol: ['kubernetes'] });
    assert.deepEqual(payments.byNamespace, [
      { namespace: 'payments', total: 2, blocked: 1, masked: 1, approved: 0 },
    ]);
    assert.deepEqual(
      payments.agents.map((x) => [x.namespace, x.total]),
      [['payments', 2]],
    );
    const none = await s.overview({ ...HOUR, namespace: [] });
    assert.deepEqual([none.byNamespace, none.agents, sum(none.series, 'allowed')], [[], [], 0]);
  });

  run('counts a resent event once', async (s) => {
    const { a, b } = fixture();
    await storeAll(s, batchOf(A, a.slice(0, 6)), batchOf(B, b));
    const before = await s.overview(HOUR);
    await storeAll(s, batchOf(A, a.slice(0, 6)), batchOf(B, b));
    assert.deepEqual(await s.overview(HOUR), before, 'a whole resend changes nothing');
    await storeAll(s, batchOf(A, a.slice(3)));
    const after = await s.overview(HOUR);
    assert.equal(sum(after.series, 'allowed') + sum(after.series, 'blocked'), a.length + b.length);
    const sessions = await s.listSessions(HOUR, { limit: 10 }, us('2026-01-15T10:12:00Z'));
    assert.equal(sessions.items.find((x) => x.sessionId === 'sx-1')?.events, 3);
    const report = await s.accessReport({ ...HOUR, namespace: ['agents'] });
    assert.equal(report.rows.find((r) => r.category === 'denied' && r.resource === 'deployments')?.count, 1);
  });

  run('reads a long range from day, hour and minute rollups alike', async (s) => {
    const start = us('2026-01-14T00:00:00Z');
    const specs: Spec[] = [];
    for (let i = 0; i < 400; i++)
      specs.push({ time: new Date((start + i * 1_103_000_000 + (i % 7) * 1_000_000) / 1000) });
    const events = chainOf(A, specs);
    await storeAll(s, batchOf(A, events));
    const times = events.map((e) => rfc3339ToMicros(e.requestReceivedTimestamp));
    for (const [since, until] of [
      ['2026-01-14T03:17:42Z', '2026-01-16T05:03:10Z'],
      ['2026-01-14T00:00:00Z', '2026-01-20T00:00:00Z'],
      ['2026-01-15T23:58:01Z', '2026-01-16T01:02:59Z'],
    ] as const) {
      const o = await s.overview({ sinceUs: us(since), untilUs: us(until) });
      const from = us(o.since);
      const to = us(o.until);
      const bucket = o.bucketSeconds * 1_000_000;
      const want = new Map<number, number>();
      for (const t of times)
        if (t >= from && t < to) {
          const k = Math.floor(t / bucket) * bucket;
          want.set(k, (want.get(k) ?? 0) + 1);
        }
      const got = new Map(o.series.filter((p) => p.allowed > 0).map((p) => [us(p.t), p.allowed]));
      assert.deepEqual(got, want, `${since} .. ${until} in ${o.bucketSeconds} s buckets`);
      assert.ok(o.series.length <= 120);
    }
  });

  run(
    'lists sessions newest first with their kind, counts, recording and whether they are live',
    async (s) => {
      const { a, b } = fixture();
      await storeAll(s, batchOf(A, a), batchOf(B, b));
      const { sidecarId, ...identity } = A;
      await s.appendRecording('sx-1', sidecarId, identity, 0, '{"version":2,"width":80,"height":24}\n');
      const now = us('2026-01-15T10:12:00Z');
      const all = await s.listSessions(HOUR, { limit: 10 }, now);
      assert.deepEqual(all.items, [
        {
          sessionId: 'pg-1',
          protocol: 'postgres',
          namespace: 'agents',
          pod: 'agent-0',
          serviceAccount: 'agent',
          startedAt: '2026-01-15T10:08:00.000000Z',
          lastAt: '2026-01-15T10:08:00.000000Z',
          events: 1,
          blocked: 0,
          recording: false,
          live: true,
          summary: 'app/agent',
        },
        {
          sessionId: 'sx-2',
          protocol: 'exec',
          namespace: 'payments',
          pod: 'worker-7',
          serviceAccount: 'worker',
          startedAt: '2026-01-15T10:03:30.000000Z',
          lastAt: '2026-01-15T10:03:30.000000Z',
          events: 1,
          blocked: 0,
          recording: false,
          live: true,
          summary: 'bash',
        },
        {
          sessionId: 'sx-1',
          protocol: 'exec',
          namespace: 'agents',
          pod: 'agent-0',
          serviceAccount: 'agent',
          startedAt: '2026-01-15T10:03:00.000000Z',
          lastAt: '2026-01-15T10:05:00.000000Z',
          events: 3,
          blocked: 1,
          recording: true,
          live: false,
          summary: 'sh -c ls',
        },
      ]);
      assert.equal(all.nextCursor, undefined);
      const first = await s.listSessions(HOUR, { limit: 2 }, now);
      assert.deepEqual(
        first.items.map((x) => x.sessionId),
        ['pg-1', 'sx-2'],
      );
      assert.ok(first.nextCursor);
      const second = await s.listSessions(HOUR, { limit: 2, cursor: first.nextCursor }, now);
      assert.deepEqual([second.items.map((x) => x.sessionId), second.nextCursor], [['sx-1'], undefined]);
      const later = us('2026-01-15T10:20:00Z');
      const exec = await s.listSessions({ ...HOUR, protocol: ['exec'] }, { limit: 10 }, later);
      assert.deepEqual(
        exec.items.map((x) => [x.sessionId, x.live]),
        [
          ['sx-2', false],
          ['sx-1', false],
        ],
      );
      const payments = await s.listSessions({ ...HOUR, namespace: ['payments'] }, { limit: 10 }, now);
      assert.deepEqual(
        payments.items.map((x) => x.sessionId),
        ['sx-2'],
      );
      const after = await s.listSessions(
        { ...HOUR, sinceUs: us('2026-01-15T10:06:00Z') },
        { limit: 10 },
        now,
      );
      assert.deepEqual(
        after.items.map((x) => x.sessionId),
        ['pg-1'],
      );
    },
  );

  run(
    'reports what each identity read, changed, was denied, had approved and masked, by whole days',
    async (s) => {
      const { a, b, c } = fixture();
      await storeAll(s, batchOf(A, a), batchOf(B, b), batchOf(C, c));
      const r = await s.accessReport({
        sinceUs: us('2026-01-15T10:30:00Z'),
        untilUs: us('2026-01-15T10:45:00Z'),
      });
      assert.equal(r.since, '2026-01-15T00:00:00.000000Z');
      assert.equal(r.until, '2026-01-16T00:00:00.000000Z');
      assert.equal(r.truncated, false);
      const row = (
        namespace: string,
        category: string,
        protocol: string,
        verb: string,
        resource: string,
        count: number,
        first: string,
        last = first,
      ) => ({
        namespace,
        serviceAccount: namespace === 'agents' ? 'agent' : 'worker',
        category,
        protocol,
        verb,
        resource,
        count,
        first: `2026-01-15T${first}.000000Z`,
        last: `2026-01-15T${last}.000000Z`,
      });
      assert.deepEqual(r.rows, [
        row('agents', 'read', 'kubernetes', 'list', 'pods', 2, '10:02:00'),
        row('agents', 'read', 'kubernetes', 'get', 'configmaps', 1, '10:10:00'),
        row('agents', 'read', 'kubernetes', 'get', 'secrets', 1, '10:01:00'),
        row('agents', 'read', 'postgres', 'select', 'app/orders', 1, '10:08:00'),
        row('agents', 'changed', 'exec', 'create', 'pods/exec', 2, '10:03:00', '10:05:00'),
        row('agents', 'changed', 'kubernetes', 'create', 'configmaps', 1, '10:06:00'),
        row('agents', 'changed', 'postgres', 'drop', 'app/orders', 1, '10:09:00'),
        row('agents', 'denied', 'exec', 'create', 'pods/exec', 1, '10:04:00'),
        row('agents', 'denied', 'kubernetes', 'delete', 'deployments', 1, '10:07:00'),
        row('agents', 'approved', 'kubernetes', 'create', 'configmaps', 1, '10:06:00'),
        row('agents', 'masked', 'kubernetes', 'get', 'configmaps', 1, '10:10:00'),
        row('agents', 'masked', 'kubernetes', 'get', 'secrets', 1, '10:01:00'),
        row('payments', 'read', 'kubernetes', 'get', 'secrets', 1, '10:01:00'),
        row('payments', 'changed', 'exec', 'create', 'pods/exec', 1, '10:03:30'),
        row('payments', 'denied', 'kubernetes', 'delete', 'pods', 1, '10:02:00'),
        row('payments', 'masked', 'kubernetes', 'get', 'secrets', 1, '10:01:00'),
      ]);
      const two = await s.accessReport({
        sinceUs: us('2026-01-15T10:30:00Z'),
        untilUs: us('2026-01-16T01:00:00Z'),
        namespace: ['agents'],
        serviceAccount: ['agent'],
      });
      assert.equal(two.until, '2026-01-17T00:00:00.000000Z');
      assert.deepEqual(
        two.rows
          .filter((x) => x.category === 'read' && x.resource === 'pods')
          .map((x) => [x.verb, x.count, x.last]),
        [
          ['list', 2, '2026-01-15T10:02:00.000000Z'],
          ['get', 1, '2026-01-16T00:30:00.000000Z'],
        ],
      );
      assert.deepEqual((await s.accessReport({ ...HOUR, serviceAccount: ['nobody'] })).rows, []);
    },
  );

  run('backfills the rollups from the stored events when the rollup migration runs', async (s, h) => {
    const { a, b, c } = fixture();
    await storeAll(s, batchOf(A, a), batchOf(B, b), batchOf(C, c));
    const now = us('2026-01-15T10:12:00Z');
    const answers = async (x: AuditStore) => [
      await x.overview(HOUR),
      await x.listSessions(HOUR, { limit: 10 }, now),
      await x.accessReport(HOUR),
    ];
    const before = await answers(s);
    await s.close();
    for (const sql of [
      'DROP TABLE rollup_counts',
      'DROP TABLE rollup_agents',
      'DROP TABLE rollup_access',
      'DROP TABLE rollup_sessions',
      // The later migrations run again after it too.
      'DROP TABLE checkpoint_chains',
      'DELETE FROM schema_version WHERE version >= 6',
    ])
      await h.exec(sql, []);
    const again = await h.reopen();
    try {
      assert.deepEqual(await answers(again), before);
    } finally {
      await again.close();
    }
  });

  run('retention removes rollups whose period ended before the cutoff', async (s) => {
    const { a, b, c } = fixture();
    await storeAll(s, batchOf(A, a), batchOf(B, b), batchOf(C, c));
    const now = us('2026-01-15T10:12:00Z');
    await s.prune(us('2026-01-15T12:00:00Z'), 1000);
    assert.equal(
      sum((await s.overview(HOUR)).series, 'allowed'),
      0,
      'minutes and hours before noon are gone',
    );
    assert.deepEqual(
      (await s.listSessions(HOUR, { limit: 10 }, now)).items,
      [],
      'sessions last seen before noon too',
    );
    assert.equal((await s.accessReport(HOUR)).rows.length, 16, 'the day that has not ended stays');
    await s.prune(us('2026-01-17T00:00:01Z'), 1000);
    const o = await s.overview({ sinceUs: us('2026-01-14T00:00:00Z'), untilUs: us('2026-01-18T00:00:00Z') });
    assert.deepEqual([sum(o.series, 'allowed'), o.agents], [0, []]);
    assert.deepEqual((await s.accessReport(HOUR)).rows, []);
  });

  run('reads a chain from a seq on', async (s) => {
    const { a } = fixture();
    await storeAll(s, batchOf(A, a));
    assert.deepEqual(
      (await s.chainEventsFrom(A.sidecarId, 3, 2)).map((r) => [r.seq, r.hash]),
      [3, 4].map((seq) => [seq, a[seq - 1]?.chaperone.hash]),
    );
    assert.deepEqual(await s.chainEventsFrom(A.sidecarId, 11, 5), []);
  });
}
