import { InvalidArgumentError, NydusError } from '@nydus-ts/core';
import {
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
  encodeXattrs,
  superFlagForCompression,
  superFlagForDigest,
  type CompressionName,
  type DigestName,
} from '../layout/index.js';
import type { BlobSink } from './blob-writer.js';
import { K_BLK, K_CHR, K_DIR, K_FILE, K_SYMLINK, SECOND_STORE, grow, nameKey, type ChunkStore, type FsTree, type TreeBlob } from './tree.js';

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

  /** Takes `size` (< one block) bytes from a partially used block, or undefined. */
  takeFree(size: number): number | undefined {
    if (size >= BS) return undefined;
    const need = Math.ceil(size / 32);
    const d = this.firstAvailable(Math.max(need, 1));
    if (d < 0) return undefined;
    const list = this.free[d]!;
    const head = this.heads[d]!;
    const blockStart = list[head]!;
    this.heads[d] = head + 1;
    if (head + 1 === list.length) this.avail[d >>> 5]! &= ~(1 << (d & 31));
    const addr = blockStart + BS - 32 * d;
    this.recordRemainder(addr + 32 * need);
    return addr;
  }

  /** Appends `size` bytes at the cursor; a piece that fits a block never straddles one. */
  append(size: number): number {
    if (size <= BS && (this.off % BS) + size > BS) this.jumpToNextBlock();
    const at = this.off;
    this.off += size;
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
    this.off += size;
    return at;
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
    this.blocksOff = new Float64Array(max);
    this.nlink = new Uint32Array(max);
    this.parentInode = new Int32Array(max);
    this.dirStart = new Float64Array(max);
    this.dirLen = new Uint32Array(max);
    this.entries = new Int32Array(max + 2);
  }

  pushEntry(v: number): void {
    if (this.entriesUsed === this.entries.length) this.entries = grow(this.entries, this.entriesUsed + 1);
    this.entries[this.entriesUsed++] = v;
  }
}

/**
 * Pass 1 (numbering and placement) and the fixed tables of a bootstrap. Without `settings.blobs`
 * the blob table is the blobs the chunks reference, in order of first reference.
 */
function planBootstrap(tree: FsTree, settings: BootstrapSettings | ReferencedBlobsSettings): BootstrapPlan {
  const rootInode = tree.nodeInode[tree.root]!;
  if (tree.kind[rootInode] !== K_DIR || !tree.isDir(tree.root)) throw new NydusError('INTERNAL', 'bootstrap root must be a directory');
  const given = 'blobs' in settings ? settings.blobs : undefined;
  // Blob-table index of each store's blobs (-1: not in the table, or not numbered yet).
  let tableIndex: Int16Array[];
  if (given !== undefined) {
    checkBlobCount(given.length);
    const blobIndex = new Map<TreeBlob, number>();
    given.forEach((b, i) => blobIndex.set(b, i));
    tableIndex = tree.stores.map((s) => Int16Array.from(s.blobs, (b) => blobIndex.get(b) ?? -1));
  } else {
    tableIndex = tree.stores.map((s) => new Int16Array(s.blobs.length).fill(-1));
  }

  // ---- Pass 1: numbering and placement (reference order: a directory numbers all its
  // children, then descends into its child directories in name order).
  const alloc = new MetaAllocator();
  const P = new Placements(tree.inodeCount);
  const placementOf = new Int32Array(tree.inodeCount).fill(-1);
  const lists = tree.childLists();
  let index = 1;
  let hasXattr = false;

  const newPlacement = (inode: number, ino: number, parentInode: number): number => {
    const p = P.count++;
    P.inode[p] = inode;
    P.ino[p] = ino;
    P.layout[p] = DataLayout.FLAT_PLAIN;
    let isz = EXTENDED_INODE_SIZE;
    const xattrs = tree.xattrs.get(inode);
    if (xattrs !== undefined && xattrs.size > 0) {
      const { bytes, icount } = encodeXattrs(xattrs);
      if (icount > 0) hasXattr = true;
      P.xattrCount[p] = icount;
      if (bytes.length > 0) P.xattrBytes.set(p, bytes);
      isz += bytes.length;
    }
    P.isz[p] = isz;
    P.blocksOff[p] = -1;
    P.nlink[p] = 1;
    P.parentInode[p] = parentInode;
    placementOf[inode] = p;
    return p;
  };

  /** Tail rule for directories and symlinks (spec §1.10). */
  const placeFlat = (p: number): void => {
    const dataSize = P.dataSize[p]!;
    const isz = P.isz[p]!;
    const tail = dataSize % BS;
    if (tail !== 0 && isz + tail <= BS) {
      P.layout[p] = DataLayout.FLAT_INLINE;
      P.off[p] = alloc.takeFree(isz + tail) ?? alloc.append(isz + tail);
      if (dataSize > tail) P.blocksOff[p] = alloc.appendBlocks(dataSize - tail);
    } else {
      P.layout[p] = DataLayout.FLAT_PLAIN;
      P.off[p] = alloc.takeFree(isz) ?? alloc.append(isz);
      if (dataSize > 0) {
        P.blocksOff[p] = alloc.appendBlocks(dataSize);
        alloc.jumpToNextBlock();
      }
    }
    alloc.align32();
  };

  const rootPlacement = newPlacement(rootInode, index, rootInode);
  const stack: number[] = [tree.root];
  while (stack.length > 0) {
    const dirNode = stack.pop()!;
    const dirInode = tree.nodeInode[dirNode]!;
    const dp = placementOf[dirInode]!;
    const children = tree.sortedChildren(lists, dirNode);

    // On-disk entry order: the children with `.` and `..` sorted in; i_size from the name
    // lengths, block by block (spec §1.9).
    P.dirStart[dp] = P.entriesUsed;
    let blocks = 0;
    let used = 0;
    const addName = (len: number): void => {
      const need = DIRENT_SIZE + len;
      if (used + need > BS) {
        blocks++;
        used = 0;
      }
      used += need;
    };
    let dots = 0;
    for (const { key, node } of children) {
      if (dots === 0 && key > '.') {
        P.pushEntry(DOT);
        addName(1);
        dots = 1;
      }
      if (dots === 1 && key > '..') {
        P.pushEntry(DOTDOT);
        addName(2);
        dots = 2;
      }
      P.pushEntry(node);
      addName(key.length);
    }
    if (dots === 0) {
      P.pushEntry(DOT);
      addName(1);
    }
    if (dots <= 1) {
      P.pushEntry(DOTDOT);
      addName(2);
    }
    P.dirLen[dp] = P.entriesUsed - P.dirStart[dp]!;
    P.dataSize[dp] = blocks * BS + used;
    placeFlat(dp);

    const childDirs: number[] = [];
    for (const { node: child } of children) {
      index++;
      const inode = tree.nodeInode[child]!;
      const kind = tree.kind[inode]!;
      if (kind === K_DIR) {
        if (placementOf[inode]! >= 0) throw new NydusError('INTERNAL', 'a directory inode appears under two names');
        newPlacement(inode, index, dirInode);
        childDirs.push(child);
        continue;
      }
      const seen = placementOf[inode]!;
      if (seen >= 0) {
        if (kind !== K_FILE) throw new NydusError('INTERNAL', `only regular files can be hardlinked (kind ${kind})`);
        P.nlink[seen]!++;
        continue;
      }
      const p = newPlacement(inode, index, -1);
      switch (kind) {
        case K_FILE: {
          P.layout[p] = DataLayout.CHUNK_BASED;
          const size = tree.size[inode]!;
          P.dataSize[p] = size;
          const count = tree.chunkCount[inode]!;
          const expected = Math.ceil(size / settings.chunkSize);
          if (count !== expected) throw new NydusError('INTERNAL', `file of ${size} bytes has ${count} chunks, expected ${expected}`);
          const isz = P.isz[p]!;
          const total = alignUp(isz, 8) + CHUNK_ADDRESS_SIZE * count;
          P.off[p] = alloc.takeFree(total) ?? placeAppendInode(alloc, isz, total);
          alloc.align32();
          break;
        }
        case K_SYMLINK:
          P.dataSize[p] = tree.size[inode]!;
          placeFlat(p);
          break;
        default:
          P.layout[p] = DataLayout.FLAT_PLAIN;
          P.off[p] = alloc.append(P.isz[p]!);
          alloc.align32();
      }
    }
    P.nlink[dp] = 2 + childDirs.length;
    for (let i = childDirs.length - 1; i >= 0; i--) stack.push(childDirs[i]!);
  }
  if (P.off[rootPlacement] !== BS) throw new NydusError('INTERNAL', `root inode placed at ${P.off[rootPlacement]}`);
  const inodeCount = index;
  const metaSize = alignUp(alloc.off, BS);
  const nidOfInode = (inode: number): number => P.off[placementOf[inode]!]! / 32;

  // ---- Chunk table, prefetch table, fixed tables.
  const referenced: TreeBlob[] | null = given === undefined ? [] : null;
  const table = collectChunks(tree, P, tableIndex, referenced);
  const blobs = given ?? referenced!;
  checkBlobCount(blobs.length);
  const prefetch = blobs.length > 0 ? resolvePrefetch(tree, nidOfInode, settings.prefetchPatterns ?? []) : [];
  const chunkCount = table.order.length;

  const n = blobs.length;
  const blobTableOffset = alignUp(DEVICE_TABLE_OFFSET + DEVICE_SLOT_SIZE * n, BS);
  const prefetchOffset = blobTableOffset + BLOB_ENTRY_SIZE * n;
  const metaBase = n > 0 ? alignUp(prefetchOffset + 4 * prefetch.length, BS) : 0;
  const chunkTableOffset = metaBase + metaSize;
  const total = alignUp(chunkTableOffset + CHUNK_INFO_SIZE * chunkCount, BS);
  // Everything before the first inode (meta offsets start at one block): superblocks, device
  // slots, blob table, prefetch table.
  const head = new Uint8Array(metaBase + BS);
  const headView = new DataView(head.buffer);

  let flags = superFlagForCompression(settings.compressor) | superFlagForDigest(settings.digester) | RafsSuperFlags.ENCRYPTION_NONE;
  if (settings.explicitUidGid) flags |= RafsSuperFlags.EXPLICIT_UID_GID;
  if (hasXattr) flags |= RafsSuperFlags.HAS_XATTR;
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
      inodeCount,
      buildTime: 0,
      buildTimeNsec: 0,
      blocks: totalBlocks,
      metaBlkaddr: metaBase / BS,
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
      blobTableOffset,
      blobTableSize: BLOB_ENTRY_SIZE * n,
      chunkSize: settings.chunkSize,
      chunkTableOffset,
      chunkTableSize: CHUNK_INFO_SIZE * chunkCount,
      prefetchTableOffset: prefetch.length > 0 ? prefetchOffset : 0,
      prefetchTableSize: 4 * prefetch.length,
    }),
    RAFS_EXT_SUPER_OFFSET,
  );
  // Device slots: blobs mapped after the bootstrap, each start on a 512 KiB boundary.
  let mapped = total / BS;
  blobs.forEach((b, i) => {
    mapped = alignUp(mapped, MAPPED_BLKADDR_ALIGN_BLOCKS);
    const blocks = b.uncompressedSize / BS;
    head.set(encodeDeviceSlot({ blobId: b.blobId, blocks, mappedBlkaddr: mapped }), DEVICE_TABLE_OFFSET + DEVICE_SLOT_SIZE * i);
    mapped += blocks;
    head.set(encodeBlobEntry({ ...b, blobIndex: i }), blobTableOffset + BLOB_ENTRY_SIZE * i);
  });
  prefetch.forEach((nid, i) => headView.setUint32(prefetchOffset + 4 * i, nid, true));

  return new BootstrapPlan(tree, { ...settings, blobs }, P, tableIndex, table, head, metaBase, chunkTableOffset, total, nidOfInode);
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

  constructor(
    private readonly tree: FsTree,
    private readonly settings: BootstrapSettings,
    private readonly P: Placements,
    private readonly tableIndex: readonly Int16Array[],
    private readonly table: ChunkTable,
    private readonly head: Uint8Array,
    private readonly metaBase: number,
    private readonly chunkTableOffset: number,
    /** Size of the bootstrap in bytes. */
    readonly total: number,
    nidOfInode: (inode: number) => number,
  ) {
    this.dirs = new DirentEncoder(tree, P, nidOfInode);
    this.chunkFormat = CHUNK_FORMAT_INDEXES | (Math.log2(settings.chunkSize) - EROFS_BLOCK_BITS);
  }

  /** The blob table. */
  get blobs(): readonly TreeBlob[] {
    return this.settings.blobs;
  }

  /** Writes bootstrap bytes [from, from + out.length) into `out`, which must be zero-filled. */
  render(out: Uint8Array, from: number): void {
    const to = from + out.length;
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    // Word views when the host is little-endian and `out` word-aligned (fewer, cheaper stores).
    const words = LE && (out.byteOffset & 3) === 0 && (out.length & 3) === 0 && (from & 3) === 0;
    const w32 = words ? new Uint32Array(out.buffer, out.byteOffset, out.length >>> 2) : null;
    const w16 = words ? new Uint16Array(out.buffer, out.byteOffset, out.length >>> 1) : null;
    if (from < this.head.length) put(out, from, this.head, 0);
    if (to > this.metaBase + BS && from < this.chunkTableOffset) this.renderInodes(out, view, w32, w16, from, to);
    if (to > this.chunkTableOffset) this.renderChunkTable(out, view, w32, from, to);
  }

  private renderInodes(out: Uint8Array, view: DataView, w32: Uint32Array | null, w16: Uint16Array | null, from: number, to: number): void {
    const { tree, P, metaBase, settings } = this;
    const stores = tree.stores;
    const refs = tree.chunkRefs;
    const sv = this.scratchView;
    const header = this.scratch.subarray(0, EXTENDED_INODE_SIZE);
    for (let p = 0; p < P.count; p++) {
      const inode = P.inode[p]!;
      const kind = tree.kind[inode]!;
      const abs = metaBase + P.off[p]!;
      const isz = P.isz[p]!;
      const layout = P.layout[p]!;
      const dataSize = P.dataSize[p]!;
      const blocksAt = P.blocksOff[p]! < 0 ? -1 : metaBase + P.blocksOff[p]!;
      // Bytes this placement writes: [abs, inodeEnd) and, for FLAT_* data, [blocksAt, +full).
      let inodeEnd = abs + isz;
      let full = 0;
      if (kind === K_FILE) inodeEnd = alignUp(abs + isz, 8) + CHUNK_ADDRESS_SIZE * tree.chunkCount[inode]!;
      else if (kind === K_DIR || kind === K_SYMLINK) {
        full = layout === DataLayout.FLAT_INLINE ? dataSize - (dataSize % BS) : dataSize;
        if (layout === DataLayout.FLAT_INLINE) inodeEnd += dataSize - full;
      }
      const inodeHit = abs < to && inodeEnd > from;
      const blocksHit = full > 0 && blocksAt < to && blocksAt + full > from;
      if (!inodeHit && !blocksHit) continue;

      let u = 0;
      let body: Uint8Array | null = null;
      switch (kind) {
        case K_FILE:
          u = this.chunkFormat;
          break;
        case K_DIR:
          body = this.dirs.encode(p);
          break;
        case K_SYMLINK:
          body = tree.linkTarget(inode);
          break;
        case K_CHR:
        case K_BLK:
          u = tree.data[inode]!;
          break;
        default:
          break;
      }
      if (body !== null) {
        if (full > 0) {
          if (blocksHit) put(out, from, body.subarray(0, full), blocksAt);
          u = blocksAt / BS;
        }
        if (layout === DataLayout.FLAT_INLINE && full < body.length && inodeHit) put(out, from, body.subarray(full), abs + isz);
      }
      if (!inodeHit) continue;
      // Extended inode (spec §1.4): format, xattr count, mode, size, u, ino, uid, gid, mtime,
      // mtime_nsec, nlink (same bytes as layout's encodeInode).
      if (w32 !== null && w16 !== null && abs >= from && abs + EXTENDED_INODE_SIZE <= to) {
        const q = (abs - from) >>> 2; // abs is 32-aligned
        const mtime = tree.mtime[inode]!;
        if (!Number.isSafeInteger(dataSize) || !Number.isSafeInteger(mtime) || mtime < 0) throw new RangeError(`inode ${inode}: size ${dataSize} or mtime ${mtime} is not a u64`);
        w16[2 * q] = InodeVersion.EXTENDED | (layout << 1);
        w16[2 * q + 1] = P.xattrCount[p]!;
        w16[2 * q + 2] = tree.mode[inode]!;
        w32[q + 2] = dataSize;
        w32[q + 3] = dataSize / 0x1_0000_0000;
        w32[q + 4] = u;
        w32[q + 5] = P.ino[p]!;
        w32[q + 6] = settings.explicitUidGid ? tree.uid[inode]! : 0;
        w32[q + 7] = settings.explicitUidGid ? tree.gid[inode]! : 0;
        w32[q + 8] = mtime;
        w32[q + 9] = mtime / 0x1_0000_0000;
        w32[q + 10] = tree.mtimeNsec[inode]!;
        w32[q + 11] = P.nlink[p]!;
      } else {
        this.headerSlow(header, sv, p, inode, layout, u, dataSize);
        put(out, from, header, abs);
      }
      if (P.xattrCount[p] !== 0) put(out, from, P.xattrBytes.get(p)!, abs + EXTENDED_INODE_SIZE);
      if (kind === K_FILE) {
        // Chunk addresses (spec §1.7): ci index low 16 bits, device = blob index + 1, ci index
        // high 8 bits, blkaddr of the uncompressed data. 8-byte aligned: never cut by a
        // (block-aligned) range boundary.
        let at = alignUp(abs + isz, 8);
        const first = tree.data[inode]!;
        const end = first + tree.chunkCount[inode]!;
        for (let k = first; k < end; k++, at += CHUNK_ADDRESS_SIZE) {
          if (at < from || at >= to) continue;
          const ref = refs[k]!;
          const s = ref >= SECOND_STORE ? 1 : 0;
          const i = s === 1 ? ref - SECOND_STORE : ref;
          const store = stores[s]!;
          const ci = store.ciIndexOf(i);
          const rel = at - from;
          const blkaddr = store.uncompressedOffsetOf(i) / BS;
          if (w32 !== null && w16 !== null) {
            w16[rel >>> 1] = ci;
            w32[(rel >>> 2) + 1] = blkaddr;
          } else {
            view.setUint16(rel, ci & 0xffff, true);
            view.setUint32(rel + 4, blkaddr, true);
          }
          out[rel + 2] = this.tableIndex[s]![store.blobIndexOf(i)]! + 1;
          out[rel + 3] = (ci >>> 16) & 0xff;
        }
      }
    }
  }

  /** The extended inode header of placement `p` into `header` through a DataView. */
  private headerSlow(header: Uint8Array, sv: DataView, p: number, inode: number, layout: number, u: number, dataSize: number): void {
    const { tree, P, settings } = this;
    {
      header.fill(0);
      sv.setUint16(0, InodeVersion.EXTENDED | (layout << 1), true);
      sv.setUint16(2, P.xattrCount[p]!, true);
      sv.setUint16(4, tree.mode[inode]!, true);
      setU64(sv, 8, dataSize);
      sv.setUint32(16, u, true);
      sv.setUint32(20, P.ino[p]!, true);
      sv.setUint32(24, settings.explicitUidGid ? tree.uid[inode]! : 0, true);
      sv.setUint32(28, settings.explicitUidGid ? tree.gid[inode]! : 0, true);
      setU64(sv, 32, tree.mtime[inode]!);
      sv.setUint32(40, tree.mtimeNsec[inode]!, true);
      sv.setUint32(44, P.nlink[p]!, true);
    }
  }

  private renderChunkTable(out: Uint8Array, view: DataView, w32: Uint32Array | null, from: number, to: number): void {
    const { tree, table } = this;
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
        else writeChunkInfo(store, j, table.blobOf[i]!, out, view, at - from);
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
    private readonly nidOfInode: (inode: number) => number,
  ) {}

  /** The directory data of placement `p` (valid until the next call). */
  encode(p: number): Uint8Array {
    const { tree, P } = this;
    const size = P.dataSize[p]!;
    if (this.buf.length < size) {
      this.buf = new Uint8Array(alignUp(size, BS));
      this.view = new DataView(this.buf.buffer);
      this.w32 = new Uint32Array(this.buf.buffer);
      this.w16 = new Uint16Array(this.buf.buffer);
    } else {
      this.buf.fill(0, 0, size);
    }
    const buf = this.buf;
    const view = this.view;
    const selfNid = P.off[p]! / 32;
    const parentNid = this.nidOfInode(P.parentInode[p]!);
    const entries = P.entries;
    const start = P.dirStart[p]!;
    const end = start + P.dirLen[p]!;
    const nameLen = (v: number): number => (v === DOT ? 1 : v === DOTDOT ? 2 : tree.nameLength(v));
    let base = 0;
    let used = 0;
    for (let k = start; k < end; ) {
      // Entries k..e-1 fill this block.
      let e = k;
      used = 0;
      while (e < end) {
        const need = DIRENT_SIZE + nameLen(entries[e]!);
        if (used + need > BS) break;
        used += need;
        e++;
      }
      if (e === k) throw new NydusError('INTERNAL', 'directory entry larger than a block');
      let nameoff = (e - k) * DIRENT_SIZE;
      for (let j = k; j < e; j++) {
        const v = entries[j]!;
        const off = base + (j - k) * DIRENT_SIZE;
        let nid: number;
        let fileType: number;
        let len: number;
        if (v === DOT || v === DOTDOT) {
          nid = v === DOT ? selfNid : parentNid;
          fileType = FileType.DIR;
          buf[base + nameoff] = 0x2e;
          if (v === DOTDOT) buf[base + nameoff + 1] = 0x2e;
          len = v === DOT ? 1 : 2;
        } else {
          const inode = tree.nodeInode[v]!;
          nid = this.nidOfInode(inode);
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
          setU64(view, off, nid);
          view.setUint16(off + 8, nameoff, true);
        }
        buf[off + 10] = fileType;
        nameoff += len;
      }
      k = e;
      if (k < end) base += BS;
    }
    if (base + used !== size) throw new NydusError('INTERNAL', `directory size ${base + used} != planned ${size}`);
    return buf.subarray(0, size);
  }
}

function setU64(view: DataView, off: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 field value ${v} is not a non-negative safe integer`);
  view.setUint32(off, v % 0x1_0000_0000, true);
  view.setUint32(off + 4, Math.floor(v / 0x1_0000_0000), true);
}

/** `encodeChunkInfo` (spec §1.8) straight from the store's columns, at `off` of `out`. */
function writeChunkInfo(store: ChunkStore, i: number, blobIndex: number, out: Uint8Array, view: DataView, off: number): void {
  out.set(store.digests.subarray(i * 32, i * 32 + 32), off);
  view.setUint32(off + 32, blobIndex, true);
  view.setUint32(off + 36, store.flagsOf(i), true);
  view.setUint32(off + 40, store.compressedSizeOf(i), true);
  view.setUint32(off + 44, store.uncompressedSizeOf(i), true);
  setU64(view, off + 48, store.compressedOffsetOf(i));
  setU64(view, off + 56, store.uncompressedOffsetOf(i));
  setU64(view, off + 64, store.fileOffsetOf(i));
  view.setUint32(off + 72, store.ciIndexOf(i), true);
  view.setUint32(off + 76, store.crc32Of(i), true);
}

/** Appends a regular file's inode + chunk-address array, keeping inode + xattrs inside a block. */
function placeAppendInode(alloc: MetaAllocator, isz: number, total: number): number {
  if (isz <= BS && (alloc.off % BS) + isz > BS) alloc.jumpToNextBlock();
  const at = alloc.off;
  alloc.off += total;
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
 * chunk are dropped by a bit per chunk; the rest are sorted as indexes (a 48-bit numeric digest
 * prefix decides almost every comparison), ties broken by first-seen order, and equal keys
 * collapse.
 */
function collectChunks(tree: FsTree, P: Placements, tableIndex: readonly Int16Array[], referenced: TreeBlob[] | null): ChunkTable {
  const stores = tree.stores;
  const seen = stores.map((s) => new Uint8Array((s.count + 7) >>> 3));
  let refs = new Uint32Array(1024);
  let count = 0;
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
      const store = stores[s]!;
      if (tableIndex[s]![store.blobIndexOf(i)]! < 0) numberBlob(store, i, tableIndex[s]!, referenced);
      if (count === refs.length) refs = grow(refs, count + 1);
      refs[count++] = ref;
    }
  }
  const prefix = new Float64Array(count);
  const blobOf = new Uint8Array(count); // at most MAX_BLOBS (254) blobs
  const digestsOf: Buffer[] = new Array<Buffer>(count);
  const digestAt = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const ref = refs[i]!;
    const s = ref >= SECOND_STORE ? 1 : 0;
    const j = s === 1 ? ref - SECOND_STORE : ref;
    const store = stores[s]!;
    digestsOf[i] = store.digests;
    digestAt[i] = j * 32;
    prefix[i] = store.digests.readUIntBE(j * 32, 6);
    blobOf[i] = tableIndex[s]![store.blobIndexOf(j)]!;
  }
  const sameKey = (a: number, b: number): number =>
    prefix[a]! - prefix[b]! || digestsOf[a]!.compare(digestsOf[b]!, digestAt[b]! + 6, digestAt[b]! + 32, digestAt[a]! + 6, digestAt[a]! + 32) || blobOf[a]! - blobOf[b]!;
  const idx = new Uint32Array(count);
  for (let i = 0; i < count; i++) idx[i] = i;
  idx.sort((a, b) => sameKey(a, b) || a - b);
  let n = 0;
  for (let k = 0; k < count; k++) {
    const i = idx[k]!;
    if (n > 0 && sameKey(idx[n - 1]!, i) === 0) continue;
    idx[n++] = i;
  }
  return { refs: refs.subarray(0, count), order: idx.subarray(0, n), blobOf };
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
function resolvePrefetch(tree: FsTree, nidOfInode: (inode: number) => number, patterns: readonly string[]): number[] {
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
    nids.push(nidOfInode(tree.nodeInode[node]!));
  }
  return nids;
}
