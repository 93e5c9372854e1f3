// Issue 11, done-when 1 (content): images of the tricky tree made by nydusify-ts in a loopback
// docker-registry, served by nydusd-ts over FUSE and in erofs mode, equal the source tree
// attribute by attribute and equal a kernel EROFS mount of the `--compressor none` build. Also
// the reference fixture rafs-v6-2.2.boot with its blob from a localfs backend. Needs root, FUSE,
// loop devices and the erofs module (CI has them).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBlobBackend } from '@nydus-ts/backend';
import { BootstrapReader, RafsFileReader } from '@nydus-ts/format';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { diffTrees, makeTree, MountScope, snapshotTree, type TreeSnapshot } from '@nydus-ts/testing';
import { buildLocalImage, convertDirToRegistry, fetchBootstrap, localfsConfig, registryConfig, type BuildOptions } from './support/images.js';
import { DaemonScope } from './support/nydusd-process.js';

const fixtures = fileURLToPath(new URL('../../../testdata/nydus-upstream/', import.meta.url));
const FIXTURE_BLOB = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';
const run = promisify(execFile);

/**
 * What `find -printf` and `ls -lRn` show for a tree, everything but inode numbers: names in
 * listing order, sizes, blocks, link counts, modes, owners, types, targets, the three times.
 */
async function listings(dir: string): Promise<{ find: string; ls: string }> {
  const find = (await run('find', [dir, '-printf', '%P|%s|%b|%n|%m|%U|%G|%y|%l|%T@|%A@|%C@\\n'], { maxBuffer: 64 << 20 })).stdout;
  const ls = (await run('ls', ['-lRn', '--time-style=+%s', dir], { maxBuffer: 64 << 20 })).stdout.split(dir).join('MNT');
  return { find, ls };
}

describe('nydusd-ts serves images equal to their source', () => {
  const mounts = new MountScope();
  const daemons = new DaemonScope();
  let work: string;
  let src: string;
  let registry: TestRegistry;
  let source: TreeSnapshot;
  let kernel: TreeSnapshot;
  let kernelListings: { find: string; ls: string };

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-content-'));
    src = path.join(work, 'src');
    await mkdir(src);
    await makeTree(src, { seed: 11 });
    registry = await startRegistry();
    // The kernel's view of the same tree: the --compressor none build, blob as a loop device.
    const boot = path.join(work, 'none.boot');
    const blobs = path.join(work, 'none-blobs');
    const { blobId } = await buildLocalImage(src, boot, blobs, { compressor: 'none' });
    const mnt = await mounts.mountErofs(boot, { blobs: [path.join(blobs, blobId!)] });
    [source, kernel] = await Promise.all([snapshotTree(src), snapshotTree(mnt.mountpoint)]);
    kernelListings = await listings(mnt.mountpoint);
    expect(source.nodes.size).toBeGreaterThan(10_000);
    expect(diffTrees(source, kernel)).toEqual([]);
  }, 600_000);

  afterAll(async () => {
    await daemons.cleanup();
    await mounts.cleanup();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  }, 120_000);

  const variants: BuildOptions[] = [
    { compressor: 'lz4_block', chunkSize: '0x100000', digester: 'blake3' },
    { compressor: 'zstd', chunkSize: '0x10000', digester: 'sha256' },
    { compressor: 'none', chunkSize: '0x10000', digester: 'blake3' },
    { compressor: 'zstd', chunkSize: '0x100000', digester: 'sha256' },
  ];

  for (const v of variants) {
    const name = `${v.compressor}-${v.chunkSize === '0x100000' ? '1m' : '64k'}-${v.digester}`;
    it(`${v.compressor}, ${v.chunkSize === '0x100000' ? '1 MiB' : '64 KiB'} chunks, ${v.digester}: FUSE and erofs mode equal the source and the kernel mount`, async () => {
      const repo = `content/${name}`;
      await convertDirToRegistry(registry.host, src, repo, v);
      const dir = path.join(work, name);
      await mkdir(dir);
      const boot = path.join(dir, 'image.boot');
      await fetchBootstrap(registry.host, repo, 'v1', boot);
      const config = path.join(dir, 'config.json');
      await writeFile(config, registryConfig(registry.host, repo, path.join(dir, 'cache')));

      for (const mode of ['fuse', 'erofs'] as const) {
        const mnt = path.join(dir, `mnt-${mode}`);
        await mkdir(mnt);
        const d = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, `${mode}.sock`), args: ['--config', config, '--bootstrap', boot, '--mode', mode] });
        const served = await snapshotTree(mnt);
        expect(diffTrees(source, served), `${mode} vs source`).toEqual([]);
        expect(diffTrees(kernel, served), `${mode} vs kernel EROFS`).toEqual([]);
        // What find -printf and ls -lR show (sizes, blocks, link counts, times, order) equals the
        // kernel's view too; inode numbers aside.
        const shown = await listings(mnt);
        expect(shown.find === kernelListings.find, `${mode}: find -printf differs from the kernel mount`).toBe(true);
        expect(shown.ls === kernelListings.ls, `${mode}: ls -lRn differs from the kernel mount`).toBe(true);
        expect(await d.stop()).toBe(0);
      }
    }, 600_000);
  }

  it('the reference fixture rafs-v6-2.2.boot reads back through a localfs backend', async () => {
    const dir = path.join(work, 'fixture');
    await mkdir(dir);
    const config = path.join(dir, 'config.json');
    await writeFile(config, localfsConfig(fixtures, path.join(dir, 'cache')));
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt);
    const boot = path.join(fixtures, 'rafs-v6-2.2.boot');
    const d = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args: ['--config', config, '--bootstrap', boot] });
    const served = await snapshotTree(mnt);
    // What the format package's reader (digest-verified) says the image holds.
    const reader = await BootstrapReader.open(await readFile(boot));
    const files = new RafsFileReader(reader, new LocalBlobBackend(fixtures));
    let regular = 0;
    for (const node of reader.walk()) {
      const rel = node.path === '/' ? '' : node.path.slice(1);
      const got = served.nodes.get(rel);
      expect(got, node.path).toBeDefined();
      expect(got!.mode, node.path).toBe(node.inode.mode & 0o7777);
      expect([got!.uid, got!.gid], node.path).toEqual([node.inode.uid, node.inode.gid]);
      expect(got!.nlink, node.path).toBe(node.inode.nlink);
      if (node.inode.type === 'file') {
        regular++;
        const hash = createHash('sha256');
        for await (const part of files.stream(node.nid)) hash.update(part);
        expect(got!.sha256, node.path).toBe(hash.digest('hex'));
        expect(got!.size, node.path).toBe(node.inode.size);
      }
    }
    expect(regular).toBe(2);
    expect(served.nodes.size).toBe([...reader.walk()].length);
    const metrics = await d.api('GET', '/api/v1/metrics/blobcache');
    expect((metrics.json as { underlying_files: string[] }).underlying_files).toEqual([path.join(dir, 'cache', `${FIXTURE_BLOB}.blob.data`)]);
    expect(await d.stop()).toBe(0);
  }, 120_000);
});
