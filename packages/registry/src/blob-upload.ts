import { createHash, type Hash } from 'node:crypto';
import { PassThrough, Writable } from 'node:stream';
import { CancelledError, DigestMismatchError, InvalidArgumentError, NydusError, parseDigest } from '@nydus-ts/core';
import type { Digest } from '@nydus-ts/core';
import { RegistryProtocolError, RegistryResponseError, redactUrl } from './errors.js';
import { discardBody } from './http-body.js';
import type { RegistryReply, RegistryTransport } from './registry-transport.js';
import { RetryExhaustedError } from './retry.js';
import type { RetryBudget } from './retry.js';

/** Smallest and largest PATCH chunk of a chunked upload (each is one request, and is held in memory). */
export const MIN_PUSH_CHUNK_SIZE = 4 << 10;
export const MAX_PUSH_CHUNK_SIZE = 1 << 30;

/**
 * A push chunk size as given by a user: 0 (one monolithic upload) or 4 KiB to 1 GiB. Smaller
 * chunks would make one request per few bytes; larger ones hold that much of every blob being
 * copied in memory. `name` names the option in the error.
 */
export function checkPushChunkSize(size: number, name: string): number {
  if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError(`${name}: push chunk size must be a whole number of bytes, got ${size}`);
  if (size !== 0 && (size < MIN_PUSH_CHUNK_SIZE || size > MAX_PUSH_CHUNK_SIZE)) {
    throw new InvalidArgumentError(`${name}: push chunk size ${size} is outside 4 KiB to 1 GiB (each chunk is one request and is held in memory); 0 uploads each blob in one request`);
  }
  return size;
}

/** The result of a committed upload. */
export interface CommittedBlob {
  digest: Digest;
  size: number;
}

export interface BlobUploadOptions {
  /**
   * 0: one streaming PATCH carrying every byte as it arrives. > 0: buffered PATCHes of this many
   * bytes (each retried on its own after a 5xx/429/reset).
   */
  chunkSize: number;
  /**
   * false: the bytes are not hashed on the way, for callers that hash what they write anyway;
   * commit() then needs the expected digest, and the registry is what checks it. Default true.
   */
  verifyDigest?: boolean;
  signal?: AbortSignal;
  /** Tries shared with the rest of the operation (default: each request retries on its own). */
  retryBudget?: RetryBudget;
  /** Describes the upload in errors (default `uploading a blob to host/repo`). */
  what?: string;
}

function locationOf(reply: RegistryReply, what: string): URL {
  const loc = reply.headers.location;
  const value = Array.isArray(loc) ? loc[0] : loc;
  if (!value) throw new RegistryProtocolError('POST', redactUrl(reply.url), `${what}: response has no Location header`);
  return new URL(value, reply.url);
}

/**
 * A writer for a blob whose digest and size are known only at the end (conversion output, or
 * a chunked copy). Bytes are PATCHed to the registry as they arrive; {@link commit} verifies the
 * digest and size computed on the way against the expected ones and then `PUT ?digest=`.
 * Destroying it or a failed commit leaves nothing in the registry.
 */
export class BlobUpload extends Writable {
  readonly repository: string;
  readonly #transport: RegistryTransport;
  readonly #chunkSize: number;
  readonly #signal: AbortSignal | undefined;
  readonly #hash: Hash | undefined;
  readonly #budget: RetryBudget | undefined;
  readonly #what: string;
  #location: URL;
  /** Bytes written by the caller. */
  #size = 0;
  /** Bytes the registry has accepted. */
  #sent = 0;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #stream: { body: PassThrough; done: Promise<RegistryReply>; failed?: unknown } | undefined;
  #committed = false;
  /** The DELETE of a cancelled session, answered or failed. */
  #cancelled: Promise<void> | undefined;

  constructor(transport: RegistryTransport, repository: string, location: URL, options: BlobUploadOptions) {
    super({ highWaterMark: 1 << 20 });
    if (!Number.isSafeInteger(options.chunkSize) || options.chunkSize < 0) {
      throw new InvalidArgumentError(`upload chunk size must be a non-negative integer, got ${options.chunkSize}`);
    }
    this.#transport = transport;
    this.repository = repository;
    this.#location = location;
    this.#chunkSize = options.chunkSize;
    this.#hash = options.verifyDigest === false ? undefined : createHash('sha256');
    this.#signal = options.signal;
    this.#budget = options.retryBudget;
    this.#what = options.what ?? `uploading a blob to ${transport.registry}/${repository}`;
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#size;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#hash?.update(chunk);
    this.#size += chunk.length;
    if (this.#chunkSize === 0) {
      this.#writeStreaming(chunk).then(() => cb(), cb);
      return;
    }
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes < this.#chunkSize) return cb();
    this.#flushChunks(false).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    const done = this.#chunkSize === 0 ? this.#finishStreaming() : this.#flushChunks(true);
    done.then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#stream?.body.destroy(err ?? undefined);
    // autoDestroy runs after 'finish' too: only a failed or abandoned upload is cancelled here.
    if (err || !this.writableFinished) void this.#cancel();
    cb(err);
  }

  async #writeStreaming(chunk: Buffer): Promise<void> {
    if (!this.#stream) {
      const body = new PassThrough({ highWaterMark: 1 << 20 });
      const done = this.#transport.request({
        method: 'PATCH',
        path: this.#location,
        headers: { 'content-type': 'application/octet-stream' },
        body,
        scopes: [`repository:${this.repository}:pull,push`],
        expect: [202],
        what: this.#what,
        signal: this.#signal,
        ...(this.#budget && { retryBudget: this.#budget }),
      });
      const stream: { body: PassThrough; done: Promise<RegistryReply>; failed?: unknown } = { body, done };
      done.catch((err: unknown) => {
        stream.failed = err;
        body.destroy();
      });
      this.#stream = stream;
    }
    const s = this.#stream;
    if (s.failed) throw s.failed;
    if (!s.body.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          s.body.off('close', onClose);
          resolve();
        };
        const onClose = (): void => {
          s.body.off('drain', onDrain);
          reject(s.failed ?? new CancelledError('upload stream closed'));
        };
        s.body.once('drain', onDrain);
        s.body.once('close', onClose);
      });
    }
  }

  async #finishStreaming(): Promise<void> {
    if (!this.#stream) return; // nothing written: the final PUT creates an empty blob
    this.#stream.body.end();
    const reply = await this.#stream.done;
    await discardBody(reply.body);
    this.#location = locationOf(reply, this.#what);
    this.#sent = this.#size;
  }

  async #flushChunks(final: boolean): Promise<void> {
    let buf = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    while (buf.length >= this.#chunkSize || (final && buf.length > 0)) {
      const n = Math.min(this.#chunkSize, buf.length);
      await this.#patch(buf.subarray(0, n));
      buf = buf.subarray(n);
    }
    if (buf.length > 0) {
      this.#pending = [Buffer.from(buf)];
      this.#pendingBytes = buf.length;
    }
  }

  async #patch(data: Buffer): Promise<void> {
    const start = this.#sent;
    try {
      const reply = await this.#transport.request({
        method: 'PATCH',
        path: this.#location,
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${start}-${start + data.length - 1}`,
          'content-length': String(data.length),
        },
        body: data,
        scopes: [`repository:${this.repository}:pull,push`],
        expect: [202],
        what: this.#what,
        signal: this.#signal,
        ...(this.#budget && { retryBudget: this.#budget }),
      });
      await discardBody(reply.body);
      this.#location = locationOf(reply, this.#what);
      this.#sent = start + data.length;
    } catch (err) {
      if (this.#signal?.aborted) throw err;
      // A PATCH may have landed before its reply was lost: ask where the upload stands.
      const reached = await this.#status().catch(() => undefined);
      if (reached === start + data.length) {
        this.#sent = reached;
        return;
      }
      if (err instanceof RetryExhaustedError) throw err;
      if (err instanceof RegistryResponseError && err.status === 416 || reached !== undefined) {
        throw new RegistryProtocolError('PATCH', redactUrl(this.#location), `upload session out of step at byte ${reached ?? '?'} (expected ${start}); the blob must be sent again`, { retryable: true, what: this.#what });
      }
      throw err;
    }
  }

  /** Bytes the registry holds for this upload (GET on the upload location). */
  async #status(): Promise<number> {
    const reply = await this.#transport.request({
      method: 'GET',
      path: this.#location,
      scopes: [`repository:${this.repository}:pull,push`],
      expect: [204],
      what: this.#what,
      signal: this.#signal,
      attempts: 2,
    });
    await discardBody(reply.body);
    const range = reply.headers.range;
    const value = Array.isArray(range) ? range[0] : range;
    const m = value ? /^(?:bytes=)?0-(\d+)$/.exec(value) : null;
    if (m) this.#location = locationOf(reply, this.#what);
    return m ? Number(m[1]) + 1 : 0;
  }

  /**
   * Ends the stream if needed, checks the computed digest/size against `expected` and commits
   * the blob with `PUT ?digest=`. Returns what was committed.
   */
  async commit(expected: { digest?: Digest; size?: number } = {}): Promise<CommittedBlob> {
    if (!this.writableFinished) {
      if (this.destroyed) throw new NydusError('FAILED_PRECONDITION', `${this.#what}: upload was destroyed`, { cause: this.errored ?? undefined });
      await new Promise<void>((resolve, reject) => {
        this.once('finish', resolve);
        this.once('error', reject);
        if (!this.writableEnded) this.end();
      });
    }
    if (expected.size !== undefined && expected.size !== this.#size) {
      await this.#cancel();
      throw new NydusError('DATA_LOSS', `${this.#what}: wrote ${this.#size} bytes, expected ${expected.size}`);
    }
    if (expected.digest !== undefined && parseDigest(expected.digest).algorithm !== 'sha256') {
      await this.#cancel();
      throw new InvalidArgumentError(`${this.#what}: only sha256 uploads are supported, got ${expected.digest}`);
    }
    let digest: Digest;
    if (this.#hash) {
      const actual = `sha256:${this.#hash.copy().digest('hex')}` as Digest;
      if (expected.digest !== undefined && expected.digest !== actual) {
        await this.#cancel();
        throw new DigestMismatchError(this.#what, expected.digest, actual);
      }
      digest = actual;
    } else {
      if (expected.digest === undefined) {
        await this.#cancel();
        throw new InvalidArgumentError(`${this.#what}: an upload opened without digest verification needs the expected digest to commit`);
      }
      digest = expected.digest;
    }
    let reply: RegistryReply;
    try {
      reply = await this.#transport.request({
        method: 'PUT',
        path: this.#location,
        query: { digest },
        headers: { 'content-length': '0', 'content-type': 'application/octet-stream' },
        body: Buffer.alloc(0),
        scopes: [`repository:${this.repository}:pull,push`],
        expect: [201, 204],
        what: `committing blob ${digest} to ${this.#transport.registry}/${this.repository}`,
        signal: this.#signal,
        ...(this.#budget && { retryBudget: this.#budget }),
      });
    } catch (err) {
      // The reply to a commit that went through may have been lost (a reset, a timeout while the
      // registry moved the blob into place), and its retry then finds no session: the blob
      // itself says whether it landed.
      if (!this.#signal?.aborted && (await this.#present(digest))) {
        this.#committed = true;
        return { digest, size: this.#size };
      }
      // a refused digest (the registry's own check) or a failed PUT: drop the session
      await this.#cancel();
      throw err;
    }
    await discardBody(reply.body);
    this.#committed = true;
    return { digest, size: this.#size };
  }

  /** True if the repository holds `digest` with this upload's size (one HEAD; false on any failure). */
  async #present(digest: Digest): Promise<boolean> {
    try {
      const reply = await this.#transport.request({
        method: 'HEAD',
        path: `/v2/${this.repository}/blobs/${digest}`,
        scopes: [`repository:${this.repository}:pull`],
        expect: [200, 404],
        what: `checking blob ${digest} in ${this.#transport.registry}/${this.repository}`,
        attempts: 2,
      });
      await discardBody(reply.body);
      const length = reply.headers['content-length'];
      return reply.status === 200 && Number(Array.isArray(length) ? length[0] : length) === this.#size;
    } catch {
      return false;
    }
  }

  /**
   * Gives up on the upload: destroys it (with `reason`, if given) and resolves once its session
   * has been cancelled on the registry (best effort: one DELETE, its failure ignored), so that
   * nothing of it is still running. A committed upload is left as it is.
   */
  async cancel(reason?: Error): Promise<void> {
    this.destroy(reason);
    await this.#cancel();
  }

  /** Cancels the upload session on the registry (best effort, once). */
  #cancel(): Promise<void> {
    if (this.#committed) return this.#cancelled ?? Promise.resolve();
    this.#committed = true;
    this.#cancelled = this.#transport
      .request({
        method: 'DELETE',
        path: this.#location,
        scopes: [`repository:${this.repository}:pull,push`],
        expect: [204, 404],
        what: this.#what,
        attempts: 1,
      })
      .then((r) => discardBody(r.body), () => undefined);
    return this.#cancelled;
  }

  /** Starts an upload session; used by the registry client. */
  static locationOf = locationOf;
}
