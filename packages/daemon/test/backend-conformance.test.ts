// The daemon's own backends (nydusd config: localfs and registry, with timeouts and retry limit)
// against the shared BlobBackend suite that LocalBlobBackend and RegistryBlobBackend pass too.
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { blobBackendSuite, prepareBlobBackendData } from '@nydus-ts/backend/conformance';
import type { BlobBackendData } from '@nydus-ts/backend/conformance';
import { createDaemonBackend, parseDaemonConfig } from '../src/index.js';

let data: BlobBackendData;
beforeAll(async () => {
  data = await prepareBlobBackendData();
});
afterAll(async () => {
  await data?.close();
});

async function daemonBackend(backend: Record<string, unknown>): Promise<Awaited<ReturnType<typeof createDaemonBackend>>> {
  const { config } = parseDaemonConfig({ device: { backend, cache: { type: 'blobcache', config: { work_dir: join(data.dir, 'cache') } } }, mode: 'direct' });
  return createDaemonBackend(config.backend, 'device.backend.config', { baseRetryDelayMs: 10 });
}

blobBackendSuite('nydusd-ts localfs backend', async () => {
  const backend = await daemonBackend({ type: 'localfs', config: { dir: data.dir } });
  return { backend, blobs: data.blobs, missingBlobId: data.missingBlobId, close: () => backend.close() };
});

blobBackendSuite('nydusd-ts registry backend', async () => {
  const backend = await daemonBackend({ type: 'registry', config: { scheme: 'http', host: data.registry.host, repo: data.repository, timeout: 10, connect_timeout: 5, retry_limit: 1 } });
  return { backend, blobs: data.blobs, missingBlobId: data.missingBlobId, close: () => backend.close() };
});
