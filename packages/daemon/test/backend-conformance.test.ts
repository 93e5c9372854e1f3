// The daemon's own backends (nydusd config: localfs and registry, with timeouts and retry limit)
// against the shared BlobBackend suite that LocalBlobBackend and RegistryBlobBackend pass too.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { blobBackendSuite } from '@nydus-ts/backend/conformance';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { createDaemonBackend, parseDaemonConfig } from '../src/index.js';

const blobs = new Map<string, Uint8Array>();
for (const size of [300_000, 65_537]) {
  const bytes = randomBytes(size);
  blobs.set(createHash('sha256').update(bytes).digest('hex'), bytes);
}
const missingBlobId = 'f'.repeat(64);
let dir: string;
let registry: TestRegistry;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nydusd-backend-suite-'));
  for (const [id, bytes] of blobs) await writeFile(join(dir, id), bytes);
  registry = await startRegistry();
  const client = new RegistryClient({ registry: registry.host, insecure: true });
  for (const [id, bytes] of blobs) await client.pushBlob('suite/blobs', { digest: `sha256:${id}`, size: bytes.length }, Buffer.from(bytes));
  await client.close();
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function daemonBackend(backend: Record<string, unknown>): Promise<Awaited<ReturnType<typeof createDaemonBackend>>> {
  const { config } = parseDaemonConfig({ device: { backend, cache: { type: 'blobcache', config: { work_dir: join(dir, 'cache') } } }, mode: 'direct' });
  return createDaemonBackend(config.backend, 'device.backend.config', { baseRetryDelayMs: 10 });
}

blobBackendSuite('nydusd-ts localfs backend', async () => {
  const backend = await daemonBackend({ type: 'localfs', config: { dir } });
  return { backend, blobs, missingBlobId, close: () => backend.close() };
});

blobBackendSuite('nydusd-ts registry backend', async () => {
  const backend = await daemonBackend({ type: 'registry', config: { scheme: 'http', host: registry.host, repo: 'suite/blobs', timeout: 10, connect_timeout: 5, retry_limit: 1 } });
  return { backend, blobs, missingBlobId, close: () => backend.close() };
});
