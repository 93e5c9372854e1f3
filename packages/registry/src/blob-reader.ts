import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { CancelledError, DigestMismatchError, parseDigest } from '@nydus-ts/core';
import type { Digest } from '@nydus-ts/core';
import { RegistryProtocolError } from './errors.js';
import { backoffDelay, isRetryableError, sleepWithSignal } from './retry.js';
import type { ResolvedRetryOptions } from './retry.js';

/** An opened HTTP body positioned at `offset`. */
export interface OpenedBody {
  body: Readable;
  /** Bytes at the start of `body` to drop (a server that ignored `Range` and sent from 0). */
  skip: number;
}

export interface ResumableBodyOptions {
  /** Opens the resource from `offset` (a `Range` request when offset > 0). */
  open: (offset: number, signal?: AbortSignal) => Promise<OpenedBody>;
  /** First byte (default 0). */
  start?: number;
  /** Bytes expected in total from `start`; required. */
  length: number;
  /** When set, the whole resource is hashed and checked before its last bytes are released. */
  digest?: Digest;
  /** Describes the resource in errors. */
  what: string;
  retry: ResolvedRetryOptions;
  signal?: AbortSignal;
  highWaterMark?: number;
}

/**
 * A backpressured stream of a remote resource that reopens itself with `Range` from the byte
 * reached after a reset or a short body (giving up after `retry.attempts` tries without
 * progress). With a digest, bytes are hashed as they pass and the final chunk is held back until
 * the digest matches, so a consumer never sees all of a corrupted blob: it sees an error instead.
 */
export function resumableBody(options: ResumableBodyOptions): Readable {
  const start = options.start ?? 0;
  const end = start + options.length;
  const hash = options.digest ? createHash(parseDigest(options.digest).algorithm) : undefined;
  if (options.digest && start !== 0) {
    throw new RegistryProtocolError('GET', options.what, 'digest verification needs the whole blob (start must be 0)', { code: 'INVALID_ARGUMENT' });
  }
  async function* chunks(): AsyncGenerator<Buffer> {
    let offset = start;
    let held: Buffer | undefined;
    let failures = 0;
    while (offset < end) {
      if (options.signal?.aborted) throw new CancelledError('operation cancelled', { cause: options.signal.reason });
      let lastError: unknown;
      const before = offset;
      let opened: OpenedBody | undefined;
      try {
        opened = await options.open(offset, options.signal);
        let skip = opened.skip;
        for await (const raw of opened.body as AsyncIterable<Buffer>) {
          let chunk = raw;
          if (skip > 0) {
            if (chunk.length <= skip) {
              skip -= chunk.length;
              continue;
            }
            chunk = chunk.subarray(skip);
            skip = 0;
          }
          if (offset + chunk.length > end) {
            throw new RegistryProtocolError('GET', options.what, `body longer than the expected ${options.length} bytes`, { code: 'DATA_LOSS' });
          }
          hash?.update(chunk);
          offset += chunk.length;
          if (held) yield held;
          held = chunk;
        }
        if (offset < end) {
          lastError = new RegistryProtocolError('GET', options.what, `body ended after ${offset - start} of ${options.length} bytes`, { retryable: true });
        }
      } catch (err) {
        opened?.body.destroy();
        if (options.signal?.aborted) throw new CancelledError('operation cancelled', { cause: options.signal.reason });
        if (!isRetryableError(err)) throw err;
        lastError = err;
      }
      if (offset >= end) break;
      failures = offset > before ? 1 : failures + 1;
      if (failures >= options.retry.attempts) throw lastError;
      await sleepWithSignal(backoffDelay(options.retry, failures), options.signal);
    }
    if (hash && options.digest) {
      const actual = `${parseDigest(options.digest).algorithm}:${hash.digest('hex')}`;
      if (actual !== options.digest) throw new DigestMismatchError(options.what, options.digest, actual);
    }
    if (held) yield held;
  }
  return Readable.from(chunks(), { objectMode: false, highWaterMark: options.highWaterMark ?? 256 * 1024 });
}
