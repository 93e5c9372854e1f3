import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, renameSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setAttributeSync } from 'fs-xattr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffTrees, makeTree, snapshotTree } from '@nydus-ts/testing';

describe('make-tree and tree-compare', () => {
  let work: string;
  let a: string;
  let b: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'nydus-tree-compare-'));
    a = join(work, 'a');
    b = join(work, 'b');
    await makeTree(a, { small: true, seed: 42 });
    await makeTree(b, { small: true, seed: 42 });
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('builds the same tree from the same seed, with every entry type', async () => {
    const sa = await snapshotTree(a);
    const sb = await snapshotTree(b);
    expect(diffTrees(sa, sb)).toEqual([]);
    const types = new Set([...sa.nodes.values()].map((n) => n.type));
    expect([...types].sort()).toEqual(['block-device', 'char-device', 'directory', 'fifo', 'file', 'symlink']);
    expect(sa.nodes.get('dev/big')).toMatchObject({ devMajor: 259, devMinor: 65_537 });
    expect(sa.nodes.get('modes/setuid')!.mode).toBe(0o4755);
    expect(sa.nodes.get('modes/sticky')!.mode).toBe(0o1777);
    expect(sa.nodes.get('files/multi-chunk.bin')!.size).toBe(1.5 * 2 ** 20);
    expect(sa.nodes.get('hardlinks/third')!.hardlinkGroup).toBe('hardlinks/first');
    expect(sa.nodes.get('links/hardlink-elsewhere')!.nlink).toBe(4);
    expect(Object.keys(sa.nodes.get('xattrs/file')!.xattrs)).toEqual(['trusted.secret', 'user.binary', 'user.empty', 'user.text']);
    expect(sa.nodes.get('xattrs/capable')!.xattrs['security.capability']).toBe('0100000200040000000000000000000000000000');
  });

  it('builds a different tree from another seed', async () => {
    const c = join(work, 'c');
    await makeTree(c, { small: true, seed: 43 });
    expect(diffTrees(await snapshotTree(a), await snapshotTree(c)).length).toBeGreaterThan(10);
  });

  it('reports every planted difference, and only those', async () => {
    chmodSync(join(b, 'files/small.txt'), 0o600);
    writeFileSync(join(b, 'files/random-0.bin'), 'changed');
    setAttributeSync(join(b, 'xattrs/file'), 'user.text', 'other');
    setAttributeSync(join(b, 'names/with space'), 'user.new', 'x');
    rmSync(join(b, 'names/.hidden'));
    writeFileSync(join(b, 'names/extra'), 'extra');
    unlinkSync(join(b, 'links/dangling'));
    symlinkSync('somewhere/else', join(b, 'links/dangling'));
    // Break one name out of the hardlink group (same content, own inode).
    execFileSync('cp', ['-p', join(b, 'hardlinks/third'), join(b, 'hardlinks/third.tmp')]);
    renameSync(join(b, 'hardlinks/third.tmp'), join(b, 'hardlinks/third'));
    unlinkSync(join(b, 'dev/sda1'));
    execFileSync('mknod', [join(b, 'dev/sda1'), 'b', '8', '2']);
    chmodSync(join(b, 'dev/sda1'), 0o660);
    execFileSync('chown', ['-h', '7:8', join(b, 'modes/none')]);
    // Restore the mtimes of everything the changes above touched, then plant one mtime change.
    const sa = await snapshotTree(a);
    for (const path of ['files', 'names', 'links', 'hardlinks', 'dev', 'hardlinks/third', 'dev/sda1', 'files/random-0.bin', 'links/dangling']) {
      const t = sa.nodes.get(path)!.mtime;
      if (path === 'links/dangling') execFileSync('touch', ['-h', '-d', `@${t}`, join(b, path)]);
      else utimesSync(join(b, path), t, t);
    }
    utimesSync(join(b, 'names/extra'), 1_000_000_000, 1_000_000_000);
    utimesSync(join(b, 'deep'), 1_234_567_890, 1_234_567_890);

    const diff = diffTrees(sa, await snapshotTree(b));
    expect(diff).toEqual([
      '/deep: mtime ' + sa.nodes.get('deep')!.mtime + ' != 1234567890',
      '/dev/sda1: device 8:1 != 8:2',
      '/files/random-0.bin: size ' + sa.nodes.get('files/random-0.bin')!.size + ' != 7',
      `/files/random-0.bin: sha256 ${sa.nodes.get('files/random-0.bin')!.sha256} != ${createHash('sha256').update('changed').digest('hex')}`,
      '/files/small.txt: mode 0644 != 0600',
      '/hardlinks/first: nlink 4 != 3',
      '/hardlinks/second: nlink 4 != 3',
      '/hardlinks/third: nlink 4 != 1',
      '/hardlinks/third: hardlink group /hardlinks/first != (none)',
      '/links/dangling: link target "does/not/exist" != "somewhere/else"',
      '/links/hardlink-elsewhere: nlink 4 != 3',
      '/modes/none: uid 0 != 7',
      '/modes/none: gid 0 != 8',
      '/names/.hidden: only in left (file)',
      '/names/extra: only in right (file)',
      '/names/with space: xattr user.new (absent) != 78',
      '/xattrs/file: xattr user.text 68656c6c6f != 6f74686572',
    ]);

    // Options suppress what they say.
    const relaxed = diffTrees(sa, await snapshotTree(b), {
      ignoreMtime: true,
      ignoreNlink: true,
      ignoreXattr: (name) => name.startsWith('user.'),
      ignorePath: (path) => path.startsWith('names/') || path.startsWith('hardlinks/') || path.startsWith('links/'),
    });
    expect(relaxed).toEqual([
      '/dev/sda1: device 8:1 != 8:2',
      expect.stringMatching(/^\/files\/random-0\.bin: size /),
      expect.stringMatching(/^\/files\/random-0\.bin: sha256 /),
      '/files/small.txt: mode 0644 != 0600',
      '/modes/none: uid 0 != 7',
      '/modes/none: gid 0 != 8',
    ]);
  });
});
