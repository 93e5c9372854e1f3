// Issue 2, "kernel agrees": images we build with --compressor none mount with the Linux EROFS
// driver (blobs as loop devices) and equal their source in every attribute; fsck.erofs extracts
// them. Needs root, loop devices and the erofs module (CI runs as root).
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImage } from '../src/index.js';
import { MountScope } from './support/kernel.js';
import { makeTree } from './support/make-tree.js';
import { diffTrees, snapshotTree } from './support/tree-compare.js';

const fixtures = fileURLToPath(new URL('../../../../shared/fixtures/nydus-upstream/', import.meta.url));

describe('kernel EROFS mounts what we build', () => {
  const mounts = new MountScope();
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydus-kernel-'));
  });
  afterAll(async () => {
    await mounts.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  it('a generated tree with every entry type (10,000-entry dir, 40 deep, devices, xattrs, hardlinks, sparse) round-trips through the kernel', async () => {
    const src = path.join(work, 'src');
    await mkdir(src);
    await makeTree(src, { seed: 7 });
    const blobDir = path.join(work, 'blobs');
    const bootstrap = path.join(work, 'tree.boot');
    const built = await createImage({ type: 'dir-rafs', source: src, bootstrap, blobDir, compressor: 'none' });
    expect(built.blob).not.toBeNull();

    const mnt = await mounts.mountErofs(bootstrap, { blobs: [built.blob!.path] });
    const [expected, actual] = await Promise.all([snapshotTree(src), snapshotTree(mnt.mountpoint)]);
    expect(expected.nodes.size).toBeGreaterThan(10_000);
    expect(diffTrees(expected, actual)).toEqual([]);

    // fsck.erofs reads file data only with --extract; it must pass and extract the same tree.
    const extracted = path.join(work, 'fsck-extract');
    execFileSync('fsck.erofs', [`--device=${built.blob!.path}`, `--extract=${extracted}`, bootstrap], { stdio: 'pipe' });
    const fromFsck = await snapshotTree(extracted, { xattrs: false });
    // fsck.erofs 1.5 restores contents, types and modes (not owners/times/xattrs when extracting).
    const contentOnly = (s: typeof fromFsck) =>
      new Map([...s.nodes].filter(([p]) => p !== '').map(([p, n]) => [p, { type: n.type, size: n.size, sha256: n.sha256, linkTarget: n.linkTarget }]));
    expect(contentOnly(fromFsck)).toEqual(contentOnly(expected));
  });

  it('all-entry-type.tar (reference fixture) mounts equal to tar -x of it', async () => {
    const tarFile = path.join(fixtures, 'all-entry-type.tar');
    const ref = path.join(work, 'tar-x');
    await mkdir(ref);
    execFileSync('tar', ['-xpf', tarFile, '--numeric-owner', '--same-owner', '-C', ref]);
    const blobDir = path.join(work, 'blobs-aet');
    const bootstrap = path.join(work, 'aet.boot');
    const built = await createImage({ type: 'tar-rafs', source: tarFile, bootstrap, blobDir, compressor: 'none' });
    const mnt = await mounts.mountErofs(bootstrap, { blobs: built.blob ? [built.blob.path] : [] });
    const diff = diffTrees(await snapshotTree(ref), await snapshotTree(mnt.mountpoint), {
      // the tar has no entry for the root, so its mode/owner/mtime are the builder's defaults
      ignorePath: (p) => p === '',
    });
    expect(diff).toEqual([]);
  });
});
