import { FormatError, UnsupportedError } from '@nydus-ts/core';
import { gunzipSync } from 'node:zlib';
import binding from 'zstd-napi/binding.js';
import { decompressChunk } from '../compression.js';
import type { CompressionName } from '../layout/constants.js';

let dctx: InstanceType<typeof binding.DCtx> | undefined;

/**
 * Decompresses untrusted data that must expand to exactly `expectedSize` bytes. Unlike a plain
 * decompress call, the output buffer is sized by the caller's expectation and never by a size
 * the (possibly corrupted) input claims, so a mutated frame header cannot trigger a huge
 * allocation. Every failure is a FormatError naming `what`.
 */
export function decompressExact(algo: CompressionName, data: Uint8Array, expectedSize: number, what: string): Uint8Array {
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
        // A frame that declares more content than expected is rejected before decoding.
        const declared = binding.getFrameContentSize(data);
        if (declared !== null && declared > expectedSize) {
          throw new FormatError(what, `zstd frame declares ${declared} bytes, expected ${expectedSize}`, { value: declared });
        }
        dctx ??= new binding.DCtx();
        const dst = Buffer.allocUnsafe(expectedSize);
        const n = dctx.decompress(dst, data);
        out = dst.subarray(0, n);
        break;
      }
      case 'lz4_block':
        // The size prefix handed to lz4 is `expectedSize`, so its output is bounded by it.
        out = decompressChunk('lz4_block', data, expectedSize);
        break;
      case 'gzip':
        out = gunzipSync(data, { maxOutputLength: Math.max(1, expectedSize) });
        break;
      default:
        throw new UnsupportedError(`${what}: unsupported compression algorithm ${String(algo)}`);
    }
  } catch (err) {
    if (err instanceof UnsupportedError || err instanceof FormatError) throw err;
    // A fresh context after a failure: a native context left mid-frame must not leak state.
    if (algo === 'zstd') dctx = undefined;
    const message = err instanceof Error ? err.message : String(err);
    throw new FormatError(what, `${algo} decompression failed: ${message}`, { cause: err });
  }
  if (out.byteLength !== expectedSize) {
    throw new FormatError(what, `${algo} data decompressed to ${out.byteLength} bytes, expected ${expectedSize}`, { value: out.byteLength });
  }
  return out;
}
