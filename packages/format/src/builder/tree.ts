import type { BlobEntry, ChunkInfo } from '../layout/index.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK } from '../layout/index.js';

/**
 * The in-memory filesystem tree that `buildLayer` and `mergeBootstraps` assemble and
 * `writeBootstrap` lays out. Nothing here holds file data: regular files carry chunk
 * references into blobs.
 */

/** Node kinds (a LayerEntry type minus 'hardlink': hardlinks are names sharing one inode). */
export type NodeKind = 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo' | 'socket';

/** A blob of the output blob table; its index is assigned by the writer from table order. */
export type TreeBlob = Omit<BlobEntry, 'blobIndex'>;

/**
 * One chunk of a regular file: the chunk-table fields plus the blob it lives in. Chunk refs
 * are shared between every file (and file offset) that deduplicates onto the same chunk;
 * `fileOffset` is that of the first reference (informational).
 */
export interface TreeChunk extends Omit<ChunkInfo, 'blobIndex'> {
  blob: TreeBlob;
}

/** Inode attributes; shared by every name of a hardlink group (regular files only). */
export interface TreeInode {
  kind: NodeKind;
  /** Full st_mode (type bits | permission bits). */
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  /** Regular files: content length. Other kinds: derived by the writer. */
  size: number;
  /** Character/block devices: rdev as RAFS stores it (glibc makedev truncated to 32 bits). */
  rdev: number;
  /** Symlinks: target bytes. */
  linkTarget: Uint8Array | null;
  /** Extended attributes by full name (never mutated: inodes without any share NO_XATTRS). */
  xattrs: ReadonlyMap<string, Uint8Array>;
  /** Regular files: `ceil(size / chunkSize)` chunks in file order. */
  chunks: TreeChunk[];
}

/**
 * A name in the tree. `name` is the name's bytes as a latin1 string (one char per byte), so
 * plain string comparison is byte-wise comparison and any byte sequence survives.
 */
export interface TreeNode {
  name: string;
  inode: TreeInode;
  /** Directories: children by name (same latin1 encoding). Null for everything else. */
  children: Map<string, TreeNode> | null;
}

export const TYPE_BITS: Record<NodeKind, number> = {
  file: S_IFREG,
  directory: S_IFDIR,
  symlink: S_IFLNK,
  'char-device': S_IFCHR,
  'block-device': S_IFBLK,
  fifo: S_IFIFO,
  socket: S_IFSOCK,
};

export function kindOfMode(mode: number): NodeKind | undefined {
  const bits = mode & 0o170000;
  return (Object.keys(TYPE_BITS) as NodeKind[]).find((k) => TYPE_BITS[k] === bits);
}

/** Encodes a UTF-8 string (a path component) as a latin1 name key. */
export function nameKey(component: string): string {
  // ASCII is its own latin1 key (the common case: no Buffer round trip).
  if (ASCII.test(component)) return component;
  return Buffer.from(component, 'utf8').toString('latin1');
}

const ASCII = /^[\x00-\x7f]*$/;

/** The bytes of a latin1 name key. */
export function nameBytes(key: string): Uint8Array {
  return Buffer.from(key, 'latin1');
}

/** A printable form of a name key (for error messages). */
export function displayName(key: string): string {
  return Buffer.from(key, 'latin1').toString('utf8');
}

/** The shared, empty xattr map (one Map per inode would cost ~100 bytes each). */
export const NO_XATTRS: ReadonlyMap<string, Uint8Array> = new Map();

/** The shared chunk list of inodes without content (frozen: chunk lists are replaced, never grown). */
export const NO_CHUNKS: TreeChunk[] = Object.freeze([]) as unknown as TreeChunk[];

/** A directory inode with the attributes of implicitly created parents: 040755, root-owned, mtime 0. */
export function implicitDirInode(): TreeInode {
  return { kind: 'directory', mode: S_IFDIR | 0o755, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, size: 0, rdev: 0, linkTarget: null, xattrs: NO_XATTRS, chunks: NO_CHUNKS };
}

export function newDirNode(name: string, inode: TreeInode = implicitDirInode()): TreeNode {
  return { name, inode, children: new Map() };
}

/** Children of a directory sorted byte-wise by name. */
export function sortedChildren(dir: TreeNode): TreeNode[] {
  if (dir.children === null) return [];
  return [...dir.children.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
