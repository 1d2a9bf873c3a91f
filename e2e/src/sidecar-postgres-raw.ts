/**
 * A minimal PostgreSQL protocol client for the guard's end-to-end tests: what
 * a pipelining driver puts on the wire, byte for byte, which client libraries
 * would hide.
 */
import { connect, type Socket } from 'node:net';

/** A minimal protocol client: what a pipelining driver puts on the wire, and every message it gets back. */
export class RawClient {
  readonly #socket: Socket;
  #buf = Buffer.alloc(0);
  #waiters: (() => void)[] = [];

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  static async open(port: number, database: string): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const c = new RawClient(socket);
    const params = Buffer.from(`user\0agent\0database\0${database}\0\0`);
    const head = Buffer.alloc(8);
    head.writeInt32BE(8 + params.length, 0);
    head.writeInt32BE(196608, 4);
    socket.write(Buffer.concat([head, params]));
    await c.until('Z');
    return c;
  }

  static msg(type: string, ...parts: (string | number | Buffer)[]): Buffer {
    const body = Buffer.concat(
      parts.map((p) => {
        if (typeof p === 'string') return Buffer.from(`${p}\0`);
        if (Buffer.isBuffer(p)) return p;
        const b = Buffer.alloc(2);
        b.writeInt16BE(p);
        return b;
      }),
    );
    const head = Buffer.alloc(5);
    head.write(type, 0);
    head.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([head, body]);
  }

  send(...msgs: Buffer[]): void {
    this.#socket.write(Buffer.concat(msgs));
  }

  /** Messages up to and including the `count`-th ReadyForQuery: [type, body]. */
  async until(last: 'Z', count = 1): Promise<[string, Buffer][]> {
    const out: [string, Buffer][] = [];
    let seen = 0;
    for (;;) {
      while (this.#buf.length >= 5 && this.#buf.length >= this.#buf.readInt32BE(1) + 1) {
        const len = this.#buf.readInt32BE(1);
        const m: [string, Buffer] = [
          String.fromCharCode(this.#buf[0] as number),
          this.#buf.subarray(5, len + 1),
        ];
        this.#buf = this.#buf.subarray(len + 1);
        out.push(m);
        if (m[0] === last && ++seen === count) return out;
      }
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`no ${last} within 10 s; got ${out.map((x) => x[0]).join(' ')}`)),
          10_000,
        );
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.#socket.end(RawClient.msg('X'));
  }
}

/** The SQLSTATE of an ErrorResponse's body. */
export const errorCode = (body: Buffer) => /C([0-9A-Z]{5})\0/.exec(body.toString('latin1'))?.[1];
