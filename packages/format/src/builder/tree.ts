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

/** A growable typed column. */
class Column<T extends Float64Array | Uint32Array | Uint8Array> {
  constructor(public data: T) {}
  ensure(n: number): void {
    if (n <= this.data.length) return;
    const next = new (this.data.constructor as new (n: number) => T)(Math.max(n, this.data.length * 2));
    next.set(this.data);
    this.data = next;
  }
}

/**
 * The chunks of the blob being built, in columns: no object, digest string or heap number per
 * chunk (a layer of 200,000 small files has 200,000 chunks). Chunk `i` has CI index `i`.
 * Digests are 32 raw bytes each in `digests`; an open-addressing table over them does the
 * dedup lookup.
 */
export class ChunkStore {
  count = 0;
  digests: Buffer = Buffer.alloc(64 * 32);
  private readonly flags = new Column(new Uint8Array(64));
  private readonly compressedSize = new Column(new Uint32Array(64));
  private readonly uncompressedSize = new Column(new Uint32Array(64));
  private readonly crc32 = new Column(new Uint32Array(64));
  private readonly compressedOffset = new Column(new Float64Array(64));
  private readonly uncompressedOffset = new Column(new Float64Array(64));
  private readonly fileOffset = new Column(new Float64Array(64));
  /** Dedup table: chunk index + 1 per slot (0 = empty), keyed by digest. */
  private slots = new Int32Array(256);
  private used = 0;

  constructor(readonly blob: TreeBlob) {}

  /** Writes the hex digest into the next chunk's digest slot (not yet a chunk); returns its offset. */
  stageDigest(digestHex: string): number {
    const at = this.stagingSlot();
    if (this.digests.write(digestHex, at, 32, 'hex') !== 32) throw new RangeError(`chunk digest ${digestHex} is not 32 bytes of hex`);
    return at;
  }

  /** Offset of the next chunk's digest slot in `digests` (grown as needed) for raw writes. */
  stagingSlot(): number {
    const at = this.count * 32;
    if (at + 32 > this.digests.length) {
      const next = Buffer.alloc(this.digests.length * 2);
      this.digests.copy(next, 0, 0, at);
      this.digests = next;
    }
    return at;
  }

  private slotOf(at: number): number {
    const d = this.digests;
    const mask = this.slots.length - 1;
    let s = d.readUInt32LE(at) & mask;
    const second = d.readUInt32LE(at + 4);
    for (;;) {
      const v = this.slots[s]!;
      if (v === 0) return s;
      // Bytes 4..7 settle almost every collision without the native compare.
      if (d.readUInt32LE((v - 1) * 32 + 4) === second && d.compare(d, at, at + 32, (v - 1) * 32, v * 32) === 0) return s;
      s = (s + 1) & mask;
    }
  }

  /** Slot found by the last findStaged() and the chunk index it was staged for. */
  private stagedSlot = -1;
  private stagedFor = -1;

  /** The first stored chunk with the staged digest, or -1. */
  findStaged(): number {
    const s = this.slotOf(this.count * 32);
    this.stagedSlot = s;
    this.stagedFor = this.count;
    return this.slots[s]! - 1;
  }

  /** Turns the staged digest into chunk `count` with these fields; `index` it for dedup or not. */
  add(flags: number, compressedSize: number, uncompressedSize: number, compressedOffset: number, uncompressedOffset: number, fileOffset: number, crc32: number, index: boolean): number {
    const i = this.count;
    const n = i + 1;
    if (n > this.flags.data.length) {
      this.flags.ensure(n);
      this.compressedSize.ensure(n);
      this.uncompressedSize.ensure(n);
      this.crc32.ensure(n);
      this.compressedOffset.ensure(n);
      this.uncompressedOffset.ensure(n);
      this.fileOffset.ensure(n);
    }
    this.flags.data[i] = flags;
    this.compressedSize.data[i] = compressedSize;
    this.uncompressedSize.data[i] = uncompressedSize;
    this.crc32.data[i] = crc32;
    this.compressedOffset.data[i] = compressedOffset;
    this.uncompressedOffset.data[i] = uncompressedOffset;
    this.fileOffset.data[i] = fileOffset;
    if (index) {
      // The table is unchanged since findStaged() for this chunk: its slot is still the one.
      this.slots[this.stagedFor === i ? this.stagedSlot : this.slotOf(i * 32)] = i + 1;
      if (++this.used * 2 > this.slots.length) this.rehash();
    }
    this.count = n;
    return i;
  }

  /** Sets where chunk `i` landed in the blob, once known (chunks compressed off-thread). */
  setStored(i: number, flags: number, compressedSize: number, compressedOffset: number): void {
    this.flags.data[i] = flags;
    this.compressedSize.data[i] = compressedSize;
    this.compressedOffset.data[i] = compressedOffset;
  }

  private rehash(): void {
    const old = this.slots;
    this.slots = new Int32Array(old.length * 2);
    for (const v of old) if (v !== 0) this.slots[this.slotOf((v - 1) * 32)] = v;
  }

  digestHex(i: number): string {
    return this.digests.toString('hex', i * 32, i * 32 + 32);
  }
  flagsOf(i: number): number {
    return this.flags.data[i]!;
  }
  compressedSizeOf(i: number): number {
    return this.compressedSize.data[i]!;
  }
  uncompressedSizeOf(i: number): number {
    return this.uncompressedSize.data[i]!;
  }
  crc32Of(i: number): number {
    return this.crc32.data[i]!;
  }
  compressedOffsetOf(i: number): number {
    return this.compressedOffset.data[i]!;
  }
  uncompressedOffsetOf(i: number): number {
    return this.uncompressedOffset.data[i]!;
  }
  fileOffsetOf(i: number): number {
    return this.fileOffset.data[i]!;
  }
}

/**
 * A chunk of a `ChunkStore`, readable as a `TreeChunk` (fields are getters over the columns;
 * `digest` builds its hex string on each read, so hot paths use `store`/`index` directly).
 */
export class StoredChunk implements TreeChunk {
  constructor(
    readonly store: ChunkStore,
    readonly index: number,
  ) {}
  get blob(): TreeBlob {
    return this.store.blob;
  }
  get digest(): string {
    return this.store.digestHex(this.index);
  }
  get flags(): number {
    return this.store.flagsOf(this.index);
  }
  get compressedSize(): number {
    return this.store.compressedSizeOf(this.index);
  }
  get uncompressedSize(): number {
    return this.store.uncompressedSizeOf(this.index);
  }
  get compressedOffset(): number {
    return this.store.compressedOffsetOf(this.index);
  }
  get uncompressedOffset(): number {
    return this.store.uncompressedOffsetOf(this.index);
  }
  get fileOffset(): number {
    return this.store.fileOffsetOf(this.index);
  }
  get crc32(): number {
    return this.store.crc32Of(this.index);
  }
}
