import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MediaType } from '@nydus-ts/core';
import type { Descriptor, Digest, Platform } from '@nydus-ts/core';
import type { ManifestData, RegistryClient } from '../registry-client.js';

/** A generated layer: `random` bytes (incompressible) or a `compressible` repeating text. */
export interface GeneratedLayer {
  size: number;
  kind?: 'random' | 'compressible';
  /** Different seeds give different bytes (default: the layer's position and image seed). */
  seed?: string;
}

/**
 * A deterministic stream of `size` bytes: AES-128-CTR keystream of `seed` (random-looking, GB/s)
 * or a compressible repeating pattern. Nothing is held in memory beyond one chunk.
 */
export function generatedStream(size: number, seed: string, kind: 'random' | 'compressible' = 'random'): Readable {
  const chunkSize = 1 << 20;
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zero = Buffer.alloc(chunkSize);
  const pattern = Buffer.alloc(chunkSize, `${seed} nydus-ts compressible line\n`);
  let left = size;
  return new Readable({
    highWaterMark: chunkSize,
    read() {
      if (left <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(chunkSize, left);
      left -= n;
      this.push(kind === 'random' ? cipher.update(zero.subarray(0, n)) : Buffer.from(pattern.subarray(0, n)));
    },
  });
}

export interface PushImageOptions {
  tag?: string;
  layers: GeneratedLayer[];
  platform?: Platform;
  /** Media types to use (default oci). */
  format?: 'oci' | 'docker';
  seed?: string;
  /** Upload chunk size for createUpload (default 0: one streaming PATCH). */
  chunkSize?: number;
}

export interface PushedImage {
  manifest: ManifestData;
  config: Descriptor;
  layers: Descriptor[];
  platform: Platform;
}

function sha256(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Generates an image (layers streamed through {@link RegistryClient.createUpload}, a config
 * and a manifest) and pushes it to `repository`, tagged when `tag` is given.
 */
export async function pushGeneratedImage(client: RegistryClient, repository: string, options: PushImageOptions): Promise<PushedImage> {
  const format = options.format ?? 'oci';
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const seed = options.seed ?? `${repository}:${options.tag ?? ''}:${platform.architecture}`;
  const layerType = format === 'oci' ? MediaType.OciLayerGzip : MediaType.DockerLayerGzip;
  const layers: Descriptor[] = [];
  for (const [i, layer] of options.layers.entries()) {
    const upload = await client.createUpload(repository, { chunkSize: options.chunkSize ?? 0 });
    await pipeline(generatedStream(layer.size, layer.seed ?? `${seed}#${i}`, layer.kind), upload);
    const { digest, size } = await upload.commit({ size: layer.size });
    layers.push({ mediaType: layerType, digest, size });
  }
  const config = Buffer.from(JSON.stringify({
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    history: layers.map((_, i) => ({ created_by: `generated layer ${i} (${seed})` })),
  }));
  const configDesc: Descriptor = { mediaType: format === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig, digest: sha256(config), size: config.length };
  const cu = await client.createUpload(repository);
  cu.end(config);
  await cu.commit({ digest: configDesc.digest, size: configDesc.size });
  const manifestMediaType = format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest;
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: manifestMediaType, config: configDesc, layers }, null, 2));
  const digest = await client.putManifest(repository, options.tag ?? sha256(bytes), bytes, manifestMediaType);
  return { manifest: { descriptor: { mediaType: manifestMediaType, digest, size: bytes.length }, bytes }, config: configDesc, layers, platform };
}

/** Pushes an index (or Docker manifest list) over already pushed images. */
export async function pushIndex(client: RegistryClient, repository: string, tag: string, images: PushedImage[], format: 'oci' | 'docker' = 'oci'): Promise<ManifestData> {
  const mediaType = format === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList;
  const bytes = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    manifests: images.map((img) => ({ ...img.manifest.descriptor, platform: img.platform })),
  }));
  const digest = await client.putManifest(repository, tag, bytes, mediaType);
  return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
}

/** Pushes a two-platform (linux/amd64 + linux/arm64) index of small generated images. */
export async function pushTwoPlatformImage(client: RegistryClient, repository: string, tag: string, layers: GeneratedLayer[] = [{ size: 300_000 }, { size: 200_000, kind: 'compressible' }]): Promise<{ index: ManifestData; images: PushedImage[] }> {
  const images: PushedImage[] = [];
  for (const architecture of ['amd64', 'arm64']) {
    images.push(await pushGeneratedImage(client, repository, { layers, platform: { os: 'linux', architecture }, seed: `${repository}:${tag}:${architecture}` }));
  }
  return { index: await pushIndex(client, repository, tag, images), images };
}
