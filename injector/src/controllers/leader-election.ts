/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's
 * semantics: a holder is considered alive while its record keeps changing
 * within leaseDuration, measured on *our* clock from when we last saw the
 * record change (so clock skew between replicas does not matter); the leader
 * renews every renewInterval and steps down when it has not managed to renew
 * for renewDeadline; updates are optimistic (resourceVersion), so two
 * replicas can never both win the same round; on shutdown the Lease is
 * released so a successor takes over at once.
 */
import type { Logger } from '@chaperone/shared';
import { KubeApiError, type KubeClient } from '@chaperone/shared/kube';
import { sleep } from './informer.ts';

export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

export interface LeaderElectorOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewIntervalMs: number;
  readonly renewDeadlineMs: number;
  readonly logger?: Logger;
  /** Called when this replica becomes leader; `signal` aborts when it stops being leader. */
  readonly onStartedLeading: (signal: AbortSignal) => void;
  readonly onStoppedLeading?: () => void;
  /** Clock, for tests. */
  readonly now?: () => number;
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  readonly #o: LeaderElectorOptions;
  readonly #now: () => number;
  #leader = false;
  #observed: string | undefined;
  #observedAt = 0;
  #leadership: AbortController | undefined;

  constructor(opts: LeaderElectorOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  get #path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.#o.namespace}/leases/${this.#o.name}`;
  }

  /** One round: acquire or renew. True when we hold the Lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const o = this.#o;
    const now = this.#now();
    const leaseSeconds = Math.max(1, Math.ceil(o.leaseDurationMs / 1000));
    const existing = await o.client.get<Lease>(this.#path);
    if (!existing) {
      try {
        await o.client.create(`/apis/coordination.k8s.io/v1/namespaces/${o.namespace}/leases`, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: o.name, namespace: o.namespace },
          spec: {
            holderIdentity: o.identity,
            leaseDurationSeconds: leaseSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        });
        return true;
      } catch (err) {
        if (err instanceof KubeApiError && err.status === 409) return false;
        throw err;
      }
    }
    const spec = existing.spec ?? {};
    const record = JSON.stringify([
      spec.holderIdentity,
      spec.renewTime,
      spec.acquireTime,
      spec.leaseTransitions,
    ]);
    if (record !== this.#observed) {
      this.#observed = record;
      this.#observedAt = now;
    }
    const holder = spec.holderIdentity ?? '';
    const duration = (spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
    if (holder !== '' && holder !== o.identity && this.#observedAt + duration > now) return false;
    const mine = holder === o.identity;
    const next: Lease = {
      ...existing,
      spec: {
        ...spec,
        holderIdentity: o.identity,
        leaseDurationSeconds: leaseSeconds,
        renewTime: microTime(now),
        acquireTime: mine ? (spec.acquireTime ?? microTime(now)) : microTime(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    };
    try {
      const stored = await o.client.replace<Lease>(this.#path, next);
      this.#observed = JSON.stringify([
        stored.spec.holderIdentity,
        stored.spec.renewTime,
        stored.spec.acquireTime,
        stored.spec.leaseTransitions,
      ]);
      this.#observedAt = now;
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 409) return false;
      throw err;
    }
  }

  /** Runs until `signal` aborts; then releases the Lease if held. */
  async run(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    let lastRenew = 0;
    while (!signal.aborted) {
      let held = false;
      try {
        held = await this.tryAcquireOrRenew();
      } catch (err) {
        o.logger?.warn(
          { err: (err as Error).message, lease: o.name },
          'leader election: could not read or update the Lease',
        );
      }
      const now = this.#now();
      if (held) {
        lastRenew = now;
        if (!this.#leader) {
          this.#leader = true;
          this.#leadership = new AbortController();
          o.logger?.info({ lease: `${o.namespace}/${o.name}`, identity: o.identity }, 'became leader');
          o.onStartedLeading(this.#leadership.signal);
        }
      } else if (this.#leader && now - lastRenew >= o.renewDeadlineMs) {
        this.#stepDown('could not renew the Lease before the renew deadline');
      } else if (this.#leader && !held) {
        // Someone else holds it (we were replaced) — stop at once.
        const current = await o.client.get<Lease>(this.#path).catch(() => undefined);
        if (current?.spec?.holderIdentity && current.spec.holderIdentity !== o.identity) {
          this.#stepDown(`the Lease is held by ${current.spec.holderIdentity}`);
        }
      }
      // Jitter keeps replicas from retrying in lock step.
      const wait = this.#leader ? o.renewIntervalMs : o.renewIntervalMs * (1 + Math.random() * 0.2);
      await sleep(wait, signal);
    }
    await this.release();
  }

  #stepDown(why: string): void {
    if (!this.#leader) return;
    this.#leader = false;
    this.#o.logger?.warn({ lease: this.#o.name, why }, 'stopped leading');
    this.#leadership?.abort();
    this.#leadership = undefined;
    this.#o.onStoppedLeading?.();
  }

  /** Gives the Lease up (if held) so another replica can take over immediately. */
  async release(): Promise<void> {
    if (!this.#leader) return;
    const o = this.#o;
    this.#leader = false;
    this.#leadership?.abort();
    this.#leadership = undefined;
    o.onStoppedLeading?.();
    try {
      const current = await o.client.get<Lease>(this.#path);
      if (current && current.spec?.holderIdentity === o.identity) {
        const now = this.#now();
        await o.client.replace(this.#path, {
          ...current,
          spec: {
            ...current.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            renewTime: microTime(now),
            acquireTime: microTime(now),
          },
        });
        o.logger?.info({ lease: o.name }, 'released the Lease');
      }
    } catch (err) {
      o.logger?.warn(
        { err: (err as Error).message },
        'could not release the Lease; a successor takes over when it expires',
      );
    }
  }
}
