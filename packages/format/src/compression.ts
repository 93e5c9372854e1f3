import { FormatError, UnsupportedError } from '@nydus-ts/core';
import * as lz4 from 'lz4-napi';
import zstd from 'zstd-napi';
import { gunzipSync } from 'node:zlib';
import type { CompressionName } from './layout/constants.js';

/** Chunk compressors selectable for new blobs. gzip only appears as the logical compressor of zran blobs. */
export type ChunkCompressor = 'none' | 'lz4_block' | 'zstd';
export const CHUNK_COMPRESSORS: readonly ChunkCompressor[] = ['none', 'lz4_block', 'zstd'];

let zstdCompressor: InstanceType<typeof zstd.Compressor> | undefined;
let zstdDecompressor: InstanceType<typeof zstd.Decompressor> | undefined;

/**
 * Compresses one chunk. lz4_block is a raw LZ4 block (no frame, no size prefix); zstd is one
 * frame at level 3. Callers store the raw data instead when the result is not smaller.
 */
export function compressChunk(algo: ChunkCompressor, data: Uint8Array): Uint8Array {
  switch (algo) {
    case 'none':
      return data;
    case 'lz4_block':
      // lz4-napi prepends the uncompressed size as a u32; the RAFS format stores the bare block.
      return lz4.compressSync(Buffer.from(data.buffer, data.byteOffset, data.byteLength)).subarray(4);
    case 'zstd':
      if (!zstdCompressor) {
        zstdCompressor = new zstd.Compressor();
        zstdCompressor.setParameters({ compressionLevel: 3 });
      }
      return zstdCompressor.compress(data);
  }
}

/** Decompresses one chunk, requiring exactly `uncompressedSize` bytes out. */
export function decompressChunk(algo: CompressionName, data: Uint8Array, uncompressedSize: number): Uint8Array {
  let out: Uint8Array;
  try {
    switch (algo) {
      case 'none':
        out = data;
        break;
      case 'lz4_block': {
        const prefixed = Buffer.allocUnsafe(data.length + 4);
        prefixed.writeUInt32LE(uncompressedSize, 0);
        prefixed.set(data, 4);
        out = lz4.uncompressSync(prefixed);
        break;
      }
      case 'zstd':
        zstdDecompressor ??= new zstd.Decompressor();
        out = zstdDecompressor.decompress(data);
        break;
      case 'gzip':
        out = gunzipSync(data);
        break;
      default:
        throw new UnsupportedError(`unsupported compression algorithm ${String(algo)}`);
    }
  } catch (err) {
    if (err instanceof UnsupportedError) throw err;
    throw new FormatError('chunk.data', `${algo} decompression failed: ${(err as Error).message}`, { cause: err });
  }
  if (out.length !== uncompressedSize) {
    throw new FormatError('chunk.data', `${algo} decompressed to ${out.length} bytes, expected ${uncompressedSize}`, { value: out.length });
  }
  return out;
}
