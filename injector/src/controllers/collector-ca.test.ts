import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KubeApiError, type KubeClient } from '@chaperone/shared/kube';
import { testPki } from '../test-https.ts';
import {
  type ConfigMap,
  configMapDrift,
  desiredCollectorCaConfigMap,
  parseCaBundle,
} from './collector-ca.ts';
import { CollectorCaObject } from './collector-ca-controller.ts';
import type { Namespace } from './namespace-controller.ts';

// As published: LF line endings, one certificate after the other.
const caA = parseCaBundle(testPki().ca.cert, 'a');
const caB = parseCaBundle(testPki().ca.cert, 'b');
const PATH = '/api/v1/namespaces/agents/configmaps/chaperone-collector-ca';
const agents: Namespace = { metadata: { name: 'agents', labels: { 'chaperone.dev/inject': 'enabled' } } };

/**
 * A stand-in for the API server's ConfigMap storage, at the level of the
 * client's calls (the real API server and RBAC are in e2e/src/injector-collector-ca.test.ts).
 */
function fakeClient(initial?: ConfigMap) {
  const state = {
    stored: initial ? structuredClone(initial) : undefined,
    calls: [] as string[],
  };
  const client = {
    async get(path: string) {
      assert.equal(path, PATH);
      return state.stored ? structuredClone(state.stored) : undefined;
    },
    async request(method: string, path: string, opts: Parameters<KubeClient['request']>[2] = {}) {
      state.calls.push(
        `${method} ${opts.contentType} fieldManager=${opts.query?.fieldManager} force=${opts.query?.force}`,
      );
      assert.equal(path, PATH);
      const created = !state.stored;
      state.stored = {
        ...structuredClone(opts.body as ConfigMap),
        metadata: { ...(opts.body as ConfigMap).metadata, uid: 'u2' },
      };
      return { status: created ? 201 : 200, body: state.stored };
    },
    async replace(path: string, body: ConfigMap) {
      state.calls.push(`PUT rv=${body.metadata.resourceVersion}`);
      assert.equal(path, PATH);
      if (body.metadata.resourceVersion !== state.stored?.metadata.resourceVersion)
        throw new KubeApiError('PUT', path, 409, {});
      state.stored = structuredClone(body);
      return body;
    },
    async delete(path: string, body?: unknown) {
      state.calls.push(`DELETE ${JSON.stringify(body ?? {})}`);
      assert.equal(path, PATH);
      const had = state.stored !== undefined;
      state.stored = undefined;
      return had;
    },
  } as unknown as KubeClient;
  return { client, state };
}

function publisher(client: KubeClient, opts: { bundle?: string; revision?: string; caFile?: string } = {}) {
  return new CollectorCaObject({
    client,
    caFile: opts.caFile ?? '/nonexistent',
    bundle: opts.bundle ?? caA,
    ...(opts.revision ? { revision: opts.revision } : {}),
    intervalMs: 10,
  });
}

const stored = (bundle: string, revision?: string): ConfigMap => ({
  ...desiredCollectorCaConfigMap('agents', bundle, revision),
  metadata: {
    ...desiredCollectorCaConfigMap('agents', bundle, revision).metadata,
    uid: 'u1',
    resourceVersion: '7',
  },
});

describe('parseCaBundle', () => {
  it('keeps the certificates, one after the other', () => {
    // A bundle written with CRLF line ends (as some tools and editors write PEM).
    const crlf = testPki().ca.cert.replace(/\r?\n/g, '\r\n');
    assert.match(crlf, /\r\n/);
    assert.equal(parseCaBundle(`# ours\n${crlf}\n\n${caB}`, 'f'), `${crlf.replace(/\r\n/g, '\n')}${caB}`);
    assert.equal(parseCaBundle(`${caA}${caB}`, 'f'), `${caA}${caB}`);
  });

  // Fails when the private-key check goes: the bundle is published in every opted-in namespace.
  it('refuses a private key, nothing, or a broken certificate', () => {
    const pki = testPki();
    assert.throws(
      () => parseCaBundle(`${pki.ca.cert}${pki.ca.key}`, 'ca.pem'),
      /ca\.pem holds a private key/,
    );
    assert.throws(() => parseCaBundle('', 'ca.pem'), /holds no PEM certificate/);
    assert.throws(
      () => parseCaBundle('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', 'ca.pem'),
      /certificate 1 of ca\.pem cannot be read/,
    );
  });
});

describe('configMapDrift', () => {
  const desired = desiredCollectorCaConfigMap('agents', caA);
  it('sees changed or extra data, binary data, our labels, immutability — and nothing else', () => {
    assert.equal(configMapDrift(stored(caA), desired), undefined);
    const withOthers = stored(caA);
    withOthers.metadata.labels = { ...withOthers.metadata.labels, team: 'x' };
    withOthers.metadata.annotations = { note: 'y' };
    assert.equal(configMapDrift(withOthers, desired), undefined);
    assert.equal(configMapDrift(stored(caB), desired), 'data ca.crt');
    assert.equal(
      configMapDrift({ ...stored(caA), data: { 'ca.crt': caA, extra: 'x' } }, desired),
      'data extra',
    );
    assert.equal(
      configMapDrift({ ...stored(caA), binaryData: { 'ca.der': 'AA==' } }, desired),
      'binaryData ca.der',
    );
    const relabelled = stored(caA);
    delete relabelled.metadata.labels?.['app.kubernetes.io/managed-by'];
    assert.equal(configMapDrift(relabelled, desired), 'label app.kubernetes.io/managed-by');
    assert.equal(configMapDrift({ ...stored(caA), immutable: true }, desired), 'immutable');
  });
});

describe('CollectorCaObject.reconcile', () => {
  // Fails when creation goes through POST (which RBAC cannot limit to one name) instead of
  // a server-side apply of that name.
  it('publishes a missing ConfigMap with a server-side apply, then leaves it alone', async () => {
    const { client, state } = fakeClient();
    const ca = publisher(client, { revision: 'r1' });
    assert.equal(await ca.reconcile('agents', agents), 'created');
    assert.deepEqual(state.calls, [
      'PATCH application/apply-patch+yaml fieldManager=chaperone-injector force=true',
    ]);
    assert.equal(state.stored?.data?.['ca.crt'], caA);
    assert.equal(state.stored?.metadata.labels?.['chaperone.dev/revision'], 'r1');
    assert.equal(await ca.reconcile('agents', agents), 'unchanged');
    assert.equal(state.calls.length, 1);
  });

  it('repairs an edited ConfigMap in place, keeping other labels and annotations', async () => {
    const edited = stored(caB);
    edited.metadata.labels = { ...edited.metadata.labels, team: 'x' };
    edited.metadata.annotations = { note: 'y' };
    edited.data = { 'ca.crt': caB, extra: 'z' };
    const { client, state } = fakeClient(edited);
    assert.equal(await publisher(client).reconcile('agents', agents), 'repaired');
    assert.deepEqual(state.calls, ['PUT rv=7']);
    assert.deepEqual(state.stored?.data, { 'ca.crt': caA });
    assert.equal(state.stored?.metadata.labels?.team, 'x');
    assert.equal(state.stored?.metadata.annotations?.note, 'y');
    assert.ok(state.stored?.metadata.annotations?.['chaperone.dev/description']);
  });

  it('takes over a ConfigMap of that name someone else made', async () => {
    const theirs: ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'chaperone-collector-ca', namespace: 'agents', resourceVersion: '3' },
      data: { 'ca.crt': caB },
    };
    const { client, state } = fakeClient(theirs);
    assert.equal(await publisher(client).reconcile('agents', agents), 'repaired');
    assert.equal(state.stored?.data?.['ca.crt'], caA);
    assert.equal(state.stored?.metadata.labels?.['app.kubernetes.io/managed-by'], 'chaperone-injector');
  });

  it('replaces an immutable ConfigMap (deleted by uid, applied again)', async () => {
    const { client, state } = fakeClient({ ...stored(caB), immutable: true });
    assert.equal(await publisher(client).reconcile('agents', agents), 'repaired');
    assert.deepEqual(state.calls, [
      'DELETE {"preconditions":{"uid":"u1"}}',
      'PATCH application/apply-patch+yaml fieldManager=chaperone-injector force=true',
    ]);
    assert.equal(state.stored?.immutable, undefined);
    assert.equal(state.stored?.data?.['ca.crt'], caA);
  });

  // Fails when opt-out deletes ConfigMaps that are not ours (another revision's, someone else's).
  it('removes only its own ConfigMap when the namespace is no longer opted in', async () => {
    const mine = fakeClient(stored(caA, 'r1'));
    assert.equal(await publisher(mine.client, { revision: 'r1' }).reconcile('agents', undefined), 'deleted');
    assert.equal(mine.state.stored, undefined);
    for (const other of [stored(caA, 'r2'), stored(caA)]) {
      const f = fakeClient(other);
      assert.equal(await publisher(f.client, { revision: 'r1' }).reconcile('agents', undefined), 'unchanged');
      assert.ok(f.state.stored);
    }
    assert.equal(await publisher(fakeClient().client).reconcile('agents', undefined), 'unchanged');
  });

  it('conflicts (and is retried by the controller) when the ConfigMap changed meanwhile', async () => {
    const { client, state } = fakeClient(stored(caB));
    const ca = publisher(client);
    const racing = client.get.bind(client);
    (client as unknown as { get: typeof client.get }).get = async <T>(path: string) => {
      const seen = await racing<ConfigMap>(path);
      if (state.stored) state.stored.metadata.resourceVersion = '8';
      return seen as T;
    };
    await assert.rejects(
      ca.reconcile('agents', agents),
      (err: unknown) => (err as KubeApiError).status === 409,
    );
  });
});

describe('CollectorCaObject.checkFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'collector-ca-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  // Fails when a rotated file is not published everywhere, or when a broken one replaces the last good bundle.
  it('publishes a rotated bundle everywhere and keeps the last good one through a broken file', async () => {
    const file = join(dir, 'ca.crt');
    writeFileSync(file, caA);
    const { client, state } = fakeClient(stored(caA));
    const ca = publisher(client, { caFile: file });
    let requeued = 0;
    const requeue = () => requeued++;
    assert.equal(ca.checkFile(requeue), '');
    assert.equal(requeued, 0, 'unchanged: nothing to spread');

    writeFileSync(file, `${caA}${caB}`); // the new CA trusted beside the old during a rotation
    assert.equal(ca.checkFile(requeue), '');
    assert.equal(requeued, 1);
    assert.equal(await ca.reconcile('agents', agents), 'repaired');
    assert.equal(state.stored?.data?.['ca.crt'], `${caA}${caB}`);

    writeFileSync(file, 'half a cert');
    assert.match(ca.checkFile(requeue), /holds no PEM certificate/);
    assert.equal(requeued, 1);
    assert.equal(ca.bundle, `${caA}${caB}`, 'the last good bundle stays');
    assert.equal(await ca.reconcile('agents', agents), 'unchanged');
  });
});
