import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chainEvent, GENESIS_HASH, type UnchainedEvent, validateAuditEvent } from '@chaperone/shared';
import { buildIdentity } from '../identity.ts';
import type { KubeRequestContext } from '../kube/context.ts';
import type { SidecarMetrics } from '../metrics.ts';
import { AuditRecorder } from './recorder.ts';
import type { Spool } from './spool.ts';

/** A bound token's shape (only the claims are read; the signature is not checked here). */
function token(claims: object): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'RS256' })}.${part(claims)}.sig`;
}

const identity = buildIdentity(
  { name: 'planner-0', namespace: 'agents', uid: 'pod-uid', serviceAccount: 'planner' },
  token({
    sub: 'system:serviceaccount:agents:planner',
    'kubernetes.io': {
      namespace: 'agents',
      pod: { name: 'planner-0', uid: 'pod-uid' },
      serviceaccount: { name: 'planner', uid: 'sa-uid' },
    },
  }),
);
// kubeEvent touches neither the spool, the metrics nor the logger.
const recorder = new AuditRecorder({} as Spool, identity, {} as SidecarMetrics, {} as never);
const RECEIVED = new Date(Date.UTC(2026, 10, 22, 10, 0, 0, 123));
const NOW = new Date(Date.UTC(2026, 10, 22, 10, 0, 0, 125));

function ctx(
  over: Partial<KubeRequestContext> & { ua?: string; url?: string; method?: string },
): KubeRequestContext {
  const { ua, url = '/api/v1/namespaces/agents/configmaps/c', method = 'GET', ...rest } = over;
  return {
    req: { url, method, headers: ua === undefined ? {} : { 'user-agent': ua } },
    res: { headersSent: true, statusCode: 200 },
    auditID: '6f0c1a52-0d1e-4c7e-9a0b-000000000001',
    receivedAt: RECEIVED,
    remoteAddress: '127.0.0.1',
    maskedFields: 0,
    overheadNs: 41_500n,
    ...rest,
  } as unknown as KubeRequestContext;
}

const CASES: { name: string; ctx: KubeRequestContext }[] = [
  {
    name: 'an allowed get of a named, namespaced object, with a user agent',
    ctx: ctx({
      ua: 'kubectl/v1.32.4',
      info: {
        isResourceRequest: true,
        apiGroup: '',
        apiVersion: 'v1',
        resource: 'configmaps',
        namespace: 'agents',
        name: 'c',
        verb: 'get',
      } as never,
      action: { protocol: 'kubernetes', verb: 'get' } as never,
      decision: {
        action: 'allow',
        rule: 'reads',
        reason: 'rule_matched',
        message: 'reads are fine',
      } as never,
    }),
  },
  {
    name: 'a denied exec into a container (a subresource), without a user agent',
    ctx: ctx({
      url: '/api/v1/namespaces/agents/pods/p/exec?command=sh&container=app',
      info: {
        isResourceRequest: true,
        apiGroup: '',
        apiVersion: 'v1',
        resource: 'pods',
        namespace: 'agents',
        name: 'p',
        subresource: 'exec',
        verb: 'get',
      } as never,
      action: { protocol: 'exec', verb: 'get', exec: { argv: ['sh'], container: 'app' } } as never,
      decision: { action: 'deny', rule: 'no-shells', reason: 'rule_matched', message: 'no shells' } as never,
      answered: {
        code: 403,
        reason: 'Forbidden',
        message: 'chaperone: denied by rule "no-shells": no shells',
      },
    }),
  },
  {
    name: 'an exec without a container, a masked list of a whole collection',
    ctx: ctx({
      url: '/api/v1/secrets',
      info: {
        isResourceRequest: true,
        apiGroup: '',
        apiVersion: 'v1',
        resource: 'secrets',
        verb: 'list',
      } as never,
      action: { protocol: 'kubernetes', verb: 'list', exec: { argv: ['ls', '-l'] } } as never,
      decision: { action: 'mask', rule: 'mask-secrets', reason: 'rule_matched', message: 'masked' } as never,
      maskedFields: 7,
    }),
  },
  {
    name: 'a request that failed before any decision (a non-resource URL)',
    ctx: ctx({
      url: '/version',
      method: 'POST',
      info: { isResourceRequest: false, verb: 'post' } as never,
      res: { headersSent: false, statusCode: 0 } as never,
      failure: { code: 502, reason: 'BadGateway', message: 'chaperone: upstream reset' },
    }),
  },
];

/** Paths of objects whose keys are not in canonical (sorted) order. */
function unsorted(v: unknown, path = ''): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => unsorted(x, `${path}/${i}`));
  if (typeof v !== 'object' || v === null) return [];
  const keys = Object.keys(v);
  const here = keys.join() === [...keys].sort().join() ? [] : [path || '/'];
  return [...here, ...keys.flatMap((k) => unsorted((v as Record<string, unknown>)[k], `${path}/${k}`))];
}

describe('AuditRecorder.kubeEvent', () => {
  for (const c of CASES) {
    it(`${c.name}: a valid event, every object's members in canonical order`, () => {
      const event = recorder.kubeEvent(c.ctx, NOW);
      assert.deepEqual(unsorted(event), []);
      const chained = chainEvent(event, 1, GENESIS_HASH);
      assert.doesNotThrow(() => validateAuditEvent(JSON.parse(JSON.stringify(chained))));
    });
  }

  it('sets every member the event schema has for a denied exec', () => {
    const expected: UnchainedEvent = {
      annotations: {
        'authorization.k8s.io/decision': 'forbid',
        'authorization.k8s.io/reason': 'chaperone rule_matched no-shells: no shells',
        'chaperone.dev/rule': 'no-shells',
      },
      apiVersion: 'audit.k8s.io/v1',
      auditID: '6f0c1a52-0d1e-4c7e-9a0b-000000000001',
      chaperone: {
        decision: { action: 'deny', message: 'no shells', reason: 'rule_matched', rule: 'no-shells' },
        exec: { argv: ['sh'], container: 'app' },
        latencyMs: 0.042,
        maskedFields: 0,
        protocol: 'exec',
        schemaVersion: 1,
        source: {
          namespace: 'agents',
          pod: 'planner-0',
          podUID: 'pod-uid',
          serviceAccount: 'planner',
          sidecarId: 'agents/planner-0/pod-uid',
        },
      },
      kind: 'Event',
      level: 'Metadata',
      objectRef: {
        apiGroup: '',
        apiVersion: 'v1',
        name: 'p',
        namespace: 'agents',
        resource: 'pods',
        subresource: 'exec',
      },
      requestReceivedTimestamp: '2026-11-22T10:00:00.123000Z',
      requestURI: '/api/v1/namespaces/agents/pods/p/exec?command=sh&container=app',
      responseStatus: {
        code: 403,
        message: 'chaperone: denied by rule "no-shells": no shells',
        metadata: {},
        reason: 'Forbidden',
        status: 'Failure',
      },
      sourceIPs: ['127.0.0.1'],
      stage: 'ResponseComplete',
      stageTimestamp: '2026-11-22T10:00:00.125000Z',
      user: {
        extra: { 'authentication.kubernetes.io/pod-name': ['planner-0'] },
        groups: ['system:serviceaccounts', 'system:serviceaccounts:agents', 'system:authenticated'],
        uid: 'sa-uid',
        username: 'system:serviceaccount:agents:planner',
      },
      verb: 'get',
    };
    assert.deepEqual(recorder.kubeEvent((CASES[1] as (typeof CASES)[number]).ctx, NOW), expected);
  });

  it('records an undecided request as denied, with the failure it met', () => {
    const event = recorder.kubeEvent((CASES[3] as (typeof CASES)[number]).ctx, NOW);
    assert.deepEqual(event.chaperone.decision, { action: 'deny', reason: 'not_decided', rule: 'none' });
    assert.equal(event.annotations?.['authorization.k8s.io/reason'], 'chaperone: not decided');
    assert.deepEqual(event.responseStatus, {
      code: 502,
      message: 'chaperone: upstream reset',
      metadata: {},
      reason: 'BadGateway',
      status: 'Failure',
    });
    assert.equal(event.verb, 'post');
    assert.equal(event.objectRef, undefined);
    assert.equal(event.userAgent, undefined);
  });
});

describe('AuditRecorder: exec sessions', () => {
  const opened = ctx({
    url: '/api/v1/namespaces/agents/pods/p/exec?command=sh&container=app&stdin=true&tty=true',
    res: { headersSent: true, statusCode: 101 } as never,
    // The exec target of the denied exec above.
    info: (CASES[1] as (typeof CASES)[number]).ctx.info as never,
    action: {
      protocol: 'exec',
      verb: 'create',
      exec: { kind: 'exec', argv: ['sh'], container: 'app', stdin: true, tty: true },
    } as never,
    decision: { action: 'allow', rule: 'shells', reason: 'rule_matched', message: 'ok' } as never,
  });

  it('records the opening of a session as started, named by its own id', () => {
    const event = recorder.kubeEvent(opened, NOW);
    assert.deepEqual(unsorted(event), []);
    assert.equal(event.stage, 'ResponseStarted');
    assert.equal(event.responseStatus?.code, 101);
    assert.equal(event.chaperone.sessionId, opened.auditID);
    assert.deepEqual(event.chaperone.exec, { argv: ['sh'], container: 'app', stdin: true, tty: true });
    assert.doesNotThrow(() =>
      validateAuditEvent(JSON.parse(JSON.stringify(chainEvent(event, 1, GENESIS_HASH)))),
    );
  });

  it('records its end under a new id with the exit code, bytes each way and duration, or why the sidecar ended it', () => {
    const end = recorder.execEndEvent(
      opened,
      {
        status: { status: 'Failure', reason: 'NonZeroExitCode', message: 'exit code 3', exitCode: 3 },
        exitCode: 3,
        bytesToPod: 12,
        bytesToAgent: 3400,
        durationMs: 1520.5,
        agentProtocol: 'v5.channel.k8s.io',
        upstreamProtocol: 'v4.channel.k8s.io',
      },
      NOW,
    );
    assert.deepEqual(unsorted(end), []);
    assert.notEqual(end.auditID, opened.auditID);
    assert.equal(end.stage, 'ResponseComplete');
    assert.equal(end.chaperone.sessionId, opened.auditID);
    assert.deepEqual(end.chaperone.exec, {
      argv: ['sh'],
      bytesToAgent: 3400,
      bytesToPod: 12,
      container: 'app',
      durationMs: 1520.5,
      exitCode: 3,
      stdin: true,
      tty: true,
    });
    assert.deepEqual(end.responseStatus, {
      code: 500,
      message: 'exit code 3',
      metadata: {},
      reason: 'NonZeroExitCode',
      status: 'Failure',
    });
    // The collector's validation (shared) accepts the new members.
    assert.doesNotThrow(() =>
      validateAuditEvent(JSON.parse(JSON.stringify(chainEvent(end, 2, GENESIS_HASH)))),
    );
    const cut = recorder.execEndEvent(
      opened,
      {
        bytesToPod: 0,
        bytesToAgent: 0,
        durationMs: 3,
        agentProtocol: 'v5.channel.k8s.io',
        problem: { code: 502, reason: 'BadGateway', message: 'chaperone: the API server closed the session' },
      },
      NOW,
    );
    assert.equal(cut.responseStatus?.reason, 'BadGateway');
    assert.equal(cut.chaperone.exec?.exitCode, undefined);
    // A recorded session: its recording's size, and whether it was cut at its limit.
    const recorded = recorder.execEndEvent(
      opened,
      {
        bytesToPod: 0,
        bytesToAgent: 90_000,
        durationMs: 3,
        agentProtocol: 'v5.channel.k8s.io',
        recording: { bytes: 65_000, truncated: true },
      },
      NOW,
    );
    assert.deepEqual(unsorted(recorded), []);
    assert.deepEqual(
      [recorded.chaperone.exec?.recordingBytes, recorded.chaperone.exec?.recordingTruncated],
      [65_000, true],
    );
    assert.doesNotThrow(() =>
      validateAuditEvent(JSON.parse(JSON.stringify(chainEvent(recorded, 3, GENESIS_HASH)))),
    );
  });
});
