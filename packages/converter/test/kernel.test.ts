import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setAttributeSync } from 'fs-xattr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffTrees, loopsBackedBy, makeTree, mountErofs, MountScope, snapshotTree, runTool } from '@nydus-ts/testing';

describe('kernel mount helpers', () => {
  const scope = new MountScope();
  let work: string;
  let src: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'nydus-kernel-test-'));
    src = join(work, 'src');
    // 254: mkfs.erofs 1.5 cannot take 255-byte names (see MakeTreeOptions.longNameBytes).
    await makeTree(src, { small: true, seed: 7, longNameBytes: 254 });
  });

  afterAll(async () => {
    try {
      await scope.cleanup();
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it('mounts a mkfs.erofs image whose tree equals the source tree', async () => {
    const img = join(work, 'plain.erofs');
    await runTool('mkfs.erofs', ['--quiet', '--preserve-mtime', img, src]);
    const mount = await scope.mountErofs(img);
    const expected = await snapshotTree(src);
    const actual = await snapshotTree(mount.mountpoint);
    expect(actual.nodes.size).toBe(expected.nodes.size);
    expect(diffTrees(expected, actual)).toEqual([]);
    await mount.unmount();
    expect(await loopsBackedBy(img)).toEqual([]);
  });

  it('attaches blob devices in slot order for a chunk-based image with an external blob device', async () => {
    const img = join(work, 'chunked.erofs');
    const blob = join(work, 'chunked.blob');
    writeFileSync(blob, ''); // mkfs.erofs opens the blob device, it does not create it
    await runTool('mkfs.erofs', ['--quiet', '--preserve-mtime', '--chunksize=4096', `--blobdev=${blob}`, img, src]);
    const mount = await scope.mountErofs(img, { blobs: [blob] });
    expect(mount.loops).toHaveLength(1);
    expect(await loopsBackedBy(blob)).toEqual(mount.loops);
    expect(diffTrees(await snapshotTree(src), await snapshotTree(mount.mountpoint))).toEqual([]);
    await mount.unmount();
    expect(await loopsBackedBy(blob)).toEqual([]);
    expect(await loopsBackedBy(img)).toEqual([]);
  });

  it('detaches the loop devices it attached when the mount fails', async () => {
    const bogus = join(work, 'not-erofs.img');
    writeFileSync(bogus, Buffer.alloc(1 << 20));
    const blob = join(work, 'bogus.blob');
    writeFileSync(blob, Buffer.alloc(1 << 16));
    await expect(mountErofs(bogus, { blobs: [blob] })).rejects.toThrow(/mount/);
    expect(await loopsBackedBy(blob)).toEqual([]);
    expect(await loopsBackedBy(bogus)).toEqual([]);
  });

  it('merges overlay layers bottom to top, with whiteouts and opaque directories', async () => {
    const lower = join(work, 'lower');
    const upper = join(work, 'upper');
    const expected = join(work, 'expected');
    for (const d of [lower, upper, expected]) mkdirSync(d);
    // lower: a, b, d/x; upper: b changed, c, whiteout of a, opaque d with d/y.
    writeFileSync(join(lower, 'a'), 'a');
    writeFileSync(join(lower, 'b'), 'old b');
    mkdirSync(join(lower, 'd'));
    writeFileSync(join(lower, 'd', 'x'), 'x');
    writeFileSync(join(upper, 'b'), 'new b');
    writeFileSync(join(upper, 'c'), 'c');
    execFileSync('mknod', [join(upper, 'a'), 'c', '0', '0']);
    mkdirSync(join(upper, 'd'));
    setAttributeSync(join(upper, 'd'), 'trusted.overlay.opaque', 'y');
    writeFileSync(join(upper, 'd', 'y'), 'y');
    writeFileSync(join(expected, 'b'), 'new b');
    writeFileSync(join(expected, 'c'), 'c');
    mkdirSync(join(expected, 'd'));
    writeFileSync(join(expected, 'd', 'y'), 'y');

    const merged = await scope.mountOverlay([lower, upper]);
    const diff = diffTrees(await snapshotTree(expected), await snapshotTree(merged.mountpoint), { ignoreMtime: true, ignoreDirNlink: true });
    expect(diff).toEqual([]);
    await merged.unmount();

    // One layer alone is its own merged view.
    const single = await scope.mountOverlay([lower]);
    expect(diffTrees(await snapshotTree(lower), await snapshotTree(single.mountpoint), { ignoreDirNlink: true })).toEqual([]);
  });
});
