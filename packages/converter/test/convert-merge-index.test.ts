// Issue 9, item 20: --merge-platform writes the index the reference tools now write (spec §5.5):
// an empty gzip layer prepended to each converted OCI manifest, the Nydus manifests marked with
// artifactType only and given the Nydus config media type. --keep-source-manifests keeps the
// older byte-identical form (convert-platforms.test.ts). Readers (check, copy's platform choice,
// --merge-manifest) accept either marker.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { MediaType } from '@nydus-ts/core';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from '@nydus-ts/core';
import { RegistryClient, copyImage } from '@nydus-ts/registry';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Annotation, NYDUS_CONFIG_MEDIA_TYPE, NYDUS_MANIFEST_ARTIFACT_TYPE, checkConvertedImage, convertImage, isNydusManifest } from '../src/index.js';
import { busyboxImage, dir, file, hostLinuxPlatform, pushLayeredImage, pushTestIndex } from './support/images.js';
import type { TestImage } from './support/images.js';

const run = promisify(execFile);
const EMPTY_LAYER_DIGEST = 'sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1';
const EMPTY_TAR_DIFF_ID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';

async function* entries(list: ReturnType<typeof file>[]) {
  yield* list;
}

describe('--merge-platform in the reference tools\' form', () => {
  let registry: TestRegistry;
  let client: RegistryClient;
  const host = hostLinuxPlatform();
  const other = { os: 'linux', architecture: host.architecture === 'amd64' ? 'arm64' : 'amd64' };
  let images: TestImage[];
  let sourceIndex: ImageIndex;

  beforeAll(async () => {
    registry = await startRegistry();
    client = new RegistryClient({ registry: registry.host, insecure: true });
    const a = await busyboxImage(client, { repository: 'src/merge', untagged: true, platform: host });
    const b = await pushLayeredImage(client, [{ compression: 'gzip', entries: () => entries([dir(''), dir('etc'), file('etc/arch', `${other.architecture}\n`)]) }], { repository: 'src/merge', untagged: true, platform: other, format: 'docker' });
    images = [a, b];
    sourceIndex = JSON.parse((await pushTestIndex(client, 'src/merge', 'v1', images)).bytes.toString()) as ImageIndex;
  });
  afterAll(async () => {
    await client?.close();
    await registry?.stop();
  });

  const json = async <T>(repo: string, ref: string): Promise<T> => JSON.parse((await client.getManifest(repo, ref)).bytes.toString('utf8')) as T;
  const blobJson = async <T>(repo: string, d: Pick<Descriptor, 'digest' | 'size'>): Promise<T> => {
    const parts: Buffer[] = [];
    for await (const c of client.fetchBlob(repo, d)) parts.push(c as Buffer);
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as T;
  };

  it('prepends the empty layer to each converted source manifest, marks the Nydus ones with artifactType only and the Nydus config media type', async () => {
    const r = await convertImage({ source: `${registry.host}/src/merge:v1`, target: `${registry.host}/conv/merge:v1`, allPlatforms: true, mergePlatform: true, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const index = await json<ImageIndex>('conv/merge', 'v1');
    expect(index.mediaType).toBe(MediaType.OciIndex);
    expect(index.annotations).toEqual({
      [Annotation.NydusSourceDigest]: r.sourceDigest,
      [Annotation.NydusSourceReference]: `${registry.host}/src/merge:v1`,
      [Annotation.NydusFsVersion]: '6',
    });
    expect(index.manifests).toHaveLength(4);
    const [oci, nydus] = [index.manifests.slice(0, 2), index.manifests.slice(2)];
    for (const [i, d] of oci.entries()) {
      const src = images[i]!;
      // Same platform as the source entry, annotated with the digest it replaces; a new manifest.
      expect(d.platform).toEqual(sourceIndex.manifests[i]!.platform);
      expect(d.annotations).toEqual({ [Annotation.NydusSourceDigest]: src.manifest.descriptor.digest });
      expect(d.digest).not.toBe(src.manifest.descriptor.digest);
      expect(d.mediaType).toBe(src.manifest.descriptor.mediaType);
      expect(d.artifactType).toBeUndefined();
      const m = await json<ImageManifest>('conv/merge', d.digest);
      const docker = src.manifest.descriptor.mediaType === MediaType.DockerManifest;
      expect(m.layers[0]).toEqual({ mediaType: docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip, digest: EMPTY_LAYER_DIGEST, size: 32, annotations: { [Annotation.NydusEmptyLayer]: 'true' } });
      expect(m.layers.slice(1)).toEqual(src.layers);
      expect(m.annotations?.[Annotation.NydusSourceDigest]).toBe(src.manifest.descriptor.digest);
      expect(m.config.mediaType).toBe(src.config.mediaType);
      expect(m.config.annotations).toEqual({ [Annotation.NydusSourceDigest]: src.config.digest });
      const config = await blobJson<ImageConfig>('conv/merge', m.config);
      expect(config.rootfs.diff_ids).toEqual([EMPTY_TAR_DIFF_ID, ...src.diffIds]);
      expect(config.history?.[0]).toEqual({ created_by: 'Nydus Converter', comment: 'Nydus Empty Layer' });
      expect(config.history?.slice(1)).toEqual(src.configJson.history);
      expect(config.config).toEqual(src.configJson.config);
    }
    // The empty layer is in the repository: 32 bytes of Go's gzip of an empty tar (1024 zero bytes).
    const parts: Buffer[] = [];
    for await (const c of client.fetchBlob('conv/merge', { digest: EMPTY_LAYER_DIGEST, size: 32 })) parts.push(c as Buffer);
    const tar = gunzipSync(Buffer.concat(parts));
    expect(tar.length).toBe(1024);
    expect(`sha256:${createHash('sha256').update(tar).digest('hex')}`).toBe(EMPTY_TAR_DIFF_ID);
    for (const d of nydus) {
      expect(d.artifactType).toBe(NYDUS_MANIFEST_ARTIFACT_TYPE);
      expect(d.platform?.['os.features']).toBeUndefined();
      const m = await json<ImageManifest>('conv/merge', d.digest);
      expect(isNydusManifest(m)).toBe(true);
      expect(m.config.mediaType).toBe(NYDUS_CONFIG_MEDIA_TYPE);
    }
    expect(nydus.map((d) => d.platform)).toEqual(r.manifests.map((m) => sourceIndex.manifests.find((s) => s.digest === m.source.digest)!.platform));
    // Pinned references to the original source manifests still resolve in the target repository.
    for (const d of sourceIndex.manifests) expect((await client.headManifest('conv/merge', d.digest))?.digest).toBe(d.digest);

    // Readers: a runtime without Nydus support (skopeo) picks the OCI manifest, empty layer first;
    const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', `--override-arch=${host.architecture}`, `docker://${registry.host}/conv/merge:v1`]);
    expect((JSON.parse(stdout) as { Layers: string[] }).Layers).toEqual([EMPTY_LAYER_DIGEST, ...images[0]!.layers.map((l) => l.digest)]);
    // check finds the Nydus manifest by artifactType and passes;
    for (const platform of [host, other]) {
      const report = await checkConvertedImage({ source: `${registry.host}/src/merge:v1`, target: `${registry.host}/conv/merge:v1`, platform, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
      expect(report.differences).toEqual([]);
    }
    // copy's platform choice takes the plain image, not the Nydus one.
    const copied = await copyImage({ source: `${registry.host}/conv/merge:v1`, target: `${registry.host}/copied/merge:v1`, platform: other, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    expect(copied.digest).toBe(oci[1]!.digest);
  });

  it('the same source gives the same index (no timestamps), and a single-manifest source becomes [modified manifest, Nydus manifest]', async () => {
    const opts = { source: `${registry.host}/src/merge:v1`, allPlatforms: true, mergePlatform: true, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } };
    const [a, b] = [await convertImage({ ...opts, target: `${registry.host}/conv/merge-a:v1` }), await convertImage({ ...opts, target: `${registry.host}/conv/merge-b:v1` })];
    expect(a.targetDigest).toBe(b.targetDigest);

    const single = images[0]!;
    await convertImage({ source: single.reference, target: `${registry.host}/conv/merge-single:v1`, mergePlatform: true, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const index = await json<ImageIndex>('conv/merge-single', 'v1');
    expect(index.manifests).toHaveLength(2);
    expect(index.manifests[0]!.platform).toEqual(host);
    expect(index.manifests[0]!.annotations?.[Annotation.NydusSourceDigest]).toBe(single.manifest.descriptor.digest);
    expect((await json<ImageManifest>('conv/merge-single', index.manifests[0]!.digest)).layers[0]!.digest).toBe(EMPTY_LAYER_DIGEST);
    expect(index.manifests[1]!.artifactType).toBe(NYDUS_MANIFEST_ARTIFACT_TYPE);
  });

  it('readers accept the older marker too: check and copy on a --keep-source-manifests index, --merge-manifest over either form', async () => {
    await convertImage({ source: `${registry.host}/src/merge:v1`, target: `${registry.host}/conv/legacy:v1`, allPlatforms: true, mergePlatform: true, keepSourceManifests: true, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const legacy = await json<ImageIndex>('conv/legacy', 'v1');
    expect(legacy.manifests.slice(0, 2)).toEqual(sourceIndex.manifests);
    for (const d of legacy.manifests.slice(2)) {
      expect(d.platform?.['os.features']).toEqual(['nydus.remoteimage.v1']);
      expect((await json<ImageManifest>('conv/legacy', d.digest)).config.mediaType).not.toBe(NYDUS_CONFIG_MEDIA_TYPE);
    }
    const report = await checkConvertedImage({ source: `${registry.host}/src/merge:v1`, target: `${registry.host}/conv/legacy:v1`, platform: other, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    expect(report.differences).toEqual([]);
    const copied = await copyImage({ source: `${registry.host}/conv/legacy:v1`, target: `${registry.host}/copied/legacy:v1`, platform: host, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    expect(copied.digest).toBe(images[0]!.manifest.descriptor.digest);

    // --merge-manifest onto the legacy index (new form): the old Nydus entries of the platform
    // converted are replaced, the others and the OCI ones kept as they are.
    const r = await convertImage({ source: images[0]!.reference, target: `${registry.host}/conv/legacy:v1`, mergeManifest: true, compressor: 'lz4_block', sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const merged = await json<ImageIndex>('conv/legacy', 'v1');
    const nydusEntries = merged.manifests.filter((d) => d.artifactType === NYDUS_MANIFEST_ARTIFACT_TYPE);
    expect(nydusEntries).toHaveLength(2);
    const fresh = nydusEntries.find((d) => d.digest === r.manifests[0]!.target.digest)!;
    expect(fresh.platform).toEqual(host);
    expect((await json<ImageManifest>('conv/legacy', fresh.digest)).config.mediaType).toBe(NYDUS_CONFIG_MEDIA_TYPE);
    expect(merged.manifests.slice(0, 2)).toEqual(sourceIndex.manifests);
    const again = await checkConvertedImage({ source: images[0]!.reference, target: `${registry.host}/conv/legacy:v1`, platform: host, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    expect(again.differences).toEqual([]);
  });

  it('--keep-source-manifests without a merge is refused', async () => {
    await expect(convertImage({ source: images[0]!.reference, target: `${registry.host}/conv/x:v1`, keepSourceManifests: true, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
