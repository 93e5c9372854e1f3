// The behaviour every ImageSource shares, as a vitest suite: run it against each implementation
// (registry, oci:, oci-archive:, docker-archive:, dir:). copy, convert and check rely on exactly
// these properties and on nothing else of a source.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isIndexMediaType, isManifestMediaType, isNydusError } from '@nydus-ts/core';
import type { Descriptor, ImageIndex, ImageManifest } from '@nydus-ts/core';
import type { ImageSource } from '../image-store.js';
import type { ManifestData } from '../registry-client.js';

export interface ImageSourceFixture {
  source: ImageSource;
  /**
   * `'fetchable'` (default): every layer streams through `fetchBlob`. `'synthesised'`: the
   * source makes its layer up (a `dir:` source's rootfs is read as a directory, never as a
   * blob), so it need not serve it; fetching it must then fail with a NydusError instead.
   */
  layers?: 'fetchable' | 'synthesised';
  close?(): Promise<void>;
}

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A blob's bytes; a failure thrown at once by fetchBlob or raised by its stream alike. */
async function readBlob(source: ImageSource, descriptor: Descriptor): Promise<Buffer> {
  let stream: Readable;
  try {
    stream = source.fetchBlob(descriptor);
  } catch (err) {
    return Promise.reject(err as Error);
  }
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (err: unknown) => err ?? new Error('rejected without a reason'),
  );
}

function expectMatches(data: ManifestData, descriptor?: Descriptor): void {
  expect(sha256(data.bytes)).toBe(data.descriptor.digest);
  expect(data.bytes.length).toBe(data.descriptor.size);
  expect(isManifestMediaType(data.descriptor.mediaType) || isIndexMediaType(data.descriptor.mediaType)).toBe(true);
  const json = JSON.parse(data.bytes.toString('utf8')) as { mediaType?: string };
  if (json.mediaType !== undefined) expect(json.mediaType).toBe(data.descriptor.mediaType);
  if (descriptor) expect(data.descriptor.digest).toBe(descriptor.digest);
}

/** The first image manifest the source's reference leads to (an index's first manifest child). */
async function firstManifest(source: ImageSource, top: ManifestData): Promise<ManifestData> {
  if (!isIndexMediaType(top.descriptor.mediaType)) return top;
  const index = JSON.parse(top.bytes.toString('utf8')) as ImageIndex;
  const child = index.manifests.find((d) => isManifestMediaType(d.mediaType));
  expect(child, 'an index with a manifest child').toBeDefined();
  return source.getManifest(child!);
}

/**
 * Must: a non-empty `name`; `resolve()` gives the same manifest or index every time, its bytes
 * matching its descriptor (sha256, size, media type); `getManifest` gives back the top
 * manifest and every child of an index, verified, and fails with NOT_FOUND for a digest it does
 * not have; `fetchBlob` streams the config and (unless synthesised) every layer byte for byte,
 * and fails with a NydusError for a blob it does not have; `close`, if any, settles.
 */
export function imageSourceSuite(name: string, factory: () => Promise<ImageSourceFixture>): void {
  describe(`ImageSource conformance: ${name}`, () => {
    const withFixture = (test: (f: ImageSourceFixture) => Promise<void>) => async () => {
      const f = await factory();
      try {
        await test(f);
      } finally {
        await f.source.close?.();
        await f.close?.();
      }
    };

    it('resolves the reference to verified manifest bytes, the same every time', withFixture(async ({ source }) => {
      expect(typeof source.name).toBe('string');
      expect(source.name.length).toBeGreaterThan(0);
      const top = await source.resolve();
      expectMatches(top);
      const again = await source.resolve();
      expect(again.descriptor.digest).toBe(top.descriptor.digest);
      expect(Buffer.compare(again.bytes, top.bytes)).toBe(0);
    }));

    it('gets manifests by descriptor (the top one, every index child) and refuses unknown ones', withFixture(async ({ source }) => {
      const top = await source.resolve();
      expectMatches(await source.getManifest(top.descriptor), top.descriptor);
      if (isIndexMediaType(top.descriptor.mediaType)) {
        for (const child of (JSON.parse(top.bytes.toString('utf8')) as ImageIndex).manifests) {
          expectMatches(await source.getManifest(child), child);
        }
      }
      const unknown: Descriptor = { ...top.descriptor, digest: `sha256:${'0'.repeat(64)}` };
      const err = await failure(source.getManifest(unknown));
      expect(isNydusError(err, 'NOT_FOUND'), `unknown manifest: ${String(err)}`).toBe(true);
    }));

    it('streams the config and every layer byte for byte', withFixture(async ({ source, layers }) => {
      const manifest = JSON.parse((await firstManifest(source, await source.resolve())).bytes.toString('utf8')) as ImageManifest;
      const config = await readBlob(source, manifest.config);
      expect(sha256(config)).toBe(manifest.config.digest);
      expect(config.length).toBe(manifest.config.size);
      expect(manifest.layers.length).toBeGreaterThan(0);
      for (const layer of manifest.layers) {
        if (layers === 'synthesised') {
          const err = await failure(readBlob(source, layer));
          expect(isNydusError(err), `a synthesised layer is not served: ${String(err)}`).toBe(true);
          continue;
        }
        const bytes = await readBlob(source, layer);
        expect(sha256(bytes)).toBe(layer.digest);
        expect(bytes.length).toBe(layer.size);
      }
    }));

    it('fails with a NydusError for a blob it does not have', withFixture(async ({ source }) => {
      const err = await failure(readBlob(source, { mediaType: 'application/octet-stream', digest: `sha256:${'1'.repeat(64)}`, size: 10 }));
      expect(isNydusError(err), `unknown blob: ${String(err)}`).toBe(true);
    }));
  });
}
