import type { BlobBackend } from '../src/index.js';

/** A BlobBackend over in-memory blobs keyed by blob id; counts the reads it serves. */
export function mapBackend(blobs: Record<string, Uint8Array>): BlobBackend & { reads: number } {
  const backend = {
    reads: 0,
    async readRange(blobId: string, offset: number, length: number): Promise<Uint8Array> {
      backend.reads++;
      const data = blobs[blobId];
      if (!data) throw new Error(`unknown blob ${blobId}`);
      return data.subarray(offset, offset + length);
    },
  };
  return backend;
}
