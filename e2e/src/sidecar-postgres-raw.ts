/**
 * A minimal PostgreSQL protocol client for the guard's end-to-end tests: what
 * a pipelining driver puts on the wire, byte for byte, which client libraries
 * would hide.
 */
import { connect, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import pg from 'pg';

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

  static async open(port: number, database: string, socket?: Socket): Promise<RawClient> {
    if (!socket) {
      socket = connect({ host: '127.0.0.1', port });
      await new Promise((resolve, reject) => socket?.once('connect', resolve).once('error', reject));
    }
    const c = new RawClient(socket);
    const params = Buffer.from(`user\0agent\0database\0${database}\0\0`);
    const head = Buffer.alloc(8);
    head.writeInt32BE(8 + params.length, 0);
    head.writeInt32BE(196608, 4);
    socket.write(Buffer.concat([head, params]));
    await c.until('Z');
    return c;
  }

  /**
   * TLS from the first byte, as libpq 17 does with sslnegotiation=direct (no
   * SSLRequest; ALPN "postgresql"), verified against `ca`, then the startup.
   */
  static async openDirectTls(
    port: number,
    database: string,
    ca: string,
  ): Promise<{ client: RawClient; tls: TLSSocket }> {
    const tls = await RawClient.directTls(port, ca, ['postgresql']);
    return { client: await RawClient.open(port, database, tls), tls };
  }

  /** A TLS connection from the first byte, offering the ALPN protocols `alpn` (none: no extension). */
  static async directTls(port: number, ca: string, alpn: readonly string[]): Promise<TLSSocket> {
    const tls = connectTls({
      host: '127.0.0.1',
      port,
      ca,
      ...(alpn.length ? { ALPNProtocols: [...alpn] } : {}),
    });
    await new Promise((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject));
    return tls;
  }

  /**
   * A connection straight to the server, for differential tests: node `pg`
   * does the password authentication (SCRAM), then hands its socket over.
   */
  static async direct(url: string): Promise<RawClient> {
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => {});
    await client.connect();
    const socket = (client as unknown as { connection: { stream: Socket } }).connection.stream;
    socket.removeAllListeners('data');
    return new RawClient(socket);
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

  /** Bind of `statement` to `portal`: no parameters, no formats. */
  static bind(portal = '', statement = ''): Buffer {
    return RawClient.msg('B', portal, statement, Buffer.from([0, 0, 0, 0, 0, 0]));
  }

  /** Execute of `portal`, all rows. */
  static execute(portal = ''): Buffer {
    return RawClient.msg('E', portal, Buffer.from([0, 0, 0, 0]));
  }

  send(...msgs: Buffer[]): void {
    this.#socket.write(Buffer.concat(msgs));
  }

  /** Messages up to and including the `count`-th of type `last` (ReadyForQuery: `Z`): [type, body]. */
  async until(last: string, count = 1): Promise<[string, Buffer][]> {
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

  /** Every message until the server closes the connection: [type, body]. */
  async untilClosed(): Promise<[string, Buffer][]> {
    if (!this.#socket.closed)
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('the connection was not closed within 10 s')), 10_000);
        this.#socket.once('close', () => {
          clearTimeout(t);
          resolve();
        });
      });
    const out: [string, Buffer][] = [];
    while (this.#buf.length >= 5 && this.#buf.length >= this.#buf.readInt32BE(1) + 1) {
      const len = this.#buf.readInt32BE(1);
      out.push([String.fromCharCode(this.#buf[0] as number), this.#buf.subarray(5, len + 1)]);
      this.#buf = this.#buf.subarray(len + 1);
    }
    return out;
  }

  close(): void {
    this.#socket.end(RawClient.msg('X'));
  }
}

/** The SQLSTATE of an ErrorResponse's body. */
export const errorCode = (body: Buffer) => /C([0-9A-Z]{5})\0/.exec(body.toString('latin1'))?.[1];
