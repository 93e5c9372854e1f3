// The blob backends of this package against the shared BlobBackend suite: a blob directory, and
// a registry with and without read-ahead windows.
import { afterAll, beforeAll } from 'vitest';
import { RegistryClient } from '@nydus-ts/registry';
import { LocalBlobBackend, RegistryBlobBackend } from '../src/index.js';
import { blobBackendSuite, prepareBlobBackendData } from '../src/conformance/blob-backend-suite.js';
import type { BlobBackendData } from '../src/conformance/blob-backend-suite.js';

let data: BlobBackendData;
beforeAll(async () => {
  data = await prepareBlobBackendData();
});
afterAll(async () => {
  await data?.close();
});

blobBackendSuite('LocalBlobBackend', async () => {
  const backend = new LocalBlobBackend(data.dir);
  return { backend, blobs: data.blobs, missingBlobId: data.missingBlobId, close: () => backend.close() };
});

for (const readAhead of [0, 64 << 10]) {
  blobBackendSuite(`RegistryBlobBackend (readAhead ${readAhead})`, async () => {
    const client = new RegistryClient({ registry: data.registry.host, insecure: true, retry: { attempts: 2, baseDelayMs: 10 } });
    const backend = new RegistryBlobBackend(client, data.repository, { readAhead });
    return { backend, blobs: data.blobs, missingBlobId: data.missingBlobId, close: () => client.close() };
  });
}
