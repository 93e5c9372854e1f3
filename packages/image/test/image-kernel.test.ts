// Issue 2, "kernel agrees": images we build with --compressor none mount with the Linux EROFS
// driver (blobs as loop devices) and equal their source in every attribute; fsck.erofs extracts
// them. Needs root, loop devices and the erofs module (CI runs as root).
import { lstat, mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImage, inspectImage } from '../src/index.js';
import { diffTrees, makeTree, MountScope, snapshotTree, runTool } from '@nydus-ts/testing';
import { END, fileMember, paxHeader, rawHeader } from '@nydus-ts/testing';

const fixtures = fileURLToPath(new URL('../../../testdata/nydus-upstream/', import.meta.url));

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
    await runTool('fsck.erofs', [`--device=${built.blob!.path}`, `--extract=${extracted}`, bootstrap]);
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
    await runTool('tar', ['-xpf', tarFile, '--numeric-owner', '--same-owner', '-C', ref]);
    const blobDir = path.join(work, 'blobs-aet');
    const bootstrap = path.join(work, 'aet.boot');
    const built = await createImage({ type: 'tar-rafs', source: tarFile, bootstrap, blobDir, compressor: 'none' });
    // The layer's tree matches `tar -tvf`: types, modes (incl. the symlink's 0755), sizes, targets, hardlink groups.
    const listing = (await runTool('tar', ['--numeric-owner', '-tvf', tarFile])).trim().split('\n');
    const { tree } = await inspectImage(bootstrap, { tree: true });
    const byPath = new Map(tree!.map((n) => [n.path, n]));
    const firstNidOf = new Map<string, number>();
    for (const line of listing) {
      const m = /^(\S)(\S{9}) (\d+)\/(\d+) +(\d+) \S+ \S+ (.+?)\/?(?: -> (.+)| link to (.+))?$/.exec(line);
      expect(m, line).not.toBeNull();
      const [, kind, perms, uid, gid, size, name, symTarget, hardTarget] = m!;
      const node = byPath.get('/' + name!)!;
      expect(node, name).toBeDefined();
      const mode = [...perms!].reduce((acc, c, i) => acc | (c === '-' ? 0 : 1 << (8 - i)), 0);
      expect(node.mode, name).toBe('0' + mode.toString(8));
      expect([node.uid, node.gid], name).toEqual([Number(uid), Number(gid)]);
      expect(node.type, name).toBe({ d: 'directory', '-': 'file', h: 'file', l: 'symlink' }[kind!]);
      if (kind === 'l') expect(node.linkTarget).toBe(symTarget);
      if (kind === '-') {
        expect(node.size).toBe(Number(size));
        firstNidOf.set(name!, node.nid);
      }
      if (kind === 'h') expect(node.nid, `${name} links to ${hardTarget}`).toBe(firstNidOf.get(hardTarget!));
    }
    expect(byPath.get('/tar/dir1/dir3/hardlink1.txt')!.nlink).toBe(4);

    const mnt = await mounts.mountErofs(bootstrap, { blobs: built.blob ? [built.blob.path] : [] });
    const diff = diffTrees(await snapshotTree(ref), await snapshotTree(mnt.mountpoint), {
      // the tar has no entry for the root, so its mode/owner/mtime are the builder's defaults
      ignorePath: (p) => p === '',
      // the bootstrap keeps the tar header's symlink mode (0755 here, as `tar -tvf` shows it)
      ignoreSymlinkMode: true,
    });
    expect(diff).toEqual([]);
  });

  it('keeps pre-1970 times (negative PAX mtimes, as Go archive/tar reads them): the kernel shows them', async () => {
    const tarFile = path.join(work, 'old.tar');
    await writeFile(
      tarFile,
      Buffer.concat([
        paxHeader([['mtime', '-1.5']]),
        rawHeader({ name: 'old-dir/', typeflag: '5' }),
        paxHeader([['mtime', '-315619200']]),
        fileMember('old-dir/1960', '1960\n'),
        END,
      ]),
    );
    const blobDir = path.join(work, 'blobs-old');
    const bootstrap = path.join(work, 'old.boot');
    const built = await createImage({ type: 'tar-rafs', source: tarFile, bootstrap, blobDir, compressor: 'none' });
    const mnt = await mounts.mountErofs(bootstrap, { blobs: [built.blob!.path] });
    const dir = await lstat(path.join(mnt.mountpoint, 'old-dir'), { bigint: true });
    const file = await lstat(path.join(mnt.mountpoint, 'old-dir/1960'), { bigint: true });
    // -1.5 s is 1969-12-31T23:59:58.5; tar input keeps whole seconds (the floor).
    expect(dir.mtimeNs).toBe(-2_000_000_000n);
    expect(file.mtimeNs).toBe(-315_619_200_000_000_000n);
    expect(await readFile(path.join(mnt.mountpoint, 'old-dir/1960'), 'utf8')).toBe('1960\n');
  });
});
