import { FormatError, InvalidArgumentError } from '@nydus-ts/core';
import { createRequire } from 'node:module';
import { pinForThreadPool } from './thread-pool.js';

interface NativeBinding {
  compressInto(src: Uint8Array, dst: Uint8Array): number;
  decompressInto(src: Uint8Array, dst: Uint8Array): number;
  compressBound(size: number): number;
  crc32c(data: Uint8Array, initial?: number): number;
  liveThreadStates(): number;
  zstdCompressInto(src: Uint8Array, dst: Uint8Array, level: number, checksum?: boolean): number;
  zstdCompressBatchAsync(src: Uint8Array, dst: Uint8Array, bounds: Uint32Array, results: Int32Array, level: number): Promise<void>;
  zstdDecompressInto(src: Uint8Array, dst: Uint8Array): number;
  zstdFrameContentSize(src: Uint8Array): number;
  zstdErrorName(code: number): string;
  zstdDecompressorCreate(): ZstdDecompressorHandle;
  zstdDecompressStep(handle: ZstdDecompressorHandle, input: Uint8Array, output: Uint8Array): StepResult;
  gzipInflaterCreate(): GzipInflaterHandle;
  gzipInflaterReset(handle: GzipInflaterHandle): void;
  gzipInflateStep(handle: GzipInflaterHandle, input: Uint8Array, output: Uint8Array): StepResult;
  gzipInflateStepAsync(handle: GzipInflaterHandle, input: Uint8Array, output: Uint8Array): Promise<StepResult>;
}

declare const inflaterBrand: unique symbol;
type GzipInflaterHandle = { readonly [inflaterBrand]: true };
declare const zstdDecompressorBrand: unique symbol;
type ZstdDecompressorHandle = { readonly [zstdDecompressorBrand]: true };
type StepResult = [consumed: number, produced: number, status: number];

// Built by `node-gyp rebuild` at install time against the system liblz4, libzstd and ISA-L.
const binding = createRequire(import.meta.url)('../build/Release/nydus_native.node') as NativeBinding;

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

function zstdResult(n: number): number {
  if (n < 0) throw new FormatError('zstd', 'compression failed');
  return n;
}

function checkLevel(level: number): void {
  if (!Number.isInteger(level) || level < -7 || level > 22) throw new InvalidArgumentError(`zstd: compression level ${level} out of range`);
}

/**
 * Compresses `src` as one zstd frame (content size in the header; the XXH64 content checksum
 * only with `checksum`) into `dst`, with a compression context of this thread. Returns the
 * frame's length, or 0 when it does not fit in `dst` (size `dst` at `src.length - 1` to learn
 * cheaply that a chunk does not shrink).
 */
export function zstdCompressInto(src: Uint8Array, dst: Uint8Array, level: number, checksum = false): number {
  checkLevel(level);
  return zstdResult(binding.zstdCompressInto(src, dst, level, checksum));
}

/**
 * Compresses a batch of chunks (one frame each) in one thread-pool task, so that small chunks
 * cost one round trip per batch: chunk i is `src[bounds[i] .. bounds[i+1])` and is compressed
 * into `dst` at the same offset with room for one byte less than the chunk; `results[i]` is its
 * frame's length, or 0 when it does not shrink. `src` and `dst` must stay untouched until the
 * promise settles (their ArrayBuffers become untransferable); `bounds` is copied at the call and
 * `results` written when the promise settles, so changing either meanwhile is harmless.
 */
export async function zstdCompressBatchAsync(src: Uint8Array, dst: Uint8Array, bounds: Uint32Array, results: Int32Array, level: number): Promise<void> {
  checkLevel(level);
  pinForThreadPool(src, dst);
  await binding.zstdCompressBatchAsync(src, dst, bounds, results, level);
  for (let i = 0; i < bounds.length - 1; i++) zstdResult(results[i]!);
}

function zstdError(what: string, code: number): FormatError {
  return new FormatError(what, `corrupt zstd data: ${binding.zstdErrorName(code)}`, { value: code });
}

/**
 * Decompresses every zstd frame of `src` (skippable frames are skipped) into `dst`, never
 * writing past it, with a decompression context of this thread (the system libzstd, the same
 * library that compresses). Returns the number of bytes written; corrupt input, or output that
 * would not fit, is a FormatError naming `what`.
 */
export function zstdDecompressInto(src: Uint8Array, dst: Uint8Array, what = 'zstd frame'): number {
  const n = binding.zstdDecompressInto(src, dst);
  if (n < 0) throw zstdError(what, -n);
  return n;
}

/**
 * The content size that the zstd frame at the start of `src` declares, or undefined when its
 * header leaves it out. Not a zstd frame header: a FormatError naming `what`.
 */
export function zstdFrameContentSize(src: Uint8Array, what = 'zstd frame'): number | undefined {
  const n = binding.zstdFrameContentSize(src);
  if (n === -2) throw new FormatError(what, 'not a zstd frame header', { value: src.length });
  return n === -1 ? undefined : n;
}

/** How a zstd decompression step ended. */
export type ZstdStepStatus = 'need-input' | 'output-full' | 'frame-end';

export interface ZstdStep {
  /** Input bytes used. */
  consumed: number;
  /** Output bytes written from the start of the output buffer. */
  produced: number;
  status: ZstdStepStatus;
}

const ZSTD_STEP_STATUS: readonly ZstdStepStatus[] = ['need-input', 'output-full', 'frame-end'];

/**
 * A streaming zstd decompressor (system libzstd). Each step decompresses from `input` into
 * `output` until the input is used up, the output is full, or a frame ends; frames follow one
 * another in one stream (skippable frames are skipped), so a stream may end only right after a
 * 'frame-end'. Corrupt input is a FormatError naming `what`.
 */
export class ZstdDecompressor {
  readonly #handle = binding.zstdDecompressorCreate();

  constructor(private readonly what = 'zstd stream') {}

  step(input: Uint8Array, output: Uint8Array): ZstdStep {
    const [consumed, produced, status] = binding.zstdDecompressStep(this.#handle, input, output);
    if (status < 0) throw zstdError(this.what, -status);
    return { consumed, produced, status: ZSTD_STEP_STATUS[status]! };
  }
}

/** CRC-32C (Castagnoli) of `data`, continuing from `initial` (the CRC of earlier bytes). */
export function crc32c(data: Uint8Array, initial = 0): number {
  return binding.crc32c(data, initial);
}

/**
 * How many per-thread library states (the LZ4 state and zstd contexts each thread makes on first
 * use) this process holds: each is freed when its thread exits, so worker threads that come and
 * go leave none behind. For tests and diagnostics.
 */
export function liveThreadStates(): number {
  return binding.liveThreadStates();
}

/** How a gzip inflate step ended. */
export type GzipStepStatus = 'need-input' | 'output-full' | 'member-end';

export interface GzipStep {
  /** Input bytes used (bytes past a member's end are not counted: they belong to what follows). */
  consumed: number;
  /** Output bytes written from the start of the output buffer. */
  produced: number;
  status: GzipStepStatus;
}

const STEP_STATUS: readonly GzipStepStatus[] = ['need-input', 'output-full', 'member-end'];

// ISA-L's inflate error codes (igzip_lib.h), for messages.
const ISAL_ERRORS: Record<number, string> = {
  [-1]: 'invalid deflate block',
  [-2]: 'invalid deflate symbol',
  [-3]: 'invalid lookback distance',
  [-4]: 'invalid gzip header',
  [-5]: 'unsupported compression method',
  [-6]: 'checksum mismatch',
};

/**
 * A streaming gzip decompressor (ISA-L igzip, several times zlib's speed). Each step inflates
 * from `input` into `output` until the input is used up, the output is full, or a gzip member
 * ends; after 'member-end' call `nextMember()` before feeding the member that follows. Steps run
 * one at a time: `stepAsync` runs on the libuv thread pool (so inflating overlaps with work on
 * this thread) and its buffers must stay untouched until it settles. Corrupt input is a
 * FormatError naming `what`.
 */
export class GzipInflater {
  readonly #handle = binding.gzipInflaterCreate();

  constructor(private readonly what = 'gzip stream') {}

  step(input: Uint8Array, output: Uint8Array): GzipStep {
    return this.#result(binding.gzipInflateStep(this.#handle, input, output));
  }

  async stepAsync(input: Uint8Array, output: Uint8Array): Promise<GzipStep> {
    pinForThreadPool(input, output);
    return this.#result(await binding.gzipInflateStepAsync(this.#handle, input, output));
  }

  /** Starts the next member of a multi-member stream. */
  nextMember(): void {
    binding.gzipInflaterReset(this.#handle);
  }

  #result([consumed, produced, status]: StepResult): GzipStep {
    if (status < 0) throw new FormatError(this.what, `corrupt gzip data: ${ISAL_ERRORS[status] ?? `inflate error ${status}`}`, { value: status });
    return { consumed, produced, status: STEP_STATUS[status]! };
  }
}

export { CheckpointingGunzip, GZIP_WINDOW_SIZE, inflateFromCheckpoint, inflateFromCheckpointAsync } from './zran.js';
export type { CheckpointStep, CheckpointStepStatus, CheckpointingGunzipOptions, GzipCheckpoint, InflateResumePoint } from './zran.js';
