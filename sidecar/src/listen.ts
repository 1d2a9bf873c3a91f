/**
 * Binds a server to one address and resolves with the port it got (useful
 * with port 0); an IPv6 address binds IPv6 only, so 127.0.0.1 and ::1 are two
 * listeners. Shared by the Kubernetes API and PostgreSQL listeners.
 */
import type { Server } from 'node:net';

export function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: host.includes(':') }, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}
