import { NydusError } from '@nydus-ts/core';
import type { BlobEntry, ChunkInfo } from '../layout/index.js';
import { decodeFsName, encodeFsName, printableFsName } from '../names.js';
import { CHUNK_INFO_FIELD as F, ChunkFlags, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK } from '../layout/index.js';

/**
 * The in-memory filesystem tree that `buildLayer` and `mergeBootstraps` assemble and
 * `writeBootstrap` lays out, stored in typed columns: no JS object, Map entry or string per
 * name, inode or chunk (a layer of 200,000 entries costs ~100 bytes per entry plus its
 * chunks). Nothing here holds file data: regular files carry chunk references into blobs.
 */

/** Node kinds (a LayerEntry type minus 'hardlink': hardlinks are names sharing one inode). */
export type NodeKind = 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo' | 'socket';

/** A blob of the output blob table; its index is assigned by the writer from table order. */
export type TreeBlob = Omit<BlobEntry, 'blobIndex'>;

/** One chunk as an object (the chunk dict's form): the chunk-table fields plus its blob. */
export interface TreeChunk extends Omit<ChunkInfo, 'blobIndex'> {
  blob: TreeBlob;
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

/** Kind codes of the inode kind column, indexes into KINDS. */
export const K_FILE = 0;
export const K_DIR = 1;
export const K_SYMLINK = 2;
export const K_CHR = 3;
export const K_BLK = 4;
export const K_FIFO = 5;
export const K_SOCK = 6;
export const KINDS: readonly NodeKind[] = ['file', 'directory', 'symlink', 'char-device', 'block-device', 'fifo', 'socket'];
export const KIND_CODE: Readonly<Record<NodeKind, number>> = { file: K_FILE, directory: K_DIR, symlink: K_SYMLINK, 'char-device': K_CHR, 'block-device': K_BLK, fifo: K_FIFO, socket: K_SOCK };

/** Encodes a path component (see names.ts: its bytes, losslessly) as a latin1 name key. */
export function nameKey(component: string): string {
  // ASCII is its own latin1 key (the common case: no Buffer round trip).
  if (ASCII.test(component)) return component;
  return encodeFsName(component).toString('latin1');
}

const ASCII = /^[\x00-\x7f]*$/;

/** The bytes of a latin1 name key. */
export function nameBytes(key: string): Uint8Array {
  return Buffer.from(key, 'latin1');
}

/** A printable form of a name key (for error messages). */
export function displayName(key: string): string {
  return printableFsName(decodeFsName(Buffer.from(key, 'latin1')));
}

/** The shared, empty xattr map. */
export const NO_XATTRS: ReadonlyMap<string, Uint8Array> = new Map();

type Typed = Float64Array | Int32Array | Uint32Array | Uint16Array | Uint8Array;

/** `a` with room for at least `n` elements (doubling; contents kept). */
export function grow<T extends Typed>(a: T, n: number): T {
  if (n <= a.length) return a;
  const next = new (a.constructor as new (n: number) => T)(Math.max(n, a.length * 2));
  next.set(a);
  return next;
}

/** Chunk refs of `FsTree.chunkRefs`: below this, chunk i of stores[0]; from it, of stores[1]. */
export const SECOND_STORE = 0x8000_0000;

/** A little-endian u64 (below 2^53) at `at` of `v`. */
function u64At(v: DataView, at: number): number {
  return v.getUint32(at + 4, true) * 0x1_0000_0000 + v.getUint32(at, true);
}

/**
 * Chunks in columns: no object, digest string or heap number per chunk. Digests are 32 raw
 * bytes each in `digests`; an open-addressing table over them does the dedup lookup (only for
 * chunks added with `index`). A blob's own store (`blobs` = [that blob]) has chunk `i` at CI
 * index `i`; a store of chunks of other blobs (`foreign`) keeps each chunk's blob and CI index.
 */
export class ChunkStore {
  count = 0;
  digests: Buffer = Buffer.alloc(64 * 32);
  private flags = new Uint8Array(64);
  private compressedSize = new Uint32Array(64);
  private uncompressedSize = new Uint32Array(64);
  private crc32 = new Uint32Array(64);
  private compressedOffset = new Float64Array(64);
  private uncompressedOffset = new Float64Array(64);
  private fileOffset = new Float64Array(64);
  /** Index into `blobs` of each chunk's blob (all 0 in a blob's own store). */
  private blobOf = new Uint16Array(64);
  /** CI index of each chunk (chunk i at i in a blob's own store). */
  private ciIndex = new Uint32Array(64);
  /** Dedup table: chunk index + 1 per slot (0 = empty), keyed by digest. */
  private slots = new Int32Array(256);
  private used = 0;

  /**
   * `blobs`: the blobs chunks point into (by index). Unless `foreign`, the store holds the
   * chunks of `blobs[0]` in CI order.
   */
  constructor(
    readonly blobs: TreeBlob[],
    readonly foreign = false,
  ) {}

  /** The blob of a store's own chunks (non-foreign stores). */
  get blob(): TreeBlob {
    return this.blobs[0]!;
  }

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

  /** The first indexed chunk with the staged digest, or -1. */
  findStaged(): number {
    const s = this.slotOf(this.count * 32);
    this.stagedSlot = s;
    this.stagedFor = this.count;
    return this.slots[s]! - 1;
  }

  private ensure(n: number): void {
    if (n <= this.flags.length) return;
    this.flags = grow(this.flags, n);
    this.compressedSize = grow(this.compressedSize, n);
    this.uncompressedSize = grow(this.uncompressedSize, n);
    this.crc32 = grow(this.crc32, n);
    this.compressedOffset = grow(this.compressedOffset, n);
    this.uncompressedOffset = grow(this.uncompressedOffset, n);
    this.fileOffset = grow(this.fileOffset, n);
    this.blobOf = grow(this.blobOf, n);
    this.ciIndex = grow(this.ciIndex, n);
  }

  /** Turns the staged digest into chunk `count` with these fields; `index` it for dedup or not. */
  add(flags: number, compressedSize: number, uncompressedSize: number, compressedOffset: number, uncompressedOffset: number, fileOffset: number, crc32: number, index: boolean): number {
    const i = this.count;
    const n = i + 1;
    this.ensure(n);
    this.flags[i] = flags;
    this.compressedSize[i] = compressedSize;
    this.uncompressedSize[i] = uncompressedSize;
    this.crc32[i] = crc32;
    this.compressedOffset[i] = compressedOffset;
    this.uncompressedOffset[i] = uncompressedOffset;
    this.fileOffset[i] = fileOffset;
    this.ciIndex[i] = i;
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
    this.flags[i] = flags;
    this.compressedSize[i] = compressedSize;
    this.compressedOffset[i] = compressedOffset;
  }

  /**
   * A foreign store's chunk from its chunk-table fields: `c.index` (or `c.ciIndex`) is its CI
   * index, `blobIndex` its blob in `blobs`. Not indexed for dedup.
   */
  addForeign(c: ForeignChunk, blobIndex: number, ciIndex: number): number {
    if (!this.foreign) throw new NydusError('INTERNAL', 'addForeign on a blob-own chunk store');
    this.stageDigest(c.digest);
    const i = this.add(c.flags, c.compressedSize, c.uncompressedSize, c.compressedOffset, c.uncompressedOffset, c.fileOffset, c.crc32, false);
    this.blobOf[i] = blobIndex;
    this.ciIndex[i] = ciIndex;
    return i;
  }

  /**
   * A foreign store's chunk copied from a bootstrap's chunk-table entry (spec §1.8) at `at` of
   * `table` (the chunk's digest, flags, sizes, offsets, CI index and CRC, the latter only with
   * HAS_CRC32), as `addForeign` of that entry would. `blobIndexes` maps the entry's blob index
   * to one in `blobs`. Not indexed for dedup.
   */
  addForeignEntry(table: Uint8Array, at: number, fileOffset: number, blobIndexes: readonly number[]): number {
    if (!this.foreign) throw new NydusError('INTERNAL', 'addForeignEntry on a blob-own chunk store');
    const slot = this.stagingSlot(); // may replace `digests`
    this.digests.set(table.subarray(at + F.digest, at + F.digest + 32), slot);
    const v = this.viewOf(table.buffer);
    const p = table.byteOffset + at;
    const flags = v.getUint32(p + F.flags, true);
    const crc32 = (flags & ChunkFlags.HAS_CRC32) !== 0 ? v.getUint32(p + F.crc32, true) : 0;
    const i = this.add(flags, v.getUint32(p + F.compressedSize, true), v.getUint32(p + F.uncompressedSize, true), u64At(v, p + F.compressedOffset), u64At(v, p + F.uncompressedOffset), fileOffset, crc32, false);
    this.blobOf[i] = blobIndexes[v.getUint32(p + F.blobIndex, true)]!;
    this.ciIndex[i] = v.getUint32(p + F.index, true);
    return i;
  }

  private sourceView: DataView | null = null;

  /** A DataView of `buffer`, kept while chunks come from the same buffer. */
  private viewOf(buffer: ArrayBufferLike): DataView {
    if (this.sourceView === null || this.sourceView.buffer !== buffer) this.sourceView = new DataView(buffer);
    return this.sourceView;
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
    return this.flags[i]!;
  }
  compressedSizeOf(i: number): number {
    return this.compressedSize[i]!;
  }
  uncompressedSizeOf(i: number): number {
    return this.uncompressedSize[i]!;
  }
  crc32Of(i: number): number {
    return this.crc32[i]!;
  }
  compressedOffsetOf(i: number): number {
    return this.compressedOffset[i]!;
  }
  uncompressedOffsetOf(i: number): number {
    return this.uncompressedOffset[i]!;
  }
  fileOffsetOf(i: number): number {
    return this.fileOffset[i]!;
  }
  /** Index into `blobs` of chunk i's blob. */
  blobIndexOf(i: number): number {
    return this.blobOf[i]!;
  }
  /** Chunk i's index in its blob's chunk-info array. */
  ciIndexOf(i: number): number {
    return this.ciIndex[i]!;
  }
  private words: Uint32Array | null = null;

  /**
   * Writes chunk i's chunk-table entry (spec §1.8, 80 bytes: digest, blob index, flags, sizes,
   * offsets, CI index, CRC) at word `q` of `w`, as little-endian words: callers check that the
   * host is little-endian and the entry word-aligned.
   */
  writeInfoWords(i: number, blobIndex: number, w: Uint32Array, q: number): void {
    if (this.words === null || this.words.buffer !== this.digests.buffer) this.words = new Uint32Array(this.digests.buffer, this.digests.byteOffset, this.digests.length >>> 2);
    const d = this.words;
    const s = i * 8;
    for (let k = 0; k < 8; k++) w[q + k] = d[s + k]!;
    w[q + 8] = blobIndex;
    w[q + 9] = this.flags[i]!;
    w[q + 10] = this.compressedSize[i]!;
    w[q + 11] = this.uncompressedSize[i]!;
    // u64s as low and high words (typed-array stores take them modulo 2^32).
    const co = this.compressedOffset[i]!;
    w[q + 12] = co;
    w[q + 13] = co / 0x1_0000_0000;
    const uo = this.uncompressedOffset[i]!;
    w[q + 14] = uo;
    w[q + 15] = uo / 0x1_0000_0000;
    const fo = this.fileOffset[i]!;
    w[q + 16] = fo;
    w[q + 17] = fo / 0x1_0000_0000;
    w[q + 18] = this.ciIndex[i]!;
    w[q + 19] = this.crc32[i]!;
  }

  /** Chunk i as an object (tests, diagnostics). */
  chunk(i: number): TreeChunk {
    return {
      blob: this.blobs[this.blobIndexOf(i)]!,
      digest: this.digestHex(i),
      flags: this.flagsOf(i),
      compressedSize: this.compressedSizeOf(i),
      uncompressedSize: this.uncompressedSizeOf(i),
      compressedOffset: this.compressedOffsetOf(i),
      uncompressedOffset: this.uncompressedOffsetOf(i),
      fileOffset: this.fileOffsetOf(i),
      index: this.ciIndexOf(i),
      crc32: this.crc32Of(i),
    };
  }
}

/** The chunk-table fields `ChunkStore.addForeign` takes. */
export type ForeignChunk = Pick<ChunkInfo, 'digest' | 'flags' | 'compressedSize' | 'uncompressedSize' | 'compressedOffset' | 'uncompressedOffset' | 'fileOffset' | 'crc32'>;

/** Node value of a dead (removed) name. */
const DEAD = -2;

/**
 * Names and inodes of a filesystem tree in columns.
 *
 * Inodes (id 0, 1, …): kind, mode, owner, mtime, size and a `data` word (regular files: first
 * of their `chunkCount` refs in `chunkRefs`; symlinks: offset of the target in the link arena,
 * `size` bytes; devices: rdev). Xattrs are a sparse map by inode.
 *
 * Names ("nodes"): name bytes in an arena, the inode, and the child namespace a directory name
 * opens (`ns`, -1 for other kinds). A node belongs to the namespace `parentNs`; lookup is an
 * open-addressing hash over (namespace, name). Clearing a directory gives it a fresh namespace,
 * so the old children become unreachable at no cost; removing a name marks it dead.
 */
export class FsTree {
  // ---- inodes
  inodeCount = 0;
  kind = new Uint8Array(256);
  mode = new Uint16Array(256);
  uid = new Uint32Array(256);
  gid = new Uint32Array(256);
  mtime = new Float64Array(256);
  mtimeNsec = new Uint32Array(256);
  size = new Float64Array(256);
  data = new Float64Array(256);
  chunkCount = new Uint32Array(256);
  readonly xattrs = new Map<number, ReadonlyMap<string, Uint8Array>>();
  linkArena = new Uint8Array(1024);
  private linkUsed = 0;
  /** Chunk refs of regular files (see SECOND_STORE), each file's in file order. */
  chunkRefs = new Uint32Array(256);
  chunkRefUsed = 0;

  // ---- names
  nodeCount = 0;
  nodeParentNs = new Int32Array(256);
  nodeInode = new Int32Array(256);
  nodeNs = new Int32Array(256);
  private nodeNameOff = new Uint32Array(256);
  private nodeNameLen = new Uint8Array(256);
  private names: Buffer = Buffer.alloc(4096);
  private namesUsed = 0;
  nsCount = 0;
  private slots = new Int32Array(1024);
  private slotsUsed = 0;
  /** The root's node (id 0, no name); its inode changes with `setRootInode`. */
  readonly root = 0;

  /** `stores[0]` and `stores[1]` are the chunk stores chunk refs point into. */
  constructor(readonly stores: readonly ChunkStore[] = []) {
    const rootInode = this.addInode(K_DIR, S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, null, null);
    this.nodeParentNs[0] = -1;
    this.nodeInode[0] = rootInode;
    this.nodeNs[0] = this.nsCount++;
    this.nodeCount = 1;
  }

  // ---- inodes

  /** A new inode; `linkTarget` for symlinks (size = its length), `rdev` for devices. */
  addInode(kind: number, mode: number, uid: number, gid: number, mtime: number, mtimeNsec: number, size: number, rdev: number, linkTarget: Uint8Array | null, xattrs: ReadonlyMap<string, Uint8Array> | null): number {
    const i = this.inodeCount;
    if (i === this.kind.length) {
      const n = i + 1;
      this.kind = grow(this.kind, n);
      this.mode = grow(this.mode, n);
      this.uid = grow(this.uid, n);
      this.gid = grow(this.gid, n);
      this.mtime = grow(this.mtime, n);
      this.mtimeNsec = grow(this.mtimeNsec, n);
      this.size = grow(this.size, n);
      this.data = grow(this.data, n);
      this.chunkCount = grow(this.chunkCount, n);
    }
    this.kind[i] = kind;
    this.mode[i] = mode;
    this.uid[i] = uid;
    this.gid[i] = gid;
    this.mtime[i] = mtime;
    this.mtimeNsec[i] = mtimeNsec;
    this.size[i] = size;
    this.chunkCount[i] = 0;
    if (kind === K_SYMLINK && linkTarget !== null) {
      this.linkArena = grow(this.linkArena, this.linkUsed + linkTarget.length);
      this.linkArena.set(linkTarget, this.linkUsed);
      this.data[i] = this.linkUsed;
      this.size[i] = linkTarget.length;
      this.linkUsed += linkTarget.length;
    } else {
      this.data[i] = kind === K_CHR || kind === K_BLK ? rdev : kind === K_FILE ? this.chunkRefUsed : 0;
    }
    if (xattrs !== null && xattrs.size > 0) this.xattrs.set(i, xattrs);
    this.inodeCount = i + 1;
    return i;
  }

  /** Symlink target bytes (a view into the arena). */
  linkTarget(inode: number): Uint8Array {
    const off = this.data[inode]!;
    return this.linkArena.subarray(off, off + this.size[inode]!);
  }

  /** Starts the chunk list of file `inode` (its refs are the ones pushed after this). */
  beginChunks(inode: number): void {
    this.data[inode] = this.chunkRefUsed;
    this.chunkCount[inode] = 0;
  }

  /** Appends a chunk ref to the list begun last. */
  pushChunkRef(inode: number, ref: number): void {
    const at = this.chunkRefUsed;
    if (at === this.chunkRefs.length) this.chunkRefs = grow(this.chunkRefs, at + 1);
    this.chunkRefs[at] = ref;
    this.chunkRefUsed = at + 1;
    this.chunkCount[inode]!++;
  }

  /** Store and index of a chunk ref. */
  storeOf(ref: number): ChunkStore {
    return this.stores[ref >= SECOND_STORE ? 1 : 0]!;
  }

  // ---- names

  private static hashKey(ns: number, key: string): number {
    let h = Math.imul(ns + 0x3c6ef372, 0x9e3779b1);
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    return (h ^ (h >>> 16)) >>> 0;
  }

  private hashNode(node: number): number {
    let h = Math.imul(this.nodeParentNs[node]! + 0x3c6ef372, 0x9e3779b1);
    const names = this.names;
    const off = this.nodeNameOff[node]!;
    const end = off + this.nodeNameLen[node]!;
    for (let i = off; i < end; i++) h = Math.imul(h ^ names[i]!, 0x01000193);
    return (h ^ (h >>> 16)) >>> 0;
  }

  private matches(node: number, ns: number, key: string): boolean {
    if (this.nodeParentNs[node] !== ns || this.nodeNameLen[node] !== key.length) return false;
    const names = this.names;
    const off = this.nodeNameOff[node]!;
    for (let i = 0; i < key.length; i++) if (names[off + i] !== key.charCodeAt(i)) return false;
    return true;
  }

  /** The slot holding (ns, key), or the empty slot where it would go. */
  private slotFor(ns: number, key: string): number {
    const mask = this.slots.length - 1;
    let s = FsTree.hashKey(ns, key) & mask;
    for (;;) {
      const v = this.slots[s]!;
      if (v === 0 || this.matches(v - 1, ns, key)) return s;
      s = (s + 1) & mask;
    }
  }

  private static hashBytes(ns: number, name: Uint8Array, start: number, end: number): number {
    let h = Math.imul(ns + 0x3c6ef372, 0x9e3779b1);
    for (let i = start; i < end; i++) h = Math.imul(h ^ name[i]!, 0x01000193);
    return (h ^ (h >>> 16)) >>> 0;
  }

  private matchesBytes(node: number, ns: number, name: Uint8Array, start: number, end: number): boolean {
    if (this.nodeParentNs[node] !== ns || this.nodeNameLen[node] !== end - start) return false;
    const names = this.names;
    const off = this.nodeNameOff[node]! - start;
    for (let i = start; i < end; i++) if (names[off + i] !== name[i]) return false;
    return true;
  }

  /** `slotFor` with the name as bytes `name[start, end)`. */
  private slotForBytes(ns: number, name: Uint8Array, start: number, end: number): number {
    const mask = this.slots.length - 1;
    let s = FsTree.hashBytes(ns, name, start, end) & mask;
    for (;;) {
      const v = this.slots[s]!;
      if (v === 0 || this.matchesBytes(v - 1, ns, name, start, end)) return s;
      s = (s + 1) & mask;
    }
  }

  /** The live node named `key` (a latin1 name key) in namespace `ns`, or -1. */
  lookup(ns: number, key: string): number {
    return this.slots[this.slotFor(ns, key)]! - 1;
  }

  /** `lookup` with the name as bytes `name[start, end)`. */
  lookupBytes(ns: number, name: Uint8Array, start: number, end: number): number {
    return this.slots[this.slotForBytes(ns, name, start, end)]! - 1;
  }

  /** True if `node` is a directory name (it has a child namespace). */
  isDir(node: number): boolean {
    return this.nodeNs[node]! >= 0;
  }

  /** The name key (latin1) of a node. */
  nameOf(node: number): string {
    const off = this.nodeNameOff[node]!;
    return this.names.toString('latin1', off, off + this.nodeNameLen[node]!);
  }

  /** The name bytes of a node (a view into the arena). */
  nameBytesOf(node: number): Uint8Array {
    const off = this.nodeNameOff[node]!;
    return this.names.subarray(off, off + this.nodeNameLen[node]!);
  }

  /** Gives the root another inode (a directory), keeping its children. */
  setRootInode(inode: number): void {
    this.nodeInode[this.root] = inode;
  }

  /**
   * Adds or replaces the name `key` in namespace `ns`; returns its node. A directory over a
   * directory keeps the children; any other replacement starts without children.
   */
  put(ns: number, key: string, inode: number): number {
    const s = this.slotFor(ns, key);
    if (this.slots[s] !== 0) return this.replace(this.slots[s]! - 1, inode);
    const off = this.reserveName(key.length);
    const names = this.names;
    for (let i = 0; i < key.length; i++) names[off + i] = key.charCodeAt(i);
    return this.addNode(s, ns, inode, off, key.length);
  }

  /** `put` with the name as bytes `name[start, end)`. */
  putBytes(ns: number, name: Uint8Array, start: number, end: number, inode: number): number {
    const s = this.slotForBytes(ns, name, start, end);
    if (this.slots[s] !== 0) return this.replace(this.slots[s]! - 1, inode);
    const len = end - start;
    const off = this.reserveName(len);
    const names = this.names;
    for (let i = 0; i < len; i++) names[off + i] = name[start + i]!;
    return this.addNode(s, ns, inode, off, len);
  }

  private replace(node: number, inode: number): number {
    const isDir = this.kind[inode] === K_DIR;
    this.nodeInode[node] = inode;
    if (!(isDir && this.nodeNs[node]! >= 0)) this.nodeNs[node] = isDir ? this.nsCount++ : -1;
    return node;
  }

  /** Room for a name of `len` bytes at the end of the arena; returns its offset. */
  private reserveName(len: number): number {
    if (len > 255) throw new NydusError('INTERNAL', `name of ${len} bytes`);
    if (this.namesUsed + len > this.names.length) {
      const next = Buffer.alloc(Math.max(this.names.length * 2, this.namesUsed + len));
      this.names.copy(next, 0, 0, this.namesUsed);
      this.names = next;
    }
    const off = this.namesUsed;
    // `len | 0` (≤ 255): lengths computed from doubles (e.g. a reader's offsets) would otherwise
    // turn this field into a double and deprecate the tree's map, deoptimising the writer.
    this.namesUsed = off + (len | 0);
    return off;
  }

  /** A new node in empty slot `s` whose name is at `off` of the arena. */
  private addNode(s: number, ns: number, inode: number, off: number, len: number): number {
    const node = this.nodeCount;
    if (node === this.nodeParentNs.length) {
      const n = node + 1;
      this.nodeParentNs = grow(this.nodeParentNs, n);
      this.nodeInode = grow(this.nodeInode, n);
      this.nodeNs = grow(this.nodeNs, n);
      this.nodeNameOff = grow(this.nodeNameOff, n);
      this.nodeNameLen = grow(this.nodeNameLen, n);
    }
    this.nodeNameOff[node] = off;
    this.nodeNameLen[node] = len;
    this.nodeParentNs[node] = ns;
    this.nodeInode[node] = inode;
    this.nodeNs[node] = this.kind[inode] === K_DIR ? this.nsCount++ : -1;
    this.nodeCount = node + 1;
    this.slots[s] = node + 1;
    if (++this.slotsUsed * 2 > this.slots.length) this.rehash();
    return node;
  }

  /** Removes the name `key` from namespace `ns` (and with it any subtree); false if absent. */
  remove(ns: number, key: string): boolean {
    return this.kill(this.lookup(ns, key));
  }

  /** `remove` with the name as bytes `name[start, end)`. */
  removeBytes(ns: number, name: Uint8Array, start: number, end: number): boolean {
    return this.kill(this.slots[this.slotForBytes(ns, name, start, end)]! - 1);
  }

  private kill(node: number): boolean {
    if (node < 0) return false;
    // Its slot stays as a tombstone: a dead node matches no lookup.
    this.nodeParentNs[node] = DEAD;
    return true;
  }

  /** Drops every child of directory `node` (it gets a fresh, empty namespace). */
  clearChildren(node: number): void {
    if (this.nodeNs[node]! < 0) throw new NydusError('INTERNAL', 'clearChildren on a non-directory');
    this.nodeNs[node] = this.nsCount++;
  }

  private rehash(): void {
    let live = 0;
    for (let i = 0; i < this.nodeCount; i++) if (this.nodeParentNs[i]! >= 0) live++;
    let size = this.slots.length;
    while (live * 2 > size / 2) size *= 2;
    const slots = new Int32Array(size);
    const mask = size - 1;
    for (let i = 1; i < this.nodeCount; i++) {
      if (this.nodeParentNs[i]! < 0) continue;
      let s = this.hashNode(i) & mask;
      while (slots[s] !== 0) s = (s + 1) & mask;
      slots[s] = i + 1;
    }
    this.slots = slots;
    this.slotsUsed = live;
  }

  /** Live nodes grouped by the namespace they belong to (the writer's child lists). */
  childLists(): ChildLists {
    const start = new Uint32Array(this.nsCount + 1);
    for (let i = 1; i < this.nodeCount; i++) {
      const ns = this.nodeParentNs[i]!;
      if (ns >= 0) start[ns + 1]!++;
    }
    for (let k = 1; k <= this.nsCount; k++) start[k]! += start[k - 1]!;
    const ids = new Int32Array(start[this.nsCount]!);
    const fill = start.slice(0, this.nsCount);
    for (let i = 1; i < this.nodeCount; i++) {
      const ns = this.nodeParentNs[i]!;
      if (ns >= 0) ids[fill[ns]!++] = i;
    }
    return { start, ids };
  }

  /** The children of directory `node` with their name keys, sorted byte-wise by name. */
  sortedChildren(lists: ChildLists, node: number): KeyedNode[] {
    const sorter = new ChildSorter();
    const n = sorter.sort(this, lists, node);
    const keyed: KeyedNode[] = new Array<KeyedNode>(n);
    for (let k = 0; k < n; k++) keyed[k] = { key: this.nameOf(sorter.nodes[k]!), node: sorter.nodes[k]! };
    return keyed;
  }

  /** Bytes `at`..`at + 3` of a node's name as a big-endian word (0 past its end). */
  nameWord(node: number, at: number): number {
    const off = this.nodeNameOff[node]! + at;
    const left = this.nodeNameLen[node]! - at;
    const names = this.names;
    if (left >= 4) return ((names[off]! << 24) | (names[off + 1]! << 16) | (names[off + 2]! << 8) | names[off + 3]!) >>> 0;
    let w = 0;
    for (let i = 0; i < 4; i++) w = (w << 8) | (i < left ? names[off + i]! : 0);
    return w >>> 0;
  }

  /** Byte `at` of a node's name, -1 past its end. */
  nameByte(node: number, at: number): number {
    return at < this.nodeNameLen[node]! ? this.names[this.nodeNameOff[node]! + at]! : -1;
  }

  /** Length of a node's name in bytes. */
  nameLength(node: number): number {
    return this.nodeNameLen[node]!;
  }

  /** Copies a node's name bytes into `out` at `at`; returns the length. */
  copyNameTo(node: number, out: Uint8Array, at: number): number {
    const off = this.nodeNameOff[node]!;
    const len = this.nodeNameLen[node]!;
    const names = this.names;
    for (let i = 0; i < len; i++) out[at + i] = names[off + i]!;
    return len;
  }
}

/** A child node and its name key. */
export interface KeyedNode {
  key: string;
  node: number;
}

/** See FsTree.childLists: the nodes of namespace `ns` are ids[start[ns] .. start[ns + 1]). */
export interface ChildLists {
  start: Uint32Array;
  ids: Int32Array;
}

/** Little-endian host: the high word of a 64-bit element is its second 32-bit word. */
const HI = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1 ? 1 : 0;
const LO = 1 - HI;

/**
 * Sorts the children of a directory byte-wise by name with no string, object or JS comparator
 * per name: each child gets a 64-bit key (4 name bytes, big-endian, over its position) and the
 * keys sort natively; a run of children whose 4 bytes agree is re-keyed with the next 4 and
 * sorted again. Names never hold a NUL, so zero padding orders a name before its extensions.
 */
export class ChildSorter {
  /** The children sorted by the last `sort`, in [0, its count). */
  nodes = new Int32Array(64);
  private keys = new BigUint64Array(64);
  private words = new Uint32Array(this.keys.buffer);

  /** Sorts the children of directory `node` into `nodes`; returns their count. */
  sort(tree: FsTree, lists: ChildLists, node: number): number {
    const ns = tree.nodeNs[node]!;
    if (ns < 0) return 0;
    const from = lists.start[ns]!;
    const n = lists.start[ns + 1]! - from;
    if (n > this.nodes.length) this.reserve(n);
    const ids = lists.ids;
    const nodes = this.nodes;
    const w = this.words;
    for (let k = 0; k < n; k++) {
      const child = ids[from + k]!;
      nodes[k] = child;
      w[2 * k + HI] = tree.nameWord(child, 0);
      w[2 * k + LO] = k;
    }
    if (n > 1) this.sortRange(tree, 0, n);
    // `nodes` still holds the children in list order: map positions to nodes through `ids`.
    for (let k = 0; k < n; k++) nodes[k] = ids[from + w[2 * k + LO]!]!;
    return n;
  }

  private reserve(n: number): void {
    const size = Math.max(n, this.nodes.length * 2);
    this.nodes = new Int32Array(size);
    this.keys = new BigUint64Array(size);
    this.words = new Uint32Array(this.keys.buffer);
  }

  /**
   * Sorts keys [a, b), whose high words hold name bytes 0..3, then each run of equal words by
   * the next 4 bytes, and so on (ranges to do on a stack: [start, end, byte offset] triples).
   */
  private sortRange(tree: FsTree, a: number, b: number): void {
    const w = this.words;
    const nodes = this.nodes;
    const todo: number[] = [a, b, 0];
    while (todo.length > 0) {
      const at = todo.pop()!;
      const end = todo.pop()!;
      const start = todo.pop()!;
      if (at > 0) for (let i = start; i < end; i++) w[2 * i + HI] = tree.nameWord(nodes[w[2 * i + LO]!]!, at);
      this.keys.subarray(start, end).sort();
      for (let i = start; i < end; ) {
        const word = w[2 * i + HI]!;
        let j = i + 1;
        while (j < end && w[2 * j + HI] === word) j++;
        // Equal words ending in a NUL are equal names (not in one directory): nothing to order.
        if (j - i > 1 && (word & 0xff) !== 0) todo.push(i, j, at + 4);
        i = j;
      }
    }
  }
}
