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
  encodeChunkAddress,
  encodeDeviceSlot,
  encodeDirentBlocks,
  encodeErofsSuperblock,
  encodeRafsExtSuperblock,
  encodeXattrs,
  planDirentBlocks,
  superFlagForCompression,
  superFlagForDigest,
  type CompressionName,
  type DataLayoutValue,
  type Dirent,
  type DigestName,
} from '../layout/index.js';
import { StoredChunk, type ChunkStore, nameKey, sortedChildren, type NodeKind, type TreeBlob, type TreeChunk, type TreeInode, type TreeNode } from './tree.js';

/** Filesystem-wide settings of a bootstrap. */
export interface BootstrapSettings {
  chunkSize: number;
  /** Compressor flag of the superblock (the blobs carry their own). */
  compressor: CompressionName;
  digester: DigestName;
  /** EXPLICIT_UID_GID: inode uid/gid are meaningful (otherwise written as 0). */
  explicitUidGid: boolean;
  /** Blob table in order; every chunk of the tree must reference one of these objects. */
  blobs: readonly TreeBlob[];
  /** Absolute paths whose nids go into the prefetch table (`/` = the root = prefetch all). */
  prefetchPatterns?: readonly string[];
}

const BS = EROFS_BLOCK_SIZE;
const FILE_TYPE: Record<NodeKind, number> = {
  file: FileType.REG,
  directory: FileType.DIR,
  symlink: FileType.SYMLINK,
  'char-device': FileType.CHRDEV,
  'block-device': FileType.BLKDEV,
  fifo: FileType.FIFO,
  socket: FileType.SOCK,
};

const DOT = Buffer.from('.', 'latin1');
const DOTDOT = Buffer.from('..', 'latin1');
const NO_XATTR_BYTES = { bytes: new Uint8Array(0), icount: 0 };

/** Where one inode lives and how its data is laid out (offsets relative to the meta base). */
interface Placement {
  inode: TreeInode;
  ino: number;
  /** Offset of the inode; nid = off / 32. */
  off: number;
  layout: DataLayoutValue;
  xattrBytes: Uint8Array;
  xattrCount: number;
  /** Inode + xattr bytes. */
  isz: number;
  /** i_size: file length, dirent bytes or symlink target length. */
  dataSize: number;
  /** Offset of the first full data block (FLAT_*), -1 when there is none. */
  blocksOff: number;
  nlink: number;
  /** Directories: the directory node and its parent's inode (for `..`). */
  dir: TreeNode | null;
  parent: TreeInode | null;
}

/**
 * Free-space index of the reference allocator (spec §1.10): partially used blocks by their
 * free byte count in 32-byte units, FIFO per size class.
 */
class MetaAllocator {
  /** Next free byte of the append cursor (relative to the meta base). */
  off = BS;
  private readonly free: number[][] = Array.from({ length: BS / 32 }, () => []);
  private readonly heads = new Int32Array(BS / 32);

  /** Records the rest of the block containing `p` as free (nothing if `p` is aligned). */
  recordRemainder(p: number): void {
    const used = p % BS;
    if (used === 0) return;
    const units = Math.floor((BS - used) / 32);
    if (units > 0) this.free[units]!.push(p - used);
  }

  /** Takes `size` (< one block) bytes from a partially used block, or undefined. */
  takeFree(size: number): number | undefined {
    if (size >= BS) return undefined;
    const need = Math.ceil(size / 32);
    for (let d = Math.max(need, 1); d < this.free.length; d++) {
      const list = this.free[d]!;
      const head = this.heads[d]!;
      if (head < list.length) {
        const blockStart = list[head]!;
        this.heads[d] = head + 1;
        const addr = blockStart + BS - 32 * d;
        this.recordRemainder(addr + 32 * need);
        return addr;
      }
    }
    return undefined;
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

/** i_size of a directory with entries of these name lengths (`.`/`..` included), spec §1.9. */
function direntSize(nameLengths: Iterable<number>): number {
  let blocks = 0;
  let used = 0;
  let any = false;
  for (const len of nameLengths) {
    const need = DIRENT_SIZE + len;
    if (used + need > BS) {
      blocks++;
      used = 0;
    }
    used += need;
    any = true;
  }
  return any ? blocks * BS + used : 0;
}

/** Lengths of a directory's entry names in on-disk (byte-wise sorted) order, `.`/`..` included. */
function dirNameLengths(dir: TreeNode): number[] {
  const names = [...dir.children!.keys(), '.', '..'].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return names.map((n) => n.length);
}

/**
 * Serialises a tree as a RAFS v6 bootstrap (spec §1.1–§1.13). Layout follows the reference
 * allocator (§1.10) with one tightening: an inode with its xattrs (and inline tail) never
 * straddles a block boundary when it fits in one. Output depends only on the input.
 */
export function writeBootstrap(root: TreeNode, settings: BootstrapSettings): Uint8Array {
  if (root.children === null || root.inode.kind !== 'directory') throw new NydusError('INTERNAL', 'bootstrap root must be a directory');
  const blobs = settings.blobs;
  if (blobs.length > MAX_BLOBS) throw new InvalidArgumentError(`a bootstrap can reference at most ${MAX_BLOBS} blobs, got ${blobs.length}`);
  const blobIndex = new Map<TreeBlob, number>();
  blobs.forEach((b, i) => blobIndex.set(b, i));
  const chunkFormat = CHUNK_FORMAT_INDEXES | (Math.log2(settings.chunkSize) - EROFS_BLOCK_BITS);

  // ---- Pass 1: numbering and placement (reference order: a directory numbers all its
  // children, then descends into its child directories in name order).
  const alloc = new MetaAllocator();
  const placements = new Map<TreeInode, Placement>();
  const order: Placement[] = [];
  let index = 1;
  let hasXattr = false;

  const newPlacement = (node: TreeNode, ino: number, parent: TreeInode | null): Placement => {
    const inode = node.inode;
    const { bytes, icount } = inode.xattrs.size > 0 ? encodeXattrs(inode.xattrs) : NO_XATTR_BYTES;
    if (icount > 0) hasXattr = true;
    const p: Placement = {
      inode,
      ino,
      off: 0,
      layout: DataLayout.FLAT_PLAIN,
      xattrBytes: bytes,
      xattrCount: icount,
      isz: EXTENDED_INODE_SIZE + bytes.length,
      dataSize: 0,
      blocksOff: -1,
      nlink: 1,
      dir: inode.kind === 'directory' ? node : null,
      parent,
    };
    placements.set(inode, p);
    order.push(p);
    return p;
  };

  /** Tail rule for directories and symlinks (spec §1.10). */
  const placeFlat = (p: Placement): void => {
    const tail = p.dataSize % BS;
    if (tail !== 0 && p.isz + tail <= BS) {
      p.layout = DataLayout.FLAT_INLINE;
      p.off = alloc.takeFree(p.isz + tail) ?? alloc.append(p.isz + tail);
      if (p.dataSize > tail) p.blocksOff = alloc.appendBlocks(p.dataSize - tail);
    } else {
      p.layout = DataLayout.FLAT_PLAIN;
      p.off = alloc.takeFree(p.isz) ?? alloc.append(p.isz);
      if (p.dataSize > 0) {
        p.blocksOff = alloc.appendBlocks(p.dataSize);
        alloc.jumpToNextBlock();
      }
    }
    alloc.align32();
  };

  const rootPlacement = newPlacement(root, index, root.inode);
  const stack: TreeNode[] = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const dp = placements.get(dir.inode)!;
    dp.dataSize = direntSize(dirNameLengths(dir));
    placeFlat(dp);
    const children = sortedChildren(dir);
    const childDirs: TreeNode[] = [];
    for (const child of children) {
      index++;
      const inode = child.inode;
      if (inode.kind === 'directory') {
        if (placements.has(inode)) throw new NydusError('INTERNAL', 'a directory inode appears under two names');
        newPlacement(child, index, dir.inode);
        childDirs.push(child);
        continue;
      }
      const seen = placements.get(inode);
      if (seen !== undefined) {
        if (inode.kind !== 'file') throw new NydusError('INTERNAL', `only regular files can be hardlinked (${inode.kind})`);
        seen.nlink++;
        continue;
      }
      const p = newPlacement(child, index, null);
      switch (inode.kind) {
        case 'file': {
          p.layout = DataLayout.CHUNK_BASED;
          p.dataSize = inode.size;
          const expected = Math.ceil(inode.size / settings.chunkSize);
          if (inode.chunks.length !== expected) {
            throw new NydusError('INTERNAL', `file of ${inode.size} bytes has ${inode.chunks.length} chunks, expected ${expected}`);
          }
          const total = alignUp(p.isz, 8) + CHUNK_ADDRESS_SIZE * inode.chunks.length;
          p.off = alloc.takeFree(total) ?? placeAppendInode(alloc, p.isz, total);
          alloc.align32();
          break;
        }
        case 'symlink':
          p.dataSize = inode.linkTarget?.length ?? 0;
          placeFlat(p);
          break;
        default:
          p.layout = DataLayout.FLAT_PLAIN;
          p.off = alloc.append(p.isz);
          alloc.align32();
      }
    }
    dp.nlink = 2 + childDirs.length;
    for (let i = childDirs.length - 1; i >= 0; i--) stack.push(childDirs[i]!);
  }
  if (rootPlacement.off !== BS) throw new NydusError('INTERNAL', `root inode placed at ${rootPlacement.off}`);
  const inodeCount = index;
  const metaSize = alignUp(alloc.off, BS);

  // ---- Prefetch table, chunk table, fixed tables.
  const prefetch = blobs.length > 0 ? resolvePrefetch(root, placements, settings.prefetchPatterns ?? []) : [];
  const { chunks, blobIndexes: chunkBlobIndexes, digests: chunkDigests, digestIndex: chunkDigestIndex } = collectChunks(order, blobIndex);

  const n = blobs.length;
  const blobTableOffset = alignUp(DEVICE_TABLE_OFFSET + DEVICE_SLOT_SIZE * n, BS);
  const prefetchOffset = blobTableOffset + BLOB_ENTRY_SIZE * n;
  const metaBase = n > 0 ? alignUp(prefetchOffset + 4 * prefetch.length, BS) : 0;
  const chunkTableOffset = metaBase + metaSize;
  const total = alignUp(chunkTableOffset + CHUNK_INFO_SIZE * chunks.length, BS);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);

  let flags = superFlagForCompression(settings.compressor) | superFlagForDigest(settings.digester) | RafsSuperFlags.ENCRYPTION_NONE;
  if (settings.explicitUidGid) flags |= RafsSuperFlags.EXPLICIT_UID_GID;
  if (hasXattr) flags |= RafsSuperFlags.HAS_XATTR;
  if (n > 0 && blobs.every((b) => (b.features & BlobFeatures.INLINED_CHUNK_DIGEST) !== 0)) flags |= RafsSuperFlags.INLINED_CHUNK_DIGEST;

  let totalBlocks = 0;
  for (const b of blobs) {
    if (b.uncompressedSize % BS !== 0) throw new NydusError('INTERNAL', `blob ${b.blobId} uncompressed size ${b.uncompressedSize} is not block aligned`);
    totalBlocks += b.uncompressedSize / BS;
  }
  out.set(
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
  out.set(
    encodeRafsExtSuperblock({
      flags,
      blobTableOffset,
      blobTableSize: BLOB_ENTRY_SIZE * n,
      chunkSize: settings.chunkSize,
      chunkTableOffset,
      chunkTableSize: CHUNK_INFO_SIZE * chunks.length,
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
    out.set(encodeDeviceSlot({ blobId: b.blobId, blocks, mappedBlkaddr: mapped }), DEVICE_TABLE_OFFSET + DEVICE_SLOT_SIZE * i);
    mapped += blocks;
    out.set(encodeBlobEntry({ ...b, blobIndex: i }), blobTableOffset + BLOB_ENTRY_SIZE * i);
  });
  prefetch.forEach((nid, i) => view.setUint32(prefetchOffset + 4 * i, nid, true));

  // ---- Pass 2: inodes and their data.
  const nidOf = (inode: TreeInode): number => placements.get(inode)!.off / 32;
  for (const p of order) {
    const inode = p.inode;
    const abs = metaBase + p.off;
    let u = 0;
    let tail: Uint8Array | null = null;
    let body: Uint8Array | null = null;
    switch (inode.kind) {
      case 'file':
        u = chunkFormat;
        break;
      case 'directory': {
        const dir = p.dir!;
        // Sorted by the latin1 name keys: string order is byte order (one char per byte).
        const entries: Array<Dirent & { key: string }> = [
          { key: '.', name: DOT, nid: nidOf(inode), fileType: FileType.DIR },
          { key: '..', name: DOTDOT, nid: nidOf(p.parent!), fileType: FileType.DIR },
        ];
        for (const child of dir.children!.values()) {
          entries.push({ key: child.name, name: Buffer.from(child.name, 'latin1'), nid: nidOf(child.inode), fileType: FILE_TYPE[child.inode.kind] });
        }
        entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
        const plan = planDirentBlocks(entries, BS);
        if (plan.size !== p.dataSize) throw new NydusError('INTERNAL', `directory size ${plan.size} != planned ${p.dataSize}`);
        body = encodeDirentBlocks(plan.blocks, plan.size, BS);
        break;
      }
      case 'symlink':
        body = inode.linkTarget ?? new Uint8Array(0);
        break;
      case 'char-device':
      case 'block-device':
        u = inode.rdev;
        break;
      default:
        break;
    }
    if (body !== null) {
      const full = p.layout === DataLayout.FLAT_INLINE ? body.length - (body.length % BS) : body.length;
      if (full > 0) {
        out.set(body.subarray(0, full), metaBase + p.blocksOff);
        u = (metaBase + p.blocksOff) / BS;
      }
      if (p.layout === DataLayout.FLAT_INLINE) tail = body.subarray(full);
    }
    // Extended inode (spec §1.4), written in place: format, xattr count, mode, size, u, ino,
    // uid, gid, mtime, mtime_nsec, nlink (same bytes as layout's encodeInode).
    view.setUint16(abs, InodeVersion.EXTENDED | (p.layout << 1), true);
    view.setUint16(abs + 2, p.xattrCount, true);
    view.setUint16(abs + 4, inode.mode, true);
    setU64(view, abs + 8, p.dataSize);
    view.setUint32(abs + 16, u, true);
    view.setUint32(abs + 20, p.ino, true);
    view.setUint32(abs + 24, settings.explicitUidGid ? inode.uid : 0, true);
    view.setUint32(abs + 28, settings.explicitUidGid ? inode.gid : 0, true);
    setU64(view, abs + 32, inode.mtime);
    view.setUint32(abs + 40, inode.mtimeNsec, true);
    view.setUint32(abs + 44, p.nlink, true);
    if (p.xattrBytes.length > 0) out.set(p.xattrBytes, abs + EXTENDED_INODE_SIZE);
    if (tail !== null && tail.length > 0) out.set(tail, abs + p.isz);
    if (inode.kind === 'file') {
      let at = alignUp(abs + p.isz, 8);
      for (const c of inode.chunks) {
        encodeChunkAddress({ ciIndex: c.index, blobIndex: blobIndex.get(c.blob)!, blkaddr: c.uncompressedOffset / BS }, out, at);
        at += CHUNK_ADDRESS_SIZE;
      }
    }
  }

  const outBuf = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < chunks.length; i++) writeChunkInfo(chunks[i]!, chunkDigests, chunkDigestIndex[i]!, chunkBlobIndexes[i]!, outBuf, view, chunkTableOffset + CHUNK_INFO_SIZE * i);
  return out;
}

function setU64(view: DataView, off: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 field value ${v} is not a non-negative safe integer`);
  view.setUint32(off, v % 0x1_0000_0000, true);
  view.setUint32(off + 4, Math.floor(v / 0x1_0000_0000), true);
}

/** `encodeChunkInfo` (spec §1.8) without the intermediate object and digest Buffer. */
function writeChunkInfo(c: TreeChunk, digests: Buffer, i: number, blobIndex: number, out: Buffer, view: DataView, off: number): void {
  digests.copy(out, off, i * 32, i * 32 + 32);
  view.setUint32(off + 32, blobIndex, true);
  view.setUint32(off + 36, c.flags, true);
  view.setUint32(off + 40, c.compressedSize, true);
  view.setUint32(off + 44, c.uncompressedSize, true);
  setU64(view, off + 48, c.compressedOffset);
  setU64(view, off + 56, c.uncompressedOffset);
  setU64(view, off + 64, c.fileOffset);
  view.setUint32(off + 72, c.index, true);
  view.setUint32(off + 76, c.crc32, true);
}

/** Appends a regular file's inode + chunk-address array, keeping inode + xattrs inside a block. */
function placeAppendInode(alloc: MetaAllocator, isz: number, total: number): number {
  if (isz <= BS && (alloc.off % BS) + isz > BS) alloc.jumpToNextBlock();
  const at = alloc.off;
  alloc.off += total;
  return at;
}

/**
 * Chunk table: one entry per distinct (digest, blob index), sorted by digest then blob index;
 * among chunks with equal keys the first in placement order wins. Chunk refs shared by
 * several files are one object, so an identity set removes most repeats cheaply; the rest
 * are sorted as indexes over one buffer of raw digests (a 48-bit numeric prefix decides
 * almost every comparison), ties broken by first-seen order, and equal keys collapse.
 */
function collectChunks(order: readonly Placement[], blobIndex: ReadonlyMap<TreeBlob, number>): { chunks: TreeChunk[]; blobIndexes: Uint8Array; digests: Buffer; digestIndex: Uint32Array } {
  // Chunks of a ChunkStore are seen by a bit per store index (a Set of 200,000 refs costs
  // ~8 MB at the writer's peak); other refs by identity.
  const seen = new Set<TreeChunk>();
  const seenStored = new Map<ChunkStore, Uint8Array>();
  const refs: TreeChunk[] = [];
  for (const p of order) {
    if (p.inode.kind !== 'file') continue;
    for (const c of p.inode.chunks) {
      if (c instanceof StoredChunk) {
        let bits = seenStored.get(c.store);
        if (bits === undefined) seenStored.set(c.store, (bits = new Uint8Array((c.store.count + 7) >>> 3)));
        const bit = 1 << (c.index & 7);
        if ((bits[c.index >>> 3]! & bit) !== 0) continue;
        if (!blobIndex.has(c.blob)) throw new NydusError('INTERNAL', `chunk ${c.digest} references blob ${c.blob.blobId}, which is not in the blob table`);
        bits[c.index >>> 3]! |= bit;
      } else {
        if (seen.has(c)) continue;
        if (!blobIndex.has(c.blob)) throw new NydusError('INTERNAL', `chunk ${c.digest} references blob ${c.blob.blobId}, which is not in the blob table`);
        seen.add(c);
      }
      refs.push(c);
    }
  }
  seen.clear();
  seenStored.clear();
  const count = refs.length;
  const raw = Buffer.allocUnsafe(count * 32);
  const prefix = new Float64Array(count);
  const blobOf = new Uint8Array(count); // at most MAX_BLOBS (254) blobs
  for (let i = 0; i < count; i++) {
    const c = refs[i]!;
    if (c instanceof StoredChunk) c.store.digests.copy(raw, i * 32, c.index * 32, c.index * 32 + 32);
    else if (raw.write(c.digest, i * 32, 32, 'hex') !== 32) throw new NydusError('INTERNAL', `chunk digest ${c.digest} is not 32 bytes of hex`);
    prefix[i] = raw.readUIntBE(i * 32, 6);
    blobOf[i] = blobIndex.get(c.blob)!;
  }
  const sameKey = (a: number, b: number): number =>
    prefix[a]! - prefix[b]! || raw.compare(raw, b * 32 + 6, b * 32 + 32, a * 32 + 6, a * 32 + 32) || blobOf[a]! - blobOf[b]!;
  const idx = new Uint32Array(count);
  for (let i = 0; i < count; i++) idx[i] = i;
  idx.sort((a, b) => sameKey(a, b) || a - b);
  let n = 0;
  for (let k = 0; k < count; k++) {
    const i = idx[k]!;
    if (n > 0 && sameKey(idx[n - 1]!, i) === 0) continue;
    idx[n++] = i;
  }
  const chunks = new Array<TreeChunk>(n);
  const blobIndexes = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const i = idx[k]!;
    chunks[k] = refs[i]!;
    blobIndexes[k] = blobOf[i]!;
  }
  // Table entry k's digest is raw[digestIndex[k]] (no second, sorted copy of the digests).
  return { chunks, blobIndexes, digests: raw, digestIndex: idx.subarray(0, n) };
}

/**
 * Nids of the paths matching the prefetch patterns, in pattern order. A pattern equal to or
 * below an earlier matched one is dropped; patterns that match nothing are skipped.
 */
function resolvePrefetch(root: TreeNode, placements: ReadonlyMap<TreeInode, Placement>, patterns: readonly string[]): number[] {
  const taken: string[] = [];
  const nids: number[] = [];
  for (const pattern of patterns) {
    const parts = pattern.split('/').filter((c) => c !== '');
    const norm = '/' + parts.join('/');
    if (taken.some((t) => t === '/' || norm === t || norm.startsWith(t + '/'))) continue;
    let node: TreeNode | undefined = root;
    for (const part of parts) {
      node = node.children?.get(nameKey(part));
      if (node === undefined) break;
    }
    if (node === undefined) continue;
    taken.push(norm);
    nids.push(placements.get(node.inode)!.off / 32);
  }
  return nids;
}
