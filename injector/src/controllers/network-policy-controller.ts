/**
 * The egress NetworkPolicy as one of the namespace controller's objects
 * (namespace-controller.ts): built by network-policy.ts from the settings,
 * the API server's addresses (read from default/kubernetes at each resync
 * unless given) and the namespace's own `chaperone.dev/egress` annotation.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from '@chaperone/shared';
import type { KubeClient } from '@chaperone/shared/kube';
import type { InjectorMetrics } from '../injector-metrics.ts';
import { EGRESS_ANNOTATION, NETWORK_POLICY_NAME } from '../names.ts';
import { type EgressEndpoint, parseEndpoint } from './egress-endpoint.ts';
import { sleep } from './informer.ts';
import {
  isOurs,
  type Namespace,
  type NamespacedAction,
  type NamespacedObject,
  replacementFor,
  watchByName,
} from './namespace-controller.ts';
import { desiredNetworkPolicy, type NetworkPolicy, type NetworkPolicySettings } from './network-policy.ts';

interface Endpoints {
  subsets?: { addresses?: { ip: string }[]; ports?: { name?: string; port: number; protocol?: string }[] }[];
}

export interface NetworkPolicyObjectOptions {
  readonly client: KubeClient;
  /** Without API server endpoints, they are read from default/kubernetes at each resync. */
  readonly settings: NetworkPolicySettings;
  readonly resyncIntervalMs: number;
  readonly logger?: Logger;
  readonly metrics?: InjectorMetrics;
}

/** The parts of a stored policy we own, compared with the desired one. */
export function policyDrift(existing: NetworkPolicy, desired: NetworkPolicy): string | undefined {
  if (!isDeepStrictEqual(existing.spec, desired.spec)) return 'spec';
  for (const [k, v] of Object.entries(desired.metadata.labels ?? {})) {
    if (existing.metadata.labels?.[k] !== v) return `label ${k}`;
  }
  return undefined;
}

export class NetworkPolicyObject implements NamespacedObject {
  readonly what = 'the NetworkPolicy';
  readonly watch = watchByName('/apis/networking.k8s.io/v1/networkpolicies', NETWORK_POLICY_NAME);
  readonly #o: NetworkPolicyObjectOptions;
  #apiServer: readonly EgressEndpoint[];
  #warnedNoApiServer = false;
  /** Settled once the API server's addresses are known (or could not be read): no policy is written before. */
  readonly #discovered: Promise<void>;
  #discoveredNow: () => void = () => {};

  constructor(o: NetworkPolicyObjectOptions) {
    this.#o = o;
    this.#apiServer = o.settings.apiServer;
    this.#discovered =
      o.settings.apiServer.length > 0
        ? Promise.resolve()
        : new Promise((resolve) => {
            this.#discoveredNow = resolve;
          });
  }

  count(action: NamespacedAction | 'error'): void {
    this.#o.metrics?.networkPolicyActions.inc({ action });
  }

  /** Reads the API server's addresses now and at each resync, until `signal` aborts. */
  async run(signal: AbortSignal, requeue: () => void): Promise<void> {
    try {
      while (this.#o.settings.apiServer.length === 0 && !signal.aborted) {
        await this.#discoverApiServer(requeue);
        this.#discoveredNow();
        await sleep(this.#o.resyncIntervalMs, signal);
      }
    } finally {
      this.#discoveredNow(); // never leaves a reconciliation waiting, even when stopped first
    }
  }

  async #discoverApiServer(requeue: () => void): Promise<void> {
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
        requeue();
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

  async reconcile(name: string, ns: Namespace | undefined): Promise<NamespacedAction> {
    const o = this.#o;
    const path = `/apis/networking.k8s.io/v1/namespaces/${name}/networkpolicies/${NETWORK_POLICY_NAME}`;
    const existing = await o.client.get<NetworkPolicy>(path);
    if (!ns) {
      if (existing && isOurs(existing.metadata, o.settings.revision)) {
        await o.client.delete(path);
        o.logger?.info({ namespace: name }, 'removed the NetworkPolicy: the namespace is no longer opted in');
        return 'deleted';
      }
      return 'unchanged';
    }
    await this.#discovered;
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
    await o.client.replace(path, replacementFor(existing, desired));
    o.logger?.warn({ namespace: name, drift }, 'repaired the NetworkPolicy');
    return 'repaired';
  }
}
