// Issue 2, "merge": layers with whiteouts, opaque dirs, overwrites and hardlinks, merged by
// `image merge`, mounted with the kernel, equal the overlayfs view of the same layers.
import { execFileSync } from 'node:child_process';
import { linkSync, lutimesSync, mkdirSync, symlinkSync, utimesSync, writeFileSync, chmodSync, lchownSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setAttributeSync } from 'fs-xattr';
import type { LayerEntry } from '@nydus-ts/format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImage, mergeImage, writeTarEntries } from '../src/index.js';
import { AtomicFileWriter } from '../src/atomic-file.js';
import { diffTrees, MountScope, snapshotTree } from '@nydus-ts/testing';

/** One change in a layer. Whiteouts and opaque markers get their OCI form in the tar and their overlayfs form on disk. */
type Op =
  | { dir: string; mode?: number }
  | { file: string; content: string; mode?: number; uid?: number }
  | { link: string; to: string }
  | { symlink: string; target: string }
  | { whiteout: string }
  | { opaque: string };

const MTIME = 1_700_000_000;

function layerEntries(ops: Op[]): LayerEntry[] {
  const base = { uid: 0, gid: 0, mtime: MTIME, size: 0 };
  return ops.map((op): LayerEntry => {
    if ('dir' in op) return { ...base, path: op.dir, type: 'directory', mode: op.mode ?? 0o755 };
    if ('file' in op) {
      const data = Buffer.from(op.content);
      return { ...base, path: op.file, type: 'file', mode: op.mode ?? 0o644, uid: op.uid ?? 0, size: data.length, content: (async function* () { yield data; })() };
    }
    if ('link' in op) return { ...base, path: op.link, type: 'hardlink', mode: 0o644, linkTarget: op.to };
    if ('symlink' in op) return { ...base, path: op.symlink, type: 'symlink', mode: 0o777, linkTarget: op.target };
    if ('whiteout' in op) {
      const dir = path.posix.dirname(op.whiteout);
      const name = `.wh.${path.posix.basename(op.whiteout)}`;
      return { ...base, path: dir === '.' ? name : `${dir}/${name}`, type: 'file', mode: 0o644, content: (async function* () {})() };
    }
    return { ...base, path: `${op.opaque}/.wh..wh..opq`, type: 'file', mode: 0o644, content: (async function* () {})() };
  });
}

function writeOverlayLayer(root: string, ops: Op[]): void {
  mkdirSync(root, { recursive: true });
  const dirs: string[] = [];
  for (const op of ops) {
    if ('dir' in op) {
      mkdirSync(path.join(root, op.dir), { recursive: true });
      chmodSync(path.join(root, op.dir), op.mode ?? 0o755);
      dirs.push(op.dir);
    } else if ('file' in op) {
      const p = path.join(root, op.file);
      writeFileSync(p, op.content);
      chmodSync(p, op.mode ?? 0o644);
      lchownSync(p, op.uid ?? 0, 0);
      utimesSync(p, MTIME, MTIME);
    } else if ('link' in op) {
      linkSync(path.join(root, op.to), path.join(root, op.link));
    } else if ('symlink' in op) {
      symlinkSync(op.target, path.join(root, op.symlink));
      lutimesSync(path.join(root, op.symlink), MTIME, MTIME);
    } else if ('whiteout' in op) {
      // A whiteout plus a new directory of the same name in one layer is, for overlayfs, an opaque directory.
      const recreated = ops.some((o) => 'dir' in o && o.dir === op.whiteout);
      if (recreated) continue;
      execFileSync('mknod', [path.join(root, op.whiteout), 'c', '0', '0']);
    } else {
      setAttributeSync(path.join(root, op.opaque), 'trusted.overlay.opaque', Buffer.from('y'));
    }
  }
  for (const op of ops) {
    if ('whiteout' in op && ops.some((o) => 'dir' in o && o.dir === op.whiteout)) {
      setAttributeSync(path.join(root, op.whiteout), 'trusted.overlay.opaque', Buffer.from('y'));
    }
  }
  for (const d of ['', ...dirs].reverse()) utimesSync(path.join(root, d), MTIME, MTIME);
}

async function writeLayerTar(file: string, ops: Op[]): Promise<void> {
  const out = await AtomicFileWriter.create(path.dirname(file));
  for await (const chunk of writeTarEntries((async function* () { yield* layerEntries(ops); })())) await out.write(chunk);
  await out.commit(file);
}

const layers: Op[][] = [
  [
    { dir: 'etc' },
    { file: 'etc/a', content: 'a1' },
    { file: 'etc/b', content: 'b1' },
    { file: 'etc/changed', content: 'v1' },
    { dir: 'etc/d' },
    { file: 'etc/d/x', content: 'x1' },
    { dir: 'opq' },
    { file: 'opq/p', content: 'p1' },
    { dir: 'opq/sub' },
    { file: 'opq/sub/q', content: 'q1' },
    { file: 'h1', content: 'hard', mode: 0o600 },
    { link: 'h2', to: 'h1' },
    { dir: 'gone' },
    { file: 'gone/deep', content: 'deep' },
    { file: 'becomes-dir', content: 'file' },
    { dir: 'becomes-file' },
    { file: 'becomes-file/inner', content: 'inner' },
  ],
  [
    { dir: 'etc', mode: 0o750 },
    { whiteout: 'etc/b' },
    { file: 'etc/changed', content: 'v2', uid: 7 },
    { dir: 'etc/d' },
    { file: 'etc/d/y', content: 'y2' },
    { dir: 'opq' },
    { opaque: 'opq' },
    { file: 'opq/r', content: 'r2' },
    { whiteout: 'gone' },
    { dir: 'becomes-dir' },
    { file: 'becomes-dir/now', content: 'dir now' },
    { file: 'becomes-file', content: 'file now' },
    { file: 'n1', content: 'new hardlink group' },
    { link: 'n2', to: 'n1' },
    { link: 'n3', to: 'n1' },
  ],
  [
    { dir: 'etc' },
    { file: 'etc/changed', content: 'v3 in the third layer', mode: 0o640 },
    { symlink: 'etc/link', target: '../h1' },
    { whiteout: 'etc/d' },
    { dir: 'etc/d' },
    { file: 'etc/d/z', content: 'z3' },
  ],
];

describe('image merge equals overlayfs', () => {
  const mounts = new MountScope();
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydus-merge-'));
  });
  afterAll(async () => {
    await mounts.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  it('applies whiteouts, opaque dirs, overwrites, type changes and per-layer hardlinks', async () => {
    const blobDir = path.join(work, 'blobs');
    const bootstraps: string[] = [];
    const overlayDirs: string[] = [];
    for (const [i, ops] of layers.entries()) {
      const tar = path.join(work, `layer${i}.tar`);
      await writeLayerTar(tar, ops);
      const bootstrap = path.join(work, `layer${i}.boot`);
      await createImage({ type: 'tar-rafs', source: tar, bootstrap, blobDir, compressor: 'none' });
      bootstraps.push(bootstrap);
      const dir = path.join(work, `overlay${i}`);
      writeOverlayLayer(dir, ops);
      overlayDirs.push(dir);
    }
    const merged = path.join(work, 'merged.boot');
    const { blobIds } = await mergeImage({ sources: bootstraps, bootstrap: merged });
    expect(blobIds.length).toBe(3);

    const ours = await mounts.mountErofs(merged, { blobs: blobIds.map((id) => path.join(blobDir, id)) });
    const reference = await mounts.mountOverlay(overlayDirs);
    const diff = diffTrees(await snapshotTree(reference.mountpoint), await snapshotTree(ours.mountpoint), {
      ignoreDirNlink: true,
      ignoreXattr: (name) => name.startsWith('trusted.overlay.'),
      ignorePath: (p) => p === '',
    });
    expect(diff).toEqual([]);
  });
});
