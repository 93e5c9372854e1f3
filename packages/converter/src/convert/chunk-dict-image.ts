import { FormatError, InvalidArgumentError, NotFoundError, isIndexMediaType } from '@nydus-ts/core';
import type { Descriptor, Digest, ImageIndex, ImageManifest, Platform } from '@nydus-ts/core';
import { BootstrapReader, ChunkDict } from '@nydus-ts/format';
import { RegistryImageSource, formatPlatform, parseReference, platformMatches } from '@nydus-ts/registry';
import type { ImageReference, RegistryClient } from '@nydus-ts/registry';
import { readBootstrapLayer } from './bootstrap-layer.js';
import { Annotation, NYDUS_BLOB_MEDIA_TYPE, isNydusBlobLayer, isNydusBootstrapLayer, isNydusManifest, isNydusManifestDescriptor } from './nydus-conventions.js';

/** A chunk dictionary taken from an existing Nydus image in a registry. */
export interface ChunkDictImage {
  reference: ImageReference;
  dict: ChunkDict;
  /** The dict image's blob layers by blob id (digest hex). */
  blobs: Map<string, Descriptor>;
  /** `<blob-id>.blob.meta` files of its bootstrap layer, by blob id. */
  blobMetas: Map<string, Uint8Array>;
}

/** `REF`, or nydusify's `bootstrap:registry:REF`. */
export function parseChunkDictReference(value: string): ImageReference {
  const prefixed = /^bootstrap:registry:(.+)$/.exec(value);
  if (value.startsWith('bootstrap:') && !prefixed) throw new InvalidArgumentError(`chunkDict ${value}: only registry images are supported (REF or bootstrap:registry:REF)`, { optionNames: ['chunkDict'] });
  return parseReference(prefixed ? prefixed[1]! : value);
}

function json<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (err) {
    throw new FormatError(what, 'is not valid JSON', { cause: err });
  }
}

/**
 * Loads the chunk dict of a Nydus image: resolves the reference (an index picks the Nydus
 * manifest of `platform`), fetches its bootstrap layer and reads the merged bootstrap's chunks.
 */
export async function loadChunkDictImage(client: RegistryClient, ref: ImageReference, platform: Platform, signal?: AbortSignal): Promise<ChunkDictImage> {
  const store = new RegistryImageSource(client, ref);
  const name = store.name;
  let top = await store.resolve(signal);
  if (isIndexMediaType(top.descriptor.mediaType)) {
    const index = json<ImageIndex>(top.bytes, `chunk dict ${name} index`);
    const candidates = (index.manifests ?? []).filter((d) => platformMatches(d.platform, platform));
    const chosen = candidates.find((d) => isNydusManifestDescriptor(d)) ?? candidates[0];
    if (!chosen) throw new NotFoundError(`chunk dict ${name}: no manifest for ${formatPlatform(platform)}`);
    top = await store.getManifest(chosen, signal);
  }
  const manifest = json<ImageManifest>(top.bytes, `chunk dict ${name} manifest`);
  if (!Array.isArray(manifest.layers) || !isNydusManifest(manifest)) {
    throw new InvalidArgumentError(`chunk dict ${name} is not a Nydus image (its last layer is not a nydus-bootstrap layer)`);
  }
  const bootLayer = manifest.layers[manifest.layers.length - 1]!;
  if (!isNydusBootstrapLayer(bootLayer)) throw new InvalidArgumentError(`chunk dict ${name}: no bootstrap layer`);
  const content = await readBootstrapLayer(store.fetchBlob(bootLayer, signal ? { signal } : {}), signal ? { signal } : {});
  const reader = await BootstrapReader.open(content.bootstrap, signal ? { signal } : {});
  const dict = ChunkDict.fromBootstrap(reader);
  const blobs = new Map<string, Descriptor>();
  for (const l of manifest.layers) {
    if (isNydusBlobLayer(l)) blobs.set(l.digest.slice('sha256:'.length), l);
  }
  for (const b of dict.blobs) {
    if (!blobs.has(b.blobId)) {
      // A blob of the bootstrap that the manifest does not list (e.g. the dict's own dict blobs):
      // it must be in the repository all the same.
      const size = await client.headBlob(ref.repository, `sha256:${b.blobId}` as Digest, signal ? { signal } : {});
      if (size === undefined) throw new NotFoundError(`chunk dict ${name}: blob ${b.blobId} of its bootstrap is not in ${ref.repository}`);
      blobs.set(b.blobId, { mediaType: NYDUS_BLOB_MEDIA_TYPE, digest: `sha256:${b.blobId}`, size, annotations: { [Annotation.NydusBlob]: 'true' } });
    }
  }
  return { reference: ref, dict, blobs, blobMetas: content.blobMetas };
}
