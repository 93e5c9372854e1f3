import { FormatError, NydusError, throwIfAborted } from '@nydus-ts/core';
import {
  BATCH_CONTEXT_SIZE,
  CCT_HEADER_SIZE,
  CI_V1_SIZE,
  CI_V2_SIZE,
  ZRAN_CONTEXT_SIZE,
  decodeBatchContext,
  decodeChunkInfoV1,
  decodeChunkInfoV2,
  decodeCompressionContextHeader,
  decodeZranContext,
  type BatchContext,
  type BlobChunkInfo,
  type CompressionContextHeader,
  type ZranContext,
} from '../layout/blob-meta.js';
import type { BlobEntry } from '../layout/blob-table.js';
import { BlobFeatures, ChunkInfoV2Flags, MAX_CHUNK_SIZE, alignUp, compressionNameOf } from '../layout/constants.js';
import { TAR_HEADER_SIZE } from '../layout/toc.js';
import { readExact, type ByteSource } from './byte-source.js';
import { decompressChunk } from '../compression.js';

/** Default cap on the uncompressed CI data of one blob. */
export const DEFAULT_MAX_BLOB_META_SIZE = 1024 * 1024 * 1024;

/** A blob's chunk compression info (CI) array and the tables that follow it (spec §3.2–§3.5). */
export interface BlobMeta {
  header: CompressionContextHeader;
  /** BlobFeatures from the CCT header. */
  features: number;
  /** One entry per chunk, indexed by CI index (v1 or v2 per CHUNK_INFO_V2). */
  chunks: BlobChunkInfo[];
  /** ZRAN blobs: inflate checkpoints. */
  zranContexts: ZranContext[];
  /** ZRAN blobs: the windows of all contexts, concatenated (contexts index it by dict_offset). */
  dictionaryTable: Uint8Array;
  /** BATCH blobs: batch sizes. */
  batchContexts: BatchContext[];
  /** The uncompressed CI data (entries and tables). */
  ciData: Uint8Array;
}

export interface BlobMetaOptions {
  /** When given, the header and chunks are checked against this blob table entry. */
  entry?: BlobEntry;
  /** Refuse CI data larger than this (default 1 GiB). */
  maxSize?: number;
}

const FORMAT_FEATURES = BlobFeatures.CHUNK_INFO_V2 | BlobFeatures.ZRAN | BlobFeatures.BATCH | BlobFeatures.ENCRYPTED;

function checkSize(size: number, options: BlobMetaOptions): void {
  const max = options.maxSize ?? DEFAULT_MAX_BLOB_META_SIZE;
  if (size > max) throw new NydusError('RESOURCE_EXHAUSTED', `blob meta CI data of ${size} bytes exceeds the ${max}-byte limit`);
}

/**
 * Parses a `<blob_id>.blob.meta` file (spec §3.7): the uncompressed CI data and tables, zero
 * padding to 4 KiB, then the 4096-byte CCT header.
 */
export function parseBlobMetaFile(bytes: Uint8Array, options: BlobMetaOptions = {}): BlobMeta {
  if (bytes.byteLength < CCT_HEADER_SIZE || bytes.byteLength % 4096 !== 0) {
    throw new FormatError('blob_meta', `file of ${bytes.byteLength} bytes is not a multiple of 4096 holding a CCT header`, { value: bytes.byteLength });
  }
  const headerOffset = bytes.byteLength - CCT_HEADER_SIZE;
  const header = decodeCompressionContextHeader(bytes.subarray(headerOffset), headerOffset);
  checkSize(header.ciUncompressedSize, options);
  const want = alignUp(header.ciUncompressedSize, 4096) + CCT_HEADER_SIZE;
  if (bytes.byteLength !== want) {
    throw new FormatError('blob_meta', `file is ${bytes.byteLength} bytes, its header (ci_uncompressed_size ${header.ciUncompressedSize}) implies ${want}`, {
      offset: headerOffset + 32,
      value: header.ciUncompressedSize,
    });
  }
  const meta = parseCiData(bytes.subarray(0, header.ciUncompressedSize), header);
  if (options.entry) checkBlobMetaAgainstEntry(meta, options.entry, `blob ${options.entry.blobId}`);
  return meta;
}

/**
 * Parses the CI section of a blob as fetched at `ci_offset`: `ci_compressed_size` bytes of
 * (possibly compressed) CI data followed by the CCT header. The CI data is decompressed with
 * the header's CI compressor.
 */
export function parseBlobMetaSection(bytes: Uint8Array, options: BlobMetaOptions = {}): BlobMeta {
  if (bytes.byteLength < CCT_HEADER_SIZE) {
    throw new FormatError('blob_meta', `CI section of ${bytes.byteLength} bytes cannot hold a ${CCT_HEADER_SIZE}-byte CCT header`, { value: bytes.byteLength });
  }
  const headerOffset = bytes.byteLength - CCT_HEADER_SIZE;
  const header = decodeCompressionContextHeader(bytes.subarray(headerOffset), headerOffset);
  if (header.ciCompressedSize !== headerOffset) {
    throw new FormatError('blob_meta_header.s_ci_compressed_size', `${header.ciCompressedSize} but the section holds ${headerOffset} bytes of CI data`, {
      offset: headerOffset + 24,
      value: header.ciCompressedSize,
    });
  }
  const algo = compressionNameOf(header.ciCompressor);
  if (algo === undefined) {
    throw new FormatError('blob_meta_header.s_ci_compressor', `unknown CI compressor ${header.ciCompressor}`, { offset: headerOffset + 8, value: header.ciCompressor });
  }
  checkSize(header.ciUncompressedSize, options);
  if (algo === 'none' && header.ciCompressedSize !== header.ciUncompressedSize) {
    throw new FormatError('blob_meta_header.s_ci_compressed_size', `uncompressed CI with compressed size ${header.ciCompressedSize} != ${header.ciUncompressedSize}`, {
      offset: headerOffset + 24,
      value: header.ciCompressedSize,
    });
  }
  const ciData = decompressChunk(algo, bytes.subarray(0, headerOffset), header.ciUncompressedSize, 'blob_meta.ci_data');
  const meta = parseCiData(ciData, header);
  if (options.entry) checkBlobMetaAgainstEntry(meta, options.entry, `blob ${options.entry.blobId}`);
  return meta;
}

/**
 * Fetches and parses a blob's CI section (`ci_compressed_size + 4096` bytes at `ci_offset`)
 * from `source`: the data blob itself, or the RAFS meta blob for SEPARATE blobs.
 */
export async function readBlobMeta(source: ByteSource, entry: BlobEntry, options: Omit<BlobMetaOptions, 'entry'> & { signal?: AbortSignal } = {}): Promise<BlobMeta> {
  throwIfAborted(options.signal);
  const length = entry.ciCompressedSize + CCT_HEADER_SIZE;
  checkSize(entry.ciUncompressedSize, options);
  if (entry.ciOffset + length > source.size) {
    throw new FormatError(`blob ${entry.blobId}.ci_offset`, `CI section [${entry.ciOffset}, +${length}) lies beyond the blob's ${source.size} bytes`, { value: entry.ciOffset });
  }
  const bytes = await readExact(source, `blob ${entry.blobId} CI section`, entry.ciOffset, length, options.signal);
  return parseBlobMetaSection(bytes, { ...options, entry });
}

/**
 * Parses the head of a ZRAN blob's CI data: the entries and the context table (its first
 * `zran_offset + 40 × zran_count` bytes), without the dictionary table, for readers that fetch
 * dictionaries on first use (the seekable CI layout). The result's `dictionaryTable` is empty;
 * every context's dictionary is checked to lie inside the table the header declares.
 */
export function parseBlobMetaHead(head: Uint8Array, header: CompressionContextHeader, options: BlobMetaOptions = {}): BlobMeta {
  checkSize(header.ciUncompressedSize, options);
  if ((header.features & BlobFeatures.ZRAN) === 0) throw new FormatError('blob_meta_header.s_features', 'only ZRAN blobs have a CI head without dictionaries', { value: header.features });
  const headSize = blobMetaHeadSize(header);
  if (head.byteLength < headSize || headSize > header.ciUncompressedSize) {
    throw new FormatError('blob_meta.ci_data', `head of ${head.byteLength} bytes, the entries and contexts need ${headSize}`, { value: head.byteLength });
  }
  const meta = parseCiData(head.subarray(0, headSize), header, true);
  if (options.entry) checkBlobMetaAgainstEntry(meta, options.entry, `blob ${options.entry.blobId}`);
  return meta;
}

/** Size of a ZRAN blob's CI head: the entries and the context table, before the dictionaries. */
export function blobMetaHeadSize(header: CompressionContextHeader): number {
  return header.zranOffset + header.zranCount * ZRAN_CONTEXT_SIZE;
}

function parseCiData(ciData: Uint8Array, header: CompressionContextHeader, headOnly = false): BlobMeta {
  const features = header.features;
  const v2 = (features & BlobFeatures.CHUNK_INFO_V2) !== 0;
  const zran = (features & BlobFeatures.ZRAN) !== 0;
  const batch = (features & BlobFeatures.BATCH) !== 0;
  const separate = (features & BlobFeatures.SEPARATE) !== 0;
  const entrySize = v2 ? CI_V2_SIZE : CI_V1_SIZE;
  const count = header.ciEntries;
  const hfail = (field: string, msg: string, value: unknown): never => {
    throw new FormatError(`blob_meta_header.${field}`, msg, { value });
  };
  if ((zran || batch || (features & BlobFeatures.ENCRYPTED) !== 0) && !v2) hfail('s_features', 'ZRAN/BATCH/ENCRYPTED require CHUNK_INFO_V2', features);
  if (zran && batch) hfail('s_features', 'ZRAN and BATCH are exclusive', features);
  if (count > 0x1000000) hfail('s_ci_entries', `${count} entries exceed 2^24`, count);
  const entriesSize = count * entrySize;
  // A head (entries and contexts) stands for the whole CI data of the header's size.
  const dataSize = headOnly ? header.ciUncompressedSize : ciData.byteLength;
  if (v2 ? dataSize < entriesSize || ciData.byteLength < entriesSize : ciData.byteLength !== entriesSize) {
    hfail('s_ci_uncompressed_size', `${ciData.byteLength} bytes do not fit ${count} ${v2 ? 'v2' : 'v1'} entries`, ciData.byteLength);
  }

  const chunks: BlobChunkInfo[] = new Array(count);
  for (let i = 0; i < count; i++) {
    chunks[i] = v2 ? decodeChunkInfoV2(ciData, i * entrySize, i * entrySize) : decodeChunkInfoV1(ciData, i * entrySize, i * entrySize);
  }

  let zranContexts: ZranContext[] = [];
  let batchContexts: BatchContext[] = [];
  let dictionaryTable: Uint8Array = new Uint8Array(0);
  if (zran || batch) {
    const { zranOffset, zranSize, zranCount } = header;
    if (zranOffset < entriesSize || zranOffset + zranSize > dataSize) {
      hfail('s_ci_zran_offset', `context table [${zranOffset}, +${zranSize}) is not inside the CI data after the entries (${entriesSize}..${dataSize})`, zranOffset);
    }
    if (zranCount * (zran ? ZRAN_CONTEXT_SIZE : BATCH_CONTEXT_SIZE) > zranSize) hfail('s_ci_zran_count', `${zranCount} contexts do not fit ${zranSize} bytes`, zranCount);
    const table = ciData.subarray(zranOffset, zranOffset + zranSize);
    if (zran) {
      const ctxEnd = zranCount * ZRAN_CONTEXT_SIZE;
      dictionaryTable = table.subarray(ctxEnd);
      const dictionaryTableSize = headOnly ? zranSize - ctxEnd : dictionaryTable.byteLength;
      zranContexts = new Array(zranCount);
      for (let i = 0; i < zranCount; i++) {
        const z = decodeZranContext(table, i * ZRAN_CONTEXT_SIZE, zranOffset + i * ZRAN_CONTEXT_SIZE, i);
        if (z.dictOffset + z.dictSize > dictionaryTableSize) {
          throw new FormatError(`zran_context[${i}].dict_offset`, `dictionary [${z.dictOffset}, +${z.dictSize}) exceeds the ${dictionaryTableSize}-byte table`, {
            offset: zranOffset + i * ZRAN_CONTEXT_SIZE + 16,
            value: z.dictOffset,
          });
        }
        zranContexts[i] = z;
      }
    } else {
      batchContexts = new Array(zranCount);
      for (let i = 0; i < zranCount; i++) batchContexts[i] = decodeBatchContext(table, i * BATCH_CONTEXT_SIZE, zranOffset + i * BATCH_CONTEXT_SIZE, i);
    }
  }

  for (let i = 0; i < count; i++) {
    const c = chunks[i]!;
    const fail = (msg: string, value: unknown): never => {
      throw new FormatError(`blob_meta.chunk_info[${i}]`, msg, { offset: i * entrySize, value });
    };
    if (c.uncompressedSize === 0 || c.uncompressedSize > MAX_CHUNK_SIZE) fail(`uncompressed size ${c.uncompressedSize} is not in 1..16 MiB`, c.uncompressedSize);
    if (!v2) continue;
    const isZran = (c.flags & ChunkInfoV2Flags.ZRAN) !== 0;
    const isBatch = (c.flags & ChunkInfoV2Flags.BATCH) !== 0;
    const encrypted = (c.flags & ChunkInfoV2Flags.ENCRYPTED) !== 0;
    if ((c.flags & ~0x1f) !== 0) fail(`unknown flags 0x${c.flags.toString(16)}`, c.flags);
    if (isZran && !zran) fail('ZRAN chunk in a blob without the ZRAN feature', c.flags);
    if (isBatch && !batch) fail('BATCH chunk in a blob without the BATCH feature', c.flags);
    if (encrypted && (features & BlobFeatures.ENCRYPTED) === 0) fail('encrypted chunk in a blob without the ENCRYPTED feature', c.flags);
    if (!isBatch && !separate && c.compressedSize === 0) fail('compressed size is 0', 0);
    if (!encrypted && !c.compressed && !isBatch && c.compressedSize !== c.uncompressedSize) {
      fail(`uncompressed chunk with compressed size ${c.compressedSize} != ${c.uncompressedSize}`, c.compressedSize);
    }
    if ((c.flags & ChunkInfoV2Flags.HAS_CRC32) !== 0 && !isZran && !isBatch && c.contextOffset === 0) fail('HAS_CRC32 with a zero CRC', 0);
    if (isZran) {
      const z = zranContexts[c.contextIndex];
      if (z === undefined) fail(`zran context ${c.contextIndex} but there are ${zranContexts.length}`, c.contextIndex);
      if (c.contextOffset + c.uncompressedSize > z!.outLen) {
        fail(`zran slice [${c.contextOffset}, +${c.uncompressedSize}) exceeds context ${c.contextIndex}'s ${z!.outLen} inflated bytes`, c.contextOffset);
      }
    } else if (isBatch) {
      const b = batchContexts[c.contextIndex];
      if (b === undefined) fail(`batch ${c.contextIndex} but there are ${batchContexts.length}`, c.contextIndex);
      if (c.contextOffset + c.uncompressedSize > b!.uncompressedBatchSize) {
        fail(`batch slice [${c.contextOffset}, +${c.uncompressedSize}) exceeds batch ${c.contextIndex}'s ${b!.uncompressedBatchSize} bytes`, c.contextOffset);
      }
    }
  }
  return { header, features, chunks, zranContexts, dictionaryTable, batchContexts, ciData };
}

/**
 * Checks a parsed blob meta against the blob table entry that references it (as nydusd does:
 * entries, CI compressor, offset and sizes), plus chunk extents against the blob's sizes.
 */
export function checkBlobMetaAgainstEntry(meta: BlobMeta, entry: BlobEntry, label: string): void {
  const h = meta.header;
  const mismatch = (field: string, got: unknown, want: unknown): never => {
    throw new FormatError(`blob_meta_header.${field}`, `${label}: header says ${String(got)}, blob table says ${String(want)}`, { value: got });
  };
  if (h.ciEntries !== entry.chunkCount) mismatch('s_ci_entries', h.ciEntries, entry.chunkCount);
  if (h.ciCompressor !== entry.ciCompressor) mismatch('s_ci_compressor', h.ciCompressor, entry.ciCompressor);
  if (h.ciOffset !== entry.ciOffset) mismatch('s_ci_offset', h.ciOffset, entry.ciOffset);
  if (h.ciCompressedSize !== entry.ciCompressedSize) mismatch('s_ci_compressed_size', h.ciCompressedSize, entry.ciCompressedSize);
  if (h.ciUncompressedSize !== entry.ciUncompressedSize) mismatch('s_ci_uncompressed_size', h.ciUncompressedSize, entry.ciUncompressedSize);
  if ((h.features & FORMAT_FEATURES) !== (entry.features & FORMAT_FEATURES)) {
    mismatch('s_features', `0x${(h.features & FORMAT_FEATURES).toString(16)}`, `0x${(entry.features & FORMAT_FEATURES).toString(16)}`);
  }
  const zran = (entry.features & BlobFeatures.ZRAN) !== 0;
  const separate = (entry.features & BlobFeatures.SEPARATE) !== 0;
  // Chunk data ends where the CI section (and the image.blob tar header before it) begins,
  // except for ZRAN blobs (offsets into the original .tar.gz) and SEPARATE ones.
  const dataEnd = zran ? entry.compressedSize : separate ? Infinity : entry.ciOffset - ((entry.features & BlobFeatures.HAS_TAR_HEADER) !== 0 ? TAR_HEADER_SIZE : 0);
  meta.chunks.forEach((c, i) => {
    const fail = (msg: string, value: unknown): never => {
      throw new FormatError(`blob_meta.chunk_info[${i}]`, `${label}: ${msg}`, { value });
    };
    if (c.uncompressedSize > entry.chunkSize) fail(`uncompressed size ${c.uncompressedSize} exceeds the chunk size ${entry.chunkSize}`, c.uncompressedSize);
    if (c.uncompressedOffset + c.uncompressedSize > entry.uncompressedSize) {
      fail(`uncompressed range [${c.uncompressedOffset}, +${c.uncompressedSize}) exceeds the blob's ${entry.uncompressedSize} bytes`, c.uncompressedOffset);
    }
    if (c.compressedOffset + c.compressedSize > dataEnd) {
      fail(`compressed range [${c.compressedOffset}, +${c.compressedSize}) exceeds the blob's chunk data (${dataEnd} bytes)`, c.compressedOffset);
    }
  });
  if (zran) {
    meta.zranContexts.forEach((z, i) => {
      if (z.inOffset + z.inLen > entry.compressedSize) {
        throw new FormatError(`zran_context[${i}].in_offset`, `${label}: input [${z.inOffset}, +${z.inLen}) exceeds the ${entry.compressedSize}-byte gzip blob`, { value: z.inOffset });
      }
    });
  }
}
