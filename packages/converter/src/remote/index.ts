export { RegistryBlobBackend, blobIdToDigest, MAX_RANGE_READ } from './registry-blob-backend.js';
