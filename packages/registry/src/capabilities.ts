import type { Readable } from 'node:stream';
import type { Descriptor, Digest } from '@nydus-ts/core';
import type { BlobUpload, CommittedBlob } from './blob-upload.js';
import type { FetchOptions, ManifestData, PushBlobOptions, SignalOptions, UploadOptions } from './registry-client.js';

/** Reads blobs: whole (verified, resumable) or by byte range. Lazy loading needs only this. */
export interface Fetcher {
  fetchBlob(repository: string, descriptor: Pick<Descriptor, 'digest' | 'size'>, options?: FetchOptions): Readable;
  fetchRange(repository: string, digest: Digest, offset: number, length: number, options?: FetchOptions): Readable;
  headBlob(repository: string, digest: Digest, options?: SignalOptions): Promise<number | undefined>;
}

/** Writes blobs: known digest/size, unknown until the end, or by cross-repository mount. */
export interface Pusher {
  pushBlob(repository: string, descriptor: Pick<Descriptor, 'digest' | 'size'>, source: Readable, options?: PushBlobOptions): Promise<CommittedBlob>;
  createUpload(repository: string, options?: UploadOptions): Promise<BlobUpload>;
  mountBlob(repository: string, digest: Digest, fromRepository: string, options?: SignalOptions): Promise<boolean>;
}

/** Manifests and indexes, always as the exact bytes their digest covers. */
export interface ManifestStore {
  getManifest(repository: string, reference: string, options?: SignalOptions): Promise<ManifestData>;
  headManifest(repository: string, reference: string, options?: SignalOptions): Promise<Descriptor | undefined>;
  putManifest(repository: string, reference: string, bytes: Uint8Array, mediaType: string, options?: SignalOptions): Promise<Digest>;
}
