import type { Readable } from 'node:stream';
import type { Descriptor } from '@nydus-ts/core';
import type { ManifestData } from './registry-client.js';
import type { RetryBudget } from './retry.js';

export interface FetchBlobOptions {
  signal?: AbortSignal;
  /** Tries shared with the rest of the blob's transfer (registry sources; others ignore it). */
  retryBudget?: RetryBudget;
  /** Called with the size of every chunk the stream hands on (progress). */
  onBytes?: (n: number) => void;
  /** Read-ahead buffer of a registry stream (see FetchOptions of the registry client); other sources may ignore it. */
  highWaterMark?: number;
}

export interface PushBlobTargetOptions {
  signal?: AbortSignal;
  /** Tries shared with the rest of the blob's transfer (registry targets; others ignore it). */
  retryBudget?: RetryBudget;
}

/** Where an image's repository lives, when it is in a registry (enables cross-repo mounts). */
export interface RegistryLocation {
  registry: string;
  repository: string;
}

/** What copy reads from: a registry repository or an OCI layout directory. */
export interface ImageSource {
  /** For messages: `127.0.0.1:5000/app:v1`, `oci:/data/img:v1`. */
  readonly name: string;
  readonly location?: RegistryLocation;
  /** The manifest or index the reference names. */
  resolve(signal?: AbortSignal): Promise<ManifestData>;
  /** A manifest or index by descriptor (index children), verified against its digest. */
  getManifest(descriptor: Descriptor, signal?: AbortSignal): Promise<ManifestData>;
  /** A blob as a stream that errors if the bytes do not match the digest. */
  fetchBlob(descriptor: Descriptor, options?: FetchBlobOptions): Readable;
  close?(): Promise<void>;
}

/** What copy writes to. */
export interface ImageTarget {
  readonly name: string;
  readonly location?: RegistryLocation;
  /** The tag the top manifest is stored under; undefined stores it by digest only. */
  readonly tag?: string;
  hasBlob(descriptor: Descriptor, signal?: AbortSignal): Promise<boolean>;
  /** Cross-repository mount from a source on the same registry; false if not possible. */
  mountBlob?(descriptor: Descriptor, from: RegistryLocation, signal?: AbortSignal): Promise<boolean>;
  /** Stores a blob read once from `data`; commits only verified bytes. */
  pushBlob(descriptor: Descriptor, data: Readable, options?: PushBlobTargetOptions): Promise<void>;
  /** Stores manifest bytes unchanged; `top` marks the last, tagged one. */
  putManifest(manifest: ManifestData, options: { top: boolean; signal?: AbortSignal }): Promise<void>;
  close?(): Promise<void>;
}
