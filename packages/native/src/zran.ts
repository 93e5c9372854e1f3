import { FormatError, InvalidArgumentError, NydusError } from '@nydus-ts/core';
import { createRequire } from 'node:module';
import { pinForThreadPool } from './thread-pool.js';

interface ZranBinding {
  zranInflaterCreate(): ZranHandle;
  zranInflaterNextMember(handle: ZranHandle): void;
  zranInflaterMessage(handle: ZranHandle): string;
  zranInflateStep(handle: ZranHandle, input: Uint8Array, output: Uint8Array, windows: Uint8Array, maxCheckpoints: number): number[];
  zranInflateStepAsync(handle: ZranHandle, input: Uint8Array, output: Uint8Array, windows: Uint8Array, maxCheckpoints: number): Promise<number[]>;
  zranInflateFrom(input: Uint8Array, bits: number, byte: number, dict: Uint8Array, output: Uint8Array): [number, string];
  zranInflateFromAsync(input: Uint8Array, bits: number, byte: number, dict: Uint8Array, output: Uint8Array): Promise<[number, string]>;
}

declare const zranBrand: unique symbol;
type ZranHandle = { readonly [zranBrand]: true };

const binding = createRequire(import.meta.url)('../build/Release/nydus_native.node') as ZranBinding;

/** Largest deflate window: what a checkpoint keeps to resume inflating. */
export const GZIP_WINDOW_SIZE = 32768;

/**
 * A place in a gzip stream where inflating can resume (a deflate block boundary, or the start of
 * a member's deflate data): spec §3.5's `ZranInflateContext` start.
 */
export interface GzipCheckpoint {
  /** Compressed bytes of the whole stream (all members) consumed at the boundary. */
  inOffset: number;
  /** Inflated bytes of the whole stream produced at the boundary. */
  outOffset: number;
  /** Bits of the byte before `inOffset` that belong to what follows (0..7). */
  bits: number;
  /** That byte (`in[inOffset - 1]`); 0 when `bits` is 0. */
  byte: number;
  /**
   * Size of the window: the inflated bytes before the boundary that later data may refer to,
   * which are the last `windowSize` bytes of the member's output (≤ 32 KiB; 0 at a member's start).
   */
  windowSize: number;
  /**
   * Those bytes, when the gunzip records windows (the default; a view of a buffer owned by this
   * step's result). Without (`windows: false`), the caller cuts them from the output it has.
   */
  window?: Uint8Array;
  /** Index of the gzip member the boundary is in (0 for the first). */
  member: number;
}

/** How a checkpointing step ended. */
export type CheckpointStepStatus = 'need-input' | 'output-full' | 'member-end' | 'checkpoints-full';

export interface CheckpointStep {
  /** Input bytes used (a member's trailer included; nothing past it). */
  consumed: number;
  /** Output bytes written from the start of the output buffer. */
  produced: number;
  status: CheckpointStepStatus;
  /** Block boundaries passed during the step, in stream order. */
  checkpoints: GzipCheckpoint[];
}

const STEP_STATUS: readonly CheckpointStepStatus[] = ['need-input', 'output-full', 'member-end', 'checkpoints-full'];
const ERR_DATA = -1;
const ERR_MEMORY = -2;
const ERR_TRUNCATED = -3;

export interface CheckpointingGunzipOptions {
  /** What the stream is, for error messages. Default 'gzip stream'. */
  what?: string;
  /** A step stops after recording this many checkpoints. Default 64. */
  maxCheckpointsPerStep?: number;
  /**
   * Copy each checkpoint's window out of zlib (default true). A caller that keeps few
   * checkpoints and still has the output (the zran index builder) says false and cuts the
   * windows it needs from the output itself: no 32 KiB copy per block boundary.
   */
  windows?: boolean;
}

/**
 * A gzip decompressor (system zlib) that records a checkpoint at every deflate block boundary,
 * so that a reader can later resume inflating there (`inflateFromCheckpoint`) without the bytes
 * before it. Drive it like `GzipInflater`: each step inflates from `input` into `output` until
 * the input is used up, the output is full, a member ends (call `nextMember()` before feeding
 * what follows) or `maxCheckpointsPerStep` boundaries were passed. Offsets count from the start
 * of the stream across members. Steps run one at a time; `stepAsync` runs on the libuv thread
 * pool and its buffers must stay untouched until it settles. Corrupt input is a FormatError.
 * Each checkpoint carries its window (≤ 32 KiB) unless the option `windows` is false.
 */
export class CheckpointingGunzip {
  readonly #handle = binding.zranInflaterCreate();
  readonly #what: string;
  readonly #maxCheckpoints: number;
  readonly #windows: Buffer;

  constructor(options: CheckpointingGunzipOptions = {}) {
    this.#what = options.what ?? 'gzip stream';
    const max = options.maxCheckpointsPerStep ?? 64;
    if (!Number.isInteger(max) || max < 1 || max > 1024) throw new InvalidArgumentError(`maxCheckpointsPerStep: ${String(max)} is not an integer in 1..1024`);
    if (options.windows !== undefined && typeof options.windows !== 'boolean') throw new InvalidArgumentError('windows: not a boolean');
    this.#maxCheckpoints = max;
    // An empty buffer tells the addon to report window sizes only.
    this.#windows = Buffer.allocUnsafe(options.windows === false ? 0 : max * GZIP_WINDOW_SIZE);
  }

  step(input: Uint8Array, output: Uint8Array): CheckpointStep {
    return this.#result(binding.zranInflateStep(this.#handle, input, output, this.#windows, this.#maxCheckpoints));
  }

  async stepAsync(input: Uint8Array, output: Uint8Array): Promise<CheckpointStep> {
    pinForThreadPool(input, output, this.#windows);
    return this.#result(await binding.zranInflateStepAsync(this.#handle, input, output, this.#windows, this.#maxCheckpoints));
  }

  /** Starts the next member of a multi-member stream (after a 'member-end' step). */
  nextMember(): void {
    binding.zranInflaterNextMember(this.#handle);
  }

  #result(r: number[]): CheckpointStep {
    const status = r[2]!;
    if (status < 0) {
      const message = binding.zranInflaterMessage(this.#handle);
      if (status === ERR_MEMORY) throw new NydusError('RESOURCE_EXHAUSTED', `${this.#what}: zlib is out of memory`);
      if (status === ERR_DATA) throw new FormatError(this.#what, `corrupt gzip data: ${message}`, { value: status });
      throw new NydusError('INTERNAL', `${this.#what}: ${message}`);
    }
    const count = r[3]!;
    const checkpoints: GzipCheckpoint[] = new Array(count);
    const withWindows = this.#windows.length > 0;
    // The step's windows, copied out of the reused slots into one buffer (one allocation per
    // step, not per checkpoint); each checkpoint's window is a view of it.
    let block: Buffer | undefined;
    if (withWindows) {
      let total = 0;
      for (let k = 0; k < count; k++) total += r[4 + 6 * k + 4]!;
      block = Buffer.allocUnsafe(total);
    }
    let at = 0;
    for (let k = 0; k < count; k++) {
      const f = 4 + 6 * k;
      const windowSize = r[f + 4]!;
      const c: GzipCheckpoint = { inOffset: r[f]!, outOffset: r[f + 1]!, bits: r[f + 2]!, byte: r[f + 3]!, windowSize, member: r[f + 5]! };
      if (block) {
        this.#windows.copy(block, at, k * GZIP_WINDOW_SIZE, k * GZIP_WINDOW_SIZE + windowSize);
        c.window = block.subarray(at, at + windowSize);
        at += windowSize;
      }
      checkpoints[k] = c;
    }
    return { consumed: r[0]!, produced: r[1]!, status: STEP_STATUS[status]!, checkpoints };
  }
}

/** Where to resume: a checkpoint's bits, byte and window (spec §3.5 `ctx_bits`, `ctx_byte`, dictionary). */
export interface InflateResumePoint {
  bits: number;
  byte: number;
  window: Uint8Array;
}

function checkResumePoint(at: InflateResumePoint): void {
  if (!Number.isInteger(at.bits) || at.bits < 0 || at.bits > 7) throw new InvalidArgumentError(`inflate checkpoint: bits ${String(at.bits)} is not in 0..7`);
  if (!Number.isInteger(at.byte) || at.byte < 0 || at.byte > 255) throw new InvalidArgumentError(`inflate checkpoint: byte ${String(at.byte)} is not in 0..255`);
  if (!(at.window instanceof Uint8Array) || at.window.length > GZIP_WINDOW_SIZE) throw new InvalidArgumentError('inflate checkpoint: window is not a Uint8Array of at most 32 KiB');
}

function resumeResult([status, message]: [number, string], what: string): void {
  if (status === 0) return;
  if (status === ERR_TRUNCATED) throw new FormatError(what, `gzip data truncated: ${message}`, { value: status });
  if (status === ERR_DATA) throw new FormatError(what, `corrupt gzip data: ${message}`, { value: status });
  if (status === ERR_MEMORY) throw new NydusError('RESOURCE_EXHAUSTED', `${what}: zlib is out of memory`);
  throw new NydusError('INTERNAL', `${what}: ${message}`);
}

/**
 * Fills `output` exactly with the data that follows a checkpoint, inflating `input` (the
 * compressed bytes from the checkpoint's `inOffset` on) as raw deflate primed with its bits and
 * window; a member end on the way is crossed (trailer skipped, next header parsed), as spec
 * §4.4 reads a chunk. Input that ends too soon or is corrupt is a FormatError naming `what`.
 */
export function inflateFromCheckpoint(input: Uint8Array, at: InflateResumePoint, output: Uint8Array, what = 'gzip stream'): void {
  checkResumePoint(at);
  resumeResult(binding.zranInflateFrom(input, at.bits, at.byte, at.window, output), what);
}

/** `inflateFromCheckpoint` on the libuv thread pool; no buffer may be touched until it settles. */
export async function inflateFromCheckpointAsync(input: Uint8Array, at: InflateResumePoint, output: Uint8Array, what = 'gzip stream'): Promise<void> {
  checkResumePoint(at);
  pinForThreadPool(input, at.window, output);
  resumeResult(await binding.zranInflateFromAsync(input, at.bits, at.byte, at.window, output), what);
}
