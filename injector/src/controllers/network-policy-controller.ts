/**
 * Keeps one NetworkPolicy per opted-in namespace (leader only): created when
 * a namespace is labelled, put back when edited or deleted, removed when the
 * label goes. Level-triggered: watches on Namespaces and on the policies it
 * manages enqueue namespace names; a worker reconciles each against the
 * desired state; a periodic resync catches anything missed.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from '@chaperone/shared';
import { KubeApiError, type KubeClient } from '@chaperone/shared/kube';
import type { InjectorMetrics } from '../injector-metrics.ts';
import {
  EGRESS_ANNOTATION,
  INJECT_ENABLED,
  INJECT_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  NETWORK_POLICY_NAME,
  REVISION_LABEL,
} from '../names.ts';
import { type EgressEndpoint, parseEndpoint } from './egress-endpoint.ts';
import { runInformer, sleep } from './informer.ts';
import { desiredNetworkPolicy, type NetworkPolicy, type NetworkPolicySettings } from './network-policy.ts';
import { Wakeup } from './wakeup.ts';

interface Namespace {
  metadata: {
    name: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion?: string;
  };
  status?: { phase?: string };
}

interface Endpoints {
  subsets?: { addresses?: { ip: string }[]; ports?: { name?: string; port: number; protocol?: string }[] }[];
}

export interface NetworkPolicyControllerOptions {
  readonly client: KubeClient;
  /** Without API server endpoints, they are read from default/kubernetes at each resync. */
  readonly settings: Omit<NetworkPolicySettings, 'apiServer'> & { apiServer: readonly EgressEndpoint[] };
  readonly excludedNamespaces: readonly string[];
  readonly resyncIntervalMs: number;
  readonly logger?: Logger;
  readonly metrics?: InjectorMetrics;
}

/** Whether the injector (of this revision) manages the namespace's policy. */
export function wantsPolicy(
  ns: Namespace | undefined,
  revision: string | undefined,
  excluded: readonly string[],
): boolean {
  if (!ns || ns.status?.phase === 'Terminating') return false;
  const labels = ns.metadata.labels ?? {};
  if (labels[INJECT_LABEL] !== INJECT_ENABLED) return false;
  if ((labels[REVISION_LABEL] ?? undefined) !== revision) return false;
  return !excluded.includes(ns.metadata.name);
}

/** The parts of a stored policy we own, compared with the desired one. */
export function policyDrift(existing: NetworkPolicy, desired: NetworkPolicy): string | undefined {
  if (!isDeepStrictEqual(existing.spec, desired.spec)) return 'spec';
  for (const [k, v] of Object.entries(desired.metadata.labels ?? {})) {
    if (existing.metadata.labels?.[k] !== v) return `label ${k}`;
  }
  return undefined;
}

export class NetworkPolicyController {
  readonly #o: NetworkPolicyControllerOptions;
  readonly #namespaces = new Map<string, Namespace>();
  readonly #queue = new Set<string>();
  readonly #wakeup = new Wakeup();
  #synced = { namespaces: false };
  #apiServer: readonly EgressEndpoint[];
  #warnedNoApiServer = false;

  constructor(o: NetworkPolicyControllerOptions) {
    this.#o = o;
    this.#apiServer = o.settings.apiServer;
  }

  #enqueue(name: string): void {
    this.#queue.add(name);
    this.#wakeup.wake();
  }

  async #discoverApiServer(): Promise<void> {
    if (this.#o.settings.apiServer.length > 0) return;
    try {
      const ep = await this.#o.client.get<Endpoints>('/api/v1/namespaces/default/endpoints/kubernetes');
      const found: EgressEndpoint[] = [];
      for (const subset of ep?.subsets ?? []) {
        const port = subset.ports?.find((p) => p.name === 'https') ?? subset.ports?.[0];
        if (!port) continue;
        for (const a of subset.addresses ?? [])
          found.push(parseEndpoint(a.ip.includes(':') ? `[${a.ip}]:${port.port}` : `${a.ip}:${port.port}`));
      }
      if (found.length === 0 && !this.#warnedNoApiServer) {
        this.#warnedNoApiServer = true;
        this.#o.logger?.error(
          'the default/kubernetes Endpoints list no API server address: NetworkPolicies will not allow the sidecar to reach the API server; set --api-server-endpoints',
        );
      }
      if (!isDeepStrictEqual(found, this.#apiServer)) {
        this.#apiServer = found;
        for (const name of this.#namespaces.keys()) this.#enqueue(name);
      }
    } catch (err) {
      this.#o.logger?.warn(
        { err: (err as Error).message },
        'could not read the API server endpoints; keeping the last known',
      );
    }
  }

  #extraUpstreams(ns: Namespace): EgressEndpoint[] {
    const raw = ns.metadata.annotations?.[EGRESS_ANNOTATION];
    if (!raw) return [];
    const out: EgressEndpoint[] = [];
    for (const part of raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      try {
        out.push(parseEndpoint(part));
      } catch (err) {
        // Fail closed: a bad entry adds nothing (the rest still applies).
        this.#o.logger?.warn(
          { namespace: ns.metadata.name, annotation: EGRESS_ANNOTATION, err: (err as Error).message },
          'ignoring an invalid egress entry',
        );
      }
    }
    return out;
  }

  /** Reconciles one namespace. */
  async reconcile(name: string): Promise<string> {
    const o = this.#o;
    const ns = this.#namespaces.get(name);
    const path = `/apis/networking.k8s.io/v1/namespaces/${name}/networkpolicies/${NETWORK_POLICY_NAME}`;
    const want = wantsPolicy(ns, o.settings.revision, o.excludedNamespaces);
    const existing = await o.client.get<NetworkPolicy>(path);
    if (!want || !ns) {
      const ours =
        existing?.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE &&
        (existing.metadata.labels?.[REVISION_LABEL] ?? undefined) === o.settings.revision;
      if (existing && ours) {
        await o.client.delete(path);
        o.logger?.info({ namespace: name }, 'removed the NetworkPolicy: the namespace is no longer opted in');
        return 'deleted';
      }
      return 'unchanged';
    }
    if (this.#apiServer.length === 0 && !this.#warnedNoApiServer) {
      this.#warnedNoApiServer = true;
      o.logger?.error(
        'no API server endpoints known: the NetworkPolicy will not let sidecars reach the API server',
      );
    }
    const desired = desiredNetworkPolicy(
      name,
      { ...o.settings, apiServer: this.#apiServer },
      this.#extraUpstreams(ns),
    );
    if (!existing) {
      await o.client.create(`/apis/networking.k8s.io/v1/namespaces/${name}/networkpolicies`, desired);
      o.logger?.info({ namespace: name }, 'created the NetworkPolicy');
      return 'created';
    }
    const drift = policyDrift(existing, desired);
    if (!drift) return 'unchanged';
    await o.client.replace(path, {
      ...desired,
      metadata: {
        ...existing.metadata,
        labels: { ...(existing.metadata.labels ?? {}), ...desired.metadata.labels },
        annotations: { ...(existing.metadata.annotations ?? {}), ...desired.metadata.annotations },
      },
    });
    o.logger?.warn({ namespace: name, drift }, 'repaired the NetworkPolicy');
    return 'repaired';
  }

  async #resync(): Promise<void> {
    await this.#discoverApiServer();
    for (const name of this.#namespaces.keys()) this.#enqueue(name);
    // Policies we manage in namespaces we no longer know about (deleted, relabelled) are looked at too.
    try {
      const list = await this.#o.client.get<{ items: NetworkPolicy[] }>(
        '/apis/networking.k8s.io/v1/networkpolicies',
        {
          labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
        },
      );
      for (const p of list?.items ?? []) this.#enqueue(p.metadata.namespace);
    } catch (err) {
      this.#o.logger?.warn({ err: (err as Error).message }, 'could not list managed NetworkPolicies');
    }
  }

  #updateGauge(): void {
    const o = this.#o;
    let n = 0;
    for (const ns of this.#namespaces.values())
      if (wantsPolicy(ns, o.settings.revision, o.excludedNamespaces)) n++;
    o.metrics?.managedNamespaces.set(n);
  }

  /** Runs until `signal` aborts (leadership lost or shutdown). */
  async run(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const informers = [
      runInformer<Namespace>({
        client: o.client,
        path: '/api/v1/namespaces',
        name: 'namespaces',
        signal,
        ...(o.logger ? { logger: o.logger } : {}),
        onSync: (items) => {
          const seen = new Set(items.map((n) => n.metadata.name));
          for (const name of [...this.#namespaces.keys()]) if (!seen.has(name)) this.#enqueue(name);
          this.#namespaces.clear();
          for (const n of items) {
            this.#namespaces.set(n.metadata.name, n);
            if (wantsPolicy(n, o.settings.revision, o.excludedNamespaces)) this.#enqueue(n.metadata.name);
          }
          this.#synced.namespaces = true;
          this.#updateGauge();
        },
        onEvent: (type, n) => {
          const before = this.#namespaces.get(n.metadata.name);
          if (type === 'DELETED') this.#namespaces.delete(n.metadata.name);
          else this.#namespaces.set(n.metadata.name, n);
          const r = o.settings.revision;
          if (wantsPolicy(before, r, o.excludedNamespaces) || wantsPolicy(n, r, o.excludedNamespaces))
            this.#enqueue(n.metadata.name);
          this.#updateGauge();
        },
      }),
      runInformer<NetworkPolicy>({
        client: o.client,
        path: '/apis/networking.k8s.io/v1/networkpolicies',
        query: { fieldSelector: `metadata.name=${NETWORK_POLICY_NAME}` },
        name: 'networkpolicies',
        signal,
        ...(o.logger ? { logger: o.logger } : {}),
        onSync: (items) => {
          for (const p of items) this.#enqueue(p.metadata.namespace);
        },
        onEvent: (_type, p) => this.#enqueue(p.metadata.namespace),
      }),
    ];
    const resync = (async () => {
      await this.#discoverApiServer();
      while (!signal.aborted) {
        await sleep(o.resyncIntervalMs, signal);
        if (!signal.aborted) await this.#resync();
      }
    })();
    const failures = new Map<string, number>();
    while (!signal.aborted) {
      if (this.#queue.size === 0 || !this.#synced.namespaces) {
        await this.#wakeup.wait(signal, 1000);
        continue;
      }
      const name = this.#queue.values().next().value as string;
      this.#queue.delete(name);
      try {
        const action = await this.reconcile(name);
        o.metrics?.networkPolicyActions.inc({ action });
        failures.delete(name);
      } catch (err) {
        if (signal.aborted) break;
        o.metrics?.networkPolicyActions.inc({ action: 'error' });
        const n = (failures.get(name) ?? 0) + 1;
        failures.set(name, n);
        const conflict = err instanceof KubeApiError && err.status === 409;
        const delay = conflict ? 100 : Math.min(30_000, 500 * 2 ** Math.min(n, 6));
        if (!conflict)
          o.logger?.warn(
            { namespace: name, err: (err as Error).message, retryInMs: delay },
            'NetworkPolicy reconcile failed',
          );
        setTimeout(() => this.#enqueue(name), delay).unref();
      }
    }
    await Promise.allSettled([...informers, resync]);
  }
}
