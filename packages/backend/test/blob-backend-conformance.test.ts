// The blob backends of this package against the shared BlobBackend suite: a blob directory, and
// a registry with and without read-ahead windows.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { LocalBlobBackend, RegistryBlobBackend } from '../src/index.js';
import { blobBackendSuite } from '../src/conformance/blob-backend-suite.js';

const blobs = new Map<string, Uint8Array>();
for (const size of [300_000, 65_537]) {
  const bytes = randomBytes(size);
  blobs.set(createHash('sha256').update(bytes).digest('hex'), bytes);
}
const missingBlobId = 'f'.repeat(64);
let dir: string;
let registry: TestRegistry;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nydus-backend-suite-'));
  for (const [id, bytes] of blobs) await writeFile(join(dir, id), bytes);
  registry = await startRegistry();
  const client = new RegistryClient({ registry: registry.host, insecure: true });
  for (const [id, bytes] of blobs) {
    const data = Buffer.from(bytes);
    await client.pushBlob('suite/blobs', { digest: `sha256:${id}`, size: data.length }, data);
  }
  await client.close();
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

blobBackendSuite('LocalBlobBackend', async () => {
  const backend = new LocalBlobBackend(dir);
  return { backend, blobs, missingBlobId, close: () => backend.close() };
});

for (const readAhead of [0, 64 << 10]) {
  blobBackendSuite(`RegistryBlobBackend (readAhead ${readAhead})`, async () => {
    const client = new RegistryClient({ registry: registry.host, insecure: true, retry: { attempts: 2, baseDelayMs: 10 } });
    const backend = new RegistryBlobBackend(client, 'suite/blobs', { readAhead });
    return { backend, blobs, missingBlobId, close: () => client.close() };
  });
}
