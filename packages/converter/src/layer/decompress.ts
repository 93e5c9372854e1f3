import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { FormatError, isNydusError, throwIfAborted } from '@nydus-ts/core';
import { DecompressStream } from 'zstd-napi';

/** Compression of a layer stream, as told by its first bytes. */
export type LayerCompression = 'gzip' | 'zstd' | 'none';

export interface DecompressStreamOptions {
  signal?: AbortSignal;
  /** Called once with the detected compression, before the first output chunk. */
  onDetect?: (compression: LayerCompression) => void;
}

const GZIP_MAGIC = [0x1f, 0x8b] as const;
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd] as const;

/**
 * Sniffs the compression from the first bytes: gzip (`1f 8b`), zstd (`28 b5 2f fd`), else none.
 * Needs up to 4 bytes; shorter input can only be 'none' (or a truncated stream).
 */
export function detectCompression(head: Uint8Array): LayerCompression {
  if (head.length >= 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1]) return 'gzip';
  if (head.length >= 4 && ZSTD_MAGIC.every((b, i) => head[i] === b)) return 'zstd';
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
  // Collect at least 4 bytes (or everything, if shorter) to sniff the magic.
  const head: Uint8Array[] = [];
  let headLength = 0;
  let ended = false;
  try {
    while (headLength < ZSTD_MAGIC.length) {
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
  const compression = detectCompression(first.subarray(0, ZSTD_MAGIC.length));
  options.onDetect?.(compression);

  // The source again, with the sniffed bytes put back in front. Its own failures are passed
  // on as they are (a network error is not a corrupt stream).
  let sourceError: unknown;
  async function* rest(): AsyncGenerator<Uint8Array, void, undefined> {
    for (const chunk of head) yield chunk;
    if (ended) return;
    for (;;) {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await iterator.next();
      } catch (err) {
        sourceError = err;
        throw err;
      }
      if (r.done) return;
      // (Readable.from injects the decoder's error here with iterator.throw(): not a source error.)
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

  const decoder: Transform = compression === 'gzip' ? createGunzip({ chunkSize: 256 << 10 }) : new DecompressStream();
  const input = Readable.from(rest(), { objectMode: false, highWaterMark: 1 });
  // Failures surface through the decoder's iteration below; the promise only keeps the
  // pipeline's own rejection from going unhandled.
  const done = pipeline(input, decoder, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
  try {
    for await (const chunk of decoder) yield chunk as Buffer;
  } catch (err) {
    throwIfAborted(options.signal);
    if (err === sourceError || isNydusError(err)) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new FormatError(`layer.${compression}`, `corrupt or truncated ${compression} stream: ${message}`, { cause: err });
  } finally {
    if (!decoder.destroyed) decoder.destroy();
    if (!input.destroyed) input.destroy();
    await done;
    await iterator.return?.();
  }
}
