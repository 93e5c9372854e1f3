import { FormatError, NydusError, UnsupportedError } from '@nydus-ts/core';
import { lz4CompressBlockInto, lz4DecompressBlockInto, zstdCompressBatchAsync, zstdCompressInto, zstdDecompressInto, zstdFrameContentSize } from '@nydus-ts/native';
import { gunzipSync } from 'node:zlib';
import type { CompressionName } from './layout/constants.js';
import { encodeSeekTable, type SeekTableFrame } from './layout/zstd-seekable.js';

/** Chunk compressors selectable for new blobs. gzip only appears as the logical compressor of zran blobs. */
export type ChunkCompressor = 'none' | 'lz4_block' | 'zstd';
export const CHUNK_COMPRESSORS: readonly ChunkCompressor[] = ['none', 'lz4_block', 'zstd'];

/** The zstd level of Nydus chunks (spec §3.8). */
const ZSTD_LEVEL = 3;

/**
 * Compresses one chunk: lz4_block is a raw LZ4 block (no frame, no size prefix), zstd one frame
 * at level 3. Returns `data` itself when compression does not make it strictly smaller, which
 * callers store raw (uncompressed) as the format requires. The result never aliases a shared
 * buffer, so callers may hand it on.
 */
export function compressChunk(algo: ChunkCompressor, data: Uint8Array): Uint8Array {
  if (algo === 'none' || data.length < 2) return data;
  const out = Buffer.allocUnsafe(data.length - 1);
  const n = compressChunkInto(algo, data, out, 0);
  return n === 0 ? data : out.subarray(0, n);
}

/**
 * Compresses one chunk into `out` at `at` (which must have `data.length - 1` bytes of room):
 * same bytes as `compressChunk`. Returns the compressed length, or 0 when compression does not
 * make the chunk strictly smaller (the caller then stores it raw) or for 'none'.
 */
export function compressChunkInto(algo: ChunkCompressor, data: Uint8Array, out: Uint8Array, at: number): number {
  if (algo === 'none' || data.length < 2) return 0;
  const room = out.subarray(at, at + data.length - 1);
  return algo === 'lz4_block' ? lz4CompressBlockInto(data, room) : zstdCompressInto(data, room, ZSTD_LEVEL);
}

/** True when `compressBatchAsync` runs off this thread (else it is `compressChunkInto` in a promise). */
export function compressesOffThread(algo: ChunkCompressor): boolean {
  return algo === 'zstd';
}

/**
 * Compresses a batch of chunks, for zstd in one libuv thread-pool task so that chunks compress
 * in parallel with the caller: chunk i is `src[bounds[i] .. bounds[i+1])`, compressed into `out`
 * at the same offset; `results[i]` is its compressed length, 0 when stored raw (as
 * `compressChunkInto` returns: same bytes). Nothing may touch the arrays until the promise settles.
 */
export async function compressBatchAsync(algo: ChunkCompressor, src: Uint8Array, out: Uint8Array, bounds: Uint32Array, results: Int32Array): Promise<void> {
  if (algo === 'zstd') return zstdCompressBatchAsync(src, out, bounds, results, ZSTD_LEVEL);
  for (let i = 0; i + 1 < bounds.length; i++) results[i] = compressChunkInto(algo, src.subarray(bounds[i], bounds[i + 1]), out, bounds[i]!);
}

/** Worst-case size of one zstd frame of `n` bytes (zstd's ZSTD_COMPRESSBOUND). */
function zstdBound(n: number): number {
  return n + (n >>> 8) + (n < 128 << 10 ? ((128 << 10) - n) >>> 11 : 0) + 64;
}

/**
 * Compresses `data` in the zstd seekable format: frame i holds `data[ends[i-1] .. ends[i])`
 * (`ends` increasing, the last one `data.length`), each frame with its content size and XXH64
 * checksum, then the seek table as a skippable frame. The result is one valid zstd input (a
 * one-shot decompressor yields `data`), and each frame can be fetched and checked on its own.
 */
export function compressZstdSeekable(data: Uint8Array, ends: readonly number[], level = ZSTD_LEVEL): Uint8Array {
  const frames: SeekTableFrame[] = [];
  const parts: Uint8Array[] = [];
  let start = 0;
  for (const end of ends) {
    if (!(end > start && end <= data.length)) throw new RangeError(`seekable frame end ${end} is not in (${start}, ${data.length}]`);
    const src = data.subarray(start, end);
    const out = Buffer.allocUnsafe(zstdBound(src.length));
    const n = zstdCompressInto(src, out, level, true);
    if (n === 0) throw new FormatError('zstd', `frame of ${src.length} bytes did not fit its bound`);
    // Readers refuse seekable frames without a checksum: a stale native addon would write them.
    if ((out[4]! & 0x04) === 0) throw new NydusError('INTERNAL', 'zstd frame written without its content checksum (rebuild @nydus-ts/native)');
    parts.push(out.subarray(0, n));
    frames.push({ compressedSize: n, decompressedSize: src.length });
    start = end;
  }
  if (start !== data.length) throw new RangeError(`seekable frames end at ${start}, the data at ${data.length}`);
  parts.push(encodeSeekTable(frames));
  return Buffer.concat(parts);
}

/**
 * Decompresses data that must expand to exactly `expectedSize` bytes. The output buffer is sized
 * by the caller's expectation, never by a size the (possibly corrupted) input claims, so a mutated
 * frame header cannot trigger a huge allocation. Every failure is a FormatError naming `what`.
 * `into` (optional, at least `expectedSize` bytes) receives the output instead of a new buffer
 * (lz4_block and zstd; 'none' returns `data` itself), for callers that reuse buffers.
 */
export function decompressChunk(algo: CompressionName, data: Uint8Array, expectedSize: number, what = 'chunk.data', into?: Uint8Array): Uint8Array {
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
        const declared = zstdFrameContentSize(data, what);
        if (declared !== undefined && declared > expectedSize) {
          throw new FormatError(what, `zstd frame declares ${declared} bytes, expected ${expectedSize}`, { value: declared });
        }
        const dst = outputBuffer(into, expectedSize);
        out = dst.subarray(0, zstdDecompressInto(data, dst, what));
        break;
      }
      case 'lz4_block': {
        const dst = outputBuffer(into, expectedSize);
        out = dst.subarray(0, lz4DecompressBlockInto(data, dst, what));
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
    const message = err instanceof Error ? err.message : String(err);
    throw new FormatError(what, `${algo} decompression failed: ${message}`, { cause: err });
  }
  if (out.byteLength !== expectedSize) {
    throw new FormatError(what, `${algo} data decompressed to ${out.byteLength} bytes, expected ${expectedSize}`, { value: out.byteLength });
  }
  return out;
}

/** `into` (caller-owned, at least `size` bytes: a reused buffer) cut to `size`, or a new buffer. */
function outputBuffer(into: Uint8Array | undefined, size: number): Uint8Array {
  if (into === undefined) return Buffer.allocUnsafe(size);
  if (into.byteLength < size) throw new RangeError(`output buffer of ${into.byteLength} bytes is smaller than ${size}`);
  return into.subarray(0, size);
}
