// Blob backends: `readRange(blobId, offset, length)` over a local blob directory or a registry.
// They move bytes only; verifying chunks is the reader's job (RafsFileReader, the daemon cache).
export type { BlobBackend } from '@nydus-ts/core';
export { LocalBlobBackend } from './local-blob-backend.js';
export { RegistryBlobBackend, blobIdToDigest, MAX_RANGE_READ, type RegistryBlobBackendOptions } from './registry-blob-backend.js';
