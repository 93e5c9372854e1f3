// The standard proxy variables: with HTTP(S)_PROXY set, registry traffic goes through the proxy
// (a real forwarding proxy on loopback), and NO_PROXY exempts hosts from it.
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/index.js';
import { pushGeneratedImage, startRegistry, type TestRegistry } from '../src/testing/index.js';

/** A forward proxy: absolute-URI requests are replayed to their origin, CONNECT is tunnelled. */
async function startForwardProxy(): Promise<{ url: string; requests: string[]; tunnelledBytes: () => number; close(): Promise<void> }> {
  const requests: string[] = [];
  let tunnelled = 0;
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const target = new URL(req.url!);
    const upstream = http.request(
      { host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode!, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    requests.push(`CONNECT ${req.url}`);
    const [host, port] = req.url!.split(':');
    const upstream = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      client.on('data', (b: Buffer) => (tunnelled += b.length));
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    tunnelledBytes: () => tunnelled,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('proxy environment variables', () => {
  let registry: TestRegistry;
  let proxy: Awaited<ReturnType<typeof startForwardProxy>>;
  beforeAll(async () => {
    registry = await startRegistry();
    proxy = await startForwardProxy();
  });
  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
  });

  it('sends registry traffic through HTTP_PROXY', async () => {
    const client = new RegistryClient({ registry: registry.host, insecure: true, proxy: proxy.url });
    try {
      const img = await pushGeneratedImage(client, 'proxied/app', { tag: 'v1', layers: [{ size: 100_000 }] });
      const got = await client.getManifest('proxied/app', 'v1');
      expect(got.descriptor.digest).toBe(img.manifest.descriptor.digest);
    } finally {
      await client.close();
    }
    // undici's proxy agent tunnels every request (plain HTTP too) through CONNECT to the registry.
    expect(proxy.requests.length).toBeGreaterThan(0);
    expect(new Set(proxy.requests)).toEqual(new Set([`CONNECT ${registry.host}`]));
    // the 100 kB layer upload itself went through the tunnel
    expect(proxy.tunnelledBytes()).toBeGreaterThan(100_000);
  });

  it('goes direct for hosts listed in NO_PROXY', async () => {
    const before = proxy.requests.length;
    const client = new RegistryClient({ registry: registry.host, insecure: true, proxy: { http: proxy.url, https: proxy.url, noProxy: '127.0.0.1' } });
    try {
      await client.getManifest('proxied/app', 'v1');
    } finally {
      await client.close();
    }
    expect(proxy.requests.length).toBe(before);
  });
});
