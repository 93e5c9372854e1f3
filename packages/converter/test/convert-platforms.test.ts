// Issue 4, done-when 2: --merge-platform, multi-platform sources, oci:/dir: sources,
// --merge-manifest onto an existing tag, and --chunk-dict dedup against an existing Nydus image.
import { mkdir, mkdtemp, rm, writeFile, symlink as fsSymlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Descriptor, ImageIndex, ImageManifest } from '@nydus-ts/core';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NYDUS_MANIFEST_ARTIFACT_TYPE, checkConvertedImage, convertImage, isNydusManifest } from '../src/index.js';
import { diffTrees, MountScope, snapshotTree, runTool } from '@nydus-ts/testing';
import { busyboxImage, hostLinuxPlatform, pushLayeredImage, pushTestIndex, whiteoutLayers, writeOciLayout, dir, file, whiteout } from './support/images.js';
import { fetchNydusImage, mountNydusImage } from './support/nydus-image.js';

async function* entries(list: ReturnType<typeof file>[]) {
  yield* list;
}

describe('convertImage: platforms, indexes, other sources, chunk dict', () => {
  let registry: TestRegistry;
  let client: RegistryClient;
  let work: string;
  const mounts = new MountScope();
  const host = hostLinuxPlatform();
  const other = { os: 'linux', architecture: host.architecture === 'amd64' ? 'arm64' : 'amd64' };

  beforeAll(async () => {
    registry = await startRegistry();
    client = new RegistryClient({ registry: registry.host, insecure: true });
    work = await mkdtemp(path.join(tmpdir(), 'nydus-convert-plat-'));
  });
  afterAll(async () => {
    await mounts.cleanup();
    await client?.close();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const getJson = async <T>(repo: string, ref: string): Promise<{ json: T; digest: string; mediaType: string }> => {
    const m = await client.getManifest(repo, ref);
    return { json: JSON.parse(m.bytes.toString('utf8')) as T, digest: m.descriptor.digest, mediaType: m.descriptor.mediaType };
  };

  async function twoPlatformSource(repo: string): Promise<{ index: Awaited<ReturnType<typeof pushTestIndex>>; images: Awaited<ReturnType<typeof busyboxImage>>[] }> {
    const a = await busyboxImage(client, { repository: repo, untagged: true, platform: host });
    const b = await pushLayeredImage(client, [{ compression: 'gzip', entries: () => entries([dir(''), dir('etc'), file('etc/arch', `${other.architecture}\n`)]) }], { repository: repo, untagged: true, platform: other });
    return { index: await pushTestIndex(client, repo, 'v1', [a, b]), images: [a, b] };
  }

  it('multi-platform source, --all-platforms: every platform converted, an index pushed', async () => {
    const src = await twoPlatformSource('src/multi');
    const result = await convertImage({ source: `${registry.host}/src/multi:v1`, target: `${registry.host}/conv/multi:nydus`, allPlatforms: true, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    expect(result.sourceDigest).toBe(src.index.descriptor.digest);
    expect(result.manifests.map((m) => m.platform).sort()).toEqual([`linux/${host.architecture}`, `linux/${other.architecture}`].sort());
    const { json: index, mediaType } = await getJson<ImageIndex>('conv/multi', 'nydus');
    expect(mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((d) => d.platform?.architecture).sort()).toEqual([host.architecture, other.architecture].sort());
    for (const d of index.manifests) {
      const m = await getJson<ImageManifest>('conv/multi', d.digest);
      expect(isNydusManifest(m.json)).toBe(true);
    }
    // one platform picked from an index gives a plain manifest
    const one = await convertImage({ source: `${registry.host}/src/multi:v1`, target: `${registry.host}/conv/multi:one`, platform: `linux/${other.architecture}`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    expect(one.targetMediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(one.manifests[0]!.source.digest).toBe(src.images[1]!.manifest.descriptor.digest);
    await expect(convertImage({ source: `${registry.host}/src/multi:v1`, target: `${registry.host}/conv/multi:none`, platform: 'linux/s390x', sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('--merge-platform --keep-source-manifests: the source manifests unchanged (same digests) then the Nydus ones with artifactType and os.features', async () => {
    const src = await twoPlatformSource('src/mp');
    await convertImage({ source: `${registry.host}/src/mp:v1`, target: `${registry.host}/conv/mp:v1`, allPlatforms: true, mergePlatform: true, keepSourceManifests: true, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const { json: index } = await getJson<ImageIndex>('conv/mp', 'v1');
    const srcIndex = JSON.parse(src.index.bytes.toString()) as ImageIndex;
    expect(index.manifests.slice(0, 2)).toEqual(srcIndex.manifests);
    const nydus = index.manifests.slice(2);
    expect(nydus).toHaveLength(2);
    for (const d of nydus) {
      expect(d.artifactType).toBe(NYDUS_MANIFEST_ARTIFACT_TYPE);
      expect(d.platform?.['os.features']).toEqual(['nydus.remoteimage.v1']);
    }
    // pinned references to the source manifests resolve in the target repository
    for (const d of srcIndex.manifests) expect((await client.headManifest('conv/mp', d.digest))?.digest).toBe(d.digest);
    // a runtime without Nydus picks the plain manifest (skopeo does)
    const inspect = JSON.parse(await runTool('skopeo', ['inspect', '--tls-verify=false', `--override-arch=${host.architecture}`, `docker://${registry.host}/conv/mp:v1`])) as { Layers: string[] };
    expect(inspect.Layers).toEqual(src.images[0]!.layers.map((l) => l.digest));

    // single-manifest source: index of [source manifest, nydus manifest]
    const bb = await busyboxImage(client, { repository: 'src/mp-single', tag: 'v1' });
    await convertImage({ source: bb.reference, target: `${registry.host}/conv/mp-single:v1`, mergePlatform: true, keepSourceManifests: true, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const { json: single } = await getJson<ImageIndex>('conv/mp-single', 'v1');
    expect(single.manifests.map((d) => d.digest)[0]).toBe(bb.manifest.descriptor.digest);
    expect(single.manifests[0]!.platform).toEqual(host);
    expect(single.manifests[1]!.artifactType).toBe(NYDUS_MANIFEST_ARTIFACT_TYPE);
  });

  it('--merge-manifest: the Nydus manifest is added to what the tag holds (manifest or index), replacing an older Nydus entry', async () => {
    const bb = await busyboxImage(client, { repository: 'conv/mm', tag: 'app' });
    const r1 = await convertImage({ source: bb.reference, target: `${registry.host}/conv/mm:app`, mergeManifest: true, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const { json: first } = await getJson<ImageIndex>('conv/mm', 'app');
    expect(first.manifests.map((d) => d.digest)).toEqual([bb.manifest.descriptor.digest, r1.manifests[0]!.target.digest]);
    // again, with other chunk settings: the old Nydus entry is replaced, the OCI one kept
    const r2 = await convertImage({ source: `${registry.host}/conv/mm@${bb.manifest.descriptor.digest}`, target: `${registry.host}/conv/mm:app`, mergeManifest: true, compressor: 'lz4_block', sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const { json: second } = await getJson<ImageIndex>('conv/mm', 'app');
    expect(r2.manifests[0]!.target.digest).not.toBe(r1.manifests[0]!.target.digest);
    expect(second.manifests.map((d) => d.digest)).toEqual([bb.manifest.descriptor.digest, r2.manifests[0]!.target.digest]);
    // a tag that does not exist yet is just created
    const r3 = await convertImage({ source: bb.reference, target: `${registry.host}/conv/mm:fresh`, mergeManifest: true, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    expect(r3.targetDigest).toBe(r3.manifests[0]!.target.digest);
  });

  it('oci: layout source (no registry push of the source); the result mounts equal to the layout', async () => {
    const img = await pushLayeredImage(client, whiteoutLayers().map((l) => ({ ...l, compression: l.compression === 'zstd' ? 'gzip' : l.compression, omitEndOfArchive: true })), { repository: 'src/for-layout', tag: 'v1' });
    const layout = path.join(work, 'layout');
    await writeOciLayout(client, img, layout, 'v1');
    const result = await convertImage({ source: `oci:${layout}:v1`, target: `${registry.host}/conv/from-layout:nydus`, compressor: 'none', targetRegistry: { insecure: true } });
    expect(result.sourceDigest).toBe(img.manifest.descriptor.digest);
    const bundle = path.join(work, 'layout-bundle');
    await runTool('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
    const nydus = await fetchNydusImage(client, 'conv/from-layout', 'nydus');
    const blobs = path.join(work, 'layout-blobs');
    await mkdir(blobs);
    const mnt = await mountNydusImage(client, 'conv/from-layout', nydus, blobs, mounts);
    const [a, b] = await Promise.all([snapshotTree(path.join(bundle, 'rootfs')), snapshotTree(mnt.mountpoint)]);
    expect(diffTrees(a, b, { ignoreRootMtime: true, ignoreDirNlink: true, ignoreSymlinkMode: true })).toEqual([]);
  });

  it('oci-archive: and docker-archive: sources (build-system exports) convert to images that check passes', async () => {
    const img = await busyboxImage(client, { repository: 'src/for-archive', tag: 'v1' });
    const layout = path.join(work, 'archive-layout');
    await writeOciLayout(client, img, layout, 'v1');
    const ociTar = path.join(work, 'image-oci.tar');
    await runTool('tar', ['-C', layout, '-cf', ociTar, '.']);
    const dockerTar = path.join(work, 'image-docker.tar');
    await runTool('skopeo', ['copy', '-q', `oci:${layout}:v1`, `docker-archive:${dockerTar}:busybox:v1`]);
    for (const [source, repo] of [
      [`oci-archive:${ociTar}:v1`, 'conv/from-oci-archive'],
      [`docker-archive:${dockerTar}:busybox:v1`, 'conv/from-docker-archive'],
    ] as const) {
      const result = await convertImage({ source, target: `${registry.host}/${repo}:nydus`, targetRegistry: { insecure: true } });
      expect(result.manifests[0]!.layers.length).toBe(img.layers.length);
      const report = await checkConvertedImage({ source, target: `${registry.host}/${repo}:nydus`, targetRegistry: { insecure: true } });
      expect(report.differences).toEqual([]);
      expect(report.ok).toBe(true);
    }
  });

  it('a layer without file data still gets a Nydus blob (its bootstrap only): one blob and one diff_id per source layer', async () => {
    const img = await pushLayeredImage(
      client,
      [
        { compression: 'gzip', entries: () => entries([dir(''), dir('etc'), file('etc/a', 'a\n'), file('etc/b', 'b\n')]) },
        { compression: 'gzip', entries: () => entries([dir(''), dir('etc'), whiteout('etc/b'), dir('empty-dir')]) },
      ],
      { repository: 'src/meta-only', tag: 'v1' },
    );
    const target = `${registry.host}/conv/meta-only:nydus`;
    const result = await convertImage({ source: img.reference, target, targetRegistry: { insecure: true }, sourceRegistry: { insecure: true } });
    const report = result.manifests[0]!;
    expect(report.layers.map((l) => l.chunks)).toEqual([2, 0]);
    const nydus = await fetchNydusImage(client, 'conv/meta-only', 'nydus');
    expect(nydus.manifest.layers).toHaveLength(3);
    expect(nydus.manifest.layers.slice(0, 2).map((l: Descriptor) => l.digest)).toEqual(report.layers.map((l) => l.blob!.digest));
    expect(nydus.config.rootfs.diff_ids).toHaveLength(3);
    expect(nydus.config.rootfs.diff_ids.slice(0, 2)).toEqual(report.layers.map((l) => l.blob!.digest));
    const check = await checkConvertedImage({ source: img.reference, target, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    expect(check.differences).toEqual([]);
  });

  it('dir: source: one layer, config synthesised for the host platform; mounts equal to the directory', async () => {
    const rootfs = path.join(work, 'rootfs');
    await mkdir(path.join(rootfs, 'etc'), { recursive: true });
    await writeFile(path.join(rootfs, 'etc/hello'), 'hello from a directory\n');
    await writeFile(path.join(rootfs, 'big'), Buffer.alloc(5 << 20, 7));
    await fsSymlink('etc/hello', path.join(rootfs, 'link'));
    const result = await convertImage({ source: `dir:${rootfs}`, target: `${registry.host}/conv/from-dir:nydus`, compressor: 'none', targetRegistry: { insecure: true } });
    expect(result.manifests[0]!.layers).toHaveLength(1);
    expect(result.manifests[0]!.layers[0]!.contentBytes).toBe((5 << 20) + 23);
    const nydus = await fetchNydusImage(client, 'conv/from-dir', 'nydus');
    expect(nydus.config.architecture).toBe(host.architecture);
    expect(nydus.config.rootfs.diff_ids).toHaveLength(2);
    const blobs = path.join(work, 'dir-blobs');
    await mkdir(blobs);
    const mnt = await mountNydusImage(client, 'conv/from-dir', nydus, blobs, mounts);
    const [a, b] = await Promise.all([snapshotTree(rootfs), snapshotTree(mnt.mountpoint)]);
    expect(diffTrees(a, b)).toEqual([]);
    await expect(convertImage({ source: `dir:${rootfs}`, target: `${registry.host}/conv/x:y`, mergePlatform: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('--chunk-dict: chunks of an existing Nydus image are referenced, its blobs listed and present in the target repo, savings reported', async () => {
    const base = await busyboxImage(client, { repository: 'src/dict-base', tag: 'v1' });
    // uncompressed chunks: the kernel reads blobs as plain devices (below)
    await convertImage({ source: base.reference, target: `${registry.host}/dict/base:nydus`, compressor: 'none', sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    // a second image that contains the same busybox binary plus something new
    const derived = await pushLayeredImage(
      client,
      [
        { compression: 'gzip', entries: () => (async function* () { yield dir(''); yield dir('bin'); const { hostFile } = await import('./support/images.js'); yield hostFile('bin/busybox', '/usr/bin/busybox', 0o755); })() },
        { compression: 'gzip', entries: () => entries([dir(''), file('new', 'only in the derived image\n')]) },
      ],
      { repository: 'src/dict-derived', tag: 'v1' },
    );
    const result = await convertImage({ source: derived.reference, target: `${registry.host}/app/derived:nydus`, chunkDict: `bootstrap:registry:${registry.host}/dict/base:nydus`, compressor: 'none', sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const report = result.manifests[0]!;
    const busyboxSize = (await import('node:fs')).statSync('/usr/bin/busybox').size;
    expect(result.dedup.dictBytes).toBe(busyboxSize);
    // all of layer 0's data is in the dict: its blob holds only its bootstrap and ToC
    expect(report.layers[0]!.blob!.size).toBeLessThan(64 * 1024);
    expect(report.dictBlobs).toHaveLength(1);
    expect(report.dictBlobs[0]!.action).toBe('mounted');
    const nydus = await fetchNydusImage(client, 'app/derived', 'nydus');
    const listed = nydus.manifest.layers.map((l: Descriptor) => l.digest);
    expect(listed).toContain(report.dictBlobs[0]!.digest);
    expect(await client.headBlob('app/derived', report.dictBlobs[0]!.digest as `sha256:${string}`)).toBeGreaterThan(0);
    expect(nydus.blobMetas.has(report.dictBlobs[0]!.digest.slice(7))).toBe(true);
    // and the image reads right: the kernel sees the busybox binary through the dict blob
    const blobs = path.join(work, 'dict-blobs');
    await mkdir(blobs);
    const mnt = await mountNydusImage(client, 'app/derived', nydus, blobs, mounts);
    expect(await runTool(path.join(mnt.mountpoint, 'bin/busybox'), ['echo', 'via dict'])).toBe('via dict\n');
  });
});
