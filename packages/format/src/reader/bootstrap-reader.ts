import { FormatError, InvalidArgumentError, NydusError, throwIfAborted } from '@nydus-ts/core';
import { LeReader } from '../layout/bytes.js';
import type { BlobChunkInfo } from '../layout/blob-meta.js';
import { decodeBlobEntry, validateBlobEntry, type BlobEntry, decodeDeviceSlot, type DeviceSlot } from '../layout/blob-table.js';
import { decodeChunkAddress, type ChunkInfo } from '../layout/chunk.js';
import {
  BLOB_ENTRY_SIZE,
  CHUNK_ADDRESS_SIZE,
  CHUNK_FORMAT_INDEXES,
  CHUNK_INFO_SIZE,
  ChunkFlags,
  ChunkInfoV2Flags,
  DEVICE_SLOT_SIZE,
  DEVICE_TABLE_OFFSET,
  DataLayout,
  EROFS_BLOCK_SIZE,
  INODE_SLOT_SIZE,
  MAX_BLOBS,
  MAX_DIRECTORY_DEPTH,
  RafsSuperFlags,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  alignUp,
  compressionNameOf,
  decodeRdev,
  digestNameOf,
  fileTypeOfMode,
  type CompressionName,
  type DigestName,
} from '../layout/constants.js';
import { decodeDirentList, type DirentList } from '../layout/dirent.js';
import { decodeInodeAt, inodeSize, xattrAreaSize, type ErofsInode } from '../layout/inode.js';
import { decodeErofsSuperblock, decodeRafsExtSuperblock, validateErofsSuperblock, validateRafsExtSuperblock, type ErofsSuperblock, type RafsExtSuperblock } from '../layout/superblock.js';
import { decodeXattrs } from '../layout/xattr.js';
import { checkBlobMetaAgainstEntry, type BlobMeta } from './blob-meta.js';
import { readExact, type ByteSource } from './byte-source.js';
import { ChunkTableView } from './chunk-table.js';
import { decodeFsName, encodeFsName, printableFsName } from '../names.js';

/** Default cap on the bootstrap size: it is metadata and is held in memory whole. */
export const DEFAULT_MAX_BOOTSTRAP_SIZE = 1024 * 1024 * 1024;
/** Deepest directory nesting `walk()` follows: MAX_DIRECTORY_DEPTH, the limit the builder keeps. */
export const MAX_WALK_DEPTH = MAX_DIRECTORY_DEPTH;
/** Longest symlink target accepted (PATH_MAX − 1). */
export const MAX_SYMLINK_SIZE = 4095;

export type RafsInodeType = 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo' | 'socket';

/** An inode as the filesystem presents it. `nid` is the inode number nydusd exposes. */
export interface RafsInode {
  nid: number;
  type: RafsInodeType;
  /** Full st_mode (type and permission bits). */
  mode: number;
  uid: number;
  gid: number;
  /** File length, directory data length or symlink target length. */
  size: number;
  mtime: number;
  mtimeNsec: number;
  nlink: number;
  /** Character and block devices only. */
  rdev?: { major: number; minor: number };
  raw: ErofsInode;
}

export interface RafsDirent {
  /** `nameBytes` as a string, losslessly (`decodeFsName`: bytes that are not UTF-8 escaped). */
  name: string;
  nameBytes: Uint8Array;
  nid: number;
  /** Dirent file type (FileType): 0 unknown, 1 reg, 2 dir, 3 chr, 4 blk, 5 fifo, 6 sock, 7 symlink. */
  fileType: number;
}

export interface ReaddirOptions {
  /** Also return the `.` and `..` entries, in their on-disk (sorted) position. */
  includeDots?: boolean;
}

/** One data blob of the filesystem: its blob table entry, device slot and decoded algorithms. */
export interface BlobInfo {
  index: number;
  blobId: string;
  entry: BlobEntry;
  slot: DeviceSlot;
  compressor: CompressionName;
  digester: DigestName;
  /** BlobFeatures of the blob table entry. */
  features: number;
}

/** One chunk of a regular file, resolved to where its data lives. */
export interface ChunkRef {
  /** Offset of the chunk's first byte in the file. */
  fileOffset: number;
  blobIndex: number;
  blobId: string;
  /** Index of the chunk in its blob's CI array. */
  ciIndex: number;
  /** Hex digest of the uncompressed data (fs digester). */
  digest: string;
  compressedOffset: number;
  compressedSize: number;
  uncompressedOffset: number;
  uncompressedSize: number;
  compressed: boolean;
  /** Chunk table flags (ChunkFlags). */
  flags: number;
  /** CRC-32C of the uncompressed data when `flags & HAS_CRC32`, else 0. */
  crc32: number;
  /** Present when the blob's CI array is attached: the CI entry of this chunk. */
  ci?: BlobChunkInfo;
  /** ZRAN chunks (CI attached): context index and offset in the context's inflated output. */
  zranContextIndex?: number;
  zranOffset?: number;
  /** BATCH chunks (CI attached): batch index and offset in the batch buffer. */
  batchIndex?: number;
  batchOffset?: number;
}

/** The part of one chunk that a byte range of a file covers. */
export interface ChunkSlice {
  chunk: ChunkRef;
  /** Offset inside the chunk's uncompressed data. */
  chunkOffset: number;
  length: number;
  /** Offset in the file of the slice's first byte. */
  fileOffset: number;
}

export interface WalkEntry {
  /** Absolute path, `/` for the root; names decoded losslessly (`decodeFsName`, `encodeFsName`). */
  path: string;
  nid: number;
  parentNid: number;
  inode: RafsInode;
}

export interface BootstrapReaderOptions {
  /** Refuse bootstraps larger than this many bytes (default 1 GiB). */
  maxSize?: number;
  signal?: AbortSignal;
}

interface InodeRecord {
  inode: RafsInode;
  /** Absolute offset of the inode. */
  offset: number;
  /** Absolute offset just after inode + inline xattrs. */
  payloadOffset: number;
  xattrSize: number;
}

const TYPE_BY_FMT = new Map<number, RafsInodeType>([
  [S_IFREG, 'file'],
  [S_IFDIR, 'directory'],
  [S_IFLNK, 'symlink'],
  [S_IFCHR, 'char-device'],
  [S_IFBLK, 'block-device'],
  [S_IFIFO, 'fifo'],
  [S_IFSOCK, 'socket'],
]);

const COMPRESSION_FLAGS: ReadonlyArray<readonly [number, CompressionName]> = [
  [RafsSuperFlags.COMPRESSION_NONE, 'none'],
  [RafsSuperFlags.COMPRESSION_LZ4, 'lz4_block'],
  [RafsSuperFlags.COMPRESSION_GZIP, 'gzip'],
  [RafsSuperFlags.COMPRESSION_ZSTD, 'zstd'],
];

const SLASH = 0x2f;

/**
 * Reads a RAFS v6 bootstrap held in memory. `open` validates the superblocks and every table
 * (spec §1); the accessors validate each inode, directory and chunk array as they touch it.
 * Every format violation is a FormatError naming the structure; no accessor reads outside the
 * bootstrap, allocates more than the bootstrap's size or loops unboundedly on corrupt input.
 */
export class BootstrapReader {
  /** The whole bootstrap. */
  readonly bytes: Uint8Array;
  readonly superblock: ErofsSuperblock;
  readonly extSuperblock: RafsExtSuperblock;
  readonly blobs: readonly BlobInfo[];
  /** Prefetch table nids (up to the first 0). */
  readonly prefetchNids: readonly number[];
  readonly blockSize: number;
  readonly compressor: CompressionName;
  readonly digester: DigestName;

  private readonly metaBase: number;
  private readonly view: DataView;
  /**
   * `bytes` as a plain Uint8Array (not a Buffer subclass): the views the accessors return all
   * have one shape, which keeps the code reading them monomorphic.
   */
  private readonly plain: Uint8Array;
  /** The chunk table read in place (validated at open): per-entry fields without an object per entry. */
  readonly chunkEntries: ChunkTableView;
  private decodedChunkTable: ChunkInfo[] | undefined;
  private readonly inodes = new Map<number, InodeRecord>();
  private readonly dirents = new Map<number, DirentList>();
  private readonly blobMetas = new Map<number, BlobMeta>();

  private constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.plain = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const size = bytes.byteLength;
    if (size < EROFS_BLOCK_SIZE) {
      throw new FormatError('bootstrap', `file of ${size} bytes is smaller than one 4096-byte block`, { value: size });
    }
    const sb = decodeErofsSuperblock(bytes);
    validateErofsSuperblock(sb);
    this.superblock = sb;
    this.blockSize = 1 << sb.blkszbits;
    if (size % this.blockSize !== 0) {
      throw new FormatError('bootstrap', `file size ${size} is not a multiple of the block size ${this.blockSize}`, { value: size });
    }
    const ext = decodeRafsExtSuperblock(bytes);
    validateRafsExtSuperblock(ext, size, this.blockSize);
    this.extSuperblock = ext;
    const tarfs = (ext.flags & RafsSuperFlags.TARTFS_MODE) !== 0;

    const compressor = COMPRESSION_FLAGS.find(([bit]) => (ext.flags & bit) !== 0);
    // validateRafsExtSuperblock guarantees exactly one compression and one digest flag.
    this.compressor = compressor![1];
    this.digester = (ext.flags & RafsSuperFlags.HASH_SHA256) !== 0 ? 'sha256' : 'blake3';

    this.metaBase = sb.metaBlkaddr * this.blockSize;
    if (this.metaBase >= size) {
      throw new FormatError('superblock.s_meta_blkaddr', `meta block ${sb.metaBlkaddr} lies beyond the end of the file`, { offset: 1024 + 40, value: sb.metaBlkaddr });
    }

    this.blobs = this.loadBlobs(sb, ext, tarfs);
    this.chunkEntries = this.loadChunkTable(ext);
    this.prefetchNids = this.loadPrefetchTable(ext);

    const root = this.inode(sb.rootNid);
    if (root.type !== 'directory') {
      throw new FormatError('superblock.s_root_nid', `root nid ${sb.rootNid} is a ${root.type}, not a directory`, { offset: 1024 + 14, value: sb.rootNid });
    }
  }

  /**
   * Reads the whole bootstrap from `source` (at most `maxSize` bytes) and validates it.
   * A Uint8Array is used as is, without copying.
   */
  static async open(source: ByteSource | Uint8Array, options: BootstrapReaderOptions = {}): Promise<BootstrapReader> {
    const maxSize = options.maxSize ?? DEFAULT_MAX_BOOTSTRAP_SIZE;
    const size = source instanceof Uint8Array ? source.byteLength : source.size;
    if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError(`bootstrap source has an invalid size ${size}`);
    if (size > maxSize) {
      throw new NydusError('RESOURCE_EXHAUSTED', `bootstrap of ${size} bytes exceeds the ${maxSize}-byte limit (raise options.maxSize to read it)`);
    }
    throwIfAborted(options.signal);
    const bytes = source instanceof Uint8Array ? source : await readExact(source, 'bootstrap', 0, size, options.signal);
    return new BootstrapReader(bytes);
  }

  get rootNid(): number {
    return this.superblock.rootNid;
  }
  /** The filesystem chunk size from the extended superblock. */
  get chunkSize(): number {
    return this.extSuperblock.chunkSize;
  }
  /** RafsSuperFlags. */
  get flags(): number {
    return this.extSuperblock.flags;
  }
  /** The chunk table, decoded on first use. */
  get chunkTable(): readonly ChunkInfo[] {
    if (this.decodedChunkTable === undefined) {
      const t = this.chunkEntries;
      this.decodedChunkTable = Array.from({ length: t.count }, (_, k) => t.decode(k));
    }
    return this.decodedChunkTable;
  }

  // ------------------------------------------------------------------ tables

  private loadBlobs(sb: ErofsSuperblock, ext: RafsExtSuperblock, tarfs: boolean): BlobInfo[] {
    const count = ext.blobTableSize / BLOB_ENTRY_SIZE;
    if (count !== sb.extraDevices) {
      throw new FormatError('ext_superblock.s_blob_table_size', `blob table holds ${count} entries but the superblock has ${sb.extraDevices} extra devices`, {
        offset: 1152 + 16,
        value: ext.blobTableSize,
      });
    }
    if (count > MAX_BLOBS) {
      throw new FormatError('superblock.s_extra_devices', `${count} blobs exceed the limit of ${MAX_BLOBS}`, { offset: 1024 + 86, value: count });
    }
    const devEnd = DEVICE_TABLE_OFFSET + DEVICE_SLOT_SIZE * count;
    if (devEnd > ext.blobTableOffset) {
      throw new FormatError('ext_superblock.s_blob_table_offset', `blob table at ${ext.blobTableOffset} overlaps the device table ending at ${devEnd}`, {
        offset: 1152 + 8,
        value: ext.blobTableOffset,
      });
    }
    if (count === 0 && sb.blocks !== 0 && sb.blocks !== 4096) {
      throw new FormatError('superblock.s_blocks', `must be 0 without devices, is ${sb.blocks}`, { offset: 1024 + 36, value: sb.blocks });
    }
    const blobs: BlobInfo[] = [];
    const ids = new Set<string>();
    for (let i = 0; i < count; i++) {
      const slotOff = DEVICE_TABLE_OFFSET + DEVICE_SLOT_SIZE * i;
      const slot = decodeDeviceSlot(this.bytes.subarray(slotOff, slotOff + DEVICE_SLOT_SIZE), slotOff, i);
      if (Buffer.byteLength(slot.blobId) !== 64) {
        throw new FormatError(`device_slot[${i}].blob_id`, `blob id "${slot.blobId}" is not 64 bytes long`, { offset: slotOff, value: slot.blobId });
      }
      if (slot.blocks === 0) throw new FormatError(`device_slot[${i}].blocks`, 'device has 0 blocks', { offset: slotOff + 64, value: 0 });
      if (ids.has(slot.blobId)) throw new FormatError(`device_slot[${i}].blob_id`, `duplicate blob id ${slot.blobId}`, { offset: slotOff, value: slot.blobId });
      ids.add(slot.blobId);
      const entOff = ext.blobTableOffset + BLOB_ENTRY_SIZE * i;
      const entry = decodeBlobEntry(this.bytes.subarray(entOff, entOff + BLOB_ENTRY_SIZE), entOff, i);
      validateBlobEntry(entry, i, ext.chunkSize, entOff, tarfs);
      if (entry.blobId !== slot.blobId) {
        throw new FormatError(`blob_table[${i}].blob_id`, `blob id ${entry.blobId} differs from device slot ${i} (${slot.blobId})`, { offset: entOff, value: entry.blobId });
      }
      blobs.push({
        index: i,
        blobId: entry.blobId,
        entry,
        slot,
        // validateBlobEntry guarantees both algorithms are known.
        compressor: compressionNameOf(entry.compressionAlgo)!,
        digester: digestNameOf(entry.digestAlgo)!,
        features: entry.features,
      });
    }
    return blobs;
  }

  private loadChunkTable(ext: RafsExtSuperblock): ChunkTableView {
    const t = new ChunkTableView(this.bytes, ext.chunkTableOffset, ext.chunkTableSize / CHUNK_INFO_SIZE);
    for (let i = 0; i < t.count; i++) {
      t.checkU64s(i);
      const blobIndex = t.blobIndex(i);
      const uncompressedSize = t.uncompressedSize(i);
      const compressedSize = t.compressedSize(i);
      const flags = t.flags(i);
      const ciIndex = t.ciIndex(i);
      if (blobIndex >= this.blobs.length) chunkTableError(t, i, 'blob_index', `blob index ${blobIndex} but the blob table has ${this.blobs.length} entries`, blobIndex);
      if (uncompressedSize === 0 || uncompressedSize > ext.chunkSize) {
        chunkTableError(t, i, 'uncompressed_size', `${uncompressedSize} is not in 1..${ext.chunkSize} (the chunk size)`, uncompressedSize);
      }
      const batch = (flags & ChunkFlags.BATCH) !== 0;
      if (compressedSize === 0 && !batch) chunkTableError(t, i, 'compressed_size', 'compressed size is 0', 0);
      if ((flags & (ChunkFlags.COMPRESSED | ChunkFlags.ENCRYPTED | ChunkFlags.BATCH)) === 0 && compressedSize !== uncompressedSize) {
        chunkTableError(t, i, 'compressed_size', `uncompressed chunk has compressed size ${compressedSize} != uncompressed size ${uncompressedSize}`, compressedSize);
      }
      if (ciIndex > 0xffffff) chunkTableError(t, i, 'index', `CI index ${ciIndex} exceeds 24 bits`, ciIndex);
      const blob = this.blobs[blobIndex]!;
      if (blob.entry.chunkCount !== 0 && ciIndex >= blob.entry.chunkCount) {
        chunkTableError(t, i, 'index', `CI index ${ciIndex} but blob ${blobIndex} has ${blob.entry.chunkCount} chunks`, ciIndex);
      }
    }
    t.buildIndex();
    return t;
  }

  private loadPrefetchTable(ext: RafsExtSuperblock): number[] {
    const nids: number[] = [];
    const r = new LeReader(this.bytes.subarray(ext.prefetchTableOffset, ext.prefetchTableOffset + ext.prefetchTableSize), 'prefetch_table', ext.prefetchTableOffset);
    for (let i = 0; i < ext.prefetchTableSize / 4; i++) {
      const nid = r.u32(4 * i, `nid[${i}]`);
      if (nid === 0) break;
      this.record(nid);
      nids.push(nid);
    }
    return nids;
  }

  // ------------------------------------------------------------------ inodes

  private record(nid: number): InodeRecord {
    const cached = this.inodes.get(nid);
    if (cached) return cached;
    if (!Number.isSafeInteger(nid) || nid < 0) throw new InvalidArgumentError(`invalid nid ${nid}`);
    const offset = this.metaBase + nid * INODE_SLOT_SIZE;
    if (offset + INODE_SLOT_SIZE > this.bytes.byteLength) {
      throw new FormatError(inodeWhat(nid), `inode at ${offset} lies beyond the end of the bootstrap (${this.bytes.byteLength} bytes)`, { offset, value: nid });
    }
    const raw = decodeInodeAt(this.view, offset, nid);
    const type = TYPE_BY_FMT.get(raw.mode & S_IFMT);
    if (type === undefined) throw new FormatError(`${inodeWhat(nid)}.i_mode`, `unknown file type in mode 0o${raw.mode.toString(8)}`, { offset: offset + 4, value: raw.mode });
    const xattrSize = xattrAreaSize(raw.xattrCount);
    const payloadOffset = offset + inodeSize(raw) + xattrSize;
    if (payloadOffset > this.bytes.byteLength) {
      throw new FormatError(`${inodeWhat(nid)}.i_xattr_icount`, `inline xattrs (${xattrSize} bytes) run past the end of the bootstrap`, { offset: offset + 2, value: raw.xattrCount });
    }
    switch (type) {
      case 'file':
        if (raw.dataLayout !== DataLayout.CHUNK_BASED && raw.size !== 0) {
          throw new FormatError(`${inodeWhat(nid)}.i_format`, `regular file with data layout ${raw.dataLayout} (want chunk based)`, { offset, value: raw.dataLayout });
        }
        if (raw.dataLayout === DataLayout.CHUNK_BASED && raw.size !== 0 && ((raw.u & CHUNK_FORMAT_INDEXES) === 0 || (raw.u & ~0x3f) !== 0)) {
          throw new FormatError(`${inodeWhat(nid)}.i_u`, `unsupported chunk format 0x${raw.u.toString(16)} (want chunk indexes)`, { offset: offset + 16, value: raw.u });
        }
        break;
      case 'directory':
      case 'symlink':
        if (raw.dataLayout === DataLayout.CHUNK_BASED) {
          throw new FormatError(`${inodeWhat(nid)}.i_format`, `${type} with chunk-based data layout`, { offset, value: raw.dataLayout });
        }
        if (type === 'directory' && raw.size === 0) throw new FormatError(`${inodeWhat(nid)}.i_size`, 'directory without entries', { offset: offset + 8, value: 0 });
        if (type === 'symlink' && raw.size > MAX_SYMLINK_SIZE) {
          throw new FormatError(`${inodeWhat(nid)}.i_size`, `symlink target of ${raw.size} bytes exceeds ${MAX_SYMLINK_SIZE}`, { offset: offset + 8, value: raw.size });
        }
        break;
      default:
        if (raw.dataLayout === DataLayout.CHUNK_BASED) {
          throw new FormatError(`${inodeWhat(nid)}.i_format`, `${type} with chunk-based data layout`, { offset, value: raw.dataLayout });
        }
    }
    const inode: RafsInode = {
      nid,
      type,
      mode: raw.mode,
      uid: raw.uid,
      gid: raw.gid,
      size: raw.size,
      mtime: raw.mtime,
      mtimeNsec: raw.mtimeNsec,
      nlink: raw.nlink,
      raw,
    };
    if (type === 'char-device' || type === 'block-device') inode.rdev = decodeRdev(raw.u);
    const rec = { inode, offset, payloadOffset, xattrSize };
    this.inodes.set(nid, rec);
    return rec;
  }

  /** The inode with number `nid` (validated; FormatError when it is not a valid inode). */
  inode(nid: number): RafsInode {
    return this.record(nid).inode;
  }

  /** Bytes of a FLAT_PLAIN / FLAT_INLINE inode (directory entries, symlink target). */
  private flatData(rec: InodeRecord): Uint8Array {
    const { raw, nid } = rec.inode;
    const what = `inode[nid ${nid}].data`;
    const size = raw.size;
    if (size === 0) return new Uint8Array(0);
    const bs = this.blockSize;
    const fileSize = this.bytes.byteLength;
    const nblocks = Math.ceil(size / bs);
    const plainLen = raw.dataLayout === DataLayout.FLAT_INLINE ? (nblocks - 1) * bs : size;
    const tailLen = size - plainLen;
    const start = raw.u * bs;
    if (plainLen > 0 && start + plainLen > fileSize) {
      throw new FormatError(what, `${plainLen} bytes at block ${raw.u} run past the end of the bootstrap`, { offset: start, value: raw.u });
    }
    if (tailLen === 0) return this.plain.subarray(start, start + plainLen);
    const tailOff = rec.payloadOffset;
    if ((tailOff % bs) + tailLen > bs || tailOff + tailLen > fileSize) {
      throw new FormatError(what, `inline tail of ${tailLen} bytes at ${tailOff} crosses a block boundary`, { offset: tailOff, value: tailLen });
    }
    const tail = this.plain.subarray(tailOff, tailOff + tailLen);
    if (plainLen === 0) return tail;
    const out = new Uint8Array(size);
    out.set(this.bytes.subarray(start, start + plainLen), 0);
    out.set(tail, plainLen);
    return out;
  }

  private expectType(rec: InodeRecord, type: RafsInodeType): void {
    if (rec.inode.type !== type) throw new InvalidArgumentError(`nid ${rec.inode.nid} is a ${rec.inode.type}, not a ${type}`);
  }

  /**
   * All entries of a directory in on-disk (byte-wise sorted) order, `.` and `..` included,
   * validated, without an object per entry (names point into the bootstrap or a copy of the
   * directory data).
   */
  direntList(nid: number): DirentList {
    const cached = this.dirents.get(nid);
    if (cached) return cached;
    const rec = this.record(nid);
    this.expectType(rec, 'directory');
    const data = this.flatData(rec);
    const bs = this.blockSize;
    const raw = rec.inode.raw;
    const nblocks = Math.ceil(data.length / bs);
    const absOf = (block: number): number =>
      raw.dataLayout === DataLayout.FLAT_INLINE && block === nblocks - 1 ? rec.payloadOffset : raw.u * bs + block * bs;
    const list = decodeDirentList(data, bs, absOf, nid);
    checkDirents(list, nid);
    this.dirents.set(nid, list);
    return list;
  }

  /** All entries of a directory in on-disk order (`.` and `..` included), validated. */
  private entries(nid: number, withDots: boolean): RafsDirent[] {
    const list = this.direntList(nid);
    const out: RafsDirent[] = [];
    for (let i = 0; i < list.count; i++) {
      if (!withDots && (list.isDots(i, 1) || list.isDots(i, 2))) continue;
      const nameBytes = list.name(i);
      out.push({ name: decodeFsName(nameBytes), nameBytes, nid: list.nid(i), fileType: list.fileType(i) });
    }
    return out;
  }

  /** Entries of a directory in on-disk (byte-wise sorted) order, without `.`/`..` unless asked. */
  readdir(nid: number, options: ReaddirOptions = {}): RafsDirent[] {
    return this.entries(nid, options.includeDots === true);
  }

  /**
   * Resolves an absolute or root-relative path (`/a/b`, `a/b`) lexically, without following
   * symlinks; `.` and `..` components use the directory's own entries. Undefined when a
   * component does not exist or a non-final component is not a directory. Names that are not
   * UTF-8 are given as `decodeFsName` (or `readdir`'s `name`) writes them.
   */
  lookup(path: string): number | undefined {
    let nid = this.rootNid;
    for (const component of path.split('/')) {
      if (component === '') continue;
      if (this.record(nid).inode.type !== 'directory') return undefined;
      const name = encodeFsName(component);
      const entries = this.direntList(nid);
      let lo = 0;
      let hi = entries.count - 1;
      let found: number | undefined;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        const c = Buffer.compare(entries.name(mid), name);
        if (c === 0) {
          found = entries.nid(mid);
          break;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
      }
      if (found === undefined) return undefined;
      nid = found;
    }
    return nid;
  }

  /** The raw target bytes of a symlink. */
  readlinkBytes(nid: number): Uint8Array {
    const rec = this.record(nid);
    this.expectType(rec, 'symlink');
    return this.flatData(rec);
  }

  /** The target of a symlink as a string, losslessly (`decodeFsName`). */
  readlink(nid: number): string {
    return decodeFsName(this.readlinkBytes(nid));
  }

  /** Inline extended attributes by full name (`user.x`, `security.capability`, ...). */
  xattrs(nid: number): Map<string, Uint8Array> {
    const rec = this.record(nid);
    if (rec.xattrSize === 0) return new Map();
    const start = rec.payloadOffset - rec.xattrSize;
    return decodeXattrs(this.bytes.subarray(start, rec.payloadOffset), start, nid);
  }

  // ------------------------------------------------------------------ chunks

  /**
   * Attaches a blob's CI array (from its blob.meta) so that chunk refs of that blob also carry
   * the CI v2 fields. The meta is checked against the blob table entry first.
   */
  attachBlobMeta(blobIndex: number, meta: BlobMeta): void {
    const blob = this.blobs[blobIndex];
    if (blob === undefined) throw new InvalidArgumentError(`no blob with index ${blobIndex} (the bootstrap has ${this.blobs.length})`);
    checkBlobMetaAgainstEntry(meta, blob.entry, `blob ${blob.blobId}`);
    this.blobMetas.set(blobIndex, meta);
  }

  /** The attached CI array of a blob, if any. */
  blobMeta(blobIndex: number): BlobMeta | undefined {
    return this.blobMetas.get(blobIndex);
  }

  /** Number of chunk addresses of a regular file (counted with the superblock chunk size). */
  private chunkCount(rec: InodeRecord): { count: number; arrayOffset: number } {
    this.expectType(rec, 'file');
    const { raw, nid } = rec.inode;
    const count = Math.ceil(raw.size / this.chunkSize);
    const arrayOffset = alignUp(rec.payloadOffset, 8);
    if (arrayOffset + count * CHUNK_ADDRESS_SIZE > this.bytes.byteLength) {
      throw new FormatError(`inode[nid ${nid}].i_size`, `${count} chunk addresses for ${raw.size} bytes run past the end of the bootstrap`, {
        offset: rec.offset + 8,
        value: raw.size,
      });
    }
    return { count, arrayOffset };
  }

  /**
   * The chunk-table entry of chunk `i` of a file, checked against the file (and against the CI
   * array of its blob, when attached).
   */
  private chunkEntryOf(rec: InodeRecord, arrayOffset: number, i: number): number {
    const { nid, size } = rec.inode;
    const off = arrayOffset + i * CHUNK_ADDRESS_SIZE;
    const bytes = this.plain;
    // Chunk address (spec §1.7); decodeChunkAddress raises the error for device id 0.
    const device = bytes[off + 2]!;
    if (device === 0) decodeChunkAddress(bytes.subarray(off, off + CHUNK_ADDRESS_SIZE), off);
    const blobIndex = device - 1;
    const ciIndex = (bytes[off]! | (bytes[off + 1]! << 8)) | (bytes[off + 3]! << 16);
    const blkaddr = (bytes[off + 4]! | (bytes[off + 5]! << 8) | (bytes[off + 6]! << 16) | (bytes[off + 7]! << 24)) >>> 0;
    const blob = this.blobs[blobIndex];
    if (blob === undefined) {
      throw new FormatError(`${chunkWhat(nid, i)}.device_id`, `blob index ${blobIndex} but the bootstrap has ${this.blobs.length} blobs`, { offset: off + 2, value: blobIndex });
    }
    const t = this.chunkEntries;
    const k = t.find(blobIndex, ciIndex, blkaddr * this.blockSize);
    if (k < 0) {
      throw new FormatError(chunkWhat(nid, i), `no chunk table entry for blob ${blobIndex}, CI index ${ciIndex}, block ${blkaddr}`, { offset: off, value: ciIndex });
    }
    const expected = Math.min(this.chunkSize, size - i * this.chunkSize);
    const uncompressedSize = t.uncompressedSize(k);
    if (uncompressedSize !== expected) {
      throw new FormatError(chunkWhat(nid, i), `chunk holds ${uncompressedSize} bytes but covers ${expected} bytes of the file`, { offset: off, value: uncompressedSize });
    }
    const meta = this.blobMetas.size === 0 ? undefined : this.blobMetas.get(blobIndex);
    if (meta !== undefined) {
      const ci = meta.chunks[ciIndex];
      if (ci === undefined) {
        throw new FormatError(chunkWhat(nid, i), `CI index ${ciIndex} but blob ${blob.blobId} has ${meta.chunks.length} CI entries`, { offset: off, value: ciIndex });
      }
      if (ci.uncompressedOffset !== t.uncompressedOffset(k) || ci.uncompressedSize !== uncompressedSize || ci.compressedOffset !== t.compressedOffset(k)) {
        throw new FormatError(chunkWhat(nid, i), `chunk table entry disagrees with CI entry ${ciIndex} of blob ${blob.blobId}`, { offset: off, value: ciIndex });
      }
    }
    return k;
  }

  private resolveChunk(rec: InodeRecord, arrayOffset: number, i: number): ChunkRef {
    const t = this.chunkEntries;
    const k = this.chunkEntryOf(rec, arrayOffset, i);
    const blobIndex = t.blobIndex(k);
    const ciIndex = t.ciIndex(k);
    const flags = t.flags(k);
    const ref: ChunkRef = {
      fileOffset: i * this.chunkSize,
      blobIndex,
      blobId: this.blobs[blobIndex]!.blobId,
      ciIndex,
      digest: t.digestHex(k),
      compressedOffset: t.compressedOffset(k),
      compressedSize: t.compressedSize(k),
      uncompressedOffset: t.uncompressedOffset(k),
      uncompressedSize: t.uncompressedSize(k),
      compressed: (flags & ChunkFlags.COMPRESSED) !== 0,
      flags,
      crc32: (flags & ChunkFlags.HAS_CRC32) !== 0 ? t.crc32(k) : 0,
    };
    const ci = this.blobMetas.get(blobIndex)?.chunks[ciIndex];
    if (ci !== undefined) {
      ref.ci = ci;
      if ((ci.flags & ChunkInfoV2Flags.ZRAN) !== 0) {
        ref.zranContextIndex = ci.contextIndex;
        ref.zranOffset = ci.contextOffset;
      } else if ((ci.flags & ChunkInfoV2Flags.BATCH) !== 0) {
        ref.batchIndex = ci.contextIndex;
        ref.batchOffset = ci.contextOffset;
      }
    }
    return ref;
  }

  /**
   * The chunk-table entry index of each chunk of a regular file, in file order, checked as
   * `chunks()` checks them: for copying chunk-table entries (see `chunkEntryOffset`) without
   * an object per chunk. The entry's blob index and CI index are the chunk address's.
   */
  chunkEntryIndexes(nid: number): Uint32Array {
    const rec = this.record(nid);
    const { count, arrayOffset } = this.chunkCount(rec);
    const out = new Uint32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.chunkEntryOf(rec, arrayOffset, i);
    return out;
  }

  /** Byte offset in `bytes` of chunk-table entry `k` (80 bytes, spec §1.8). */
  chunkEntryOffset(k: number): number {
    return this.chunkEntries.offsetOf(k);
  }

  /** Every chunk of a regular file, in file order. */
  chunks(nid: number): ChunkRef[] {
    const rec = this.record(nid);
    const { count, arrayOffset } = this.chunkCount(rec);
    const out: ChunkRef[] = [];
    for (let i = 0; i < count; i++) out.push(this.resolveChunk(rec, arrayOffset, i));
    return out;
  }

  /**
   * The chunk slices covering `[offset, offset + length)` of a regular file, clipped to its
   * size (empty when the range starts at or after the end).
   */
  mapRange(nid: number, offset: number, length: number): ChunkSlice[] {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new InvalidArgumentError(`invalid range offset ${offset}, length ${length}`);
    }
    const rec = this.record(nid);
    const { arrayOffset } = this.chunkCount(rec);
    const end = Math.min(rec.inode.size, offset + length);
    const out: ChunkSlice[] = [];
    if (offset >= end) return out;
    const cs = this.chunkSize;
    for (let i = Math.floor(offset / cs); i * cs < end; i++) {
      const chunk = this.resolveChunk(rec, arrayOffset, i);
      const from = Math.max(offset, chunk.fileOffset);
      const to = Math.min(end, chunk.fileOffset + chunk.uncompressedSize);
      out.push({ chunk, chunkOffset: from - chunk.fileOffset, length: to - from, fileOffset: from });
    }
    return out;
  }

  // ------------------------------------------------------------------ tree

  /**
   * Every node of the tree, depth first: a directory before its children, children in dirent
   * order. Checks each dirent against its inode, each directory's `..`, and rejects a
   * directory reached twice (a cycle or a hard-linked directory) and nesting deeper than
   * MAX_WALK_DEPTH.
   */
  *walk(): Generator<WalkEntry> {
    const root = this.rootNid;
    yield { path: '/', nid: root, parentNid: root, inode: this.inode(root) };
    const visited = new Set<number>([root]);
    const stack: Array<{ nid: number; path: string; entries: RafsDirent[]; next: number }> = [{ nid: root, path: '', entries: this.childEntries(root, root), next: 0 }];
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const d = frame.entries[frame.next++];
      if (d === undefined) {
        stack.pop();
        continue;
      }
      const inode = this.inode(d.nid);
      if (d.fileType !== 0 && d.fileType !== fileTypeOfMode(inode.mode)) {
        throw new FormatError(`dir[nid ${frame.nid}].dirent "${printableFsName(d.name)}"`, `file type ${d.fileType} disagrees with inode ${d.nid} (a ${inode.type})`, { value: d.fileType });
      }
      const path = `${frame.path}/${d.name}`;
      yield { path, nid: d.nid, parentNid: frame.nid, inode };
      if (inode.type !== 'directory') continue;
      if (visited.has(d.nid)) {
        throw new FormatError(`dir[nid ${frame.nid}].dirent "${printableFsName(d.name)}"`, `directory nid ${d.nid} is reached twice (cycle or hard-linked directory)`, { value: d.nid });
      }
      visited.add(d.nid);
      if (stack.length > MAX_WALK_DEPTH) {
        throw new FormatError(`dir[nid ${d.nid}]`, `directory nesting exceeds ${MAX_WALK_DEPTH} levels`, { value: stack.length });
      }
      stack.push({ nid: d.nid, path, entries: this.childEntries(d.nid, frame.nid), next: 0 });
    }
  }

  private childEntries(nid: number, parent: number): RafsDirent[] {
    const list = this.direntList(nid);
    let dotdot = 0;
    while (!list.isDots(dotdot, 2)) dotdot++;
    if (list.nid(dotdot) !== parent) {
      throw new FormatError(`dir[nid ${nid}]`, `".." points to nid ${list.nid(dotdot)}, not to the parent ${parent}`, { value: list.nid(dotdot) });
    }
    return this.entries(nid, false);
  }
}

/** Checks decoded directory entries: strictly sorted names without "/", known file types, `.` (pointing to the directory) and `..`. */
function checkDirents(list: DirentList, nid: number): void {
  const what = `dir[nid ${nid}]`;
  const names = list.names;
  const text = (i: number): string => printableFsName(decodeFsName(list.name(i)));
  let dot = false;
  let dotdot = false;
  for (let i = 0; i < list.count; i++) {
    if (i > 0 && list.compareNames(i - 1, i) >= 0) {
      throw new FormatError(`${what}.dirent[${i}]`, `entries are not strictly sorted ("${text(i - 1)}" before "${text(i)}")`, { value: text(i) });
    }
    if (hasSlash(names, list.nameStart(i), list.nameEnd(i))) throw new FormatError(`${what}.dirent[${i}]`, 'name contains "/"', { value: text(i) });
    const fileType = list.fileType(i);
    if (fileType > 7) throw new FormatError(`${what}.dirent[${i}].file_type`, `unknown file type ${fileType}`, { value: fileType });
    if (list.isDots(i, 1)) {
      if (list.nid(i) !== nid) throw new FormatError(`${what}.dirent[${i}]`, `"." points to nid ${list.nid(i)}, not to the directory itself`, { value: list.nid(i) });
      dot = true;
    } else if (list.isDots(i, 2)) {
      dotdot = true;
    }
  }
  if (!dot || !dotdot) throw new FormatError(what, `directory lacks its "${dot ? '..' : '.'}" entry`);
}

/** The name of chunk `i` of inode `nid` in error messages. */
function chunkWhat(nid: number, i: number): string {
  return `inode[nid ${nid}].chunk[${i}]`;
}

/** The name of inode `nid` in error messages. */
function inodeWhat(nid: number): string {
  return `inode[nid ${nid}]`;
}

function hasSlash(bytes: Uint8Array, start: number, end: number): boolean {
  for (let k = start; k < end; k++) if (bytes[k] === SLASH) return true;
  return false;
}

function chunkTableError(t: ChunkTableView, i: number, field: string, msg: string, value: unknown): never {
  throw new FormatError(`chunk_table[${i}].${field}`, msg, { offset: t.offsetOf(i), value });
}
