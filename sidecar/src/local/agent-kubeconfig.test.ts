import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { kubeconfigConnection } from '@chaperone/shared/kube';
import { agentKubeconfig } from './agent-kubeconfig.ts';

describe('the agent kubeconfig', () => {
  it('reads back, with the project’s own kubeconfig reader, as the guard with its CA, a placeholder and the namespace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-kubeconfig-'));
    try {
      const path = join(dir, 'kubeconfig');
      const caCert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
      writeFileSync(
        path,
        agentKubeconfig({
          server: 'https://127.0.0.1:40123',
          caCert,
          namespace: 'team-a',
          contextName: 'prod',
        }),
      );
      const c = kubeconfigConnection(path);
      assert.equal(c.server, 'https://127.0.0.1:40123');
      assert.equal(c.ca, caCert);
      assert.equal(c.namespace, 'team-a');
      assert.equal(c.context, 'chaperone-prod');
      const creds = await c.credentials.current();
      assert.match(creds.token ?? '', /^chaperone-placeholder-token/);
      assert.equal(creds.clientKey, undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
