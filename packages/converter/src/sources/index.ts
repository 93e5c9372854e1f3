import { InvalidArgumentError, noopLogger } from '@nydus-ts/core';
import type { Logger } from '@nydus-ts/core';
import { OciLayoutSource, RegistryClient, RegistryImageSource, parseImageLocation } from '@nydus-ts/registry';
import { endpointFor } from '@nydus-ts/registry/internal';
import type { ImageReference, ImageSource, RegistryEndpoint, RetryOptions, TimeoutOptions } from '@nydus-ts/registry';
import { DockerArchiveSource } from './docker-archive.js';
import { OciArchiveSource } from './oci-archive.js';

export type ArchiveKind = 'oci-archive' | 'docker-archive';

/** An archive location: `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:NAME:TAG | :@N]`. */
export interface ArchiveLocation {
  kind: ArchiveKind;
  file: string;
  tag?: string;
}

/**
 * Opens an image archive as an {@link ImageSource}: `oci-archive` (an OCI layout in a tar; `tag`
 * is an `org.opencontainers.image.ref.name`, default the only image) or `docker-archive` (a
 * `docker save` tar; `tag` is a RepoTag such as `busybox:latest`, or `@N`). The tar is indexed
 * once by its headers; blobs are served as verified byte ranges of the file.
 */
export async function openArchiveSource(kind: ArchiveKind, file: string, tag?: string, signal?: AbortSignal): Promise<ImageSource> {
  if (!file) throw new InvalidArgumentError(`${kind}: the archive path is empty`);
  if (kind === 'oci-archive') return OciArchiveSource.open(file, tag, signal);
  if (kind === 'docker-archive') return DockerArchiveSource.open(file, tag, signal);
  throw new InvalidArgumentError(`unknown archive kind "${String(kind)}" (oci-archive or docker-archive)`);
}

/**
 * Parses `oci-archive:FILE[:TAG]` / `docker-archive:FILE[:REF]` (skopeo syntax: the path ends at
 * the first colon; a docker-archive REF may itself hold a colon). Undefined for anything else.
 */
export function parseArchiveLocation(value: string): ArchiveLocation | undefined {
  for (const kind of ['oci-archive', 'docker-archive'] as const) {
    const prefix = `${kind}:`;
    if (!value.startsWith(prefix)) continue;
    const rest = value.slice(prefix.length);
    const colon = rest.indexOf(':');
    const file = colon >= 0 ? rest.slice(0, colon) : rest;
    const tag = colon >= 0 ? rest.slice(colon + 1) : undefined;
    if (!file) throw new InvalidArgumentError(`invalid image location "${value}": ${kind}: needs a file path`);
    if (tag !== undefined && tag === '') throw new InvalidArgumentError(`invalid image location "${value}": empty tag after the file path`);
    return tag === undefined ? { kind, file } : { kind, file, tag };
  }
  return undefined;
}

/** Connection settings for a registry image. */
export interface OpenImageSourceOptions {
  /** How to reach the registry a registry reference names (default: HTTPS, anonymous). */
  registry?: RegistryEndpoint;
  /** The name of the `registry` option in errors (e.g. `sourceRegistry`); default `registry`. */
  registryOption?: string;
  logger?: Logger;
  maxConnections?: number;
  retry?: RetryOptions;
  timeouts?: TimeoutOptions;
  signal?: AbortSignal;
}

/** An opened image: the source, and for a registry image its client and reference. */
export interface OpenedImageSource {
  source: ImageSource;
  client?: RegistryClient;
  reference?: ImageReference;
  /** Closes the registry client, if any. */
  close(): Promise<void>;
}

/**
 * Opens any image location: a registry reference (reached as `registry` says), `oci:DIR[:TAG]`,
 * `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:REF]`.
 */
export async function openImageSource(spec: string, options: OpenImageSourceOptions = {}): Promise<OpenedImageSource> {
  const archive = parseArchiveLocation(spec);
  if (archive) {
    const source = await openArchiveSource(archive.kind, archive.file, archive.tag, options.signal);
    return { source, close: async () => {} };
  }
  const loc = parseImageLocation(spec);
  if (loc.kind === 'oci-layout') return { source: new OciLayoutSource(loc.path, loc.tag), close: async () => {} };
  const client = createRegistryClient(loc.reference.registry, options);
  return { source: new RegistryImageSource(client, loc.reference), client, reference: loc.reference, close: () => client.close() };
}

/** A RegistryClient for one registry, reached as `options.registry` says. */
export function createRegistryClient(registry: string, options: OpenImageSourceOptions = {}): RegistryClient {
  return new RegistryClient({
    ...endpointFor(registry, options.registry, options.registryOption ?? 'registry'),
    registry,
    logger: options.logger ?? noopLogger,
    ...(options.maxConnections !== undefined && { maxConnections: options.maxConnections }),
    ...(options.retry && { retry: options.retry }),
    ...(options.timeouts && { timeouts: options.timeouts }),
  });
}
