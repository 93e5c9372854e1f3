// Issue 4, done-when 1: images converted by convertImage from a real registry have the manifest,
// config and bootstrap layer of spec §5, skopeo reads them, and the merged bootstrap mounted with
// the kernel's EROFS (blobs as loop devices, --compressor none) equals `umoci unpack` of the source.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Annotation, NYDUS_BLOB_MEDIA_TYPE, convertImage } from '../src/index.js';
import { readTarEntries } from '@nydus-ts/image';
import { diffTrees, MountScope, snapshotTree, runTool } from '@nydus-ts/testing';
import { busyboxImage, whiteoutImage, type TestImage } from './support/images.js';
import { fetchBlobBytes, fetchNydusImage, mountNydusImage } from './support/nydus-image.js';

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('convertImage (registry → registry)', () => {
  let registry: TestRegistry;
  let client: RegistryClient;
  let work: string;
  const mounts = new MountScope();

  beforeAll(async () => {
    registry = await startRegistry();
    client = new RegistryClient({ registry: registry.host, insecure: true });
    work = await mkdtemp(path.join(tmpdir(), 'nydus-convert-'));
  });
  afterAll(async () => {
    await mounts.cleanup();
    await client?.close();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /** umoci unpack of the source image (zstd layers recompressed to gzip by skopeo for umoci 0.4). */
  async function umociRootfs(img: TestImage, name: string): Promise<string> {
    const layout = path.join(work, `${name}-layout`);
    await runTool('skopeo', ['copy', '--src-tls-verify=false', '--dest-compress-format', 'gzip', `docker://${img.reference}`, `oci:${layout}:src`]);
    const bundle = path.join(work, `${name}-bundle`);
    await runTool('umoci', ['unpack', '--image', `${layout}:src`, bundle]);
    return path.join(bundle, 'rootfs');
  }

  async function kernelEqualsUmoci(img: TestImage, repository: string, name: string): Promise<void> {
    const dir = path.join(work, `${name}-blobs`);
    await mkdir(dir);
    const nydus = await fetchNydusImage(client, repository, 'nydus');
    const mnt = await mountNydusImage(client, repository, nydus, dir, mounts);
    const rootfs = await umociRootfs(img, name);
    const [expected, actual] = await Promise.all([snapshotTree(rootfs), snapshotTree(mnt.mountpoint)]);
    expect(expected.nodes.size).toBeGreaterThan(10);
    // umoci sets the rootfs dir to 0755 root and does not restore directory mtimes after
    // applying whiteouts in them; the kernel mount has the image's own. Symlink modes: Linux has none.
    expect(diffTrees(expected, actual, { ignoreRootMtime: true, ignoreDirNlink: true, ignoreSymlinkMode: true })).toEqual([]);
    await mnt.unmount();
  }

  it('busybox: Nydus manifest, config, bootstrap layer as spec §5; kernel mount equals umoci unpack', async () => {
    const img = await busyboxImage(client, { repository: 'src/busybox', tag: 'v1' });
    const events: string[] = [];
    const result = await convertImage({
      source: img.reference,
      target: `${registry.host}/conv/busybox:nydus`,
      sourceRegistry: { insecure: true },
      targetRegistry: { insecure: true },
      compressor: 'none',
      onProgress: (e) => events.push(e.type),
    });
    expect(result.sourceDigest).toBe(img.manifest.descriptor.digest);
    expect(result.manifests).toHaveLength(1);
    const report = result.manifests[0]!;
    expect(report.layers.map((l) => l.source.digest)).toEqual(img.layers.map((l) => l.digest));
    expect(report.layers.every((l) => l.bytesIn === l.source.size)).toBe(true);
    expect(events).toContain('layer-done');
    expect(events[events.length - 1]).toBe('pushed');

    const { manifest, config, bootstrap, blobMetas, reader } = await fetchNydusImage(client, 'conv/busybox', 'nydus');
    expect(result.targetDigest).toBe((await client.getManifest('conv/busybox', 'nydus')).descriptor.digest);
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(manifest.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    // one blob per layer with data, in layer order, then the bootstrap layer
    const blobs = manifest.layers.slice(0, -1);
    expect(blobs.map((b) => b.digest)).toEqual(report.layers.map((l) => l.blob!.digest));
    for (const b of blobs) {
      expect(b.mediaType).toBe(NYDUS_BLOB_MEDIA_TYPE);
      expect(b.annotations).toEqual({ [Annotation.NydusBlob]: 'true' });
      // the pushed blob is what its digest says
      expect(sha256(await fetchBlobBytes(client, 'conv/busybox', b))).toBe(b.digest);
    }
    const boot = manifest.layers[manifest.layers.length - 1]!;
    expect(boot.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(boot.annotations).toEqual({ [Annotation.NydusBootstrap]: 'true', [Annotation.NydusFsVersion]: '6' });
    expect(manifest.annotations?.[Annotation.NydusFsVersion]).toBe('6');
    expect(manifest.annotations?.[Annotation.NydusSourceDigest]).toBe(img.manifest.descriptor.digest);
    expect(manifest.annotations).not.toHaveProperty(Annotation.NydusBlobIds);

    // bootstrap layer: image/ 0755, image/image.boot 0444, one blob.meta per blob, fixed mtimes
    const bootTgz = await fetchBlobBytes(client, 'conv/busybox', boot);
    const tar = gunzipSync(bootTgz);
    const entries: Array<{ path: string; type: string; mode: number; mtime: number }> = [];
    for await (const e of readTarEntries((async function* () { yield tar; })())) {
      entries.push({ path: e.path, type: e.type, mode: e.mode, mtime: e.mtime });
      for await (const _ of e.content ?? []) void _;
    }
    expect(entries).toEqual([
      { path: 'image', type: 'directory', mode: 0o755, mtime: 0 },
      { path: 'image/image.boot', type: 'file', mode: 0o444, mtime: 0 },
      ...blobs.map((b) => ({ path: `image/${b.digest.slice(7)}.blob.meta`, type: 'file', mode: 0o444, mtime: 0 })),
    ]);
    expect([...blobMetas.keys()]).toEqual(blobs.map((b) => b.digest.slice(7)));
    expect(bootTgz[3]).toBe(0); // gzip FLG: no name
    expect(bootTgz.readUInt32LE(4)).toBe(0); // gzip MTIME

    // config: diff_ids = blob digests, then sha256 of the uncompressed bootstrap tar; history kept + bootstrap line
    expect(config.rootfs.diff_ids).toEqual([...blobs.map((b) => b.digest), sha256(tar)]);
    expect(config.config).toEqual(img.configJson.config);
    expect(config.architecture).toBe(img.configJson.architecture);
    expect(config.history?.slice(0, -1)).toEqual(img.configJson.history);
    expect(config.history?.[config.history.length - 1]).toEqual({ created_by: 'Nydus Converter', comment: 'Nydus Bootstrap Layer' });

    // merged bootstrap: blob ids are the layer digests
    expect(reader.blobs.map((b) => b.blobId).sort()).toEqual(blobs.map((b) => b.digest.slice(7)).sort());
    expect(bootstrap.length).toBeGreaterThan(4096);

    // skopeo reads it
    const inspect = JSON.parse(await runTool('skopeo', ['inspect', '--tls-verify=false', `docker://${registry.host}/conv/busybox:nydus`])) as { Digest: string; Layers: string[] };
    expect(inspect.Digest).toBe(result.targetDigest);
    expect(inspect.Layers).toEqual(manifest.layers.map((l) => l.digest));

    await kernelEqualsUmoci(img, 'conv/busybox', 'busybox');
  });

  it('same input twice gives the same image (deterministic blobs, bootstrap layer, manifest)', async () => {
    const src = `${registry.host}/src/busybox:v1`;
    const a = await convertImage({ source: src, target: `${registry.host}/conv/det:a`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const b = await convertImage({ source: src, target: `${registry.host}/conv/det:b`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, concurrency: 1 });
    expect(a.targetDigest).toBe(b.targetDigest);
  });

  it('whiteouts, opaque dirs, hardlinks across layers, xattrs, a file changed in three layers: kernel mount equals umoci unpack', async () => {
    const img = await whiteoutImage(client, { repository: 'src/whiteout', tag: 'v1' });
    const result = await convertImage({
      source: img.reference,
      target: `${registry.host}/conv/whiteout:nydus`,
      sourceRegistry: { insecure: true },
      targetRegistry: { insecure: true },
      compressor: 'none',
      digester: 'sha256',
      chunkSize: 0x10000,
      concurrency: 3,
    });
    expect(result.manifests[0]!.layers).toHaveLength(3);
    const { manifest, config } = await fetchNydusImage(client, 'conv/whiteout', 'nydus');
    expect(config.rootfs.diff_ids).toHaveLength(manifest.layers.length);
    await kernelEqualsUmoci(img, 'conv/whiteout', 'whiteout');
  });

  it('Docker media types stay Docker; --oci turns them into OCI ones', async () => {
    await busyboxImage(client, { repository: 'src/busybox-docker', tag: 'v1', format: 'docker' });
    await convertImage({ source: `${registry.host}/src/busybox-docker:v1`, target: `${registry.host}/conv/busybox-docker:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const { manifest: dm } = await fetchNydusImage(client, 'conv/busybox-docker', 'nydus');
    expect(dm.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(dm.config.mediaType).toBe('application/vnd.docker.container.image.v1+json');
    expect(dm.layers[dm.layers.length - 1]!.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar.gzip');
    expect(dm.layers[0]!.mediaType).toBe(NYDUS_BLOB_MEDIA_TYPE);

    const result = await convertImage({ source: `${registry.host}/src/busybox-docker:v1`, target: `${registry.host}/conv/busybox-oci:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, oci: true });
    const m = await client.getManifest('conv/busybox-oci', 'nydus');
    expect(m.descriptor.digest).toBe(result.targetDigest);
    const manifest = JSON.parse(m.bytes.toString('utf8')) as { mediaType: string; config: { mediaType: string }; layers: Array<{ mediaType: string }> };
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(manifest.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(manifest.layers[manifest.layers.length - 1]!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
  });
});
