import { InvalidArgumentError, NydusError } from '@nydus-ts/core';
import {
  CHUNK_INFO_FIELD as F,
  BLOB_ENTRY_SIZE,
  BlobFeatures,
  CHUNK_ADDRESS_SIZE,
  CHUNK_FORMAT_INDEXES,
  CHUNK_INFO_SIZE,
  DEVICE_SLOT_OFFSET_UNITS,
  DEVICE_SLOT_SIZE,
  DEVICE_TABLE_OFFSET,
  DIRENT_SIZE,
  DataLayout,
  EROFS_BLOCK_BITS,
  EROFS_BLOCK_SIZE,
  EROFS_SUPER_MAGIC,
  EROFS_SUPER_OFFSET,
  EXTENDED_INODE_SIZE,
  FEATURE_COMPAT_RAFS_V6,
  FileType,
  InodeVersion,
  MAPPED_BLKADDR_ALIGN_BLOCKS,
  MAX_BLOBS,
  RAFS_EXT_SUPER_OFFSET,
  RAFS_V6_FEATURE_INCOMPAT,
  ROOT_NID,
  RafsSuperFlags,
  alignUp,
  encodeBlobEntry,
  encodeDeviceSlot,
  encodeErofsSuperblock,
  encodeRafsExtSuperblock,
  decodeRafsExtSuperblock,
  encodeXattrs,
  superFlagForCompression,
  superFlagForDigest,
  type CompressionName,
  type DigestName,
} from '../layout/index.js';
import type { BlobSink } from './blob-writer.js';
import { ChildSorter, K_BLK, K_CHR, K_DIR, K_FILE, K_SYMLINK, SECOND_STORE, grow, nameKey, type ChildLists, type ChunkStore, type FsTree, type TreeBlob } from './tree.js';

/** Filesystem-wide settings of a bootstrap. */
export interface BootstrapSettings {
  chunkSize: number;
  /** Compressor flag of the superblock (the blobs carry their own). */
  compressor: CompressionName;
  digester: DigestName;
  /** EXPLICIT_UID_GID: inode uid/gid are meaningful (otherwise written as 0). */
  explicitUidGid: boolean;
  /** Blob table in order; every chunk of the tree must reference one of these objects (by identity). */
  blobs: readonly TreeBlob[];
  /** Absolute paths whose nids go into the prefetch table (`/` = the root = prefetch all). */
  prefetchPatterns?: readonly string[];
}

const BS = EROFS_BLOCK_SIZE;
/** Little-endian host: fields go straight into word views of the output (else through DataViews). */
const LE = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
/** Word of a 64-bit sort key (a BigUint64Array element) that holds its high, and its low, half. */
const HI = LE ? 1 : 0;
const LO = 1 - HI;
/** On-disk file type by inode kind code (tree.ts K_*). */
const FILE_TYPE_OF_KIND = Uint8Array.of(FileType.REG, FileType.DIR, FileType.SYMLINK, FileType.CHRDEV, FileType.BLKDEV, FileType.FIFO, FileType.SOCK);


/**
 * Free-space index of the reference allocator (spec §1.10): partially used blocks by their
 * free byte count in 32-byte units, FIFO per size class.
 */
class MetaAllocator {
  /** Next free byte of the append cursor (relative to the meta base). */
  off = BS;
  private readonly free: number[][] = Array.from({ length: BS / 32 }, () => []);
  private readonly heads = new Int32Array(BS / 32);
  /** Bit d set: size class d has an unused entry (so takeFree finds one without a scan). */
  private readonly avail = new Uint32Array(BS / 32 / 32);

  /** Records the rest of the block containing `p` as free (nothing if `p` is aligned). */
  recordRemainder(p: number): void {
    const used = p % BS;
    if (used === 0) return;
    const units = Math.floor((BS - used) / 32);
    if (units > 0) {
      this.free[units]!.push(p - used);
      this.avail[units >>> 5]! |= 1 << (units & 31);
    }
  }

  /** The first size class ≥ `from` with an unused entry, or -1. */
  private firstAvailable(from: number): number {
    for (let w = from >>> 5; w < this.avail.length; w++) {
      let bits = this.avail[w]!;
      if (w === from >>> 5) bits &= -1 << (from & 31);
      if (bits !== 0) return (w << 5) + 31 - Math.clz32(bits & -bits);
    }
    return -1;
  }

  /** Takes `size` (< one block) bytes from a partially used block, or returns -1. */
  takeFree(size: number): number {
    if (size >= BS) return -1;
    const need = Math.ceil(size / 32);
    const d = this.firstAvailable(Math.max(need, 1));
    if (d < 0) return -1;
    const list = this.free[d]!;
    const head = this.heads[d]!;
    const blockStart = list[head]!;
    this.heads[d] = head + 1;
    if (head + 1 === list.length) this.avail[d >>> 5]! &= ~(1 << (d & 31));
    const addr = blockStart + BS - 32 * d;
    this.recordRemainder(addr + 32 * need);
    return addr;
  }

  /** `size` bytes from a partially used block if one has room, else appended. */
  takeOrAppend(size: number): number {
    const free = this.takeFree(size);
    return free >= 0 ? free : this.append(size);
  }

  /** Appends `size` bytes at the cursor; a piece that fits a block never straddles one. */
  append(size: number): number {
    if (size <= BS && (this.off % BS) + size > BS) this.jumpToNextBlock();
    const at = this.off;
    this.advance(size);
    return at;
  }

  jumpToNextBlock(): void {
    this.recordRemainder(this.off);
    this.off = alignUp(this.off, BS);
  }

  /** Reserves `size` bytes of whole blocks at the next block boundary. */
  appendBlocks(size: number): number {
    this.jumpToNextBlock();
    const at = this.off;
    this.advance(size);
    return at;
  }

  /**
   * Moves the cursor on by `size`. Sizes read from Float64Array columns arrive as heap numbers:
   * Math.trunc keeps the cursor a small integer, so that the allocator's map (and the code
   * optimised for it) stays the same from one bootstrap to the next.
   */
  advance(size: number): void {
    this.off = Math.trunc(this.off + size);
  }

  align32(): void {
    this.off = alignUp(this.off, 32);
  }
}

/** Dirent-list markers for `.` and `..` (other values are child nodes). */
const DOT = -1;
const DOTDOT = -2;

/**
 * Where each inode reached lives and how its data is laid out, in columns indexed by placement
 * number (numbering order; offsets relative to the meta base).
 */
class Placements {
  count = 0;
  readonly inode: Int32Array;
  readonly ino: Uint32Array;
  /** Offset of the inode; nid = off / 32. */
  readonly off: Float64Array;
  readonly layout: Uint8Array;
  readonly xattrCount: Uint16Array;
  /** Inode + xattr bytes. */
  readonly isz: Uint32Array;
  /** i_size: file length, dirent bytes or symlink target length. */
  readonly dataSize: Float64Array;
  /** Offset of the first full data block (FLAT_*), -1 when there is none. */
  readonly blocksOff: Float64Array;
  readonly nlink: Uint32Array;
  /** Directories: the parent directory's inode (for `..`). */
  readonly parentInode: Int32Array;
  /** Directories: their entries (`.`/`..` included) in on-disk order, in `entries`. */
  readonly dirStart: Float64Array;
  readonly dirLen: Uint32Array;
  /** Placement of each inode, -1 while unplaced. */
  readonly placementOf: Int32Array;
  /** Encoded xattrs of the placements that have any. */
  readonly xattrBytes = new Map<number, Uint8Array>();
  /** Directory entries: DOT, DOTDOT or a child node. */
  entries: Int32Array;
  entriesUsed = 0;

  constructor(max: number) {
    this.inode = new Int32Array(max);
    this.ino = new Uint32Array(max);
    this.off = new Float64Array(max);
    this.layout = new Uint8Array(max);
    this.xattrCount = new Uint16Array(max);
    this.isz = new Uint32Array(max);
    this.dataSize = new Float64Array(max);
    this.blocksOff = new Float64Array(max).fill(-1);
    this.nlink = new Uint32Array(max);
    this.parentInode = new Int32Array(max);
    this.dirStart = new Float64Array(max);
    this.dirLen = new Uint32Array(max);
    this.placementOf = new Int32Array(max).fill(-1);
    this.entries = new Int32Array(max + 2);
  }

  /** Room for `n` more directory entries. */
  reserveEntries(n: number): void {
    if (this.entriesUsed + n > this.entries.length) this.entries = grow(this.entries, this.entriesUsed + n);
  }

  /** The nid of a placed inode. */
  nidOf(inode: number): number {
    return this.off[this.placementOf[inode]!]! / 32;
  }
}

/**
 * Pass 1: numbering and placement in reference order (a directory numbers all its children,
 * then descends into its child directories in name order). One small method per step, so that
 * each compiles on its own and the hot loops need no on-stack replacement of a big function.
 */
class Placer {
  readonly alloc = new MetaAllocator();
  readonly P: Placements;
  /** Inode numbers handed out so far (the root is 1). */
  index = 1;
  hasXattr = false;
  private readonly lists: ChildLists;
  private readonly sorter = new ChildSorter();
  /** Directory nodes still to descend into (the next on top). */
  private stack = new Int32Array(64);
  private stackUsed = 0;

  constructor(
    private readonly tree: FsTree,
    private readonly chunkSize: number,
  ) {
    this.P = new Placements(tree.inodeCount);
    this.lists = tree.childLists();
  }

  placeAll(): void {
    const tree = this.tree;
    const rootInode = tree.nodeInode[tree.root]!;
    if (tree.kind[rootInode] !== K_DIR || !tree.isDir(tree.root)) throw new NydusError('INTERNAL', 'bootstrap root must be a directory');
    this.newPlacement(rootInode, rootInode);
    this.push(tree.root);
    while (this.stackUsed > 0) this.placeDirectory(this.stack[--this.stackUsed]!);
    if (this.P.off[0] !== BS) throw new NydusError('INTERNAL', `root inode placed at ${this.P.off[0]}`);
  }

  private push(node: number): void {
    if (this.stackUsed === this.stack.length) this.stack = grow(this.stack, this.stackUsed + 1);
    this.stack[this.stackUsed++] = node;
  }

  private placeDirectory(dirNode: number): void {
    const { tree, P } = this;
    const dirInode = tree.nodeInode[dirNode]!;
    const dp = P.placementOf[dirInode]!;
    const n = this.sorter.sort(tree, this.lists, dirNode);
    const children = this.sorter.nodes;
    this.listEntries(dp, children, n);
    this.placeFlat(dp);
    const firstDir = this.stackUsed;
    for (let k = 0; k < n; k++) this.placeChild(children[k]!, dirInode);
    P.nlink[dp] = 2 + this.stackUsed - firstDir;
    // Pushed in name order: reverse them so that the first name is descended into first.
    const stack = this.stack;
    for (let i = firstDir, j = this.stackUsed - 1; i < j; i++, j--) {
      const t = stack[i]!;
      stack[i] = stack[j]!;
      stack[j] = t;
    }
  }

  /**
   * The on-disk entries of directory placement `dp`: its sorted children with `.` and `..`
   * sorted in; i_size from the name lengths, block by block (spec §1.9).
   */
  private listEntries(dp: number, children: Int32Array, n: number): void {
    const { tree, P } = this;
    P.reserveEntries(n + 2);
    const entries = P.entries;
    let at = P.entriesUsed;
    P.dirStart[dp] = at;
    let blocks = 0;
    let used = 0;
    let dots = 0;
    for (let k = 0; k <= n; k++) {
      const node = k < n ? children[k]! : -1;
      // `.` and `..` go before the first name that sorts after them (or at the end).
      const after = node < 0 ? 2 : dots < 2 ? dotsBefore(tree, node) : 2;
      while (dots < after) {
        entries[at++] = dots === 0 ? DOT : DOTDOT;
        dots++;
        const need = DIRENT_SIZE + dots;
        if (used + need > BS) {
          blocks++;
          used = 0;
        }
        used += need;
      }
      if (node < 0) break;
      entries[at++] = node;
      const need = DIRENT_SIZE + tree.nameLength(node);
      if (used + need > BS) {
        blocks++;
        used = 0;
      }
      used += need;
    }
    P.entriesUsed = at;
    P.dirLen[dp] = at - P.dirStart[dp]!;
    P.dataSize[dp] = blocks * BS + used;
  }

  private placeChild(child: number, dirInode: number): void {
    const { tree, P } = this;
    this.index++;
    const inode = tree.nodeInode[child]!;
    const kind = tree.kind[inode]!;
    const seen = P.placementOf[inode]!;
    if (seen >= 0) {
      if (kind === K_DIR) throw new NydusError('INTERNAL', 'a directory inode appears under two names');
      if (kind !== K_FILE) throw new NydusError('INTERNAL', `only regular files can be hardlinked (kind ${kind})`);
      P.nlink[seen]!++;
      return;
    }
    // One call site per helper: each is compiled (and inlined) once.
    const p = this.newPlacement(inode, kind === K_DIR ? dirInode : -1);
    if (kind === K_DIR) {
      this.push(child);
    } else if (kind === K_FILE) {
      this.placeFile(p, inode);
    } else if (kind === K_SYMLINK) {
      P.dataSize[p] = tree.size[inode]!;
      this.placeFlat(p);
    } else {
      P.off[p] = this.alloc.append(P.isz[p]!);
      this.alloc.align32();
    }
  }

  private newPlacement(inode: number, parentInode: number): number {
    const P = this.P;
    const p = P.count++;
    P.inode[p] = inode;
    P.ino[p] = this.index;
    P.layout[p] = DataLayout.FLAT_PLAIN;
    P.isz[p] = EXTENDED_INODE_SIZE;
    P.nlink[p] = 1;
    P.parentInode[p] = parentInode;
    P.placementOf[inode] = p;
    if (this.tree.xattrs.size > 0) this.placeXattrs(p, inode);
    return p;
  }

  private placeXattrs(p: number, inode: number): void {
    const xattrs = this.tree.xattrs.get(inode);
    if (xattrs === undefined || xattrs.size === 0) return;
    const P = this.P;
    const { bytes, icount } = encodeXattrs(xattrs);
    if (icount > 0) this.hasXattr = true;
    P.xattrCount[p] = icount;
    if (bytes.length > 0) P.xattrBytes.set(p, bytes);
    P.isz[p] = EXTENDED_INODE_SIZE + bytes.length;
  }

  /** A regular file: inode, xattrs and chunk-address array. */
  private placeFile(p: number, inode: number): void {
    const { tree, P, alloc } = this;
    P.layout[p] = DataLayout.CHUNK_BASED;
    const size = tree.size[inode]!;
    P.dataSize[p] = size;
    const count = tree.chunkCount[inode]!;
    const expected = Math.ceil(size / this.chunkSize);
    if (count !== expected) throw new NydusError('INTERNAL', `file of ${size} bytes has ${count} chunks, expected ${expected}`);
    const isz = P.isz[p]!;
    const total = alignUp(isz, 8) + CHUNK_ADDRESS_SIZE * count;
    const free = alloc.takeFree(total);
    P.off[p] = free >= 0 ? free : placeAppendInode(alloc, isz, total);
    alloc.align32();
  }

  /** Tail rule for directories and symlinks (spec §1.10). */
  private placeFlat(p: number): void {
    const { P, alloc } = this;
    const dataSize = P.dataSize[p]!;
    const isz = P.isz[p]!;
    const tail = dataSize % BS;
    // Inline: the tail right after the inode, the rest in whole blocks; else all in whole blocks.
    const inline = tail !== 0 && isz + tail <= BS;
    P.layout[p] = inline ? DataLayout.FLAT_INLINE : DataLayout.FLAT_PLAIN;
    P.off[p] = alloc.takeOrAppend(inline ? isz + tail : isz);
    const blocks = inline ? dataSize - tail : dataSize;
    if (blocks > 0) {
      P.blocksOff[p] = alloc.appendBlocks(blocks);
      if (!inline) alloc.jumpToNextBlock();
    }
    alloc.align32();
  }
}

/** How many of `.` and `..` sort before the name of `node` (latin1 order is byte order). */
function dotsBefore(tree: FsTree, node: number): number {
  const c0 = tree.nameByte(node, 0);
  if (c0 !== 0x2e) return c0 > 0x2e ? 2 : 0;
  const c1 = tree.nameByte(node, 1);
  if (c1 < 0) return 0;
  if (c1 !== 0x2e) return c1 > 0x2e ? 2 : 1;
  return tree.nameByte(node, 2) < 0 ? 1 : 2;
}

/**
 * Pass 1 (numbering and placement) and the fixed tables of a bootstrap. Without `settings.blobs`
 * the blob table is the blobs the chunks reference, in order of first reference.
 */
function planBootstrap(tree: FsTree, settings: BootstrapSettings | ReferencedBlobsSettings): BootstrapPlan {
  const given = 'blobs' in settings ? settings.blobs : undefined;
  const tableIndex = blobTableIndexes(tree, given);
  const placer = new Placer(tree, settings.chunkSize);
  placer.placeAll();
  const P = placer.P;
  const metaSize = alignUp(placer.alloc.off, BS);

  // ---- Chunk table, prefetch table, fixed tables.
  const referenced: TreeBlob[] | null = given === undefined ? [] : null;
  const table = collectChunks(tree, P, tableIndex, referenced);
  const blobs = given ?? referenced!;
  checkBlobCount(blobs.length);
  const prefetch = blobs.length > 0 ? resolvePrefetch(tree, P, settings.prefetchPatterns ?? []) : [];
  const chunkCount = table.order.length;

  const n = blobs.length;
  const blobTableOffset = alignUp(DEVICE_TABLE_OFFSET + DEVICE_SLOT_SIZE * n, BS);
  const prefetchOffset = blobTableOffset + BLOB_ENTRY_SIZE * n;
  const metaBase = n > 0 ? alignUp(prefetchOffset + 4 * prefetch.length, BS) : 0;
  const chunkTableOffset = metaBase + metaSize;
  const total = alignUp(chunkTableOffset + CHUNK_INFO_SIZE * chunkCount, BS);
  const layout: HeadLayout = { inodeCount: placer.index, hasXattr: placer.hasXattr, blobTableOffset, prefetchOffset, metaBase, chunkTableOffset, chunkCount, total };
  const head = encodeHead(settings, blobs, prefetch, layout);
  return new BootstrapPlan(tree, blobs, settings.chunkSize, settings.explicitUidGid, P, tableIndex, table, head, metaBase, chunkTableOffset, total);
}

/**
 * Blob-table index of each store's blobs: from `given` (by identity), or -1 everywhere for a
 * table numbered by first reference (-1: not in the table, or not numbered yet).
 */
function blobTableIndexes(tree: FsTree, given: readonly TreeBlob[] | undefined): Int16Array[] {
  if (given === undefined) return tree.stores.map((s) => new Int16Array(s.blobs.length).fill(-1));
  checkBlobCount(given.length);
  const blobIndex = new Map<TreeBlob, number>();
  given.forEach((b, i) => blobIndex.set(b, i));
  return tree.stores.map((s) => Int16Array.from(s.blobs, (b) => blobIndex.get(b) ?? -1));
}

/** Offsets and counts the head of a bootstrap records. */
interface HeadLayout {
  inodeCount: number;
  hasXattr: boolean;
  blobTableOffset: number;
  prefetchOffset: number;
  metaBase: number;
  chunkTableOffset: number;
  chunkCount: number;
  total: number;
}

/** Everything before the first inode (meta offsets start at one block): superblocks, device slots, blob table, prefetch table. */
function encodeHead(settings: BootstrapSettings | ReferencedBlobsSettings, blobs: readonly TreeBlob[], prefetch: readonly number[], L: HeadLayout): Uint8Array {
  const n = blobs.length;
  const head = new Uint8Array(L.metaBase + BS);
  const headView = new DataView(head.buffer);

  let flags = superFlagForCompression(settings.compressor) | superFlagForDigest(settings.digester) | RafsSuperFlags.ENCRYPTION_NONE;
  if (settings.explicitUidGid) flags |= RafsSuperFlags.EXPLICIT_UID_GID;
  if (L.hasXattr) flags |= RafsSuperFlags.HAS_XATTR;
  if (n > 0 && blobs.every((b) => (b.features & BlobFeatures.INLINED_CHUNK_DIGEST) !== 0)) flags |= RafsSuperFlags.INLINED_CHUNK_DIGEST;

  let totalBlocks = 0;
  for (const b of blobs) {
    if (b.uncompressedSize % BS !== 0) throw new NydusError('INTERNAL', `blob ${b.blobId} uncompressed size ${b.uncompressedSize} is not block aligned`);
    totalBlocks += b.uncompressedSize / BS;
  }
  head.set(
    encodeErofsSuperblock({
      magic: EROFS_SUPER_MAGIC,
      checksum: 0,
      featureCompat: FEATURE_COMPAT_RAFS_V6,
      blkszbits: EROFS_BLOCK_BITS,
      extslots: 0,
      rootNid: ROOT_NID,
      inodeCount: L.inodeCount,
      buildTime: 0,
      buildTimeNsec: 0,
      blocks: totalBlocks,
      metaBlkaddr: L.metaBase / BS,
      xattrBlkaddr: 0,
      uuid: new Uint8Array(16),
      volumeName: new Uint8Array(16),
      featureIncompat: RAFS_V6_FEATURE_INCOMPAT,
      u: 0,
      extraDevices: n,
      devtSlotOff: DEVICE_SLOT_OFFSET_UNITS,
    }),
    EROFS_SUPER_OFFSET,
  );
  head.set(
    encodeRafsExtSuperblock({
      flags,
      blobTableOffset: L.blobTableOffset,
      blobTableSize: BLOB_ENTRY_SIZE * n,
      chunkSize: settings.chunkSize,
      chunkTableOffset: L.chunkTableOffset,
      chunkTableSize: CHUNK_INFO_SIZE * L.chunkCount,
      prefetchTableOffset: prefetch.length > 0 ? L.prefetchOffset : 0,
      prefetchTableSize: 4 * prefetch.length,
    }),
    RAFS_EXT_SUPER_OFFSET,
  );
  // Device slots: blobs mapped after the bootstrap, each start on a 512 KiB boundary.
  let mapped = L.total / BS;
  blobs.forEach((b, i) => {
    mapped = alignUp(mapped, MAPPED_BLKADDR_ALIGN_BLOCKS);
    const blocks = b.uncompressedSize / BS;
    head.set(encodeDeviceSlot({ blobId: b.blobId, blocks, mappedBlkaddr: mapped }), DEVICE_TABLE_OFFSET + DEVICE_SLOT_SIZE * i);
    mapped += blocks;
    head.set(encodeBlobEntry({ ...b, blobIndex: i }), L.blobTableOffset + BLOB_ENTRY_SIZE * i);
  });
  prefetch.forEach((nid, i) => headView.setUint32(L.prefetchOffset + 4 * i, nid, true));
  return head;
}

function checkBlobCount(n: number): void {
  if (n > MAX_BLOBS) throw new InvalidArgumentError(`a bootstrap can reference at most ${MAX_BLOBS} blobs, got ${n}`);
}

/**
 * A laid-out bootstrap: `render` writes any byte range of it, so that the whole never has to
 * be in memory at once (pass 2: inodes, their data, the chunk table).
 */
class BootstrapPlan {
  private readonly dirs: DirentEncoder;
  private readonly chunkFormat: number;
  private readonly scratch = new Uint8Array(CHUNK_INFO_SIZE + EXTENDED_INODE_SIZE);
  private readonly scratchView = new DataView(this.scratch.buffer);
  // The range being rendered: bootstrap bytes [from, to) into `out` (and its views).
  private out: Uint8Array = new Uint8Array(0);
  private view: DataView = new DataView(this.out.buffer);
  private w32: Uint32Array | null = null;
  private w16: Uint16Array | null = null;
  private from = 0;
  private to = 0;

  constructor(
    private readonly tree: FsTree,
    /** The blob table. */
    readonly blobs: readonly TreeBlob[],
    chunkSize: number,
    private readonly explicitUidGid: boolean,
    private readonly P: Placements,
    private readonly tableIndex: readonly Int16Array[],
    private readonly table: ChunkTable,
    private readonly head: Uint8Array,
    private readonly metaBase: number,
    private readonly chunkTableOffset: number,
    /** Size of the bootstrap in bytes. */
    readonly total: number,
  ) {
    this.dirs = new DirentEncoder(tree, P);
    this.chunkFormat = CHUNK_FORMAT_INDEXES | (Math.log2(chunkSize) - EROFS_BLOCK_BITS);
  }

  /** Writes bootstrap bytes [from, from + out.length) into `out`, which must be zero-filled. */
  render(out: Uint8Array, from: number): void {
    this.target(out, from);
    const to = this.to;
    if (from < this.head.length) put(out, from, this.head, 0);
    if (to > this.metaBase + BS && from < this.chunkTableOffset) {
      for (let p = 0; p < this.P.count; p++) this.renderPlacement(p);
    }
    if (to > this.chunkTableOffset) this.renderChunkTable();
    this.target(new Uint8Array(0), 0);
  }

  private target(out: Uint8Array, from: number): void {
    this.out = out;
    this.from = from;
    this.to = from + out.length;
    this.view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    // Word views when the host is little-endian and `out` word-aligned (fewer, cheaper stores).
    const words = LE && (out.byteOffset & 3) === 0 && (out.length & 3) === 0 && (from & 3) === 0;
    this.w32 = words ? new Uint32Array(out.buffer, out.byteOffset, out.length >>> 2) : null;
    this.w16 = words ? new Uint16Array(out.buffer, out.byteOffset, out.length >>> 1) : null;
  }

  private renderPlacement(p: number): void {
    const inode = this.P.inode[p]!;
    const kind = this.tree.kind[inode]!;
    const abs = this.metaBase + this.P.off[p]!;
    // The data of the kind, then the inode itself (one call site: compiled and inlined once).
    let u: number;
    if (kind === K_FILE) u = this.renderFile(p, inode, abs);
    else if (kind === K_DIR || kind === K_SYMLINK) u = this.renderFlat(p, inode, kind, abs);
    else u = this.renderSpecial(p, inode, kind, abs);
    if (u >= 0) this.writeInode(p, inode, abs, u);
  }

  /** A regular file's chunk-address array; its inode's `u`, or -1 when the inode is out of range. */
  private renderFile(p: number, inode: number, abs: number): number {
    const addrs = alignUp(abs + this.P.isz[p]!, 8);
    if (abs >= this.to || addrs + CHUNK_ADDRESS_SIZE * this.tree.chunkCount[inode]! <= this.from) return -1;
    this.writeChunkAddresses(inode, addrs);
    return this.chunkFormat;
  }

  /**
   * A directory's or symlink's inline tail and full data blocks; its inode's `u`, or -1 when
   * the inode (with its tail) is out of range.
   */
  private renderFlat(p: number, inode: number, kind: number, abs: number): number {
    const { P, from, to } = this;
    const isz = P.isz[p]!;
    const dataSize = P.dataSize[p]!;
    const inline = P.layout[p] === DataLayout.FLAT_INLINE;
    // Data in full blocks at `blocksAt`; an inline tail right after the inode and its xattrs.
    const full = inline ? dataSize - (dataSize % BS) : dataSize;
    const blocksAt = full > 0 ? this.metaBase + P.blocksOff[p]! : -1;
    const inodeHit = abs < to && abs + isz + (dataSize - full) > from;
    const blocksHit = full > 0 && blocksAt < to && blocksAt + full > from;
    if (!inodeHit && !blocksHit) return -1;
    const body = kind === K_DIR ? this.dirs.encode(p) : this.tree.linkTarget(inode);
    if (blocksHit) put(this.out, from, body.subarray(0, full), blocksAt);
    if (full < body.length && inodeHit) put(this.out, from, body.subarray(full), abs + isz);
    return inodeHit ? (full > 0 ? blocksAt / BS : 0) : -1;
  }

  /** A device, FIFO or socket has no data: its inode's `u` (devices: rdev), or -1 when out of range. */
  private renderSpecial(p: number, inode: number, kind: number, abs: number): number {
    if (abs >= this.to || abs + this.P.isz[p]! <= this.from) return -1;
    return kind === K_CHR || kind === K_BLK ? this.tree.data[inode]! : 0;
  }

  /**
   * The extended inode (spec §1.4: format, xattr count, mode, size, u, ino, uid, gid, mtime,
   * mtime_nsec, nlink; same bytes as layout's encodeInode) and its xattrs.
   */
  private writeInode(p: number, inode: number, abs: number, u: number): void {
    const { tree, P, w32, w16, from } = this;
    if (w32 !== null && w16 !== null && abs >= from && abs + EXTENDED_INODE_SIZE <= this.to) {
      const q = (abs - from) >>> 2; // abs is 32-aligned
      const dataSize = P.dataSize[p]!;
      const mtime = tree.mtime[inode]!;
      if (!Number.isSafeInteger(dataSize) || !Number.isSafeInteger(mtime)) throw new RangeError(`inode ${inode}: size ${dataSize} or mtime ${mtime} is not a safe integer`);
      w16[2 * q] = InodeVersion.EXTENDED | (P.layout[p]! << 1);
      w16[2 * q + 1] = P.xattrCount[p]!;
      w16[2 * q + 2] = tree.mode[inode]!;
      w32[q + 2] = dataSize;
      w32[q + 3] = dataSize / 0x1_0000_0000;
      w32[q + 4] = u;
      w32[q + 5] = P.ino[p]!;
      if (this.explicitUidGid) {
        w32[q + 6] = tree.uid[inode]!;
        w32[q + 7] = tree.gid[inode]!;
      }
      // A signed i64: stores into the Uint32Array take each half modulo 2^32.
      w32[q + 8] = mtime;
      w32[q + 9] = Math.floor(mtime / 0x1_0000_0000);
      w32[q + 10] = tree.mtimeNsec[inode]!;
      w32[q + 11] = P.nlink[p]!;
    } else {
      put(this.out, from, this.encodeInodeSlow(p, inode, u), abs);
    }
    if (P.xattrCount[p] !== 0) put(this.out, from, P.xattrBytes.get(p)!, abs + EXTENDED_INODE_SIZE);
  }

  /** The extended inode of placement `p`, encoded through a DataView into the scratch buffer. */
  private encodeInodeSlow(p: number, inode: number, u: number): Uint8Array {
    const { tree, P } = this;
    const header = this.scratch.subarray(0, EXTENDED_INODE_SIZE);
    const sv = this.scratchView;
    header.fill(0);
    sv.setUint16(0, InodeVersion.EXTENDED | (P.layout[p]! << 1), true);
    sv.setUint16(2, P.xattrCount[p]!, true);
    sv.setUint16(4, tree.mode[inode]!, true);
    setU64(sv, 8, P.dataSize[p]!);
    sv.setUint32(16, u, true);
    sv.setUint32(20, P.ino[p]!, true);
    sv.setUint32(24, this.explicitUidGid ? tree.uid[inode]! : 0, true);
    sv.setUint32(28, this.explicitUidGid ? tree.gid[inode]! : 0, true);
    setI64(sv, 32, tree.mtime[inode]!);
    sv.setUint32(40, tree.mtimeNsec[inode]!, true);
    sv.setUint32(44, P.nlink[p]!, true);
    return header;
  }

  /**
   * Chunk addresses (spec §1.7) of file `inode` from bootstrap offset `at`: ci index low 16
   * bits, device = blob index + 1, ci index high 8 bits, blkaddr of the uncompressed data.
   * 8-byte aligned: never cut by a (block-aligned) range boundary.
   */
  private writeChunkAddresses(inode: number, at: number): void {
    const { tree, out, w32, w16, from, to } = this;
    const refs = tree.chunkRefs;
    const first = tree.data[inode]!;
    const end = first + tree.chunkCount[inode]!;
    for (let k = first; k < end; k++, at += CHUNK_ADDRESS_SIZE) {
      if (at < from || at >= to) continue;
      const ref = refs[k]!;
      const s = ref >= SECOND_STORE ? 1 : 0;
      const i = s === 1 ? ref - SECOND_STORE : ref;
      const store = tree.stores[s]!;
      const ci = store.ciIndexOf(i);
      const rel = at - from;
      const blkaddr = store.uncompressedOffsetOf(i) / BS;
      if (w32 !== null && w16 !== null) {
        w16[rel >>> 1] = ci;
        w32[(rel >>> 2) + 1] = blkaddr;
      } else {
        this.view.setUint16(rel, ci & 0xffff, true);
        this.view.setUint32(rel + 4, blkaddr, true);
      }
      out[rel + 2] = this.tableIndex[s]![store.blobIndexOf(i)]! + 1;
      out[rel + 3] = (ci >>> 16) & 0xff;
    }
  }

  private renderChunkTable(): void {
    const { tree, table, out, w32, from, to } = this;
    const cto = this.chunkTableOffset;
    const count = table.order.length;
    const firstK = Math.max(0, Math.floor((from - cto) / CHUNK_INFO_SIZE));
    const endK = Math.min(count, Math.ceil((to - cto) / CHUNK_INFO_SIZE));
    const entry = this.scratch.subarray(0, CHUNK_INFO_SIZE);
    for (let k = firstK; k < endK; k++) {
      const i = table.order[k]!;
      const ref = table.refs[i]!;
      const s = ref >= SECOND_STORE ? 1 : 0;
      const store = tree.stores[s]!;
      const j = s === 1 ? ref - SECOND_STORE : ref;
      const at = cto + CHUNK_INFO_SIZE * k;
      if (at >= from && at + CHUNK_INFO_SIZE <= to) {
        if (w32 !== null) store.writeInfoWords(j, table.blobOf[i]!, w32, (at - from) >>> 2);
        else writeChunkInfo(store, j, table.blobOf[i]!, out, this.view, at - from);
      } else {
        writeChunkInfo(store, j, table.blobOf[i]!, entry, this.scratchView, 0);
        put(out, from, entry, at);
      }
    }
  }
}

/** Copies the part of `bytes` (meant for bootstrap offset `at`) that falls into `out` (bootstrap bytes from `from`). */
function put(out: Uint8Array, from: number, bytes: Uint8Array, at: number): void {
  const start = Math.max(at, from);
  const end = Math.min(at + bytes.length, from + out.length);
  if (start >= end) return;
  out.set(bytes.subarray(start - at, end - at), start - from);
}

/**
 * Serialises a tree as a RAFS v6 bootstrap (spec §1.1–§1.13). Layout follows the reference
 * allocator (§1.10) with one tightening: an inode with its xattrs (and inline tail) never
 * straddles a block boundary when it fits in one. Output depends only on the input.
 */
export function writeBootstrap(tree: FsTree, settings: BootstrapSettings): Uint8Array {
  const plan = planBootstrap(tree, settings);
  const out = new Uint8Array(plan.total);
  plan.render(out, 0);
  return out;
}

/**
 * A copy of a bootstrap from `writeBootstrap` with blob table entry `index` re-encoded from
 * `blob`: the bootstrap that `writeBootstrap` gives after one of its blob's fields that only the
 * blob table holds (the ToC digest and size) changed, without laying out the tree again.
 */
export function withBlobEntry(bootstrap: Uint8Array, index: number, blob: TreeBlob): Uint8Array {
  const { blobTableOffset, blobTableSize } = decodeRafsExtSuperblock(bootstrap);
  if (!Number.isInteger(index) || index < 0 || BLOB_ENTRY_SIZE * (index + 1) > blobTableSize) throw new InvalidArgumentError(`blob index ${String(index)} is not in the blob table`);
  const out = Uint8Array.from(bootstrap);
  out.set(encodeBlobEntry({ ...blob, blobIndex: index }), blobTableOffset + BLOB_ENTRY_SIZE * index);
  return out;
}

/** Bootstrap settings without a blob table: see `writeBootstrapOfReferencedBlobs`. */
export type ReferencedBlobsSettings = Omit<BootstrapSettings, 'blobs'>;

/**
 * `writeBootstrap` with a blob table of the blobs that the tree's chunks reference, numbered in
 * order of first reference in inode (placement) order; returns the bootstrap and that table.
 */
export function writeBootstrapOfReferencedBlobs(tree: FsTree, settings: ReferencedBlobsSettings): { bootstrap: Uint8Array; blobs: readonly TreeBlob[] } {
  const plan = planBootstrap(tree, settings);
  const out = new Uint8Array(plan.total);
  plan.render(out, 0);
  return { bootstrap: out, blobs: plan.blobs };
}

/**
 * `writeBootstrap` streamed to `sink` in pieces of `pieceSize` bytes (rounded to whole
 * blocks), so the bootstrap is never in memory whole. Same bytes. Returns its size.
 */
export async function writeBootstrapTo(tree: FsTree, settings: BootstrapSettings, sink: BlobSink, pieceSize = 4 << 20): Promise<number> {
  const plan = planBootstrap(tree, settings);
  const size = Math.max(BS, alignUp(pieceSize, BS));
  let piece: Uint8Array | undefined;
  for (let from = 0; from < plan.total; from += size) {
    if (piece === undefined || sink.releasesOnResolve !== true) piece = new Uint8Array(size);
    else piece.fill(0);
    const part = piece.subarray(0, Math.min(size, plan.total - from));
    plan.render(part, from);
    await sink.write(part);
  }
  return plan.total;
}

/** Directory data (spec §1.9) of placements, encoded into one reused buffer. */
class DirentEncoder {
  private buf = new Uint8Array(BS);
  private view = new DataView(this.buf.buffer);
  private w32 = new Uint32Array(this.buf.buffer);
  private w16 = new Uint16Array(this.buf.buffer);

  constructor(
    private readonly tree: FsTree,
    private readonly P: Placements,
  ) {}

  /** The directory data of placement `p` (valid until the next call). */
  encode(p: number): Uint8Array {
    const P = this.P;
    const size = P.dataSize[p]!;
    if (this.buf.length < size) {
      this.buf = new Uint8Array(alignUp(size, BS));
      this.view = new DataView(this.buf.buffer);
      this.w32 = new Uint32Array(this.buf.buffer);
      this.w16 = new Uint16Array(this.buf.buffer);
    } else {
      this.buf.fill(0, 0, size);
    }
    const start = P.dirStart[p]!;
    const end = start + P.dirLen[p]!;
    let base = 0;
    let used = 0;
    for (let k = start; k < end; ) {
      const e = this.blockEnd(k, end);
      used = this.encodeBlock(p, k, e, base);
      k = e;
      if (k < end) base += BS;
    }
    if (base + used !== size) throw new NydusError('INTERNAL', `directory size ${base + used} != planned ${size}`);
    return this.buf.subarray(0, size);
  }

  /** The end of the entries from `k` that fill one block. */
  private blockEnd(k: number, end: number): number {
    const entries = this.P.entries;
    let e = k;
    let used = 0;
    while (e < end) {
      const v = entries[e]!;
      const need = DIRENT_SIZE + (v === DOT ? 1 : v === DOTDOT ? 2 : this.tree.nameLength(v));
      if (used + need > BS) break;
      used += need;
      e++;
    }
    if (e === k) throw new NydusError('INTERNAL', 'directory entry larger than a block');
    return e;
  }

  /** Entries k..e-1 of placement `p` as the block at `base`: dirents, then names. Returns its bytes. */
  private encodeBlock(p: number, k: number, e: number, base: number): number {
    const { tree, P, buf } = this;
    const entries = P.entries;
    let nameoff = (e - k) * DIRENT_SIZE;
    for (let j = k; j < e; j++) {
      const v = entries[j]!;
      const off = base + (j - k) * DIRENT_SIZE;
      let nid: number;
      let fileType: number;
      let len: number;
      if (v < 0) {
        nid = v === DOT ? P.off[p]! / 32 : P.nidOf(P.parentInode[p]!);
        fileType = FileType.DIR;
        len = v === DOT ? 1 : 2;
        buf[base + nameoff] = 0x2e;
        if (len === 2) buf[base + nameoff + 1] = 0x2e;
      } else {
        const inode = tree.nodeInode[v]!;
        nid = P.nidOf(inode);
        fileType = FILE_TYPE_OF_KIND[tree.kind[inode]!]!;
        len = tree.copyNameTo(v, buf, base + nameoff);
        if (len === 0) throw new NydusError('INTERNAL', 'empty directory entry name');
      }
      if (LE) {
        // off = 12 × entry: word-aligned.
        this.w32[off >>> 2] = nid;
        this.w32[(off >>> 2) + 1] = nid / 0x1_0000_0000;
        this.w16[(off + 8) >>> 1] = nameoff;
      } else {
        setU64(this.view, off, nid);
        this.view.setUint16(off + 8, nameoff, true);
      }
      buf[off + 10] = fileType;
      nameoff += len;
    }
    return nameoff;
  }
}

function setU64(view: DataView, off: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 field value ${v} is not a non-negative safe integer`);
  view.setUint32(off, v % 0x1_0000_0000, true);
  view.setUint32(off + 4, Math.floor(v / 0x1_0000_0000), true);
}

function setI64(view: DataView, off: number, v: number): void {
  if (!Number.isSafeInteger(v)) throw new RangeError(`i64 field value ${v} is not a safe integer`);
  const hi = Math.floor(v / 0x1_0000_0000);
  view.setUint32(off, v - hi * 0x1_0000_0000, true);
  view.setInt32(off + 4, hi, true);
}

/** `encodeChunkInfo` (spec §1.8) straight from the store's columns, at `off` of `out`. */
function writeChunkInfo(store: ChunkStore, i: number, blobIndex: number, out: Uint8Array, view: DataView, off: number): void {
  out.set(store.digests.subarray(i * 32, i * 32 + 32), off + F.digest);
  view.setUint32(off + F.blobIndex, blobIndex, true);
  view.setUint32(off + F.flags, store.flagsOf(i), true);
  view.setUint32(off + F.compressedSize, store.compressedSizeOf(i), true);
  view.setUint32(off + F.uncompressedSize, store.uncompressedSizeOf(i), true);
  setU64(view, off + F.compressedOffset, store.compressedOffsetOf(i));
  setU64(view, off + F.uncompressedOffset, store.uncompressedOffsetOf(i));
  setU64(view, off + F.fileOffset, store.fileOffsetOf(i));
  view.setUint32(off + F.index, store.ciIndexOf(i), true);
  view.setUint32(off + F.crc32, store.crc32Of(i), true);
}

/** Appends a regular file's inode + chunk-address array, keeping inode + xattrs inside a block. */
function placeAppendInode(alloc: MetaAllocator, isz: number, total: number): number {
  if (isz <= BS && (alloc.off % BS) + isz > BS) alloc.jumpToNextBlock();
  const at = alloc.off;
  alloc.advance(total);
  return at;
}

/** Entry k of the chunk table is chunk ref `refs[order[k]]`, blob-table index `blobOf[order[k]]`. */
interface ChunkTable {
  refs: Uint32Array;
  order: Uint32Array;
  blobOf: Uint8Array;
}

/**
 * Chunk table: one entry per distinct (digest, blob index), sorted by digest then blob index;
 * among chunks with equal keys the first in placement order wins. Repeated refs to one stored
 * chunk are dropped by a bit per chunk; the rest sort natively as 64-bit keys (the first 4
 * digest bytes over the first-seen position), which settles almost every comparison; the rare
 * runs of equal first bytes are put in full order, and equal keys collapse.
 */
function collectChunks(tree: FsTree, P: Placements, tableIndex: readonly Int16Array[], referenced: TreeBlob[] | null): ChunkTable {
  const chunks = new ChunkKeys(tree, tableIndex, referenced);
  chunks.collect(P);
  const count = chunks.count;
  const words = chunks.words;
  chunks.keys.subarray(0, count).sort();
  // Entry k is chunk order[k]; only chunks with equal first digest bytes need a closer look.
  const order = new Uint32Array(count);
  let n = 0;
  for (let k = 0; k < count; ) {
    const prefix = words[2 * k + HI]!;
    let e = k + 1;
    while (e < count && words[2 * e + HI] === prefix) e++;
    if (e - k === 1) order[n++] = words[2 * k + LO]!;
    else n = chunks.appendRun(k, e, order, n);
    k = e;
  }
  return { refs: chunks.refs.subarray(0, count), order: order.subarray(0, n), blobOf: chunks.blobOf.subarray(0, count) };
}

/**
 * The distinct chunks of the placed files in placement order (each stored chunk once, at its
 * first reference) with their sort keys: digest, then blob-table index, then position. `keys`
 * are 64-bit: the first 4 digest bytes (big-endian) over the position.
 */
class ChunkKeys {
  count = 0;
  /** Chunk refs (see SECOND_STORE). */
  readonly refs: Uint32Array;
  readonly blobOf: Uint8Array; // at most MAX_BLOBS (254) blobs
  readonly keys: BigUint64Array;
  readonly words: Uint32Array;

  constructor(
    private readonly tree: FsTree,
    private readonly tableIndex: readonly Int16Array[],
    /** The referenced-blobs table so far, or null for a given table. */
    private readonly referenced: TreeBlob[] | null,
  ) {
    // Every distinct chunk is referenced at least once.
    const capacity = tree.chunkRefUsed;
    this.refs = new Uint32Array(capacity);
    this.blobOf = new Uint8Array(capacity);
    this.keys = new BigUint64Array(capacity);
    this.words = new Uint32Array(this.keys.buffer);
  }

  /** Collects the chunks of the placed files; numbers the blobs of a referenced-blobs table on the way. */
  collect(P: Placements): void {
    const tree = this.tree;
    const seen = tree.stores.map((s) => new Uint8Array((s.count + 7) >>> 3));
    const treeRefs = tree.chunkRefs;
    for (let p = 0; p < P.count; p++) {
      const inode = P.inode[p]!;
      if (tree.kind[inode] !== K_FILE) continue;
      const first = tree.data[inode]!;
      const end = first + tree.chunkCount[inode]!;
      for (let k = first; k < end; k++) {
        const ref = treeRefs[k]!;
        const s = ref >= SECOND_STORE ? 1 : 0;
        const i = s === 1 ? ref - SECOND_STORE : ref;
        const bits = seen[s]!;
        const bit = 1 << (i & 7);
        if ((bits[i >>> 3]! & bit) !== 0) continue;
        bits[i >>> 3]! |= bit;
        this.add(ref, s, i);
      }
    }
  }

  private add(ref: number, s: number, i: number): void {
    const store = this.tree.stores[s]!;
    const table = this.tableIndex[s]!;
    const blob = store.blobIndexOf(i);
    if (table[blob]! < 0) numberBlob(store, i, table, this.referenced);
    const c = this.count++;
    const d = store.digests;
    const at = i * 32;
    this.refs[c] = ref;
    this.blobOf[c] = table[blob]!;
    this.words[2 * c + HI] = ((d[at]! << 24) | (d[at + 1]! << 16) | (d[at + 2]! << 8) | d[at + 3]!) >>> 0;
    this.words[2 * c + LO] = c;
  }

  /**
   * Appends to `order` at `n` the chunk-table entries of sorted keys [a, b), whose digests share
   * their first 4 bytes: in full key order, one per key. Returns the new end of `order`.
   */
  appendRun(a: number, b: number, order: Uint32Array, n: number): number {
    const run: number[] = [];
    for (let k = a; k < b; k++) run.push(this.words[2 * k + LO]!);
    // Usually one chunk stored more than once: already in order (by position), all one key.
    if (!run.every((c) => this.compare(run[0]!, c) === 0)) run.sort((x, y) => this.compare(x, y) || x - y);
    for (let k = 0; k < run.length; k++) {
      if (k > 0 && this.compare(run[k - 1]!, run[k]!) === 0) continue;
      order[n++] = run[k]!;
    }
    return n;
  }

  /** Digest, then blob-table index (0: the same chunk-table entry), of chunks at positions a and b. */
  private compare(a: number, b: number): number {
    const ra = this.refs[a]!;
    const rb = this.refs[b]!;
    const da = this.tree.storeOf(ra).digests;
    const db = this.tree.storeOf(rb).digests;
    const oa = (ra >= SECOND_STORE ? ra - SECOND_STORE : ra) * 32;
    const ob = (rb >= SECOND_STORE ? rb - SECOND_STORE : rb) * 32;
    for (let k = 0; k < 32; k++) {
      if (da[oa + k] !== db[ob + k]) return da[oa + k]! - db[ob + k]!;
    }
    return this.blobOf[a]! - this.blobOf[b]!;
  }
}

/**
 * Gives the blob of chunk `i` of `store` the next blob-table index (`referenced`: the table so
 * far), or fails when the table is fixed (null).
 */
function numberBlob(store: ChunkStore, i: number, tableIndex: Int16Array, referenced: TreeBlob[] | null): void {
  const blob = store.blobs[store.blobIndexOf(i)]!;
  if (referenced === null) throw new NydusError('INTERNAL', `chunk ${store.digestHex(i)} references blob ${blob.blobId}, which is not in the blob table`);
  let t = referenced.indexOf(blob);
  if (t < 0) t = referenced.push(blob) - 1;
  tableIndex[store.blobIndexOf(i)] = t;
}

/**
 * Nids of the paths matching the prefetch patterns, in pattern order. A pattern equal to or
 * below an earlier matched one is dropped; patterns that match nothing are skipped.
 */
function resolvePrefetch(tree: FsTree, P: Placements, patterns: readonly string[]): number[] {
  const taken: string[] = [];
  const nids: number[] = [];
  for (const pattern of patterns) {
    const parts = pattern.split('/').filter((c) => c !== '');
    const norm = '/' + parts.join('/');
    if (taken.some((t) => t === '/' || norm === t || norm.startsWith(t + '/'))) continue;
    let node = tree.root;
    for (const part of parts) {
      node = tree.isDir(node) ? tree.lookup(tree.nodeNs[node]!, nameKey(part)) : -1;
      if (node < 0) break;
    }
    if (node < 0) continue;
    taken.push(norm);
    nids.push(P.nidOf(tree.nodeInode[node]!));
  }
  return nids;
}
