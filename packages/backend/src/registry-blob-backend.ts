import { InvalidArgumentError, NydusError } from '@nydus-ts/core';
import type { Digest } from '@nydus-ts/core';
import type { BlobBackend } from '@nydus-ts/core';
import type { RegistryClient } from '@nydus-ts/registry';

/** Largest single range read (a chunk is at most 16 MiB; ranges are never whole blobs). */
export const MAX_RANGE_READ = 64 << 20;

/** `abc…` or `sha256:abc…` → the blob's digest in the registry. */
export function blobIdToDigest(blobId: string): Digest {
  const hex = blobId.startsWith('sha256:') ? blobId.slice(7) : blobId;
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new InvalidArgumentError(`blob id "${blobId}" is not a sha256 hex digest`);
  return `sha256:${hex}`;
}

export interface RegistryBlobBackendOptions {
  /**
   * 0 (default): every read is one ranged GET of exactly the bytes asked for. > 0: reads are
   * served from aligned windows of this many bytes, each fetched once (concurrent readers of a
   * window share the request) and kept in a small LRU — for callers that read a blob roughly in
   * order (check, prefetch). Reads larger than a window go straight to the registry.
   */
  readAhead?: number;
  /** Windows kept (default 8): memory is at most `readAhead × maxWindows`. */
  maxWindows?: number;
  /** Size of each blob by id, to clip the last window (otherwise asked with a HEAD). */
  blobSizes?: ReadonlyMap<string, number>;
}

/**
 * Chunk data straight from a registry: ranged GETs (resumed after resets, the reply's
 * Content-Range checked) of blob `sha256:<blobId>` in one repository. The bytes are not verified
 * here (a part of a blob cannot be): {@link RafsFileReader} checks each chunk's digest.
 */
export class RegistryBlobBackend implements BlobBackend {
  readonly client: RegistryClient;
  readonly repository: string;
  /** Range requests made and bytes received (for reports and tests). */
  readonly stats = { requests: 0, bytes: 0 };
  readonly #readAhead: number;
  readonly #maxWindows: number;
  readonly #sizes: Map<string, number>;
  /** `digest@windowStart` → window bytes (insertion order = LRU order). */
  readonly #windows = new Map<string, Promise<Buffer>>();

  constructor(client: RegistryClient, repository: string, options: RegistryBlobBackendOptions = {}) {
    const readAhead = options.readAhead ?? 0;
    if (!Number.isSafeInteger(readAhead) || readAhead < 0 || readAhead > MAX_RANGE_READ) throw new InvalidArgumentError(`readAhead must be 0..${MAX_RANGE_READ}, got ${readAhead}`);
    const maxWindows = options.maxWindows ?? 8;
    if (!Number.isInteger(maxWindows) || maxWindows < 1) throw new InvalidArgumentError(`maxWindows must be a positive integer, got ${maxWindows}`);
    this.client = client;
    this.repository = repository;
    this.#readAhead = readAhead;
    this.#maxWindows = maxWindows;
    this.#sizes = new Map([...(options.blobSizes ?? new Map<string, number>())].map(([id, size]) => [blobIdToDigest(id), size]));
  }

  async readRange(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const digest = blobIdToDigest(blobId);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new InvalidArgumentError(`blob ${digest}: invalid range offset=${offset} length=${length}`);
    }
    if (length > MAX_RANGE_READ) throw new InvalidArgumentError(`blob ${digest}: range of ${length} bytes exceeds ${MAX_RANGE_READ}`);
    if (length === 0) return new Uint8Array(0);
    const size = this.#sizes.get(digest);
    if (size !== undefined && offset + length > size) {
      throw new InvalidArgumentError(`blob ${digest}: range [${offset}, +${length}) lies beyond its ${size} bytes`);
    }
    const w = this.#readAhead;
    if (w === 0 || length > w) return this.#fetch(digest, offset, length, signal);
    const first = Math.floor(offset / w) * w;
    const last = Math.floor((offset + length - 1) / w) * w;
    if (first === last) {
      const win = await this.#window(digest, first, size);
      return this.#slice(digest, win, offset - first, length, offset);
    }
    const [a, b] = await Promise.all([this.#window(digest, first, size), this.#window(digest, last, size)]);
    const headLen = last - offset;
    const out = Buffer.allocUnsafe(length);
    this.#checkInWindow(digest, a, offset - first, headLen, offset);
    this.#checkInWindow(digest, b, 0, length - headLen, last);
    a.copy(out, 0, offset - first, offset - first + headLen);
    b.copy(out, headLen, 0, length - headLen);
    return out;
  }

  #checkInWindow(digest: Digest, win: Buffer, at: number, length: number, offset: number): void {
    if (at + length > win.length) throw new NydusError('DATA_LOSS', `blob ${digest}: range [${offset}, +${length}) lies beyond the end of the blob`);
  }

  #slice(digest: Digest, win: Buffer, at: number, length: number, offset: number): Buffer {
    this.#checkInWindow(digest, win, at, length, offset);
    // A copy: the window is shared by every read in it, and a caller may reuse what it gets.
    return Buffer.from(win.subarray(at, at + length));
  }

  #window(digest: Digest, start: number, size: number | undefined): Promise<Buffer> {
    const key = `${digest}@${start}`;
    let win = this.#windows.get(key);
    if (win !== undefined) {
      this.#windows.delete(key); // refresh its LRU position
      this.#windows.set(key, win);
      return win;
    }
    // Shared by later readers, a window is fetched without the first reader's signal.
    const length = size === undefined ? this.#readAhead : Math.min(this.#readAhead, size - start);
    win = size === undefined ? this.#fetchUpTo(digest, start, length) : this.#fetch(digest, start, length);
    this.#windows.set(key, win);
    win.catch(() => this.#windows.delete(key));
    while (this.#windows.size > this.#maxWindows) this.#windows.delete(this.#windows.keys().next().value!);
    return win;
  }

  /** A window of a blob of unknown size: asks the registry for the blob size first. */
  async #fetchUpTo(digest: Digest, start: number, length: number): Promise<Buffer> {
    const size = await this.client.headBlob(this.repository, digest);
    if (size === undefined) throw new NydusError('NOT_FOUND', `blob ${digest} not found in ${this.client.registry}/${this.repository}`);
    this.#sizes.set(digest, size);
    if (start >= size) return Buffer.alloc(0);
    return this.#fetch(digest, start, Math.min(length, size - start));
  }

  async #fetch(digest: Digest, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    this.stats.requests++;
    const out = Buffer.allocUnsafe(length);
    let pos = 0;
    const stream = this.client.fetchRange(this.repository, digest, offset, length, signal ? { signal } : {});
    for await (const chunk of stream) {
      const c = chunk as Buffer;
      if (pos + c.length > length) {
        stream.destroy();
        throw new NydusError('DATA_LOSS', `blob ${digest}: range [${offset}, +${length}) returned more than ${length} bytes`);
      }
      c.copy(out, pos);
      pos += c.length;
    }
    if (pos !== length) throw new NydusError('DATA_LOSS', `blob ${digest}: range [${offset}, +${length}) returned ${pos} bytes`);
    this.stats.bytes += length;
    return out;
  }
}
