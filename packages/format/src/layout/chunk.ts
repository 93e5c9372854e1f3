import { FormatError } from '@nydus-ts/core';
import { LeReader, LeWriter, hexOf } from './bytes.js';
import { CHUNK_ADDRESS_SIZE, CHUNK_INFO_SIZE } from './constants.js';

/** EROFS chunk index as RAFS uses it (spec §1.7), 8 bytes per chunk of a regular file. */
export interface ChunkAddress {
  /** bits 0..15 @0 and bits 16..23 @3 (high byte of the device word): index of the chunk in its blob's CI array */
  ciIndex: number;
  /** low byte @2: blob index (device id − 1) */
  blobIndex: number;
  /** blkaddr @4: uncompressed offset of the chunk in its blob / block size */
  blkaddr: number;
}

export function encodeChunkAddress(a: ChunkAddress, out: Uint8Array, off: number): void {
  new LeWriter(out.subarray(off, off + CHUNK_ADDRESS_SIZE))
    .u16(0, a.ciIndex & 0xffff)
    .u8(2, a.blobIndex + 1)
    .u8(3, (a.ciIndex >>> 16) & 0xff)
    .u32(4, a.blkaddr);
}

export function decodeChunkAddress(bytes: Uint8Array, absOffset: number): ChunkAddress {
  const r = new LeReader(bytes, 'chunk_address', absOffset);
  const device = r.u8(2, 'device_id');
  if (device === 0) throw new FormatError('chunk_address.device_id', 'device id 0 (the bootstrap) holds no chunk data', { offset: absOffset + 2 });
  return { ciIndex: r.u16(0, 'advise') | (r.u8(3, 'ci_index_hi') << 16), blobIndex: device - 1, blkaddr: r.u32(4, 'blkaddr') };
}

/** Chunk info table entry (`RafsV5ChunkInfo`, 80 bytes, spec §1.8). */
export interface ChunkInfo {
  /** block_id @0: digest of the uncompressed data (32 bytes, hex) */ digest: string;
  /** blob_index @32 */ blobIndex: number;
  /** flags @36 (ChunkFlags) */ flags: number;
  /** compressed_size @40 */ compressedSize: number;
  /** uncompressed_size @44 */ uncompressedSize: number;
  /** compressed_offset @48 */ compressedOffset: number;
  /** uncompressed_offset @56 */ uncompressedOffset: number;
  /** file_offset @64 (informational) */ fileOffset: number;
  /** index @72: CI index in the blob */ index: number;
  /** crc32 @76: CRC-32C of the uncompressed data when HAS_CRC32 */ crc32: number;
}

/** Byte offsets of the chunk-info fields (spec §1.8), for readers and writers that work in place. */
export const CHUNK_INFO_FIELD = {
  digest: 0,
  blobIndex: 32,
  flags: 36,
  compressedSize: 40,
  uncompressedSize: 44,
  compressedOffset: 48,
  uncompressedOffset: 56,
  fileOffset: 64,
  index: 72,
  crc32: 76,
} as const;

export function encodeChunkInfo(c: ChunkInfo, out: Uint8Array, off: number): void {
  new LeWriter(out.subarray(off, off + CHUNK_INFO_SIZE))
    .set(CHUNK_INFO_FIELD.digest, Buffer.from(c.digest, 'hex'))
    .u32(CHUNK_INFO_FIELD.blobIndex, c.blobIndex)
    .u32(CHUNK_INFO_FIELD.flags, c.flags)
    .u32(CHUNK_INFO_FIELD.compressedSize, c.compressedSize)
    .u32(CHUNK_INFO_FIELD.uncompressedSize, c.uncompressedSize)
    .u64(CHUNK_INFO_FIELD.compressedOffset, c.compressedOffset)
    .u64(CHUNK_INFO_FIELD.uncompressedOffset, c.uncompressedOffset)
    .u64(CHUNK_INFO_FIELD.fileOffset, c.fileOffset)
    .u32(CHUNK_INFO_FIELD.index, c.index)
    .u32(CHUNK_INFO_FIELD.crc32, c.crc32);
}

export function decodeChunkInfo(bytes: Uint8Array, absOffset: number, i: number): ChunkInfo {
  const r = new LeReader(bytes, `chunk_table[${i}]`, absOffset);
  return {
    digest: hexOf(r.slice(CHUNK_INFO_FIELD.digest, 32, 'block_id')),
    blobIndex: r.u32(CHUNK_INFO_FIELD.blobIndex, 'blob_index'),
    flags: r.u32(CHUNK_INFO_FIELD.flags, 'flags'),
    compressedSize: r.u32(CHUNK_INFO_FIELD.compressedSize, 'compressed_size'),
    uncompressedSize: r.u32(CHUNK_INFO_FIELD.uncompressedSize, 'uncompressed_size'),
    compressedOffset: r.u64(CHUNK_INFO_FIELD.compressedOffset, 'compressed_offset'),
    uncompressedOffset: r.u64(CHUNK_INFO_FIELD.uncompressedOffset, 'uncompressed_offset'),
    fileOffset: r.u64(CHUNK_INFO_FIELD.fileOffset, 'file_offset'),
    index: r.u32(CHUNK_INFO_FIELD.index, 'index'),
    crc32: r.u32(CHUNK_INFO_FIELD.crc32, 'crc32'),
  };
}
