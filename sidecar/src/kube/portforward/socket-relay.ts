/**
 * Drives a port-forward session over its two sockets — the agent's
 * (switched from HTTP) and the sidecar's own to the API server — through a
 * pure relay that turns each side's bytes into bytes for either side
 * (spdy-relay.ts, websocket-relay.ts). The only file here with sockets.
 *
 * - Back-pressure: when a socket cannot take more, the side that feeds it is
 *   paused until it drains; nothing is buffered beyond one read.
 * - The end: a relay that says the session is over (a WebSocket close), a
 *   side that breaks its protocol, or a side whose connection ends or fails
 *   ends both: what the relay has for each side is written, both sockets are
 *   ended (and destroyed after `closeTimeoutMs` if they linger), and once both
 *   are closed `onEnd` gets why the session ended, if not normally.
 */
import type { Socket } from 'node:net';
import type { RelayOutput } from './spdy-relay.ts';

export type RelaySide = 'agent' | 'upstream';

/** Why a session ended other than normally, for its close event. */
export interface RelayProblem {
  readonly code: number;
  readonly reason: string;
  readonly message: string;
}

export interface RelayStep extends RelayOutput {
  /** The session is over once this output is written (a WebSocket close went both ways). */
  readonly end?: boolean;
}

export interface SessionRelay {
  fromAgent(chunk: Buffer): RelayStep;
  fromUpstream(chunk: Buffer): RelayStep;
  /** A side broke its protocol (`fromAgent`/`fromUpstream` threw): what each side is told before the end. */
  broken?(side: RelaySide, err: unknown): RelayOutput;
  /** A side's connection ended or failed without the protocol ending: what the other side is told. */
  gone?(side: RelaySide): RelayOutput;
}

export interface RelaySocket {
  readonly socket: Socket;
  /** Bytes that arrived with the handshake, before the session: the first frames. */
  readonly rest: Buffer;
}

export interface SocketRelayOptions {
  /** How long ended sockets may take to close before they are destroyed (default 5 s). */
  readonly closeTimeoutMs?: number;
  readonly onEnd: (problem: RelayProblem | undefined) => void;
}

interface Peer {
  readonly side: RelaySide;
  readonly socket: Socket;
  /** Why this socket is paused: it is read while the set is empty. */
  readonly pausedBy: Set<string>;
  closed: boolean;
}

export class SocketRelay {
  readonly #relay: SessionRelay;
  readonly #o: SocketRelayOptions;
  readonly #agent: Peer;
  readonly #upstream: Peer;
  #ending = false;
  #ended = false;
  #problem: RelayProblem | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(agent: RelaySocket, upstream: RelaySocket, relay: SessionRelay, o: SocketRelayOptions) {
    this.#relay = relay;
    this.#o = o;
    this.#agent = { side: 'agent', socket: agent.socket, pausedBy: new Set(), closed: false };
    this.#upstream = { side: 'upstream', socket: upstream.socket, pausedBy: new Set(), closed: false };
    this.#listen(this.#agent, agent.rest);
    this.#listen(this.#upstream, upstream.rest);
  }

  #listen(p: Peer, rest: Buffer): void {
    const s = p.socket;
    s.setNoDelay(true);
    s.setKeepAlive(true, 30_000);
    s.on('data', (chunk: Buffer) => this.#read(p, chunk));
    s.on('error', () => {});
    s.on('end', () => this.#gone(p));
    s.on('close', () => {
      p.closed = true;
      this.#gone(p);
      this.#maybeEnded();
    });
    if (rest.length > 0) this.#read(p, rest);
    if (s.destroyed) {
      p.closed = true;
      this.#gone(p);
      this.#maybeEnded();
      return;
    }
    s.resume();
  }

  #read(p: Peer, chunk: Buffer): void {
    if (this.#ending) return;
    let out: RelayStep;
    try {
      out = p.side === 'agent' ? this.#relay.fromAgent(chunk) : this.#relay.fromUpstream(chunk);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#problem ??=
        p.side === 'agent'
          ? {
              code: 400,
              reason: 'BadRequest',
              message: `chaperone: the client broke the protocol: ${message}`,
            }
          : {
              code: 502,
              reason: 'BadGateway',
              message: `chaperone: the API server broke the protocol: ${message}`,
            };
      this.#endBoth(this.#relay.broken?.(p.side, err));
      return;
    }
    this.#write(out);
    if (out.end) this.#endBoth(undefined);
  }

  #write(out: RelayOutput | undefined): void {
    if (!out) return;
    this.#send(this.#upstream, out.toUpstream);
    this.#send(this.#agent, out.toAgent);
  }

  #send(to: Peer, buffers: readonly Buffer[]): void {
    if (buffers.length === 0 || to.closed || to.socket.destroyed || to.socket.writableEnded) return;
    const s = to.socket;
    let ok = true;
    if (buffers.length === 1) ok = s.write(buffers[0] as Buffer);
    else {
      s.cork();
      for (const b of buffers) ok = s.write(b);
      s.uncork();
    }
    if (ok || this.#ending) return;
    // This side is full: the other is not read until it drains.
    const from = to === this.#agent ? this.#upstream : this.#agent;
    if (from.pausedBy.has('full')) return;
    from.pausedBy.add('full');
    from.socket.pause();
    s.once('drain', () => {
      from.pausedBy.delete('full');
      if (from.pausedBy.size === 0 && !from.closed) from.socket.resume();
    });
  }

  #gone(p: Peer): void {
    if (this.#ending) return;
    this.#endBoth(this.#relay.gone?.(p.side));
  }

  #endBoth(last: RelayOutput | undefined): void {
    if (this.#ending) return;
    this.#write(last);
    this.#ending = true;
    for (const p of [this.#agent, this.#upstream]) {
      p.pausedBy.clear();
      if (p.closed) continue;
      // Read on (discarding) so the peer's FIN is seen.
      p.socket.resume();
      p.socket.end();
    }
    this.#timer = setTimeout(() => {
      for (const p of [this.#agent, this.#upstream]) p.socket.destroy();
    }, this.#o.closeTimeoutMs ?? 5000);
    this.#timer.unref();
    this.#maybeEnded();
  }

  #maybeEnded(): void {
    if (this.#ended || !this.#agent.closed || !this.#upstream.closed) return;
    this.#ended = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#o.onEnd(this.#problem);
  }
}
