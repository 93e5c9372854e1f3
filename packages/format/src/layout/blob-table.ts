import { FormatError } from '@nydus-ts/core';
import { LeReader, LeWriter, hexOf, isAllZero } from './bytes.js';
import { BLOB_ENTRY_SIZE, BLOB_FEATURES_RESERVED_INCOMPAT, BlobFeatures, DEVICE_SLOT_SIZE, compressionNameOf, digestNameOf, isPowerOfTwo, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from './constants.js';

/** Device table slot, 128 bytes each from absolute offset 1408 (spec §1.4). */
export interface DeviceSlot {
  /** blob_id @0 (64 bytes, ASCII, zero padded) */ blobId: string;
  /** blocks @64: uncompressed_size / block size */ blocks: number;
  /** mapped_blkaddr @68: flat address of the blob in blocks */ mappedBlkaddr: number;
}

const SLOT = { blobId: 0, blocks: 64, mappedBlkaddr: 68 } as const;

export function decodeDeviceSlot(bytes: Uint8Array, absOffset: number, index: number): DeviceSlot {
  const r = new LeReader(bytes, `device_slot[${index}]`, absOffset);
  const rawId = r.slice(SLOT.blobId, 64, 'blob_id');
  return {
    blobId: decodeBlobId(rawId, `device_slot[${index}].blob_id`, absOffset),
    blocks: r.u32(SLOT.blocks, 'blocks'),
    mappedBlkaddr: r.u32(SLOT.mappedBlkaddr, 'mapped_blkaddr'),
  };
}

export function encodeDeviceSlot(slot: DeviceSlot): Uint8Array {
  return new LeWriter(DEVICE_SLOT_SIZE).cstring(SLOT.blobId, 64, slot.blobId).u32(SLOT.blocks, slot.blocks).u32(SLOT.mappedBlkaddr, slot.mappedBlkaddr).bytes;
}

function decodeBlobId(raw: Uint8Array, field: string, offset: number): string {
  const end = raw.indexOf(0);
  const bytes = raw.subarray(0, end === -1 ? raw.length : end);
  if (end !== -1 && !isAllZero(raw.subarray(end))) {
    throw new FormatError(field, 'garbage after the NUL terminator', { offset });
  }
  const id = Buffer.from(bytes).toString('utf8');
  if (Buffer.byteLength(id) !== bytes.length || id.includes('\ufffd')) throw new FormatError(field, 'blob id is not valid UTF-8', { offset });
  return id;
}

/** Blob table entry (`RafsV6Blob`), 256 bytes each at `s_blob_table_offset` (spec §1.5). */
export interface BlobEntry {
  /** blob_id @0 (64 bytes) */ blobId: string;
  /** blob_index @64 */ blobIndex: number;
  /** chunk_size @68 */ chunkSize: number;
  /** chunk_count @72 */ chunkCount: number;
  /** compression_algo @76: 0 none, 1 lz4_block, 2 gzip, 3 zstd */ compressionAlgo: number;
  /** digest_algo @80: 0 blake3, 1 sha256 */ digestAlgo: number;
  /** features @84 (BlobFeatures) */ features: number;
  /** compressed_size @88 */ compressedSize: number;
  /** uncompressed_size @96 */ uncompressedSize: number;
  /** blob_toc_size @104 */ tocSize: number;
  /** ci_compressor @108 */ ciCompressor: number;
  /** ci_offset @112 */ ciOffset: number;
  /** ci_compressed_size @120 */ ciCompressedSize: number;
  /** ci_uncompressed_size @128 */ ciUncompressedSize: number;
  /** blob_toc_digest @136 (32 bytes, hex; zero when unknown) */ tocDigest: string;
  /** blob_meta_digest @168 (32 bytes, hex) */ metaDigest: string;
  /** blob_meta_size @200 */ metaSize: number;
  /** cipher_iv @208 (8 bytes) */ cipherIv: Uint8Array;
  /** cipher_algo @216 */ cipherAlgo: number;
}

const BLOB = {
  blobId: 0,
  blobIndex: 64,
  chunkSize: 68,
  chunkCount: 72,
  compressionAlgo: 76,
  digestAlgo: 80,
  features: 84,
  compressedSize: 88,
  uncompressedSize: 96,
  tocSize: 104,
  ciCompressor: 108,
  ciOffset: 112,
  ciCompressedSize: 120,
  ciUncompressedSize: 128,
  tocDigest: 136,
  metaDigest: 168,
  metaSize: 200,
  cipherIv: 208,
  cipherAlgo: 216,
} as const;

export const ZERO_DIGEST_HEX = '0'.repeat(64);

export function decodeBlobEntry(bytes: Uint8Array, absOffset: number, index: number): BlobEntry {
  const r = new LeReader(bytes, `blob_table[${index}]`, absOffset);
  return {
    blobId: decodeBlobId(r.slice(BLOB.blobId, 64, 'blob_id'), `blob_table[${index}].blob_id`, absOffset),
    blobIndex: r.u32(BLOB.blobIndex, 'blob_index'),
    chunkSize: r.u32(BLOB.chunkSize, 'chunk_size'),
    chunkCount: r.u32(BLOB.chunkCount, 'chunk_count'),
    compressionAlgo: r.u32(BLOB.compressionAlgo, 'compression_algo'),
    digestAlgo: r.u32(BLOB.digestAlgo, 'digest_algo'),
    features: r.u32(BLOB.features, 'features'),
    compressedSize: r.u64(BLOB.compressedSize, 'compressed_size'),
    uncompressedSize: r.u64(BLOB.uncompressedSize, 'uncompressed_size'),
    tocSize: r.u32(BLOB.tocSize, 'blob_toc_size'),
    ciCompressor: r.u32(BLOB.ciCompressor, 'ci_compressor'),
    ciOffset: r.u64(BLOB.ciOffset, 'ci_offset'),
    ciCompressedSize: r.u64(BLOB.ciCompressedSize, 'ci_compressed_size'),
    ciUncompressedSize: r.u64(BLOB.ciUncompressedSize, 'ci_uncompressed_size'),
    tocDigest: hexOf(r.slice(BLOB.tocDigest, 32, 'blob_toc_digest')),
    metaDigest: hexOf(r.slice(BLOB.metaDigest, 32, 'blob_meta_digest')),
    metaSize: r.u64(BLOB.metaSize, 'blob_meta_size'),
    cipherIv: r.slice(BLOB.cipherIv, 8, 'cipher_iv').slice(),
    cipherAlgo: r.u32(BLOB.cipherAlgo, 'cipher_algo'),
  };
}

export function encodeBlobEntry(e: BlobEntry): Uint8Array {
  return new LeWriter(BLOB_ENTRY_SIZE)
    .cstring(BLOB.blobId, 64, e.blobId)
    .u32(BLOB.blobIndex, e.blobIndex)
    .u32(BLOB.chunkSize, e.chunkSize)
    .u32(BLOB.chunkCount, e.chunkCount)
    .u32(BLOB.compressionAlgo, e.compressionAlgo)
    .u32(BLOB.digestAlgo, e.digestAlgo)
    .u32(BLOB.features, e.features)
    .u64(BLOB.compressedSize, e.compressedSize)
    .u64(BLOB.uncompressedSize, e.uncompressedSize)
    .u32(BLOB.tocSize, e.tocSize)
    .u32(BLOB.ciCompressor, e.ciCompressor)
    .u64(BLOB.ciOffset, e.ciOffset)
    .u64(BLOB.ciCompressedSize, e.ciCompressedSize)
    .u64(BLOB.ciUncompressedSize, e.ciUncompressedSize)
    .set(BLOB.tocDigest, Buffer.from(e.tocDigest, 'hex'))
    .set(BLOB.metaDigest, Buffer.from(e.metaDigest, 'hex'))
    .u64(BLOB.metaSize, e.metaSize)
    .set(BLOB.cipherIv, e.cipherIv)
    .u32(BLOB.cipherAlgo, e.cipherAlgo).bytes;
}

/** Reader validation of one blob entry (spec §1.5). */
export function validateBlobEntry(e: BlobEntry, index: number, fsChunkSize: number, absOffset: number, tarfsMode = false): void {
  const fail = (field: keyof typeof BLOB, msg: string, value: unknown): never => {
    throw new FormatError(`blob_table[${index}].${field}`, msg, { offset: absOffset + BLOB[field], value });
  };
  if (e.blobIndex !== index) fail('blobIndex', `blob_index ${e.blobIndex} != position ${index}`, e.blobIndex);
  if (!isPowerOfTwo(e.chunkSize) || e.chunkSize < MIN_CHUNK_SIZE || e.chunkSize > MAX_CHUNK_SIZE) {
    fail('chunkSize', `chunk size ${e.chunkSize} is not a power of two in 4 KiB..16 MiB`, e.chunkSize);
  }
  if (e.chunkSize !== fsChunkSize) fail('chunkSize', `chunk size ${e.chunkSize} differs from the superblock's ${fsChunkSize}`, e.chunkSize);
  if (e.chunkCount > 0x1000000) fail('chunkCount', `chunk count ${e.chunkCount} exceeds 2^24`, e.chunkCount);
  if (compressionNameOf(e.compressionAlgo) === undefined) fail('compressionAlgo', `unknown compression algorithm ${e.compressionAlgo}`, e.compressionAlgo);
  if (digestNameOf(e.digestAlgo) === undefined) fail('digestAlgo', `unknown digest algorithm ${e.digestAlgo}`, e.digestAlgo);
  if (compressionNameOf(e.ciCompressor) === undefined) fail('ciCompressor', `unknown CI compressor ${e.ciCompressor}`, e.ciCompressor);
  if ((e.features & BLOB_FEATURES_RESERVED_INCOMPAT) !== 0 || (e.features & BlobFeatures.V5_NO_EXT_BLOB_TABLE) !== 0) {
    fail('features', `unsupported blob feature bits 0x${e.features.toString(16)}`, e.features);
  }
  if (e.uncompressedSize > 2 ** 44) fail('uncompressedSize', `uncompressed size ${e.uncompressedSize} exceeds 2^44`, e.uncompressedSize);
  if (e.compressedSize > 2 ** 40) fail('compressedSize', `compressed size ${e.compressedSize} exceeds 2^40`, e.compressedSize);
  const aligned = (e.features & BlobFeatures.ALIGNED) !== 0;
  if (!tarfsMode && !aligned) fail('features', 'ALIGNED feature is required', e.features);
  if (tarfsMode && aligned) fail('features', 'ALIGNED feature is not allowed in TARFS mode', e.features);
  if (e.cipherAlgo > 1) fail('cipherAlgo', `unsupported cipher algorithm ${e.cipherAlgo}`, e.cipherAlgo);
  if ((e.features & (BlobFeatures.IS_CHUNKDICT_GENERATED | BlobFeatures.TARFS)) !== 0 || e.chunkCount === 0) return;
  const v2 = (e.features & BlobFeatures.CHUNK_INFO_V2) !== 0;
  const extended = (e.features & (BlobFeatures.ZRAN | BlobFeatures.BATCH | BlobFeatures.ENCRYPTED)) !== 0;
  if (extended && !v2) fail('features', 'ZRAN/BATCH/ENCRYPTED require CHUNK_INFO_V2', e.features);
  if (e.ciUncompressedSize === 0) return;
  const want = (v2 ? 24 : 16) * e.chunkCount;
  if (extended ? e.ciUncompressedSize < want : e.ciUncompressedSize !== want) {
    fail('ciUncompressedSize', `CI size ${e.ciUncompressedSize} does not fit ${e.chunkCount} ${v2 ? 'v2' : 'v1'} entries`, e.ciUncompressedSize);
  }
}
