import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

export interface SilentServer {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** Connections accepted so far. */
  readonly connections: number;
  stop(): Promise<void>;
}

/**
 * A TCP server on 127.0.0.1 that accepts connections and never sends a byte: an HTTPS client
 * waits for the TLS handshake forever, which is how a connect timeout is tested on loopback
 * (a refused port answers at once).
 */
export async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
