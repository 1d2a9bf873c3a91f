/**
 * How many upgraded connections of one kind (ingest, approvals) the
 * collector holds at once, in all and from one address. Checked before the
 * token is verified, so a client cannot make the collector hold (or verify)
 * more than its share. Pure bookkeeping: the caller answers the refusal.
 */
import type { Duplex } from 'node:stream';

export interface ConnectionLimits {
  /** Connections (open or being verified) at once, in all: more are refused 503. */
  readonly max: number;
  /** …and from one address (one pod: sidecars connect from their pod's IP): more are refused 429. */
  readonly maxPerAddress: number;
}

export class ConnectionBudget {
  readonly limits: ConnectionLimits;
  #total = 0;
  readonly #perAddress = new Map<string, number>();

  constructor(limits: ConnectionLimits) {
    this.limits = limits;
  }

  /** Counts `socket` until it closes; the refusal status (nothing counted) when a limit is reached. */
  admit(socket: Duplex, address: string): 429 | 503 | undefined {
    if (this.#total >= this.limits.max) return 503;
    const n = this.#perAddress.get(address) ?? 0;
    if (n >= this.limits.maxPerAddress) return 429;
    this.#total++;
    this.#perAddress.set(address, n + 1);
    socket.once('close', () => {
      this.#total--;
      const left = (this.#perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.#perAddress.set(address, left);
      else this.#perAddress.delete(address);
    });
    return undefined;
  }
}
