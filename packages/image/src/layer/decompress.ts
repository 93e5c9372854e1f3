import { FormatError, InvalidArgumentError, throwIfAborted } from '@nydus-ts/core';
import { GzipInflater, ZstdDecompressor } from '@nydus-ts/native';
import type { GzipStep } from '@nydus-ts/native';

/** Compression of a layer stream, as told by its first bytes. */
export type LayerCompression = 'gzip' | 'zstd' | 'none';

export interface DecompressStreamOptions {
  signal?: AbortSignal;
  /** Called once with the detected compression, before the first output chunk. */
  onDetect?: (compression: LayerCompression) => void;
  /**
   * Gzip output goes into this many buffers used in turn (at least 3), instead of a new buffer
   * per output chunk: far less garbage for consumers that are done with a chunk by the time they
   * have asked for two more (the tar reader and the builder are). Default: fresh buffers.
   */
  reuseOutputBuffers?: number;
}

const GZIP_MAGIC = [0x1f, 0x8b] as const;
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd] as const;
/** Bytes 1..3 of a zstd skippable frame (magic 0x184D2A50..0x184D2A5F, little-endian). */
const ZSTD_SKIPPABLE_MAGIC = [0x2a, 0x4d, 0x18] as const;
/** Bytes `detectCompression` needs (a skippable frame's magic and size field). */
export const SNIFF_LENGTH = 8;

/**
 * Sniffs the compression from the first bytes: gzip (`1f 8b`), zstd (`28 b5 2f fd`, or a
 * skippable frame `5? 2a 4d 18` and its 4-byte size, as containerd recognises it), else none.
 * Needs up to 8 bytes; shorter input can only be 'none' (or a truncated stream).
 */
export function detectCompression(head: Uint8Array): LayerCompression {
  if (head.length >= 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1]) return 'gzip';
  if (head.length >= 4 && ZSTD_MAGIC.every((b, i) => head[i] === b)) return 'zstd';
  if (head.length >= SNIFF_LENGTH && (head[0]! & 0xf0) === 0x50 && ZSTD_SKIPPABLE_MAGIC.every((b, i) => head[i + 1] === b)) return 'zstd';
  return 'none';
}

/**
 * Decompresses a layer stream whatever its compression: gzip (several concatenated members
 * are one stream, as `bgzip` and parallel gzip writers produce), zstd (several frames too) or
 * plain, which passes through untouched. Backpressure is kept end to end: the source is read
 * only as fast as the output is consumed. Corrupt or truncated compressed input fails with a
 * FormatError (`layer.gzip` / `layer.zstd`) carrying the decoder's error as `cause`.
 */
export async function* decompressStream(
  source: AsyncIterable<Uint8Array>,
  options: DecompressStreamOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const iterator = source[Symbol.asyncIterator]();
  // Collect at least 8 bytes (or everything, if shorter) to sniff the magic.
  const head: Uint8Array[] = [];
  let headLength = 0;
  let ended = false;
  try {
    while (headLength < SNIFF_LENGTH) {
      const r = await iterator.next();
      if (r.done) {
        ended = true;
        break;
      }
      if (r.value.length === 0) continue;
      head.push(r.value);
      headLength += r.value.length;
    }
  } catch (err) {
    await iterator.return?.();
    throw err;
  }
  const first = head.length === 1 ? head[0]! : Buffer.concat(head);
  const compression = detectCompression(first.subarray(0, SNIFF_LENGTH));
  options.onDetect?.(compression);

  // The source again, with the sniffed bytes put back in front. Its own failures are passed
  // on as they are (a network error is not a corrupt stream).
  async function* rest(): AsyncGenerator<Uint8Array, void, undefined> {
    for (const chunk of head) yield chunk;
    if (ended) return;
    for (;;) {
      const r = await iterator.next();
      if (r.done) return;
      yield r.value;
    }
  }

  if (compression === 'none') {
    try {
      yield* rest();
    } finally {
      await iterator.return?.();
    }
    return;
  }

  if (compression === 'gzip') {
    try {
      yield* inflateGzip(rest(), options.signal, options.reuseOutputBuffers);
    } finally {
      await iterator.return?.();
    }
    return;
  }

  try {
    yield* decompressZstd(rest(), options.signal);
  } finally {
    await iterator.return?.();
  }
}

/** Output buffer of one inflate or zstd step. */
const INFLATE_OUTPUT = 512 << 10;

/**
 * Decompresses a zstd stream with the system libzstd (the library that compresses our chunks),
 * one step at a time on this thread: any number of frames in a row, skippable frames skipped.
 * The stream must end right after a frame; anything that is not a frame is an error.
 */
async function* decompressZstd(source: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array, void, undefined> {
  const what = 'layer.zstd';
  const decompressor = new ZstdDecompressor(what);
  let atFrameEnd = false;
  // Each step writes after what earlier steps wrote (the consumer may keep what it was given),
  // into a new buffer once less than a quarter of this one is left.
  let output = Buffer.allocUnsafe(INFLATE_OUTPUT);
  let used = 0;
  const step = (input: Uint8Array): { consumed: number; produced: Uint8Array; status: string } => {
    if (INFLATE_OUTPUT - used < INFLATE_OUTPUT / 4) {
      output = Buffer.allocUnsafe(INFLATE_OUTPUT);
      used = 0;
    }
    const r = decompressor.step(input, output.subarray(used));
    const produced = output.subarray(used, used + r.produced);
    used += r.produced;
    return { consumed: r.consumed, produced, status: r.status };
  };
  for await (let input of source) {
    while (input.length > 0) {
      throwIfAborted(signal);
      const r = step(input);
      if (r.consumed === 0 && r.produced.length === 0 && r.status === 'need-input') throw new FormatError(what, 'zstd decoder made no progress');
      input = input.subarray(r.consumed);
      atFrameEnd = r.status === 'frame-end';
      if (r.produced.length > 0) yield r.produced;
    }
  }
  // Output still held in the decoder, or a frame cut short.
  for (;;) {
    const r = step(new Uint8Array(0));
    if (r.produced.length > 0) yield r.produced;
    if (r.status === 'frame-end') atFrameEnd = true;
    if (r.status !== 'output-full') break;
  }
  if (!atFrameEnd) throw new FormatError(what, 'truncated zstd stream: unexpected end of data');
}

/** Inputs shorter than this are inflated inline. */
const SMALL_INPUT = 16 << 10;

/**
 * Gunzips a stream with the native ISA-L inflater, one step on the libuv thread pool ahead of
 * the consumer: while the caller works on one output buffer, the next is being inflated. Several
 * members in a row are one stream; zero bytes after the last member (block padding) are ignored,
 * anything else after it is an error, as is a stream that ends inside a member.
 */
async function* inflateGzip(source: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined, ringSize = 0): AsyncGenerator<Uint8Array, void, undefined> {
  // One buffer is being filled while the consumer holds the last one yielded: a ring needs 3.
  if (ringSize !== 0 && (!Number.isInteger(ringSize) || ringSize < 3)) throw new InvalidArgumentError(`reuseOutputBuffers must be an integer ≥ 3, got ${ringSize}`);
  const ring: Buffer[] = [];
  let turn = 0;
  const what = 'layer.gzip';
  const inflater = new GzipInflater(what);
  const it = source[Symbol.asyncIterator]();
  let input: Uint8Array = new Uint8Array(0);
  let sourceEnded = false;
  let atMemberEnd = false;
  let inPadding = false;
  let members = 0;
  let pending: { step: Promise<GzipStep>; output: Buffer } | undefined;

  /** More input appended to what is left; false at the end of the source. */
  const pull = async (): Promise<boolean> => {
    if (sourceEnded) return false;
    const r = await it.next();
    if (r.done) {
      sourceEnded = true;
      return false;
    }
    input = input.length === 0 ? r.value : Buffer.concat([input, r.value]);
    return true;
  };
  const nextOutput = (): Buffer => {
    if (ringSize === 0) return Buffer.allocUnsafe(INFLATE_OUTPUT);
    const i = turn++ % ringSize;
    return (ring[i] ??= Buffer.allocUnsafe(INFLATE_OUTPUT));
  };
  const start = (): void => {
    const output = nextOutput();
    // A thread-pool round trip costs more than inflating a small input here.
    const step = input.length < SMALL_INPUT ? Promise.resolve(inflater.step(input, output)) : inflater.stepAsync(input, output);
    pending = { step, output };
  };

  try {
    for (;;) {
      throwIfAborted(signal);
      if (!pending) {
        if (atMemberEnd) {
          const follows = await whatFollowsGzipMember(() => input, pull, inPadding, members, what);
          if (follows === 'end') return;
          if (follows === 'padding') {
            inPadding = true;
            input = new Uint8Array(0);
            continue;
          }
          inflater.nextMember();
          atMemberEnd = false;
        }
        if (input.length === 0 && !(await pull())) throw new FormatError(what, 'truncated gzip stream: unexpected end of data');
        start();
      }
      const { step, output } = pending!;
      const r = await step;
      pending = undefined;
      input = input.subarray(r.consumed);
      if (r.status === 'member-end') {
        atMemberEnd = true;
        members++;
      } else if (r.status === 'output-full') {
        start(); // inflate the next buffer while the consumer works on this one
      } else if (input.length > 0) {
        // The inflater left input it could not use yet (a split header): add more first.
        if (r.consumed === 0 && r.produced === 0 && !(await pull())) throw new FormatError(what, 'truncated gzip stream: unexpected end of data');
        start();
      }
      if (r.produced > 0) yield output.subarray(0, r.produced);
    }
  } finally {
    // A step still running owns its buffers; let it finish before the source goes away.
    if (pending) await pending.step.catch(() => undefined);
    await it.return?.();
  }
}

/**
 * What follows a finished gzip member: the end of the source, zero padding (all of what is left
 * must be zeros), or another member (its magic checked). `pull` appends the source's next piece to
 * the input that `input()` returns and answers false at its end.
 */
export async function whatFollowsGzipMember(
  input: () => Uint8Array,
  pull: () => Promise<boolean>,
  inPadding: boolean,
  members: number,
  what: string,
): Promise<'end' | 'padding' | 'member'> {
  if (input().length === 0 && !(await pull())) return 'end';
  if (inPadding || input()[0] === 0) {
    if (input().some((b) => b !== 0)) throw new FormatError(what, `unexpected data after the end of the gzip stream (member ${members})`);
    return 'padding';
  }
  if (input().length < 2 && !(await pull())) throw new FormatError(what, 'truncated gzip stream: a new member starts but ends after one byte');
  const head = input();
  if (head[0] !== 0x1f || head[1] !== 0x8b) throw new FormatError(what, `unexpected data after gzip member ${members} (not another gzip member)`);
  return 'member';
}
