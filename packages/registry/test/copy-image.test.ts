import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaType, isNydusError } from '@nydus-ts/core';
import type { Descriptor, Digest } from '@nydus-ts/core';
import { RegistryClient, copyImage, hostPlatform } from '../src/index.js';
import type { CopyProgressEvent } from '../src/index.js';
import { pushGeneratedImage, pushTwoPlatformImage, startFaultProxy, startRegistry } from '../src/testing/index.js';
import type { PushedImage, TestRegistry } from '../src/testing/index.js';

const run = promisify(execFile);
let a: TestRegistry;
let b: TestRegistry;
let ca: RegistryClient;
let cb: RegistryClient;
let img: PushedImage;
let multi: Awaited<ReturnType<typeof pushTwoPlatformImage>>;
let tmp: string;

beforeAll(async () => {
  [a, b] = await Promise.all([startRegistry(), startRegistry()]);
  ca = new RegistryClient({ registry: a.host, insecure: true });
  cb = new RegistryClient({ registry: b.host, insecure: true });
  img = await pushGeneratedImage(ca, 'lib/app', { tag: 'v1', layers: [{ size: 4_000_000 }, { size: 1_500_000, kind: 'compressible' }, { size: 700_000 }, { size: 0 }] });
  multi = await pushTwoPlatformImage(ca, 'lib/multi', 'v1');
  tmp = await mkdtemp(join(tmpdir(), 'nydus-copy-'));
});
afterAll(async () => {
  await Promise.all([ca?.close(), cb?.close()]);
  await Promise.all([a?.stop(), b?.stop()]);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const insecure = { sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } };

async function skopeoInspect(ref: string, raw = false): Promise<string> {
  const { stdout } = await run('skopeo', ['inspect', ...(raw ? ['--raw'] : []), '--tls-verify=false', ref]);
  return stdout;
}

describe('copyImage', () => {
  it('copies a multi-layer image between registries byte for byte; skopeo agrees', async () => {
    const events: CopyProgressEvent[] = [];
    const r = await copyImage({ source: `${a.host}/lib/app:v1`, target: `${b.host}/other/app:v2`, ...insecure, onProgress: (e) => events.push(e) });
    expect(r.digest).toBe(img.manifest.descriptor.digest);
    expect(r.blobs).toEqual({ total: 5, copied: 5, skipped: 0, mounted: 0 });
    expect(r.bytesSent).toBe(img.config.size + img.layers.reduce((n, l) => n + l.size, 0));
    const got = await cb.getManifest('other/app', 'v2');
    expect(got.bytes.equals(img.manifest.bytes)).toBe(true);
    const srcInfo = JSON.parse(await skopeoInspect(`docker://${a.host}/lib/app:v1`)) as { Digest: string; Layers: string[]; Architecture: string };
    const dstInfo = JSON.parse(await skopeoInspect(`docker://${b.host}/other/app:v2`)) as { Digest: string; Layers: string[]; Architecture: string };
    expect(dstInfo.Digest).toBe(srcInfo.Digest);
    expect(dstInfo.Layers).toEqual(srcInfo.Layers);
    expect(dstInfo.Layers).toEqual(img.layers.map((l) => l.digest));
    expect(events.filter((e) => e.type === 'blob-done').length).toBe(5);
    expect(events.some((e) => e.type === 'blob-progress' && e.bytes === 4_000_000)).toBe(true);
  });

  it('skips blobs the target has and re-sends no bytes', async () => {
    const proxy = await startFaultProxy(b.url);
    try {
      const r = await copyImage({ source: `${a.host}/lib/app:v1`, target: `${proxy.host}/other/app:v3`, ...insecure });
      expect(r.blobs).toEqual({ total: 5, copied: 0, skipped: 5, mounted: 0 });
      expect(r.bytesSent).toBe(0);
      const writes = proxy.requests.filter((q) => q.method !== 'HEAD' && q.method !== 'GET');
      expect(writes.map((q) => q.method)).toEqual(['PUT']); // just the manifest
      expect(writes[0]!.path).toBe('/v2/other/app/manifests/v3');
    } finally {
      await proxy.stop();
    }
  });

  it('uses cross-repository mounts within one registry', async () => {
    const proxy = await startFaultProxy(a.url);
    try {
      const r = await copyImage({ source: `${proxy.host}/lib/app:v1`, target: `${proxy.host}/mounted/app:v1`, ...insecure });
      expect(r.blobs).toEqual({ total: 5, copied: 0, skipped: 0, mounted: 5 });
      expect(proxy.requests.filter((q) => q.method === 'POST').every((q) => q.path.includes('mount=') && q.status === 201)).toBe(true);
      expect(proxy.requests.filter((q) => q.method === 'GET' && q.path.includes('/blobs/'))).toEqual([]);
      expect((await ca.getManifest('mounted/app', 'v1')).descriptor.digest).toBe(img.manifest.descriptor.digest);
    } finally {
      await proxy.stop();
    }
  });

  it('copies a two-platform index with --all-platforms unchanged, children first', async () => {
    const proxy = await startFaultProxy(b.url);
    try {
      const r = await copyImage({ source: `${a.host}/lib/multi:v1`, target: `${proxy.host}/multi/all:v1`, allPlatforms: true, ...insecure });
      expect(r.digest).toBe(multi.index.descriptor.digest);
      expect(r.mediaType).toBe(MediaType.OciIndex);
      expect(r.platforms.sort()).toEqual(['linux/amd64', 'linux/arm64']);
      expect(r.manifests).toBe(3);
      const puts = proxy.requests.filter((q) => q.method === 'PUT' && q.path.includes('/manifests/')).map((q) => q.path.split('/').pop());
      expect(puts.slice(0, 2).sort()).toEqual(multi.images.map((i) => i.manifest.descriptor.digest).sort());
      expect(puts[2]).toBe('v1');
      const raw = await skopeoInspect(`docker://${b.host}/multi/all:v1`, true);
      expect(createHash('sha256').update(raw).digest('hex')).toBe(multi.index.descriptor.digest.slice(7));
      for (const child of multi.images) {
        const info = JSON.parse(await skopeoInspect(`docker://${b.host}/multi/all@${child.manifest.descriptor.digest}`)) as { Architecture: string; Layers: string[] };
        expect(info.Architecture).toBe(child.platform.architecture);
        expect(info.Layers).toEqual(child.layers.map((l) => l.digest));
      }
    } finally {
      await proxy.stop();
    }
  });

  it('copies only the machine platform (its manifest) by default, or the one asked for', async () => {
    const host = hostPlatform();
    const mine = multi.images.find((i) => i.platform.architecture === host.architecture);
    const def = await copyImage({ source: `${a.host}/lib/multi:v1`, target: `${b.host}/multi/host:v1`, ...insecure }).catch((e: unknown) => e);
    if (mine) {
      expect((def as { digest: Digest }).digest).toBe(mine.manifest.descriptor.digest);
      expect((await cb.getManifest('multi/host', 'v1')).descriptor.mediaType).toBe(MediaType.OciManifest);
    } else {
      expect(isNydusError(def, 'NOT_FOUND')).toBe(true);
    }
    const arm = multi.images.find((i) => i.platform.architecture === 'arm64')!;
    const r = await copyImage({ source: `${a.host}/lib/multi:v1`, target: `${b.host}/multi/arm:v1`, platform: 'linux/arm64', ...insecure });
    expect(r.digest).toBe(arm.manifest.descriptor.digest);
    expect(r.platforms).toEqual(['linux/arm64']);
    expect(JSON.parse(await skopeoInspect(`docker://${b.host}/multi/arm:v1`)).Architecture).toBe('arm64');
    const none = await copyImage({ source: `${a.host}/lib/multi:v1`, target: `${b.host}/multi/x:v1`, platform: 'linux/s390x', ...insecure }).catch((e: unknown) => e);
    expect(isNydusError(none, 'NOT_FOUND')).toBe(true);
    expect(String(none)).toContain('available: linux/amd64, linux/arm64');
  });

  it('moves images out to an oci: layout and back in; skopeo reads the layout', async () => {
    const dir = join(tmp, 'layout');
    const out = await copyImage({ source: `${a.host}/lib/multi:v1`, target: `oci:${dir}:v1`, allPlatforms: true, ...insecure });
    expect(out.digest).toBe(multi.index.descriptor.digest);
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    expect(index.manifests).toEqual([{ mediaType: MediaType.OciIndex, digest: multi.index.descriptor.digest, size: multi.index.descriptor.size, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }]);
    expect((await readdir(join(dir, 'blobs', 'sha256'))).some((n) => n.includes('.tmp-'))).toBe(false);
    await copyImage({ source: `${a.host}/lib/app:v1`, target: `oci:${dir}:app`, ...insecure });
    const info = JSON.parse(await skopeoInspect(`oci:${dir}:app`)) as { Layers: string[] };
    expect(info.Layers).toEqual(img.layers.map((l) => l.digest));
    const back = await copyImage({ source: `oci:${dir}:v1`, target: `${b.host}/from/layout:v1`, allPlatforms: true, ...insecure });
    expect(back.digest).toBe(multi.index.descriptor.digest);
    expect((await cb.getManifest('from/layout', 'v1')).bytes.equals(multi.index.bytes)).toBe(true);
    const again = await copyImage({ source: `oci:${dir}:app`, target: `oci:${join(tmp, 'layout2')}`, ...insecure });
    expect(again.blobs.copied).toBe(5);
    const missing = await copyImage({ source: `oci:${dir}:nope`, target: `${b.host}/x/y:z`, ...insecure }).catch((e: unknown) => e);
    expect(isNydusError(missing, 'NOT_FOUND')).toBe(true);
  });

  it('copies blobs a manifest does not list when extraBlobs names them', async () => {
    const extra = Buffer.from('a blob only a bootstrap knows about');
    const digest = `sha256:${createHash('sha256').update(extra).digest('hex')}` as Digest;
    await ca.pushBlob('lib/app', { digest, size: extra.length }, Readable.from([extra]));
    const seen: string[] = [];
    const r = await copyImage({
      source: `${a.host}/lib/app:v1`,
      target: `${b.host}/extra/app:v1`,
      ...insecure,
      extraBlobs: async (manifest, ctx) => {
        seen.push(ctx.manifest.descriptor.digest, String(manifest.layers.length));
        return [{ mediaType: 'application/octet-stream', digest, size: extra.length }];
      },
    });
    expect(seen).toEqual([img.manifest.descriptor.digest, '4']);
    expect(r.blobs.total).toBe(6);
    expect(await cb.headBlob('extra/app', digest)).toBe(extra.length);
  });

  it('copies Docker schema 2 images and manifest lists', async () => {
    const d1 = await pushGeneratedImage(ca, 'lib/docker', { layers: [{ size: 10_000 }], format: 'docker', platform: { os: 'linux', architecture: 'amd64' } });
    const d2 = await pushGeneratedImage(ca, 'lib/docker', { layers: [{ size: 12_000 }], format: 'docker', platform: { os: 'linux', architecture: 'arm', variant: 'v7' } });
    const { pushIndex } = await import('../src/testing/index.js');
    const list = await pushIndex(ca, 'lib/docker', 'list', [d1, d2], 'docker');
    const r = await copyImage({ source: `${a.host}/lib/docker:list`, target: `${b.host}/docker/list:v1`, allPlatforms: true, ...insecure });
    expect(r.digest).toBe(list.descriptor.digest);
    expect(r.mediaType).toBe(MediaType.DockerManifestList);
    const v7 = await copyImage({ source: `${a.host}/lib/docker:list`, target: `${b.host}/docker/v7:v1`, platform: 'linux/arm/v7', ...insecure });
    expect(v7.digest).toBe(d2.manifest.descriptor.digest);
    expect((await cb.getManifest('docker/v7', 'v1')).descriptor.mediaType).toBe(MediaType.DockerManifest);
  });

  it('validates options before touching the network', async () => {
    for (const bad of [{ concurrency: 0 }, { pushChunkSize: -1 }, { platform: 'linux' }]) {
      const err = await copyImage({ source: `${a.host}/lib/app:v1`, target: `${b.host}/x/y:z`, ...insecure, ...bad }).catch((e: unknown) => e);
      expect(isNydusError(err, 'INVALID_ARGUMENT'), JSON.stringify(bad)).toBe(true);
    }
    const err = await copyImage({ source: 'Not A Ref', target: `${b.host}/x/y:z`, ...insecure }).catch((e: unknown) => e);
    expect(isNydusError(err, 'INVALID_ARGUMENT')).toBe(true);
  });
});
