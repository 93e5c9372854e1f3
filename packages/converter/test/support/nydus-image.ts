/**
 * Test helpers for converted Nydus images in a registry: read the manifest/config/bootstrap
 * layer, fetch the data blobs (test-only temp files) and mount the image with the kernel's EROFS.
 */
import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Descriptor, Digest, ImageConfig, ImageManifest } from '@nydus-ts/core';
import { BootstrapReader } from '@nydus-ts/format';
import type { RegistryClient } from '@nydus-ts/registry';
import { readBootstrapLayer } from '../../src/index.js';
import type { MountHandle, MountScope } from '@nydus-ts/testing';

export interface FetchedNydusImage {
  manifest: ImageManifest;
  config: ImageConfig;
  bootstrap: Uint8Array;
  blobMetas: Map<string, Uint8Array>;
  reader: BootstrapReader;
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

/** Fetches a Nydus manifest (by tag or digest), its config and its bootstrap layer. */
export async function fetchNydusImage(client: RegistryClient, repository: string, reference: string): Promise<FetchedNydusImage> {
  const m = await client.getManifest(repository, reference);
  const manifest = JSON.parse(m.bytes.toString('utf8')) as ImageManifest;
  const config = JSON.parse((await readAll(client.fetchBlob(repository, manifest.config))).toString('utf8')) as ImageConfig;
  const boot = manifest.layers[manifest.layers.length - 1]!;
  const content = await readBootstrapLayer(client.fetchBlob(repository, boot));
  const reader = await BootstrapReader.open(content.bootstrap);
  return { manifest, config, bootstrap: content.bootstrap, blobMetas: content.blobMetas, reader };
}

/** The raw bytes of one blob. */
export async function fetchBlobBytes(client: RegistryClient, repository: string, descriptor: Pick<Descriptor, 'digest' | 'size'>): Promise<Buffer> {
  return readAll(client.fetchBlob(repository, descriptor));
}

/**
 * Mounts a converted image with the kernel EROFS driver: the merged bootstrap as the image and
 * each blob of its blob table (fetched to `dir`, test-only) as a loop device, in table order.
 */
export async function mountNydusImage(client: RegistryClient, repository: string, image: FetchedNydusImage, dir: string, mounts: MountScope): Promise<MountHandle> {
  const bootFile = path.join(dir, 'image.boot');
  await writeFile(bootFile, image.bootstrap);
  const blobFiles: string[] = [];
  for (const blob of image.reader.blobs) {
    const digest = `sha256:${blob.blobId}` as Digest;
    const layer = image.manifest.layers.find((l) => l.digest === digest);
    if (!layer) throw new Error(`blob ${blob.blobId} of the bootstrap is not a layer of the manifest`);
    const file = path.join(dir, `${blob.blobId}.blob`);
    await pipeline(client.fetchBlob(repository, layer), createWriteStream(file));
    blobFiles.push(file);
  }
  return mounts.mountErofs(bootFile, { blobs: blobFiles });
}
