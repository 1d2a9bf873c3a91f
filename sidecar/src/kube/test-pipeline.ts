/**
 * For tests: the Kubernetes request pipeline as the sidecar assembles it,
 * served on a loopback port in front of a given upstream, with its own spool.
 * The pipeline, guard and audit tests drive it with a stand-in API server.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, createRegistry, type Registry } from '@chaperone/shared';
import { AuditRecorder } from '../audit/recorder.ts';
import { Spool, type SpoolOptions } from '../audit/spool.ts';
import { buildIdentity } from '../identity.ts';
import { sidecarMetrics } from '../metrics.ts';
import { PolicyStore } from '../policy-store.ts';
import { kubePipeline, type PipelineDeps } from './pipeline.ts';
import { startKubeServers } from './server.ts';
import { Upstream } from './upstream.ts';

export interface TestPipelineOptions {
  /** Holds `token` and `policy.yaml`; spools are made below it. */
  readonly dir: string;
  readonly upstreamUrl: string;
  /** PEM of the CA the upstream's certificate is issued by. */
  readonly ca: string;
  readonly spool?: Partial<SpoolOptions>;
  readonly maxRequestBytes?: number;
  readonly failOpen?: boolean;
  readonly collector?: PipelineDeps['collector'];
  readonly exec?: PipelineDeps['exec'];
  readonly portForward?: PipelineDeps['portForward'];
  /** The exec sessions' hooks, made from the pipeline's own parts (its recorder, spool, policy…). */
  readonly execHooks?: (deps: PipelineDeps) => NonNullable<PipelineDeps['exec']>['hooks'];
}

export interface TestPipeline {
  /** `http://127.0.0.1:<port>` of the agent-facing listener. */
  readonly base: string;
  readonly spool: Spool;
  readonly spoolDir: string;
  readonly registry: Registry;
  close(): Promise<void>;
}

export async function startTestPipeline(o: TestPipelineOptions): Promise<TestPipeline> {
  const log = createLogger({ name: 't', level: 'silent' });
  const registry = createRegistry({ component: 'sidecar', defaultMetrics: false });
  const metrics = sidecarMetrics(registry, { namespace: 'a' });
  const spoolDir = join(o.dir, `spool-${Math.random().toString(16).slice(2)}`);
  mkdirSync(spoolDir);
  const spool = Spool.open(spoolDir, { maxBytes: 1 << 20, ...o.spool });
  const upstream = new Upstream({ url: o.upstreamUrl, ca: o.ca, tokenFile: join(o.dir, 'token'), log });
  const identity = buildIdentity({ name: 'p', namespace: 'a', uid: 'u', serviceAccount: 'agent' }, undefined);
  const deps: PipelineDeps = {
    upstream,
    maxRequestBytes: o.maxRequestBytes ?? 1024,
    maxResponseBytes: 64 * 1024,
    maxWatchEventBytes: 8 * 1024,
    timeoutMs: 2000,
    metrics,
    log,
    recorder: new AuditRecorder(spool, identity, metrics, log),
    spool,
    failOpen: o.failOpen ?? false,
    ...(o.collector ? { collector: o.collector } : {}),
    ...(o.exec ? { exec: o.exec } : {}),
    ...(o.portForward ? { portForward: o.portForward } : {}),
    policy: new PolicyStore(join(o.dir, 'policy.yaml'), log),
    protection: {
      namespace: 'a',
      policyConfigMaps: ['chaperone-policy'],
      sidecarContainer: 'chaperone-sidecar',
    },
    username: identity.user.username,
  };
  const hooks = o.execHooks?.(deps);
  const handler = kubePipeline(hooks ? { ...deps, exec: { ...deps.exec, hooks } } : deps);
  const servers = await startKubeServers({ hosts: ['127.0.0.1'], port: 0, handler });
  return {
    base: `http://127.0.0.1:${servers.port}`,
    spool,
    spoolDir,
    registry,
    close: async () => {
      await servers.close();
      await upstream.close();
      spool.close();
    },
  };
}
