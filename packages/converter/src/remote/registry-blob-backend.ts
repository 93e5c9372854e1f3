import { InvalidArgumentError, NydusError } from '@nydus-ts/core';
import type { Digest } from '@nydus-ts/core';
import type { BlobBackend } from '@nydus-ts/format';
import type { RegistryClient } from '@nydus-ts/registry';

/** Largest single range read (a chunk is at most 16 MiB; ranges are never whole blobs). */
export const MAX_RANGE_READ = 64 << 20;

/** `abc…` or `sha256:abc…` → the blob's digest in the registry. */
export function blobIdToDigest(blobId: string): Digest {
  const hex = blobId.startsWith('sha256:') ? blobId.slice(7) : blobId;
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new InvalidArgumentError(`blob id "${blobId}" is not a sha256 hex digest`);
  return `sha256:${hex}`;
}

/**
 * Chunk data straight from a registry: every `readRange` is one ranged GET (resumed after
 * resets, the reply's Content-Range checked) of blob `sha256:<blobId>` in one repository. The
 * bytes are not verified here (a part of a blob cannot be): {@link RafsFileReader} checks each
 * chunk's digest.
 */
export class RegistryBlobBackend implements BlobBackend {
  readonly client: RegistryClient;
  readonly repository: string;
  /** Range requests made and bytes received (for reports and tests). */
  readonly stats = { requests: 0, bytes: 0 };

  constructor(client: RegistryClient, repository: string) {
    this.client = client;
    this.repository = repository;
  }

  async readRange(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const digest = blobIdToDigest(blobId);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new InvalidArgumentError(`blob ${digest}: invalid range offset=${offset} length=${length}`);
    }
    if (length > MAX_RANGE_READ) throw new InvalidArgumentError(`blob ${digest}: range of ${length} bytes exceeds ${MAX_RANGE_READ}`);
    if (length === 0) return new Uint8Array(0);
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
