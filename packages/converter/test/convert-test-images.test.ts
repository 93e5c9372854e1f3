// The test images of test/support/images.ts are real images: skopeo reads them from a real
// registry and umoci unpacks them into the rootfs the converter must reproduce.
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { getAttributeSync } from 'fs-xattr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAP_NET_RAW, busyboxImage, listTree, whiteoutImage, writeOciLayout } from './support/images.js';
import { runTool } from '@nydus-ts/testing';

describe('test images', () => {
  let registry: TestRegistry;
  let client: RegistryClient;
  let work: string;

  beforeAll(async () => {
    registry = await startRegistry();
    client = new RegistryClient({ registry: registry.host, insecure: true });
    work = await mkdtemp(path.join(tmpdir(), 'nydus-test-images-'));
  });
  afterAll(async () => {
    await client?.close();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('busybox: skopeo inspects it, umoci unpacks a working busybox rootfs', async () => {
    const img = await busyboxImage(client, { repository: 'fixtures/busybox', tag: 'v1' });
    const inspect = JSON.parse(await runTool('skopeo', ['inspect', '--tls-verify=false', `docker://${img.reference}`])) as { Digest: string; Layers: string[] };
    expect(inspect.Digest).toBe(img.manifest.descriptor.digest);
    expect(inspect.Layers).toEqual(img.layers.map((l) => l.digest));
    const layout = path.join(work, 'bb-layout');
    await writeOciLayout(client, img, layout, 'v1');
    const bundle = path.join(work, 'bb-bundle');
    await runTool('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
    const rootfs = path.join(bundle, 'rootfs');
    expect(readlinkSync(path.join(rootfs, 'bin/sh'))).toBe('busybox');
    expect(readFileSync(path.join(rootfs, 'etc/motd'), 'utf8')).toContain('busybox test image');
    expect(await runTool(path.join(rootfs, 'bin/busybox'), ['echo', 'hi'])).toBe('hi\n');
    expect(lstatSync(path.join(rootfs, 'tmp')).mode & 0o7777).toBe(0o1777);
  });

  it('whiteout image: gzip, zstd and plain layers; the unpacked tree applies every whiteout', async () => {
    const img = await whiteoutImage(client, { repository: 'fixtures/whiteout', tag: 'v1' });
    expect(img.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar+gzip',
      'application/vnd.oci.image.layer.v1.tar+zstd',
      'application/vnd.oci.image.layer.v1.tar',
    ]);
    // umoci 0.4 cannot read zstd layers: recompress to gzip on the way into the layout.
    const layout = path.join(work, 'wo-layout');
    await runTool('skopeo', ['copy', '--src-tls-verify=false', '--dest-compress-format', 'gzip', `docker://${img.reference}`, `oci:${layout}:v1`]);
    const bundle = path.join(work, 'wo-bundle');
    await runTool('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
    const rootfs = path.join(bundle, 'rootfs');
    expect(await listTree(rootfs)).toEqual([
      'bin', 'bin/big', 'bin/fifo', 'bin/link2', 'bin/null', 'bin/ping',
      'etc', 'etc/config',
      'gone', 'gone/again',
      'hl', 'hl/five', 'hl/four', 'hl/one', 'hl/three', 'hl/two',
      'keep', 'keep/a', 'keep/new',
      'opq', 'opq/emptied',
    ]);
    expect(readFileSync(path.join(rootfs, 'etc/config'), 'utf8')).toBe('version=3\n');
    expect(readFileSync(path.join(rootfs, 'hl/one'), 'utf8')).toBe('shared by one and two\n');
    expect(lstatSync(path.join(rootfs, 'hl/four')).ino).toBe(lstatSync(path.join(rootfs, 'hl/five')).ino);
    expect(lstatSync(path.join(rootfs, 'hl/three')).nlink).toBe(1);
    expect(Buffer.compare(getAttributeSync(path.join(rootfs, 'bin/ping'), 'security.capability'), Buffer.from(CAP_NET_RAW))).toBe(0);
    expect(lstatSync(path.join(rootfs, 'bin/ping')).mode & 0o7777).toBe(0o4755);
  });
});
