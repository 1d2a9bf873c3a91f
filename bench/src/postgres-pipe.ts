/**
 * Diagnostic floor for the PostgreSQL benchmark: the thinnest Node relay
 * between a client and the server — bytes piped both ways, nothing decoded,
 * no start-up of its own (the client authenticates with the server through
 * it). Its CPU per statement is what a Node process in the path costs before
 * the sidecar reads a single message.
 *
 *   node bench/src/postgres-pipe.ts <port> <upstream-host> <upstream-port>
 */
import { connect, createServer } from 'node:net';

const [portArg, host, upstreamPort] = process.argv.slice(2);
if (!portArg || !host || !upstreamPort) {
  process.stderr.write('usage: postgres-pipe.ts <port> <upstream-host> <upstream-port>\n');
  process.exit(2);
}
const server = createServer((agent) => {
  const up = connect(Number(upstreamPort), host);
  agent.setNoDelay(true);
  up.setNoDelay(true);
  agent.pipe(up);
  up.pipe(agent);
  agent.on('error', () => up.destroy());
  up.on('error', () => agent.destroy());
  agent.on('close', () => up.destroy());
  up.on('close', () => agent.destroy());
});
server.listen(Number(portArg), '127.0.0.1');
process.once('SIGTERM', () => server.close());
