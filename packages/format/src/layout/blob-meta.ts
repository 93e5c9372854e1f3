import { FormatError } from '@nydus-ts/core';
import { LeReader, LeWriter } from './bytes.js';
import { ChunkInfoV2Flags } from './constants.js';

/** One chunk of a blob as its compression-info (CI) array describes it (spec §3.3, §3.4). */
export interface BlobChunkInfo {
  compressedOffset: number;
  compressedSize: number;
  uncompressedOffset: number;
  uncompressedSize: number;
  compressed: boolean;
  /** CI v2 flags byte (ChunkInfoV2Flags); v1 derives COMPRESSED from differing sizes. */
  flags: number;
  /** ZRAN: context index; BATCH: batch index. */
  contextIndex: number;
  /** ZRAN: offset in the context's inflated output; BATCH: offset in the batch buffer; else CRC-32C if HAS_CRC32. */
  contextOffset: number;
}

export const CI_V1_SIZE = 16;
export const CI_V2_SIZE = 24;
const TWO32 = 0x1_0000_0000;

/** CI v1 (16 B): packed offsets with (size − 1) split over two nibble/20-bit fields. */
export function encodeChunkInfoV1(c: BlobChunkInfo, out: Uint8Array, off: number): void {
  writeChunkInfoV1(new DataView(out.buffer, out.byteOffset, out.byteLength), off, c.compressedOffset, c.compressedSize, c.uncompressedOffset, c.uncompressedSize);
}

/** `encodeChunkInfoV1` from its four fields into a DataView (no allocation: the builder's per-chunk path). */
export function writeChunkInfoV1(view: DataView, off: number, compressedOffset: number, compressedSize: number, uncompressedOffset: number, uncompressedSize: number): void {
  if (uncompressedOffset % 4096 !== 0) throw new RangeError(`CI v1 uncompressed offset ${uncompressedOffset} is not 4 KiB aligned`);
  const usz = uncompressedSize - 1;
  const csz = compressedSize - 1;
  const uLo = uncompressedOffset % TWO32;
  const uHi = Math.floor(uncompressedOffset / TWO32);
  const cLo = compressedOffset % TWO32;
  const cHi = Math.floor(compressedOffset / TWO32);
  view.setUint32(off, ((uLo & 0xfffff000) | (((usz >>> 20) & 0xf) << 8)) >>> 0, true);
  view.setUint32(off + 4, ((uHi & 0xfff) | ((usz & 0xfffff) << 12)) >>> 0, true);
  view.setUint32(off + 8, cLo >>> 0, true);
  view.setUint32(off + 12, ((cHi & 0xff) | (((csz >>> 20) & 0xf) << 8) | ((csz & 0xfffff) << 12)) >>> 0, true);
}

export function decodeChunkInfoV1(bytes: Uint8Array, off: number, absOffset: number): BlobChunkInfo {
  const r = new LeReader(bytes.subarray(off, off + CI_V1_SIZE), 'chunk_info_v1', absOffset);
  const w0 = r.u64Parts(0, 'w0');
  const w1 = r.u64Parts(8, 'w1');
  const uncompressedSize = (((w0.lo >>> 8) & 0xf) << 20 | ((w0.hi >>> 12) & 0xfffff)) + 1;
  const compressedSize = (((w1.hi >>> 8) & 0xf) << 20 | ((w1.hi >>> 12) & 0xfffff)) + 1;
  return {
    uncompressedOffset: (w0.hi & 0xfff) * TWO32 + ((w0.lo & 0xfffff000) >>> 0),
    uncompressedSize,
    compressedOffset: (w1.hi & 0xff) * TWO32 + w1.lo,
    compressedSize,
    compressed: compressedSize !== uncompressedSize,
    flags: compressedSize !== uncompressedSize ? ChunkInfoV2Flags.COMPRESSED : 0,
    contextIndex: 0,
    contextOffset: 0,
  };
}

/** CI v2 (24 B). */
export function encodeChunkInfoV2(c: BlobChunkInfo, out: Uint8Array, off: number): void {
  if (c.uncompressedOffset % 4096 !== 0) throw new RangeError(`CI v2 uncompressed offset ${c.uncompressedOffset} is not 4 KiB aligned`);
  const flags = (c.flags & ~ChunkInfoV2Flags.COMPRESSED) | (c.compressed ? ChunkInfoV2Flags.COMPRESSED : 0);
  new LeWriter(out.subarray(off, off + CI_V2_SIZE))
    .u64Parts(0, c.uncompressedOffset / 4096, ((c.uncompressedSize - 1) & 0xffffff) | (flags << 24))
    .u64Parts(8, c.compressedOffset % TWO32, (Math.floor(c.compressedOffset / TWO32) & 0xff) | ((c.compressedSize & 0xffffff) << 8))
    .u64Parts(16, c.contextOffset, c.contextIndex);
}

export function decodeChunkInfoV2(bytes: Uint8Array, off: number, absOffset: number): BlobChunkInfo {
  const r = new LeReader(bytes.subarray(off, off + CI_V2_SIZE), 'chunk_info_v2', absOffset);
  const w0 = r.u64Parts(0, 'w0');
  const w1 = r.u64Parts(8, 'w1');
  const w2 = r.u64Parts(16, 'w2');
  const flags = w0.hi >>> 24;
  return {
    uncompressedOffset: w0.lo * 4096,
    uncompressedSize: (w0.hi & 0xffffff) + 1,
    compressedOffset: (w1.hi & 0xff) * TWO32 + w1.lo,
    compressedSize: w1.hi >>> 8,
    compressed: (flags & ChunkInfoV2Flags.COMPRESSED) !== 0,
    flags,
    contextIndex: w2.hi,
    contextOffset: w2.lo,
  };
}

/** `BlobCompressionContextHeader`, 4096 bytes (spec §3.2). */
export interface CompressionContextHeader {
  /** s_magic @0 */ magic: number;
  /** s_features @4 (BlobFeatures) */ features: number;
  /** s_ci_compressor @8 */ ciCompressor: number;
  /** s_ci_entries @12 */ ciEntries: number;
  /** s_ci_offset @16 */ ciOffset: number;
  /** s_ci_compressed_size @24 */ ciCompressedSize: number;
  /** s_ci_uncompressed_size @32 */ ciUncompressedSize: number;
  /** s_ci_zran_offset @40: context table offset inside the uncompressed CI data */ zranOffset: number;
  /** s_ci_zran_size @48 */ zranSize: number;
  /** s_ci_zran_count @56 */ zranCount: number;
  /** s_magic2 @4092 */ magic2: number;
}

export const CCT_HEADER_SIZE = 4096;
export const CCT_MAGIC = 0xb10bb10b;
const CCT = {
  magic: 0,
  features: 4,
  ciCompressor: 8,
  ciEntries: 12,
  ciOffset: 16,
  ciCompressedSize: 24,
  ciUncompressedSize: 32,
  zranOffset: 40,
  zranSize: 48,
  zranCount: 56,
  magic2: 4092,
} as const;

export function encodeCompressionContextHeader(h: Omit<CompressionContextHeader, 'magic' | 'magic2'>): Uint8Array {
  return new LeWriter(CCT_HEADER_SIZE)
    .u32(CCT.magic, CCT_MAGIC)
    .u32(CCT.features, h.features)
    .u32(CCT.ciCompressor, h.ciCompressor)
    .u32(CCT.ciEntries, h.ciEntries)
    .u64(CCT.ciOffset, h.ciOffset)
    .u64(CCT.ciCompressedSize, h.ciCompressedSize)
    .u64(CCT.ciUncompressedSize, h.ciUncompressedSize)
    .u64(CCT.zranOffset, h.zranOffset)
    .u64(CCT.zranSize, h.zranSize)
    .u32(CCT.zranCount, h.zranCount)
    .u32(CCT.magic2, CCT_MAGIC).bytes;
}

export function decodeCompressionContextHeader(bytes: Uint8Array, absOffset: number): CompressionContextHeader {
  const r = new LeReader(bytes, 'blob_meta_header', absOffset);
  const h: CompressionContextHeader = {
    magic: r.u32(CCT.magic, 's_magic'),
    features: r.u32(CCT.features, 's_features'),
    ciCompressor: r.u32(CCT.ciCompressor, 's_ci_compressor'),
    ciEntries: r.u32(CCT.ciEntries, 's_ci_entries'),
    ciOffset: r.u64(CCT.ciOffset, 's_ci_offset'),
    ciCompressedSize: r.u64(CCT.ciCompressedSize, 's_ci_compressed_size'),
    ciUncompressedSize: r.u64(CCT.ciUncompressedSize, 's_ci_uncompressed_size'),
    zranOffset: r.u64(CCT.zranOffset, 's_ci_zran_offset'),
    zranSize: r.u64(CCT.zranSize, 's_ci_zran_size'),
    zranCount: r.u32(CCT.zranCount, 's_ci_zran_count'),
    magic2: r.u32(CCT.magic2, 's_magic2'),
  };
  if (h.magic !== CCT_MAGIC) throw new FormatError('blob_meta_header.s_magic', `bad magic 0x${h.magic.toString(16)}`, { offset: absOffset, value: h.magic });
  if (h.magic2 !== CCT_MAGIC) throw new FormatError('blob_meta_header.s_magic2', `bad magic 0x${h.magic2.toString(16)}`, { offset: absOffset + CCT.magic2, value: h.magic2 });
  return h;
}

/** `ZranInflateContext`, 40 bytes packed (spec §3.5). */
export interface ZranContext {
  /** in_offset @0 */ inOffset: number;
  /** out_offset @8 */ outOffset: number;
  /** dict_offset @16 */ dictOffset: number;
  /** in_len @24 */ inLen: number;
  /** out_len @28 */ outLen: number;
  /** dict_size @32 */ dictSize: number;
  /** ctx_byte @36 */ ctxByte: number;
  /** ctx_bits @37 */ ctxBits: number;
}

export const ZRAN_CONTEXT_SIZE = 40;
const ZRAN = { inOffset: 0, outOffset: 8, dictOffset: 16, inLen: 24, outLen: 28, dictSize: 32, ctxByte: 36, ctxBits: 37 } as const;

export function encodeZranContext(z: ZranContext, out: Uint8Array, off: number): void {
  new LeWriter(out.subarray(off, off + ZRAN_CONTEXT_SIZE))
    .u64(ZRAN.inOffset, z.inOffset)
    .u64(ZRAN.outOffset, z.outOffset)
    .u64(ZRAN.dictOffset, z.dictOffset)
    .u32(ZRAN.inLen, z.inLen)
    .u32(ZRAN.outLen, z.outLen)
    .u32(ZRAN.dictSize, z.dictSize)
    .u8(ZRAN.ctxByte, z.ctxByte)
    .u8(ZRAN.ctxBits, z.ctxBits);
}

export function decodeZranContext(bytes: Uint8Array, off: number, absOffset: number, index: number): ZranContext {
  const r = new LeReader(bytes.subarray(off, off + ZRAN_CONTEXT_SIZE), `zran_context[${index}]`, absOffset);
  const z: ZranContext = {
    inOffset: r.u64(ZRAN.inOffset, 'in_offset'),
    outOffset: r.u64(ZRAN.outOffset, 'out_offset'),
    dictOffset: r.u64(ZRAN.dictOffset, 'dict_offset'),
    inLen: r.u32(ZRAN.inLen, 'in_len'),
    outLen: r.u32(ZRAN.outLen, 'out_len'),
    dictSize: r.u32(ZRAN.dictSize, 'dict_size'),
    ctxByte: r.u8(ZRAN.ctxByte, 'ctx_byte'),
    ctxBits: r.u8(ZRAN.ctxBits, 'ctx_bits'),
  };
  if (z.dictSize > 32768) throw new FormatError(`zran_context[${index}].dict_size`, `${z.dictSize} exceeds 32 KiB`, { offset: absOffset + ZRAN.dictSize, value: z.dictSize });
  if (z.ctxBits > 7) throw new FormatError(`zran_context[${index}].ctx_bits`, `${z.ctxBits} exceeds 7`, { offset: absOffset + ZRAN.ctxBits, value: z.ctxBits });
  return z;
}

/** `BatchInflateContext`, 40 bytes (spec §3.5): sizes of one batch of small chunks compressed together. */
export interface BatchContext {
  /** compressed_size @0 */ compressedSize: number;
  /** uncompressed_batch_size @4 */ uncompressedBatchSize: number;
}

export const BATCH_CONTEXT_SIZE = 40;

export function encodeBatchContext(b: BatchContext, out: Uint8Array, off: number): void {
  new LeWriter(out.subarray(off, off + BATCH_CONTEXT_SIZE)).u32(0, b.compressedSize).u32(4, b.uncompressedBatchSize);
}

export function decodeBatchContext(bytes: Uint8Array, off: number, absOffset: number, index: number): BatchContext {
  const r = new LeReader(bytes.subarray(off, off + BATCH_CONTEXT_SIZE), `batch_context[${index}]`, absOffset);
  return { compressedSize: r.u32(0, 'compressed_size'), uncompressedBatchSize: r.u32(4, 'uncompressed_batch_size') };
}
