import type { Readable } from 'node:stream';
import { InvalidArgumentError, isNydusError } from '@nydus-ts/core';
import type { Descriptor } from '@nydus-ts/core';
import type { FetchBlobOptions, ImageSource, ImageTarget, PushBlobTargetOptions, RegistryLocation } from './image-store.js';
import type { ImageReference } from './reference.js';
import { formatReference } from './reference.js';
import type { ManifestData, RegistryClient } from './registry-client.js';
import { DigestMismatchError } from '@nydus-ts/core';

/** An image in a registry repository, read through a {@link RegistryClient}. */
export class RegistryImageSource implements ImageSource {
  readonly name: string;
  readonly location: RegistryLocation;
  readonly #client: RegistryClient;
  readonly #ref: ImageReference;

  constructor(client: RegistryClient, ref: ImageReference) {
    this.#client = client;
    this.#ref = ref;
    this.name = formatReference(ref);
    this.location = { registry: ref.registry, repository: ref.repository };
  }

  async resolve(signal?: AbortSignal): Promise<ManifestData> {
    return this.#client.getManifest(this.#ref.repository, this.#ref.digest ?? this.#ref.tag!, { signal });
  }

  async getManifest(descriptor: Descriptor, signal?: AbortSignal): Promise<ManifestData> {
    const m = await this.#client.getManifest(this.#ref.repository, descriptor.digest, { signal });
    if (descriptor.size !== m.bytes.length) {
      throw new DigestMismatchError(`manifest ${descriptor.digest} size`, String(descriptor.size), String(m.bytes.length));
    }
    return m;
  }

  fetchBlob(descriptor: Descriptor, options: FetchBlobOptions = {}): Readable {
    return this.#client.fetchBlob(this.#ref.repository, descriptor, options);
  }
}

export interface RegistryImageTargetOptions {
  /** 0: monolithic PUT per blob; > 0: PATCH chunks of this size. */
  chunkSize?: number;
}

/** A registry repository copy writes to. */
export class RegistryImageTarget implements ImageTarget {
  readonly name: string;
  readonly location: RegistryLocation;
  readonly tag: string | undefined;
  readonly #client: RegistryClient;
  readonly #ref: ImageReference;
  readonly #chunkSize: number;

  constructor(client: RegistryClient, ref: ImageReference, options: RegistryImageTargetOptions = {}) {
    this.#client = client;
    this.#ref = ref;
    this.name = formatReference(ref);
    this.location = { registry: ref.registry, repository: ref.repository };
    this.tag = ref.tag;
    this.#chunkSize = options.chunkSize ?? 0;
  }

  async hasBlob(descriptor: Descriptor, signal?: AbortSignal): Promise<boolean> {
    const size = await this.#client.headBlob(this.#ref.repository, descriptor.digest, { signal });
    return size !== undefined;
  }

  async mountBlob(descriptor: Descriptor, from: RegistryLocation, signal?: AbortSignal): Promise<boolean> {
    if (from.registry !== this.#ref.registry || from.repository === this.#ref.repository) return false;
    try {
      return await this.#client.mountBlob(this.#ref.repository, descriptor.digest, from.repository, { signal });
    } catch (err) {
      // Mount is an optimisation: no access to the source repository means a plain copy.
      if (isNydusError(err, 'PERMISSION_DENIED') || isNydusError(err, 'UNAUTHENTICATED') || isNydusError(err, 'NOT_FOUND')) return false;
      throw err;
    }
  }

  async pushBlob(descriptor: Descriptor, data: Readable, options: PushBlobTargetOptions = {}): Promise<void> {
    await this.#client.pushBlob(this.#ref.repository, descriptor, data, { chunkSize: this.#chunkSize, ...options });
  }

  async putManifest(manifest: ManifestData, options: { top: boolean; signal?: AbortSignal }): Promise<void> {
    const { descriptor, bytes } = manifest;
    if (options.top && this.#ref.digest && this.#ref.digest !== descriptor.digest) {
      throw new InvalidArgumentError(`target ${this.name} names digest ${this.#ref.digest} but the copied manifest is ${descriptor.digest}`);
    }
    const reference = options.top && this.#ref.tag ? this.#ref.tag : descriptor.digest;
    await this.#client.putManifest(this.#ref.repository, reference, bytes, descriptor.mediaType, { signal: options.signal });
  }
}
