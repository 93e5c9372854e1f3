// targz-ref on real distributions: Debian minbase and node-on-minbase converted with --oci-ref
// on a real registry. The pushed artifact is ≤ 5% of the source's compressed size, the tree
// equals the source attribute by attribute (check reads every file through the original gzip
// layers), and reading one small file fetches ≤ 2 MB of the original layers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobBackend, ImageManifest } from '@nydus-ts/core';
import { RegistryBlobBackend } from '@nydus-ts/backend';
import { BootstrapReader, RafsFileReader, attachRefBlobMetas } from '@nydus-ts/format';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { checkConvertedImage, convertImage, readBootstrapLayer } from '../src/index.js';
import { hostLinuxPlatform, minbaseImage, nodeImage } from './support/images.js';

let registry: TestRegistry;
let client: RegistryClient;
const platform = hostLinuxPlatform();

beforeAll(async () => {
  registry = await startRegistry();
  client = new RegistryClient({ registry: registry.host, insecure: true });
});

afterAll(async () => {
  await client?.close();
  await registry?.stop();
});

/** Counts the bytes read per blob. */
function counting(inner: BlobBackend): BlobBackend & { fetched: Map<string, number> } {
  const fetched = new Map<string, number>();
  return {
    fetched,
    async readRange(id, offset, length, signal) {
      fetched.set(id, (fetched.get(id) ?? 0) + length);
      return inner.readRange(id, offset, length, signal);
    },
  };
}

describe('convert --oci-ref on real distributions', () => {
  it('minbase and node: artifact ≤ 5% of the source, check passes, one small file costs ≤ 2 MB of the originals', async () => {
    const minbase = await minbaseImage(client, { repository: 'zran/minbase', tag: 'v1' });
    const node = await nodeImage(client, { repository: 'zran/node', tag: 'v1' });
    for (const img of [minbase, node]) {
      const repo = `${img.repository}-zran`;
      const target = `${registry.host}/${repo}:v1`;
      const result = await convertImage({ source: img.reference, target, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, ociRef: true });
      expect(result.ociRef!.sourceBytes).toBe(img.layers.reduce((a, l) => a + l.size, 0));
      expect(result.ociRef!.artifactBytes / result.ociRef!.sourceBytes, img.repository).toBeLessThanOrEqual(0.05);
      expect(result.manifests[0]!.layers.every((l) => l.ref?.kind === 'zran')).toBe(true);

      const r = await checkConvertedImage({ source: img.reference, target, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, platform, concurrency: 16 });
      expect(r.differences, img.repository).toEqual([]);
      expect(r.counts.sourceEntries).toBe(r.counts.targetEntries);
      expect(r.counts.filesRead).toBeGreaterThan(3000);

      // A cold read of one small file: the meta blobs (mount), then one context of one original.
      const manifest = JSON.parse((await client.getManifest(repo, 'v1')).bytes.toString('utf8')) as ImageManifest;
      const boot = await readBootstrapLayer(client.fetchBlob(repo, manifest.layers[manifest.layers.length - 1]!));
      const reader = await BootstrapReader.open(boot.bootstrap);
      const backend = counting(new RegistryBlobBackend(client, repo, { readAhead: 0 }));
      await attachRefBlobMetas(reader, backend);
      const originals = new Set(img.layers.map((l) => l.digest.slice(7)));
      const beforeRead = [...backend.fetched].filter(([id]) => originals.has(id)).reduce((a, [, n]) => a + n, 0);
      expect(beforeRead).toBe(0);
      const nid = reader.lookup('/etc/debian_version')!;
      const data = await new RafsFileReader(reader, backend).read(nid, 0, reader.inode(nid).size);
      expect(Buffer.from(data).toString()).toMatch(/^\d+\.\d+/);
      const fromOriginals = [...backend.fetched].filter(([id]) => originals.has(id)).reduce((a, [, n]) => a + n, 0);
      expect(fromOriginals).toBeGreaterThan(0);
      expect(fromOriginals).toBeLessThanOrEqual(2_000_000);
    }
  }, 600_000);
});
