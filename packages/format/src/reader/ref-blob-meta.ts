import { DigestMismatchError, FormatError, NydusError, throwIfAborted, type BlobBackend } from '@nydus-ts/core';
import { createHash } from 'node:crypto';
import { CCT_HEADER_SIZE } from '../layout/blob-meta.js';
import { ZERO_DIGEST_HEX } from '../layout/blob-table.js';
import { BlobFeatures } from '../layout/constants.js';
import { parseBlobMetaSection, type BlobMeta } from './blob-meta.js';
import type { BlobInfo, BootstrapReader } from './bootstrap-reader.js';

/** Largest RAFS meta blob fetched (the CI data of a 16M-chunk blob with its zran tables fits). */
const MAX_META_BLOB_SIZE = 1 << 30;

/** True for blobs whose chunk info lives in a separate RAFS meta blob (targz-ref / tar-ref). */
export function isSeparateBlob(blob: BlobInfo): boolean {
  return (blob.features & BlobFeatures.SEPARATE) !== 0 && blob.entry.chunkCount > 0;
}

/**
 * Fetches the RAFS meta blob of one SEPARATE blob (the nydus-ref layer named by its
 * blob_meta_digest, spec §4.3) whole through `backend`, checks its sha256 and size against the
 * blob table entry, and parses its CI section (entries, zran contexts, dictionaries). A truncated
 * or mutated meta blob is a DigestMismatchError / FormatError.
 */
export async function fetchRefBlobMeta(blob: BlobInfo, backend: BlobBackend, signal?: AbortSignal): Promise<BlobMeta> {
  throwIfAborted(signal);
  const entry = blob.entry;
  const subject = `meta blob of ${blob.blobId}`;
  if (entry.metaDigest === ZERO_DIGEST_HEX || entry.metaSize === 0) {
    throw new FormatError(`blob ${blob.blobId}.blob_meta_digest`, 'reference blob without a meta blob digest/size (a per-layer bootstrap? merge it with its meta blob)');
  }
  if (entry.metaSize > MAX_META_BLOB_SIZE) throw new NydusError('RESOURCE_EXHAUSTED', `${subject}: ${entry.metaSize} bytes exceed the ${MAX_META_BLOB_SIZE}-byte limit`);
  const end = entry.ciOffset + entry.ciCompressedSize + CCT_HEADER_SIZE;
  if (end > entry.metaSize) throw new FormatError(`blob ${blob.blobId}.ci_offset`, `CI section ends at ${end}, past the ${entry.metaSize}-byte meta blob`, { value: entry.ciOffset });
  const bytes = await backend.readRange(entry.metaDigest, 0, entry.metaSize, signal);
  if (bytes.byteLength !== entry.metaSize) throw new NydusError('DATA_LOSS', `${subject}: got ${bytes.byteLength} bytes, expected ${entry.metaSize}`);
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== entry.metaDigest) throw new DigestMismatchError(subject, entry.metaDigest, actual);
  return parseBlobMetaSection(bytes.subarray(entry.ciOffset, end), { entry });
}

/**
 * Fetches (concurrently) and attaches the meta blobs of every SEPARATE blob of a merged
 * reference image bootstrap, so that its files can be read (RafsFileReader). Returns how many.
 */
export async function attachRefBlobMetas(reader: BootstrapReader, backend: BlobBackend, signal?: AbortSignal): Promise<number> {
  const blobs = reader.blobs.filter(isSeparateBlob);
  const metas = await Promise.all(blobs.map((b) => fetchRefBlobMeta(b, backend, signal)));
  blobs.forEach((b, i) => reader.attachBlobMeta(b.index, metas[i]!));
  return blobs.length;
}
