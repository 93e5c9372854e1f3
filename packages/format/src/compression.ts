import { FormatError, UnsupportedError } from '@nydus-ts/core';
import * as lz4 from 'lz4-napi';
import zstd from 'zstd-napi';
import zstdBinding from 'zstd-napi/binding.js';
import { gunzipSync } from 'node:zlib';
import type { CompressionName } from './layout/constants.js';

/** Chunk compressors selectable for new blobs. gzip only appears as the logical compressor of zran blobs. */
export type ChunkCompressor = 'none' | 'lz4_block' | 'zstd';
export const CHUNK_COMPRESSORS: readonly ChunkCompressor[] = ['none', 'lz4_block', 'zstd'];

let zstdCompressor: InstanceType<typeof zstd.Compressor> | undefined;

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
      // NOTE: lz4-napi 2.10's compressSync leaks about the input size of native memory per
      // call: code that compresses many chunks must use compressChunkAsync.
      return lz4.compressSync(Buffer.from(data.buffer, data.byteOffset, data.byteLength)).subarray(4);
    case 'zstd':
      if (!zstdCompressor) {
        zstdCompressor = new zstd.Compressor();
        zstdCompressor.setParameters({ compressionLevel: 3 });
      }
      return zstdCompressor.compress(data);
  }
}

/**
 * Like compressChunk, but lz4_block runs on the libuv thread pool through lz4-napi's async
 * `compress`, which (unlike its compressSync) does not leak native memory. zstd and none are
 * synchronous. `data` must not change until the promise settles.
 */
export async function compressChunkAsync(algo: ChunkCompressor, data: Uint8Array): Promise<Uint8Array> {
  if (algo !== 'lz4_block') return compressChunk(algo, data);
  const out = await lz4.compress(data);
  return out.subarray(4);
}

let zstdContext: InstanceType<typeof zstdBinding.DCtx> | undefined;

/**
 * Decompresses data that must expand to exactly `expectedSize` bytes. The output buffer is sized
 * by the caller's expectation, never by a size the (possibly corrupted) input claims, so a mutated
 * frame header cannot trigger a huge allocation. Every failure is a FormatError naming `what`.
 */
export function decompressChunk(algo: CompressionName, data: Uint8Array, expectedSize: number, what = 'chunk.data'): Uint8Array {
  if (!Number.isSafeInteger(expectedSize) || expectedSize < 0) {
    throw new FormatError(what, `invalid uncompressed size ${expectedSize}`, { value: expectedSize });
  }
  let out: Uint8Array;
  try {
    switch (algo) {
      case 'none':
        out = data;
        break;
      case 'zstd': {
        const declared = zstdBinding.getFrameContentSize(data);
        if (declared !== null && declared > expectedSize) {
          throw new FormatError(what, `zstd frame declares ${declared} bytes, expected ${expectedSize}`, { value: declared });
        }
        zstdContext ??= new zstdBinding.DCtx();
        const dst = Buffer.allocUnsafe(expectedSize);
        out = dst.subarray(0, zstdContext.decompress(dst, data));
        break;
      }
      case 'lz4_block': {
        // lz4-napi reads the output size from a u32 prefix: giving it `expectedSize` bounds the output.
        const prefixed = Buffer.allocUnsafe(data.length + 4);
        prefixed.writeUInt32LE(expectedSize, 0);
        prefixed.set(data, 4);
        out = lz4.uncompressSync(prefixed);
        break;
      }
      case 'gzip':
        out = gunzipSync(data, { maxOutputLength: Math.max(1, expectedSize) });
        break;
      default:
        throw new UnsupportedError(`${what}: unsupported compression algorithm ${String(algo)}`);
    }
  } catch (err) {
    if (err instanceof UnsupportedError || err instanceof FormatError) throw err;
    // A fresh context after a failure: a native context left mid-frame must not leak state.
    if (algo === 'zstd') zstdContext = undefined;
    const message = err instanceof Error ? err.message : String(err);
    throw new FormatError(what, `${algo} decompression failed: ${message}`, { cause: err });
  }
  if (out.byteLength !== expectedSize) {
    throw new FormatError(what, `${algo} data decompressed to ${out.byteLength} bytes, expected ${expectedSize}`, { value: out.byteLength });
  }
  return out;
}
