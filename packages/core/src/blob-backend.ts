/**
 * Where blob bytes come from: a byte range of a blob, by blob id (the hex sha256 that names it
 * in a registry or a blob directory). A local directory, a registry or a cache each implement
 * just this; readers above it (chunk readers, the daemon's cache) verify what they get.
 */
export interface BlobBackend {
  /** Exactly `length` bytes at `offset` of blob `blobId`, or a thrown error (never a short read). */
  readRange(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
}
