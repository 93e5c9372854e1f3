import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageIndex, ImageManifest } from '@nydus-ts/core';
import { BootstrapReader } from '@nydus-ts/format';
import { RegistryClient, copyImage } from '@nydus-ts/registry';
import { startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { checkConvertedImage, convertImage, readBootstrapLayer, referencedOriginalLayers } from '../src/index.js';
import type { ConvertImageResult } from '../src/index.js';
import { dir, file, hostLinuxPlatform, pushLayeredImage, symlink } from './support/images.js';
import type { TestImage } from './support/images.js';

const run = promisify(execFile);
const fixtures = new URL('../../../testdata/nydus-upstream/', import.meta.url).pathname;
const NYDUS_REF = 'containerd.io/snapshot/nydus-ref';
const FIXTURES = ['zran-single-stream.tar.gz', 'zran-two-streams.tar.gz', 'zran-zero-file.tar.gz', 'bgzip.tar.gz'];

let registry: TestRegistry;
let registry2: TestRegistry;
let client: RegistryClient;
let client2: RegistryClient;
let tmp: string;
const images = new Map<string, TestImage>();
let mixed: TestImage;
const platform = hostLinuxPlatform();

function convert(source: string, target: string, extra: Partial<Parameters<typeof convertImage>[0]> = {}): Promise<ConvertImageResult> {
  return convertImage({ source, target, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, ociRef: true, ...extra });
}

async function check(source: string, target: string) {
  return checkConvertedImage({ source, target, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, platform });
}

async function manifestOf(c: RegistryClient, repo: string, tag: string): Promise<ImageManifest> {
  return JSON.parse((await c.getManifest(repo, tag)).bytes.toString('utf8')) as ImageManifest;
}

beforeAll(async () => {
  [registry, registry2] = await Promise.all([startRegistry(), startRegistry()]);
  client = new RegistryClient({ registry: registry.host, insecure: true });
  client2 = new RegistryClient({ registry: registry2.host, insecure: true });
  tmp = await mkdtemp(path.join(tmpdir(), 'oci-ref-'));
  for (const name of FIXTURES) {
    const tar = path.join(tmp, name.replace(/\.gz$/, ''));
    await writeFile(tar, gunzipSync(await readFile(path.join(fixtures, name))));
    images.set(name, await pushLayeredImage(client, [{ compression: 'gzip', compressedFile: path.join(fixtures, name), tarFile: tar }], { repository: `src/${name.replace(/\.tar\.gz$/, '')}`, tag: 'v1' }));
  }
  const big = Buffer.alloc(3 << 20);
  for (let i = 0; i < big.length; i += 4096) big.write(`block ${i} of a file that spans several chunks\n`, i);
  mixed = await pushLayeredImage(
    client,
    [
      { compression: 'gzip', entries: async function* () { yield dir('etc'); yield file('etc/motd', 'hello\n'); yield file('big', big); yield file('empty', ''); yield symlink('etc/link', 'motd'); } },
      { compression: 'zstd', entries: async function* () { yield dir('etc'); yield file('etc/motd', 'hello from zstd\n'); yield file('z', 'zz'); } },
      { compression: 'none', entries: async function* () { yield dir('opt'); yield file('opt/plain', 'plain tar layer\n'); } },
    ],
    { repository: 'src/mixed', tag: 'v1' },
  );
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([client?.close(), client2?.close()]);
  await Promise.allSettled([registry?.stop(), registry2?.stop()]);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('convert --oci-ref', () => {
  for (const name of FIXTURES) {
    it(`${name} as a one-layer image: targz-ref manifest, originals mounted, check passes`, async () => {
      const image = images.get(name)!;
      const repo = `zran/${name.replace(/\.tar\.gz$/, '')}`;
      const result = await convert(image.reference, `${registry.host}/${repo}:v1`, { chunkSize: 0x10000 });
      const layer = result.manifests[0]!.layers[0]!;
      expect(layer.ref).toMatchObject({ kind: 'zran', original: { digest: image.layers[0]!.digest, action: 'mounted' } });
      expect(result.ociRef!.sourceBytes).toBe(image.layers[0]!.size);
      const m = await manifestOf(client, repo, 'v1');
      expect(m.layers).toHaveLength(2);
      expect(m.layers[0]!.mediaType).toBe('application/vnd.oci.image.layer.nydus.blob.v1');
      expect(m.layers[0]!.annotations?.[NYDUS_REF]).toBe(image.layers[0]!.digest);
      expect(m.layers[1]!.annotations?.['containerd.io/snapshot/nydus-bootstrap']).toBe('true');
      // The original is in the target repository without being listed.
      expect(await client.headBlob(repo, image.layers[0]!.digest)).toBe(image.layers[0]!.size);
      const report = await check(image.reference, `${registry.host}/${repo}:v1`);
      expect(report.differences).toEqual([]);
      expect(report.ok).toBe(true);
    });
  }

  it('mixed layers: gzip -> zran, plain tar -> tar-ref, zstd -> native blob (said in the report); check passes', async () => {
    const result = await convert(mixed.reference, `${registry.host}/zran/mixed:v1`);
    const layers = result.manifests[0]!.layers;
    expect(layers.map((l) => l.ref?.kind)).toEqual(['zran', 'native', 'tar']);
    expect(layers[1]!.ref).toMatchObject({ kind: 'native', reason: expect.stringContaining('zstd') });
    const m = await manifestOf(client, 'zran/mixed', 'v1');
    expect(m.layers.map((l) => l.annotations?.[NYDUS_REF])).toEqual([mixed.layers[0]!.digest, undefined, mixed.layers[2]!.digest, undefined]);
    const report = await check(mixed.reference, `${registry.host}/zran/mixed:v1`);
    expect(report.differences).toEqual([]);
    // The bootstrap names the two originals and the native blob; only the originals are unlisted.
    const extra = await referencedOriginalLayers(m, { source: { name: 'x', resolve: () => { throw new Error('unused'); }, getManifest: () => { throw new Error('unused'); }, fetchBlob: (d, o) => client.fetchBlob('zran/mixed', d, o) }, manifest: await client.getManifest('zran/mixed', 'v1') });
    expect(extra.map((d) => d.digest).sort()).toEqual([mixed.layers[0]!.digest, mixed.layers[2]!.digest].sort());
  });

  it('to another registry the originals are copied; a copy of the zran image to a second registry carries them too', async () => {
    const image = images.get('bgzip.tar.gz')!;
    const result = await convert(image.reference, `${registry2.host}/zran/bgzip:v1`);
    expect(result.manifests[0]!.layers[0]!.ref).toMatchObject({ original: { action: 'copied' } });
    expect((await check(image.reference, `${registry2.host}/zran/bgzip:v1`)).differences).toEqual([]);

    // Copy the zran image made in registry 1 to registry 2 under a new name.
    await convert(mixed.reference, `${registry.host}/zran/mixed2:v1`);
    await copyImage({
      source: `${registry.host}/zran/mixed2:v1`,
      target: `${registry2.host}/copied/mixed:v1`,
      sourceRegistry: { insecure: true },
      targetRegistry: { insecure: true },
      extraBlobs: referencedOriginalLayers,
      
    });
    for (const l of [mixed.layers[0]!, mixed.layers[2]!]) expect(await client2.headBlob('copied/mixed', l.digest)).toBe(l.size);
    expect((await check(mixed.reference, `${registry2.host}/copied/mixed:v1`)).differences).toEqual([]);
  });

  it('--merge-platform keeps the source manifest next to the zran one', async () => {
    const image = images.get('zran-two-streams.tar.gz')!;
    await convert(image.reference, `${registry.host}/zran/merged:v1`, { mergePlatform: true });
    const index = JSON.parse((await client.getManifest('zran/merged', 'v1')).bytes.toString('utf8')) as ImageIndex;
    // The source manifest with the empty layer prepended (spec §5.5), naming the one it replaces.
    expect(index.manifests.map((d) => d.annotations?.['containerd.io/snapshot/nydus-source-digest'])).toContain(image.manifest.descriptor.digest);
    expect(index.manifests).toHaveLength(2);
    expect((await client.headManifest('zran/merged', image.manifest.descriptor.digest))?.digest).toBe(image.manifest.descriptor.digest);
  });

  it('the bootstrap names the original and its meta blob; the bootstrap layer carries no copy of the meta', async () => {
    const image = images.get('bgzip.tar.gz')!;
    const result = await convert(image.reference, `${registry.host}/zran/bgzip-size:v1`);
    expect(result.ociRef!.artifactBytes).toBeGreaterThan(0);
    const m = await manifestOf(client, 'zran/bgzip-size', 'v1');
    const boot = await readBootstrapLayer(client.fetchBlob('zran/bgzip-size', m.layers[1]!));
    const reader = await BootstrapReader.open(boot.bootstrap!);
    expect(reader.blobs.map((b) => b.blobId)).toEqual([image.layers[0]!.digest.slice(7)]);
    // The CI table is in the meta blob (blob_meta_digest), not shipped again in the bootstrap layer.
    expect([...boot.blobMetas.keys()]).toEqual([]);
    expect(reader.blobs[0]!.entry.metaDigest).toBe(m.layers[0]!.digest.slice(7));
  });

  it('corrupt bytes of an original layer in the registry storage fail only the files in the affected contexts', async () => {
    const image = images.get('bgzip.tar.gz')!;
    // In the second registry: the source image (registry 1) must stay intact.
    await convert(image.reference, `${registry2.host}/zran/corrupt:v1`, { chunkSize: 0x1000 });
    const hex = image.layers[0]!.digest.slice(7);
    const data = path.join(registry2.dir, 'storage/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = await readFile(data).catch(async () => {
      const found = await run('find', [registry2.dir, '-path', `*${hex}/data`]);
      throw new Error(`no blob data file at ${data}; found: ${found.stdout}`);
    });
    const corrupt = Buffer.from(bytes);
    for (let i = 0; i < 32; i++) corrupt[(corrupt.length >> 1) + i] ^= 0x5a;
    await writeFile(data, corrupt);
    try {
      const report = await check(image.reference, `${registry2.host}/zran/corrupt:v1`);
      expect(report.ok).toBe(false);
      const fileDiffs = report.differences.filter((d) => d.startsWith('/'));
      expect(fileDiffs.length).toBeGreaterThan(0);
      expect(fileDiffs.length).toBeLessThan(report.counts.filesRead);
    } finally {
      await writeFile(data, bytes);
    }
    expect(await readdir(path.dirname(data))).toContain('data');
  });
});
