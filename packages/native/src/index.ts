import { FormatError, InvalidArgumentError } from '@nydus-ts/core';
import { createRequire } from 'node:module';

interface Lz4Binding {
  compressInto(src: Uint8Array, dst: Uint8Array): number;
  decompressInto(src: Uint8Array, dst: Uint8Array): number;
  compressBound(size: number): number;
  crc32c(data: Uint8Array, initial?: number): number;
}

// Built by `node-gyp rebuild` at install time against the system liblz4 (Debian liblz4-dev).
const binding = createRequire(import.meta.url)('../build/Release/nydus_native.node') as Lz4Binding;

/** The largest raw LZ4 block `size` input bytes can compress to. */
export function lz4CompressBound(size: number): number {
  if (!Number.isSafeInteger(size) || size < 0 || size > 0x7e000000) throw new InvalidArgumentError(`lz4: input size ${size} out of range`);
  return binding.compressBound(size);
}

/**
 * Compresses `src` as one raw LZ4 block (no frame, no size prefix; `LZ4_compress_default`
 * level) into `dst`. Returns the compressed length, or 0 when it does not fit in `dst` (size
 * `dst` at `src.length - 1` to learn cheaply that a chunk does not shrink).
 */
export function lz4CompressBlockInto(src: Uint8Array, dst: Uint8Array): number {
  return binding.compressInto(src, dst);
}

/**
 * Decompresses one raw LZ4 block into `dst`, never writing past it. Returns the number of bytes
 * written; corrupt input or output that would not fit is a FormatError naming `what`.
 */
export function lz4DecompressBlockInto(src: Uint8Array, dst: Uint8Array, what = 'lz4 block'): number {
  const n = binding.decompressInto(src, dst);
  if (n < 0) throw new FormatError(what, `corrupt lz4 block or larger than ${dst.length} bytes`, { value: src.length });
  return n;
}

/** CRC-32C (Castagnoli) of `data`, continuing from `initial` (the CRC of earlier bytes). */
export function crc32c(data: Uint8Array, initial = 0): number {
  return binding.crc32c(data, initial);
}
