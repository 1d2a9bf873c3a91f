/**
 * Diagnostic reference for the sidecar benchmark: the thinnest possible Node
 * HTTP/1.1 proxy — a tls.Server, requests framed by hand (head + content
 * length only), an upstream keep-alive pool of raw TLS sockets, responses
 * framed by content-length/chunked and copied through byte for byte. No
 * policy, audit or masking. Its CPU per request is the floor of Node's TLS
 * sockets on this machine.
 *
 *   node bench/src/sidecar-rawproxy.ts <port> <cert> <key> <upstream> <ca-file> <token>
 */
import { readFileSync } from 'node:fs';
import { connect, createServer, type TLSSocket } from 'node:tls';

const [portArg, certFile, keyFile, upstreamUrl, caFile, token] = process.argv.slice(2);
if (!portArg || !certFile || !keyFile || !upstreamUrl || !caFile || !token) {
  process.stderr.write('usage: sidecar-rawproxy.ts <port> <cert> <key> <upstream> <ca-file> <token>\n');
  process.exit(2);
}
const up = new URL(upstreamUrl);
const ca = readFileSync(caFile, 'utf8');
const auth = `authorization: Bearer ${token}\r\n`;
type Upstream = TLSSocket & { current?: Pending | undefined };
const idle: Upstream[] = [];

interface Pending {
  onResponse(chunk: Buffer, end: boolean): void;
}

/**
 * Response framing: content-length, or chunked (chunk sizes tracked so the
 * end of the message is known; bytes are passed through unchanged).
 */
class Framer {
  head: Buffer = Buffer.alloc(0);
  state: 'head' | 'body' | 'size' | 'data' | 'crlf' | 'trailer' = 'head';
  remaining = 0;
  line = '';
  /** Consumes bytes; returns how many belong to the current message and whether it ended. */
  push(data: Buffer): { used: number; done: boolean } {
    let i = 0;
    while (i < data.length) {
      switch (this.state) {
        case 'head': {
          const joined = this.head.length ? Buffer.concat([this.head, data.subarray(i)]) : data.subarray(i);
          const end = joined.indexOf('\r\n\r\n');
          if (end === -1) {
            this.head = Buffer.from(joined);
            return { used: data.length, done: false };
          }
          const consumed = end + 4 - this.head.length;
          const text = joined.toString('latin1', 0, end);
          this.head = Buffer.alloc(0);
          i += consumed;
          if (/\r\ntransfer-encoding: *chunked/i.test(text)) {
            this.state = 'size';
            this.line = '';
          } else {
            const m = /\r\ncontent-length: *(\d+)/i.exec(text);
            this.remaining = m ? Number(m[1]) : 0;
            this.state = 'body';
            if (this.remaining === 0) {
              this.state = 'head';
              return { used: i, done: true };
            }
          }
          break;
        }
        case 'body': {
          const n = Math.min(this.remaining, data.length - i);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            this.state = 'head';
            return { used: i, done: true };
          }
          break;
        }
        case 'size':
        case 'trailer': {
          const nl = data.indexOf(10, i);
          if (nl === -1) {
            this.line += data.toString('latin1', i);
            return { used: data.length, done: false };
          }
          this.line += data.toString('latin1', i, nl + 1);
          i = nl + 1;
          const line = this.line.trim();
          this.line = '';
          if (this.state === 'trailer') {
            if (line === '') {
              this.state = 'head';
              return { used: i, done: true };
            }
            break;
          }
          const size = Number.parseInt(line, 16);
          if (size === 0) this.state = 'trailer';
          else {
            this.remaining = size + 2; // data + CRLF
            this.state = 'data';
          }
          break;
        }
        case 'data': {
          const n = Math.min(this.remaining, data.length - i);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = 'size';
          break;
        }
        default:
          break;
      }
    }
    return { used: i, done: false };
  }
}

/** One upstream connection: tracks response framing and hands bytes to the current request. */
function openUpstream(): Upstream {
  const s = connect({
    host: up.hostname,
    port: Number(up.port),
    ca,
    servername: 'kubernetes',
  }) as Upstream;
  s.setNoDelay(true);
  const framer = new Framer();
  s.on('data', (chunk: Buffer) => {
    let data = chunk;
    while (data.length > 0) {
      const { used, done } = framer.push(data);
      const p = s.current;
      if (done) {
        s.current = undefined;
        idle.push(s);
      }
      p?.onResponse(used === data.length ? data : data.subarray(0, used), done);
      data = data.subarray(used);
    }
  });
  s.on('error', () => {});
  s.on('close', () => {
    const i = idle.indexOf(s);
    if (i !== -1) idle.splice(i, 1);
  });
  return s;
}

const server = createServer(
  { cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.2' },
  (client) => {
    client.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    client.on('error', () => {});
    client.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const text = buf.toString('latin1', 0, end);
        buf = buf.subarray(end + 4);
        const lines = text.split('\r\n');
        let out = `${lines[0]}\r\n`;
        for (let i = 1; i < lines.length; i++) {
          const l = lines[i] as string;
          const c = l.indexOf(':');
          const name = l.slice(0, c).toLowerCase();
          if (name === 'authorization' || name === 'connection') continue;
          out += `${l}\r\n`;
        }
        out += `${auth}\r\n`;
        const s = idle.pop() ?? openUpstream();
        s.current = {
          onResponse(data: Buffer) {
            client.write(data);
          },
        };
        s.write(out);
      }
    });
  },
);
server.listen(Number(portArg), '127.0.0.1');
