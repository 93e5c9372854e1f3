import { createHash } from 'node:crypto';
import { DigestMismatchError, FormatError, throwIfAborted } from '@nydus-ts/core';
import { crc32c } from '@nydus-ts/native';
import { digestChunk } from '../chunk-digest.js';
import { decompressChunk } from '../compression.js';
import { BlobFeatures, ChunkInfoV2Flags } from '../layout/constants.js';
import { TAR_HEADER_SIZE, TocNames } from '../layout/toc.js';
import type { BlobInfo } from './bootstrap-reader.js';
import { readBlobMeta, type BlobMeta } from './blob-meta.js';
import { extractBlobSection, readBlobToc, walkBlobTail, type BlobToc } from './blob-toc.js';
import { readExact, type ByteSource } from './byte-source.js';

/** What `verifyBlob` checked of one blob file. */
export interface BlobVerification {
  blobId: string;
  size: number;
  /** Hex sha256 of the whole file. */
  sha256: string;
  /**
   * The blob id is the file's sha256, as for every blob this project writes and every blob a
   * registry serves; blobs named by other tools may differ (not a fault by itself).
   */
  idIsSha256: boolean;
  /** ToC sections whose sha256 matched, in ToC order (empty without a ToC). */
  tocSections: string[];
  /** Tail tar headers walked (checksums, and sections tiling the file). */
  tailSections: number;
  /** Chunks decompressed and checked against the blob's digest array; undefined without one. */
  chunksVerified: number | undefined;
  /** The blob's CI array when it carries one (to attach to the bootstrap reader). */
  meta: BlobMeta | undefined;
  /** The digest array (32 bytes per chunk, in CI order) when the blob carries one. */
  chunkDigests: Uint8Array | undefined;
}

export interface VerifyBlobOptions {
  /** Bytes per read of the file (default 4 MiB); no more than this, or one chunk, is held at once. */
  readSize?: number;
  signal?: AbortSignal;
}

const ZERO_DIGEST = /^0{64}$/;
/** Features whose chunks are not plain (compressed) ranges of this blob. */
const NOT_PLAIN = BlobFeatures.ZRAN | BlobFeatures.BATCH | BlobFeatures.ENCRYPTED | BlobFeatures.SEPARATE;

/**
 * Verifies a whole data blob, not only the chunks a bootstrap reads: the sha256 of the file
 * (compared with the blob id), the tail tar headers (checksums; the sections must tile the
 * file), the ToC (against the digest the blob table records, when it records one) and every ToC
 * section's sha256 (chunk data with its tar header, CI array, CCT header, digest array, inlined
 * bootstrap), the CI array against the blob table entry, and every chunk of the CI array
 * decompressed against the digest array (and its CRC-32C, when recorded). The file is read in
 * `readSize` pieces; nothing holds the whole blob. Any mismatch is a DigestMismatchError or a
 * FormatError naming the blob and the structure.
 */
export async function verifyBlob(source: ByteSource, blob: BlobInfo, options: VerifyBlobOptions = {}): Promise<BlobVerification> {
  const readSize = options.readSize ?? 4 << 20;
  const signal = options.signal;
  const entry = blob.entry;
  const label = `blob ${blob.blobId}`;
  const inBlob = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      if (err instanceof DigestMismatchError && !err.subject.startsWith(label)) throw new DigestMismatchError(`${label} ${err.subject}`, err.expected, err.actual);
      if (err instanceof FormatError && !err.field.startsWith(label)) throw new FormatError(`${label} ${err.field}`, err.message, { offset: err.offset, value: err.value, cause: err });
      throw err;
    }
  };

  // The tail headers: each is checksummed; together they must cover the file from offset 0.
  const tail = await inBlob(() => walkBlobTail(source, { signal }));
  let toc: BlobToc | undefined;
  if ((entry.features & BlobFeatures.HAS_TOC) !== 0 || tail.some((s) => s.name === TocNames.TOC)) {
    const known = entry.tocSize > 0 && !ZERO_DIGEST.test(entry.tocDigest);
    toc = await inBlob(() =>
      known ? readBlobToc(source, { offset: source.size - entry.tocSize, size: entry.tocSize, digest: entry.tocDigest }, { signal }) : readBlobToc(source, undefined, { signal }),
    );
  }

  // Chunk data with its tar header is hashed in the pass over the file; other sections here.
  let imageBlob: { start: number; end: number; digest: string } | undefined;
  const tocSections: string[] = [];
  let ciData: Uint8Array | undefined;
  let chunkDigests: Uint8Array | undefined;
  for (const e of toc?.entries ?? []) {
    if (e.name === TocNames.BLOB) {
      const section = tail.find((s) => s.name === TocNames.BLOB);
      // image.blob's ToC offset is the data start (current builders) or its end (2.2-era).
      if (section === undefined || section.size !== e.compressedSize || (e.compressedOffset !== section.offset && e.compressedOffset !== section.offset + section.size)) {
        throw new FormatError(`${label} toc section "${TocNames.BLOB}"`, `[${e.compressedOffset}, +${e.compressedSize}) is not the chunk data the tail headers describe`, { value: e.compressedOffset });
      }
      imageBlob = { start: section.offset, end: section.headerOffset + TAR_HEADER_SIZE, digest: e.digest };
      continue;
    }
    const data = await inBlob(() => extractBlobSection(source, toc!, e.name, { signal }));
    if (e.name === TocNames.META) ciData = data;
    if (e.name === TocNames.DIGEST) chunkDigests = data;
    tocSections.push(e.name);
  }

  // One pass over the file: its sha256, and that of the chunk data section.
  const whole = createHash('sha256');
  const section = imageBlob && createHash('sha256');
  for (let at = 0; at < source.size; at += readSize) {
    throwIfAborted(signal);
    const piece = await readExact(source, `${label} data`, at, Math.min(readSize, source.size - at), signal);
    whole.update(piece);
    if (imageBlob && section && at < imageBlob.end && at + piece.length > imageBlob.start) {
      section.update(piece.subarray(Math.max(0, imageBlob.start - at), Math.min(piece.length, imageBlob.end - at)));
    }
  }
  const sha256 = whole.digest('hex');
  if (imageBlob && section) {
    const actual = section.digest('hex');
    if (actual !== imageBlob.digest) throw new DigestMismatchError(`${label} toc section "${TocNames.BLOB}"`, imageBlob.digest, actual);
    tocSections.unshift(TocNames.BLOB);
  }

  // The CI array, as the blob table describes it, must be what the ToC vouched for.
  let meta: BlobMeta | undefined;
  if (entry.ciCompressedSize > 0 && (entry.features & BlobFeatures.SEPARATE) === 0) {
    meta = await inBlob(() => readBlobMeta(source, entry, { signal }));
    if (ciData !== undefined && !Buffer.from(ciData).equals(Buffer.from(meta.ciData))) {
      throw new FormatError(`${label} blob_meta`, 'the CI array at ci_offset differs from the ToC\'s "blob.meta" section');
    }
  }
  if (chunkDigests !== undefined && chunkDigests.byteLength !== 32 * entry.chunkCount) {
    throw new FormatError(`${label} toc section "${TocNames.DIGEST}"`, `${chunkDigests.byteLength} bytes for ${entry.chunkCount} chunk digests`, { value: chunkDigests.byteLength });
  }

  let chunksVerified: number | undefined;
  if (meta !== undefined && chunkDigests !== undefined && (entry.features & NOT_PLAIN) === 0) {
    chunksVerified = await verifyChunks(source, blob, meta, chunkDigests, label, readSize, signal);
  }
  return { blobId: blob.blobId, size: source.size, sha256, idIsSha256: sha256 === blob.blobId, tocSections, tailSections: tail.length, chunksVerified, meta, chunkDigests };
}

/**
 * Every chunk of the CI array, decompressed and checked against the digest array (and its
 * CRC-32C when the CI entry records one). Neighbouring chunks are read together, up to
 * `readSize` bytes at a time.
 */
async function verifyChunks(source: ByteSource, blob: BlobInfo, meta: BlobMeta, digests: Uint8Array, label: string, readSize: number, signal: AbortSignal | undefined): Promise<number> {
  const order = meta.chunks.map((_, i) => i).sort((a, b) => meta.chunks[a]!.compressedOffset - meta.chunks[b]!.compressedOffset);
  let k = 0;
  while (k < order.length) {
    throwIfAborted(signal);
    // A window of chunks whose compressed bytes follow each other.
    const first = meta.chunks[order[k]!]!;
    const start = first.compressedOffset;
    let end = start + first.compressedSize;
    let last = k + 1;
    while (last < order.length) {
      const c = meta.chunks[order[last]!]!;
      if (c.compressedOffset < end || c.compressedOffset + c.compressedSize - start > readSize) break;
      end = c.compressedOffset + c.compressedSize;
      last++;
    }
    const window = await readExact(source, `${label} chunk data`, start, end - start, signal);
    for (; k < last; k++) {
      const i = order[k]!;
      const c = meta.chunks[i]!;
      const subject = `${label} chunk ${i}`;
      const raw = window.subarray(c.compressedOffset - start, c.compressedOffset - start + c.compressedSize);
      const data = c.compressed ? decompressChunk(blob.compressor, raw, c.uncompressedSize, subject) : raw;
      if (data.byteLength !== c.uncompressedSize) throw new FormatError(subject, `holds ${data.byteLength} bytes, its CI entry says ${c.uncompressedSize}`);
      const expected = Buffer.from(digests.buffer, digests.byteOffset + 32 * i, 32).toString('hex');
      const actual = digestChunk(blob.digester, data);
      if (actual !== expected) throw new DigestMismatchError(subject, expected, actual);
      const crc = (c.flags & ChunkInfoV2Flags.HAS_CRC32) !== 0 ? crc32c(data) >>> 0 : c.contextOffset;
      if (crc !== c.contextOffset) throw new FormatError(subject, `CRC-32C 0x${crc.toString(16)} != 0x${c.contextOffset.toString(16)} recorded in its CI entry`);
    }
  }
  return order.length;
}
