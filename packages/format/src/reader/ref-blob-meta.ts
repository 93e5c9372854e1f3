import { DigestMismatchError, FormatError, NydusError, throwIfAborted, type BlobBackend } from '@nydus-ts/core';
import { createHash } from 'node:crypto';
import { decompressChunk } from '../compression.js';
import { CCT_HEADER_SIZE, decodeCompressionContextHeader, type CompressionContextHeader } from '../layout/blob-meta.js';
import { ZERO_DIGEST_HEX } from '../layout/blob-table.js';
import { BlobFeatures, CompressionAlgo } from '../layout/constants.js';
import { decodeSeekTable, seekTableSizeFromFooter, type SeekTable } from '../layout/zstd-seekable.js';
import { blobMetaHeadSize, parseBlobMetaSection, type BlobMeta } from './blob-meta.js';
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

/** Bytes fetched from the end of a CI section to find a seek table (the CCT header comes on top): a table of 2000 frames. */
export const SEEKABLE_TAIL_PROBE_SIZE = 16 << 10;

/**
 * The seekable layout of a ZRAN blob's compressed CI data (written by nydus-ts since the lazy
 * dictionaries): zstd frames, the first holding the entries and context table, the others the
 * dictionary table, then a zstd seek table. Found from the last bytes of the CI section alone.
 */
export interface SeekableCiLayout {
  blob: BlobInfo;
  header: CompressionContextHeader;
  seekTable: SeekTable;
  /** The last bytes of the CI section: the seek table and the CCT header (enough to reopen). */
  tail: Uint8Array;
  /** Frames before this one hold the entries and context table (the head). */
  headFrames: number;
  /** Offset of the dictionary table in the uncompressed CI data. */
  dictionaryTableOffset: number;
}

/**
 * Reads the seekable layout of a ZRAN blob from `tail`, the last bytes (at least the CCT header)
 * of its CI section in the meta blob. Undefined when the CI data is not seekable (metas of the
 * reference tools, of older nydus-ts, uncompressed CI): the caller then fetches the meta whole.
 * A header that disagrees with the blob table, or a damaged seek table, is a FormatError.
 */
export function parseSeekableCiTail(blob: BlobInfo, tail: Uint8Array): SeekableCiLayout | undefined {
  const entry = blob.entry;
  const sectionSize = entry.ciCompressedSize + CCT_HEADER_SIZE;
  if (tail.byteLength < CCT_HEADER_SIZE || tail.byteLength > sectionSize) throw new FormatError(`blob ${blob.blobId} CI section`, `tail of ${tail.byteLength} bytes does not fit the ${sectionSize}-byte section`);
  if ((entry.features & BlobFeatures.ZRAN) === 0 || entry.ciCompressor !== CompressionAlgo.zstd) return undefined;
  const headerAt = tail.byteLength - CCT_HEADER_SIZE;
  const header = decodeCompressionContextHeader(tail.subarray(headerAt), headerAt);
  const what = `blob ${blob.blobId} CI data`;
  if (header.ciCompressor !== entry.ciCompressor || header.ciCompressedSize !== entry.ciCompressedSize || header.ciUncompressedSize !== entry.ciUncompressedSize || header.ciEntries !== entry.chunkCount) {
    throw new FormatError(`blob ${blob.blobId}.blob_meta_header`, 'CCT header disagrees with the blob table (CI compressor, sizes or entry count)');
  }
  const tableSize = seekTableSizeFromFooter(tail.subarray(0, headerAt));
  if (tableSize === undefined) return undefined;
  if (tableSize > headerAt) {
    if (tableSize > entry.ciCompressedSize) throw new FormatError(what, `seek table of ${tableSize} bytes exceeds the ${entry.ciCompressedSize}-byte CI data`, { value: tableSize });
    throw new SeekTableBeyondTail(tableSize + CCT_HEADER_SIZE);
  }
  const seekTable = decodeSeekTable(tail.subarray(headerAt - tableSize, headerAt), entry.ciCompressedSize, what);
  const frames = seekTable.frames.length;
  if (seekTable.decompressedOffsets[frames] !== header.ciUncompressedSize) {
    throw new FormatError(what, `seek table frames hold ${seekTable.decompressedOffsets[frames]} bytes, ci_uncompressed_size is ${header.ciUncompressedSize}`);
  }
  const headSize = blobMetaHeadSize(header);
  let headFrames = 0;
  while (headFrames < frames && seekTable.decompressedOffsets[headFrames]! < headSize) headFrames++;
  if (headSize === 0 || headSize > header.ciUncompressedSize) throw new FormatError(what, `entries and contexts of ${headSize} bytes do not fit the CI data`);
  return { blob, header, seekTable, tail: tail.subarray(headerAt - tableSize), headFrames, dictionaryTableOffset: headSize };
}

/** Thrown by parseSeekableCiTail when the seek table starts before the given tail: fetch `size` bytes. */
export class SeekTableBeyondTail extends Error {
  constructor(readonly size: number) {
    super(`the seek table and CCT header take ${size} bytes`);
  }
}

/**
 * Fetches the seekable layout of a ZRAN blob's CI data: one range at the end of the CI section
 * (the CCT header and up to SEEKABLE_TAIL_PROBE_SIZE bytes before it), a second one when the
 * seek table is larger. Undefined for CI data that is not seekable.
 */
export async function fetchSeekableCiLayout(blob: BlobInfo, backend: BlobBackend, signal?: AbortSignal, onFetched?: (bytes: number) => void): Promise<SeekableCiLayout | undefined> {
  const entry = blob.entry;
  if ((entry.features & BlobFeatures.ZRAN) === 0 || entry.ciCompressor !== CompressionAlgo.zstd) return undefined;
  if (entry.metaDigest === ZERO_DIGEST_HEX || entry.metaSize === 0) return undefined;
  const sectionEnd = entry.ciOffset + entry.ciCompressedSize + CCT_HEADER_SIZE;
  if (sectionEnd > entry.metaSize) throw new FormatError(`blob ${blob.blobId}.ci_offset`, `CI section ends at ${sectionEnd}, past the ${entry.metaSize}-byte meta blob`, { value: entry.ciOffset });
  const fetchTail = async (size: number): Promise<Uint8Array> => {
    const bytes = await backend.readRange(entry.metaDigest, sectionEnd - size, size, signal);
    onFetched?.(bytes.byteLength);
    if (bytes.byteLength !== size) throw new NydusError('DATA_LOSS', `meta blob of ${blob.blobId}: got ${bytes.byteLength} bytes, expected ${size}`);
    return bytes;
  };
  const probe = Math.min(entry.ciCompressedSize, SEEKABLE_TAIL_PROBE_SIZE) + CCT_HEADER_SIZE;
  try {
    return parseSeekableCiTail(blob, await fetchTail(probe));
  } catch (err) {
    if (!(err instanceof SeekTableBeyondTail)) throw err;
    return parseSeekableCiTail(blob, await fetchTail(err.size));
  }
}

/** The byte range of CI frame `i` in the meta blob. */
export function ciFrameRange(layout: SeekableCiLayout, i: number): { offset: number; length: number } {
  const t = layout.seekTable;
  return { offset: layout.blob.entry.ciOffset + t.compressedOffsets[i]!, length: t.frames[i]!.compressedSize };
}

/**
 * Decodes CI frame `i` from its fetched bytes: a zstd frame that must carry a content checksum
 * (checked while decompressing) and decompress to exactly the seek table's size.
 */
export function decodeCiFrame(layout: SeekableCiLayout, i: number, bytes: Uint8Array): Uint8Array {
  const what = `blob ${layout.blob.blobId} CI frame ${i}`;
  const frame = layout.seekTable.frames[i]!;
  if (bytes.byteLength !== frame.compressedSize) throw new FormatError(what, `${bytes.byteLength} bytes, the seek table says ${frame.compressedSize}`);
  if (bytes.byteLength < 5 || new DataView(bytes.buffer, bytes.byteOffset, 5).getUint32(0, true) !== ZSTD_FRAME_MAGIC || (bytes[4]! & FRAME_CHECKSUM_FLAG) === 0) {
    throw new FormatError(what, 'not a zstd frame with a content checksum');
  }
  return decompressChunk('zstd', bytes, frame.decompressedSize, what);
}

/** The frames holding uncompressed CI bytes [offset, offset + length): first and last index. */
export function ciFramesCovering(layout: SeekableCiLayout, offset: number, length: number): [number, number] {
  const starts = layout.seekTable.decompressedOffsets;
  const frames = layout.seekTable.frames.length;
  // last frame starting at or before `offset`
  let lo = 0;
  let hi = frames - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  let last = lo;
  while (last + 1 < frames && starts[last + 1]! < offset + length) last++;
  return [lo, last];
}

const ZSTD_FRAME_MAGIC = 0xfd2fb528;
/** Frame_Header_Descriptor bit 2: Content_Checksum_flag. */
const FRAME_CHECKSUM_FLAG = 0x04;
