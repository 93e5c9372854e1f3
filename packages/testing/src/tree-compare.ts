/**
 * Canonical snapshots of a directory tree (on disk or mounted: EROFS, overlayfs, FUSE) and a
 * human-readable diff between two of them. Written independently of the directory walker so
 * that each checks the other.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { LayerEntry } from '@nydus-ts/format';
import { getAttribute, listAttributes } from 'fs-xattr';

export type NodeType = 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo' | 'socket';

export interface TreeNode {
  /** '' for the root, else 'a/b'. */
  path: string;
  type: NodeType;
  /** Permission bits incl. setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** Whole seconds. */
  mtime: number;
  nlink: number;
  /** Files: content length; symlinks: target length. Not recorded for other types. */
  size?: number;
  /** Files: sha256 of the content, hex. */
  sha256?: string;
  linkTarget?: string;
  devMajor?: number;
  devMinor?: number;
  /** name → hex value. Not read for symlinks (fs-xattr follows them). */
  xattrs: Record<string, string>;
  /** Regular files with nlink > 1: the byte-wise smallest path sharing this inode. */
  hardlinkGroup?: string;
}

export interface TreeSnapshot {
  root: string;
  nodes: Map<string, TreeNode>;
}

export interface SnapshotOptions {
  /** Read xattrs (default true). */
  xattrs?: boolean;
}

/** Entries of one directory visited concurrently by snapshotTree. */
const SIBLINGS_AT_ONCE = 8;

export async function snapshotTree(root: string, options: SnapshotOptions = {}): Promise<TreeSnapshot> {
  const withXattrs = options.xattrs ?? true;
  const nodes = new Map<string, TreeNode>();
  const inodes = new Map<string, string[]>();
  const visit = async (rel: string): Promise<void> => {
    const abs = rel === '' ? root : join(root, rel);
    const st = await lstat(abs, { bigint: true });
    const node: TreeNode = {
      path: rel,
      type: typeOf(st.mode),
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: Number(st.mtimeNs / 1_000_000_000n) - (st.mtimeNs < 0n && st.mtimeNs % 1_000_000_000n !== 0n ? 1 : 0),
      nlink: Number(st.nlink),
      xattrs: {},
    };
    if (node.type === 'file') {
      node.size = Number(st.size);
      node.sha256 = await sha256File(abs);
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const list = inodes.get(key);
        if (list) list.push(rel);
        else inodes.set(key, [rel]);
      }
    } else if (node.type === 'symlink') {
      node.linkTarget = (await readlink(abs, { encoding: 'buffer' })).toString('utf8');
      node.size = Number(st.size);
    } else if (node.type === 'char-device' || node.type === 'block-device') {
      const rdev = st.rdev;
      node.devMajor = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
      node.devMinor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
    }
    if (withXattrs && node.type !== 'symlink') {
      let names: string[] = [];
      try {
        names = await listAttributes(abs);
      } catch (err) {
        if ((err as { code?: string }).code !== 'ENOTSUP') throw err;
      }
      for (const name of names.sort()) {
        node.xattrs[name] = (await getAttribute(abs, name)).toString('hex');
      }
    }
    nodes.set(rel, node);
    if (node.type === 'directory') {
      const names = await readdir(abs);
      names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      // A few siblings at a time: a mounted tree answers each call with a round trip.
      for (let i = 0; i < names.length; i += SIBLINGS_AT_ONCE) {
        await Promise.all(names.slice(i, i + SIBLINGS_AT_ONCE).map((name) => visit(rel === '' ? name : `${rel}/${name}`)));
      }
    }
  };
  await visit('');
  for (const paths of inodes.values()) {
    paths.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const path of paths) nodes.get(path)!.hardlinkGroup = paths[0]!;
  }
  return { root, nodes };
}

export interface DiffTreesOptions {
  /** Ignore the root directory's mtime (builders often reset it). */
  ignoreRootMtime?: boolean;
  /** Ignore mtimes altogether. */
  ignoreMtime?: boolean;
  /** Ignore nlink of directories (differs between filesystems, e.g. overlayfs and btrfs). */
  ignoreDirNlink?: boolean;
  /** Ignore nlink of every node. */
  ignoreNlink?: boolean;
  /** Ignore extended attributes whose name matches. */
  ignoreXattr?: (name: string) => boolean;
  /**
   * Ignore the permission bits of symlinks: Linux ignores them and creates every symlink 0777,
   * while a tar header (and so a RAFS inode built from it) may record another mode.
   */
  ignoreSymlinkMode?: boolean;
  /** Leave paths out of the comparison altogether. */
  ignorePath?: (path: string) => boolean;
}

/**
 * Differences between two snapshots as lines such as `/a/b: mode 0644 != 0755` or
 * `/x: only in left`; empty when the trees are equal under the options.
 */
export function diffTrees(a: TreeSnapshot, b: TreeSnapshot, options: DiffTreesOptions = {}): string[] {
  const out: string[] = [];
  const show = (path: string): string => `/${path}`;
  const paths = [...new Set([...a.nodes.keys(), ...b.nodes.keys()])].sort((x, y) =>
    Buffer.compare(Buffer.from(x), Buffer.from(y)),
  );
  for (const path of paths) {
    if (options.ignorePath?.(path)) continue;
    const x = a.nodes.get(path);
    const y = b.nodes.get(path);
    if (!x || !y) {
      out.push(`${show(path)}: only in ${x ? 'left' : 'right'} (${(x ?? y)!.type})`);
      continue;
    }
    if (x.type !== y.type) {
      out.push(`${show(path)}: type ${x.type} != ${y.type}`);
      continue;
    }
    const field = (name: string, u: unknown, v: unknown, fmt: (z: unknown) => string = String): void => {
      if (u !== v) out.push(`${show(path)}: ${name} ${fmt(u)} != ${fmt(v)}`);
    };
    if (!(options.ignoreSymlinkMode && x.type === 'symlink')) {
      field('mode', x.mode, y.mode, (m) => `0${(m as number).toString(8).padStart(3, '0')}`);
    }
    field('uid', x.uid, y.uid);
    field('gid', x.gid, y.gid);
    if (!options.ignoreMtime && !(options.ignoreRootMtime && path === '')) field('mtime', x.mtime, y.mtime);
    if (!options.ignoreNlink && !(options.ignoreDirNlink && x.type === 'directory')) field('nlink', x.nlink, y.nlink);
    field('size', x.size, y.size);
    field('sha256', x.sha256, y.sha256);
    field('link target', x.linkTarget, y.linkTarget, (t) => JSON.stringify(t));
    field('device', `${x.devMajor}:${x.devMinor}`, `${y.devMajor}:${y.devMinor}`);
    field('hardlink group', x.hardlinkGroup, y.hardlinkGroup, (g) => (g === undefined ? '(none)' : show(g as string)));
    const names = [...new Set([...Object.keys(x.xattrs), ...Object.keys(y.xattrs)])].sort();
    for (const name of names) {
      if (options.ignoreXattr?.(name)) continue;
      const u = x.xattrs[name];
      const v = y.xattrs[name];
      if (u !== v) out.push(`${show(path)}: xattr ${name} ${u ?? '(absent)'} != ${v ?? '(absent)'}`);
    }
  }
  return out;
}

function typeOf(mode: bigint): NodeType {
  switch (Number(mode & 0o170000n)) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'directory';
    case 0o120000:
      return 'symlink';
    case 0o020000:
      return 'char-device';
    case 0o060000:
      return 'block-device';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    default:
      throw new Error(`unknown file type in mode 0o${mode.toString(8)}`);
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The snapshot a layer's entries describe, consuming each file's content as it goes (so it
 * works on a streaming tar reader). Hardlinks become files sharing their target's data and
 * group; nlink is the name count for files, 2 + child directories for directories, else 1.
 * Symlink xattrs are dropped, as snapshotTree cannot read them. Entries that name an existing
 * path replace it (later tar members win, as on extraction).
 */
export async function snapshotEntries(entries: AsyncIterable<LayerEntry>, root = '(entries)'): Promise<TreeSnapshot> {
  const nodes = new Map<string, TreeNode>();
  const groups = new Map<string, string[]>(); // first file path → all its names
  for await (const e of entries) {
    const node: TreeNode = {
      path: e.path,
      type: e.type === 'hardlink' ? 'file' : e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      mtime: e.mtime,
      nlink: 1,
      xattrs: {},
    };
    if (e.type !== 'symlink') {
      for (const [name, value] of [...(e.xattrs ?? new Map<string, Uint8Array>())].sort(([p], [q]) => (p < q ? -1 : 1))) {
        node.xattrs[name] = Buffer.from(value).toString('hex');
      }
    }
    if (e.type === 'file') {
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of e.content ?? []) {
        hash.update(chunk);
        size += chunk.length;
      }
      if (size !== e.size) throw new Error(`entry ${e.path}: content has ${size} bytes, size says ${e.size}`);
      node.size = size;
      node.sha256 = hash.digest('hex');
      groups.set(e.path, [e.path]);
    } else if (e.type === 'hardlink') {
      const target = nodes.get(e.linkTarget!);
      const group = groups.get(e.linkTarget!);
      if (!target || !group) throw new Error(`hardlink ${e.path} → ${e.linkTarget}: target is not an earlier file`);
      node.size = target.size!;
      node.sha256 = target.sha256!;
      group.push(e.path);
    } else if (e.type === 'symlink') {
      node.linkTarget = e.linkTarget!;
      node.size = Buffer.byteLength(e.linkTarget!);
    } else if (e.type === 'char-device' || e.type === 'block-device') {
      node.devMajor = e.devMajor!;
      node.devMinor = e.devMinor!;
    }
    nodes.set(e.path, node);
  }
  for (const names of groups.values()) {
    if (names.length < 2) continue;
    const first = [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))[0]!;
    for (const name of names) {
      const n = nodes.get(name)!;
      n.nlink = names.length;
      n.hardlinkGroup = first;
    }
  }
  for (const node of nodes.values()) {
    if (node.type === 'directory') node.nlink = 2;
  }
  for (const node of nodes.values()) {
    if (node.type === 'directory' && node.path !== '') {
      const parent = nodes.get(node.path.includes('/') ? node.path.slice(0, node.path.lastIndexOf('/')) : '');
      if (parent) parent.nlink++;
    }
  }
  return { root, nodes };
}
