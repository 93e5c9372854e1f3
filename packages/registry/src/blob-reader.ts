import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { CancelledError, DigestMismatchError, isNydusError, parseDigest } from '@nydus-ts/core';
import type { Digest } from '@nydus-ts/core';
import { RegistryConnectionError, RegistryProtocolError } from './errors.js';
import { RetryBudget, sleepWithSignal } from './retry.js';
import type { ResolvedRetryOptions } from './retry.js';

/** An opened HTTP body positioned at `offset`. */
export interface OpenedBody {
  body: Readable;
  /** Bytes at the start of `body` to drop (a server that ignored `Range` and sent from 0). */
  skip: number;
  /** The URL that answered (redacted), for errors. */
  url?: string;
}

export interface ResumableBodyOptions {
  /** Opens the resource from `offset` (a `Range` request when offset > 0), its retries drawn from `budget`. */
  open: (offset: number, signal: AbortSignal | undefined, budget: RetryBudget) => Promise<OpenedBody>;
  /** First byte (default 0). */
  start?: number;
  /** Bytes expected in total from `start`; required. */
  length: number;
  /** When set, the whole resource is hashed and checked before its last bytes are released. */
  digest?: Digest;
  /** Describes the operation and resource in errors, e.g. `fetching blob sha256:… from host/repo`. */
  what: string;
  retry: ResolvedRetryOptions;
  /** Tries shared with the rest of the operation (default: a budget of its own from `retry`). */
  budget?: RetryBudget;
  signal?: AbortSignal;
  highWaterMark?: number;
  /** Called with the byte count of every chunk handed on (progress). */
  onBytes?: (n: number) => void;
}

/**
 * A backpressured stream of a remote resource that reopens itself with `Range` from the byte
 * reached after a reset, a stall or a short body (giving up when the retry budget is spent:
 * `attempts` failures in a row without a new byte). With a digest, bytes are hashed as they pass and the final chunk is held back until
 * the digest matches, so a consumer never sees all of a corrupted blob: it sees an error instead.
 */
class ResumableBody extends Readable {
  readonly #o: ResumableBodyOptions;
  readonly #end: number;
  readonly #hash: Hash | undefined;
  readonly #budget: RetryBudget;
  #offset: number;
  #held: Buffer | undefined;
  #body: Readable | undefined;
  #skip = 0;
  #url = '';
  /** Offset when the current body was opened: a body that breaks after passing it made progress. */
  #openedAt = 0;
  #opening = false;
  #finished = false;

  constructor(options: ResumableBodyOptions) {
    super({ highWaterMark: options.highWaterMark ?? 256 * 1024 });
    this.#o = options;
    this.#offset = options.start ?? 0;
    this.#end = this.#offset + options.length;
    if (options.digest && this.#offset !== 0) {
      throw new RegistryProtocolError('GET', options.what, 'digest verification needs the whole blob (start must be 0)', { code: 'INVALID_ARGUMENT' });
    }
    this.#hash = options.digest ? createHash(parseDigest(options.digest).algorithm) : undefined;
    this.#budget = options.budget ?? new RetryBudget(options.retry);
  }

  override _read(): void {
    if (this.#body) {
      this.#body.resume();
      return;
    }
    if (this.#opening || this.#finished) return;
    if (this.#offset >= this.#end) {
      this.#complete();
      return;
    }
    void this.#open();
  }

  #emit(chunk: Buffer): boolean {
    this.#o.onBytes?.(chunk.length);
    return this.push(chunk);
  }

  async #open(): Promise<void> {
    this.#opening = true;
    try {
      if (this.#o.signal?.aborted) throw new CancelledError('operation cancelled', { cause: this.#o.signal.reason });
      const opened = await this.#o.open(this.#offset, this.#o.signal, this.#budget);
      if (this.destroyed) {
        opened.body.destroy();
        return;
      }
      this.#skip = opened.skip;
      this.#url = opened.url ?? this.#url;
      this.#openedAt = this.#offset;
      this.#attach(opened.body);
    } catch (err) {
      await this.#failed(err);
    } finally {
      this.#opening = false;
    }
  }

  #attach(body: Readable): void {
    this.#body = body;
    let settled = false;
    const done = (err: unknown): void => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      this.#body = undefined;
      if (err === undefined && this.#offset >= this.#end) {
        this.#complete();
        return;
      }
      body.destroy();
      const got = `${this.#offset - (this.#o.start ?? 0)} of ${this.#o.length} bytes`;
      let e: unknown;
      if (err === undefined) e = new RegistryProtocolError('GET', this.#url, `body ended after ${got}`, { retryable: true, what: this.#o.what });
      else if (isNydusError(err)) e = err;
      // A reset, a stall (idle timeout) or a close mid-body, described, not passed on raw.
      else e = new RegistryConnectionError('GET', this.#url, err, { what: this.#o.what, during: `after ${got}` });
      void this.#failed(e, this.#offset > this.#openedAt);
    };
    const onData = (raw: Buffer): void => {
      let chunk = raw;
      if (this.#skip > 0) {
        if (chunk.length <= this.#skip) {
          this.#skip -= chunk.length;
          return;
        }
        chunk = chunk.subarray(this.#skip);
        this.#skip = 0;
      }
      if (this.#offset + chunk.length > this.#end) {
        settled = true;
        body.off('data', onData);
        body.destroy();
        this.destroy(new RegistryProtocolError('GET', this.#url, `body longer than the expected ${this.#o.length} bytes`, { code: 'DATA_LOSS', what: this.#o.what }));
        return;
      }
      this.#hash?.update(chunk);
      this.#offset += chunk.length;
      if (this.#hash) {
        // Hold the newest chunk back until the digest is known to match.
        const prev = this.#held;
        this.#held = chunk;
        if (prev && !this.#emit(prev)) body.pause();
      } else if (!this.#emit(chunk)) {
        body.pause();
      }
    };
    body.on('data', onData);
    body.once('end', () => done(undefined));
    body.once('error', (err) => done(err));
    body.once('close', () => done(body.readableEnded ? undefined : Object.assign(new Error('connection closed mid-body'), { code: 'UND_ERR_CLOSED' })));
  }

  /** `progressed`: a body that broke after bringing new bytes (a new row of failures starts). */
  async #failed(err: unknown, progressed = false): Promise<void> {
    if (this.destroyed) return;
    if (this.#o.signal?.aborted) {
      this.destroy(new CancelledError('operation cancelled', { cause: this.#o.signal.reason }));
      return;
    }
    let delay: number;
    try {
      // A body that broke after bringing new bytes starts a new row of failures (a long
      // transfer over a flaky link keeps going); one that failed at once counts on.
      delay = this.#budget.fail(err, { progressed });
    } catch (final) {
      this.destroy(final as Error);
      return;
    }
    try {
      await sleepWithSignal(delay, this.#o.signal);
    } catch (e) {
      this.destroy(e as Error);
      return;
    }
    if (!this.destroyed) void this.#open();
  }

  #complete(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#hash && this.#o.digest) {
      const actual = `${parseDigest(this.#o.digest).algorithm}:${this.#hash.digest('hex')}`;
      if (actual !== this.#o.digest) {
        // A corrupted transfer: fetching afresh may help, and counts against the same budget.
        this.destroy(new DigestMismatchError(this.#o.what, this.#o.digest, actual));
        return;
      }
    }
    if (this.#held) this.#emit(this.#held);
    this.#held = undefined;
    this.push(null);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#body?.destroy();
    this.#body = undefined;
    cb(err);
  }
}

export function resumableBody(options: ResumableBodyOptions): Readable {
  return new ResumableBody(options);
}
