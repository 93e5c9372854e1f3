import { InvalidArgumentError, NydusError, throwIfAborted } from '@nydus-ts/core';

/**
 * Random access to an immutable byte sequence (a bootstrap file, a blob, a registry range).
 * `read` returns exactly `length` bytes or throws; callers never see short reads.
 */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
}

/** Throws InvalidArgumentError unless `[offset, offset + length)` lies inside `[0, size)`. */
export function checkRange(what: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new InvalidArgumentError(`${what}: range [${offset}, +${length}) is outside [0, ${size})`);
  }
}

/** A ByteSource over bytes already in memory (reads are zero-copy views). */
export function bufferSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.byteLength,
    async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
      throwIfAborted(signal);
      checkRange('bufferSource.read', bytes.byteLength, offset, length);
      return bytes.subarray(offset, offset + length);
    },
  };
}

/**
 * Reads `[offset, offset + length)` from a source and insists on getting exactly that many
 * bytes back (a source that returns fewer or more is reported, never silently used).
 */
export async function readExact(source: ByteSource, what: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
  checkRange(what, source.size, offset, length);
  const bytes = await source.read(offset, length, signal);
  if (bytes.byteLength !== length) {
    throw new NydusError('DATA_LOSS', `${what}: source returned ${bytes.byteLength} bytes for a read of ${length} at offset ${offset}`);
  }
  return bytes;
}
