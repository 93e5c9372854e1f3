import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { DigestMismatchError, NydusError, parseDigest } from '@nydus-ts/core';
import type { Digest } from '@nydus-ts/core';

/**
 * A pass-through that hashes what flows and errors at the end if the digest or size differ;
 * the last chunk is held back until the check passes.
 */
export class VerifyStream extends Transform {
  readonly #hash;
  readonly #digest: Digest;
  readonly #size: number | undefined;
  readonly #what: string;
  #seen = 0;
  #held: Buffer | undefined;

  readonly #onBytes: ((n: number) => void) | undefined;

  constructor(digest: Digest, size: number | undefined, what: string, onBytes?: (n: number) => void) {
    super({ highWaterMark: 256 * 1024 });
    this.#hash = createHash(parseDigest(digest).algorithm);
    this.#digest = digest;
    this.#size = size;
    this.#what = what;
    this.#onBytes = onBytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    this.#seen += chunk.length;
    if (this.#size !== undefined && this.#seen > this.#size) {
      cb(new NydusError('DATA_LOSS', `${this.#what}: more than the expected ${this.#size} bytes`));
      return;
    }
    const held = this.#held;
    this.#held = chunk;
    if (held) this.#onBytes?.(held.length);
    cb(null, held);
  }

  override _flush(cb: TransformCallback): void {
    if (this.#size !== undefined && this.#seen !== this.#size) {
      cb(new NydusError('DATA_LOSS', `${this.#what}: ${this.#seen} bytes, expected ${this.#size}`));
      return;
    }
    const actual = `${parseDigest(this.#digest).algorithm}:${this.#hash.digest('hex')}`;
    if (actual !== this.#digest) {
      cb(new DigestMismatchError(this.#what, this.#digest, actual));
      return;
    }
    if (this.#held) this.#onBytes?.(this.#held.length);
    cb(null, this.#held);
  }
}
