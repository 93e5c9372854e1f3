import { FormatError, NydusError } from '@nydus-ts/core';
import { LeReader, LeWriter } from './bytes.js';
import { COMPACT_INODE_SIZE, DataLayout, EXTENDED_INODE_SIZE, InodeVersion, type DataLayoutValue } from './constants.js';

/**
 * An EROFS inode as RAFS v6 uses it (spec §1.6). Compact (32 B) and extended (64 B) inodes
 * decode to the same shape; compact ones have mtime 0.
 */
export interface ErofsInode {
  /** i_format @0 bit 0: 0 compact, 1 extended */ extended: boolean;
  /** i_format @0 bits 1..3 */ dataLayout: DataLayoutValue;
  /** i_xattr_icount @2 */ xattrCount: number;
  /** i_mode @4: full st_mode */ mode: number;
  /** i_nlink: compact @6 (u16), extended @44 (u32) */ nlink: number;
  /** i_size: compact @8 (u32), extended @8 (u64) */ size: number;
  /** i_u: compact @16, extended @16: raw block address, rdev or chunk format */ u: number;
  /** i_ino: compact @20, extended @20 */ ino: number;
  /** i_uid: compact @24 (u16), extended @24 (u32) */ uid: number;
  /** i_gid: compact @26 (u16), extended @28 (u32) */ gid: number;
  /** i_mtime @32 (extended only; signed, as the kernel reads it: before 1970 is negative) */ mtime: number;
  /** i_mtime_nsec @40 (extended only) */ mtimeNsec: number;
}

const COMPACT = { format: 0, xattrCount: 2, mode: 4, nlink: 6, size: 8, u: 16, ino: 20, uid: 24, gid: 26 } as const;
const EXTENDED = { format: 0, xattrCount: 2, mode: 4, size: 8, u: 16, ino: 20, uid: 24, gid: 28, mtime: 32, mtimeNsec: 40, nlink: 44 } as const;

export function inodeSize(inode: Pick<ErofsInode, 'extended'>): number {
  return inode.extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE;
}

/** Decodes the inode starting at `bytes[0]`; `absOffset` and `nid` only label errors. */
export function decodeInode(bytes: Uint8Array, absOffset: number, nid: number): ErofsInode {
  return decodeInodeAt(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, nid, absOffset);
}

/**
 * Decodes the inode at offset `at` of `view` (`absOffset`, its offset in the file, labels errors;
 * by default `at`, for a view of the whole file). No reader object or sub-view per inode: the
 * bootstrap reader decodes every inode it touches.
 */
export function decodeInodeAt(view: DataView, at: number, nid: number, absOffset = at): ErofsInode {
  const available = view.byteLength - at;
  const format = available >= 2 ? view.getUint16(at, true) : -1;
  const layout = (format >> 1) & 0x7;
  const extended = (format & 1) === InodeVersion.EXTENDED;
  const known = format >= 0 && format >> 4 === 0 && (layout === DataLayout.FLAT_PLAIN || layout === DataLayout.FLAT_INLINE || layout === DataLayout.CHUNK_BASED);
  if (!known || available < (extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE) || (extended && (view.getUint32(at + EXTENDED.size + 4, true) > 0x1fffff || !safeI64High(view, at + EXTENDED.mtime)))) {
    throwBadInode(view, at, nid, absOffset);
  }
  if (extended) {
    return {
      extended,
      dataLayout: layout as DataLayoutValue,
      xattrCount: view.getUint16(at + EXTENDED.xattrCount, true),
      mode: view.getUint16(at + EXTENDED.mode, true),
      nlink: view.getUint32(at + EXTENDED.nlink, true),
      size: view.getUint32(at + EXTENDED.size + 4, true) * 0x1_0000_0000 + view.getUint32(at + EXTENDED.size, true),
      u: view.getUint32(at + EXTENDED.u, true),
      ino: view.getUint32(at + EXTENDED.ino, true),
      uid: view.getUint32(at + EXTENDED.uid, true),
      gid: view.getUint32(at + EXTENDED.gid, true),
      mtime: view.getInt32(at + EXTENDED.mtime + 4, true) * 0x1_0000_0000 + view.getUint32(at + EXTENDED.mtime, true),
      mtimeNsec: view.getUint32(at + EXTENDED.mtimeNsec, true),
    };
  }
  return {
    extended,
    dataLayout: layout as DataLayoutValue,
    xattrCount: view.getUint16(at + COMPACT.xattrCount, true),
    mode: view.getUint16(at + COMPACT.mode, true),
    nlink: view.getUint16(at + COMPACT.nlink, true),
    size: view.getUint32(at + COMPACT.size, true),
    u: view.getUint32(at + COMPACT.u, true),
    ino: view.getUint32(at + COMPACT.ino, true),
    uid: view.getUint16(at + COMPACT.uid, true),
    gid: view.getUint16(at + COMPACT.gid, true),
    mtime: 0,
    mtimeNsec: 0,
  };
}

/** True if the little-endian i64 at `at` is a JS safe integer. */
function safeI64High(view: DataView, at: number): boolean {
  const hi = view.getInt32(at + 4, true);
  return hi <= 0x1fffff && (hi > -0x200000 || (hi === -0x200000 && view.getUint32(at, true) !== 0));
}

/** Raises the FormatError that names what is wrong with the inode at `at`. */
function throwBadInode(view: DataView, at: number, nid: number, absOffset: number): never {
  const what = `inode[nid ${nid}]`;
  const r = new LeReader(new Uint8Array(view.buffer, view.byteOffset + at, Math.max(0, view.byteLength - at)), what, absOffset);
  const format = r.u16(0, 'i_format');
  if (format >> 4 !== 0) throw new FormatError(`${what}.i_format`, `unknown format bits 0x${format.toString(16)}`, { offset: absOffset, value: format });
  const layout = (format >> 1) & 0x7;
  if (layout !== DataLayout.FLAT_PLAIN && layout !== DataLayout.FLAT_INLINE && layout !== DataLayout.CHUNK_BASED) {
    throw new FormatError(`${what}.i_format`, `unsupported data layout ${layout}`, { offset: absOffset, value: format });
  }
  const extended = (format & 1) === InodeVersion.EXTENDED;
  const size = extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE;
  if (r.bytes.byteLength < size) throw new FormatError(what, `truncated ${extended ? 'extended' : 'compact'} inode (need ${size} bytes, ${r.bytes.byteLength} available)`, { offset: absOffset });
  // u64 fields beyond 2^53
  r.u64(EXTENDED.size, 'i_size');
  r.i64(EXTENDED.mtime, 'i_mtime');
  throw new NydusError('INTERNAL', `${what}: rejected by the fast check, passed the detailed one`);
}

export function encodeInode(inode: ErofsInode): Uint8Array {
  const format = (inode.extended ? InodeVersion.EXTENDED : InodeVersion.COMPACT) | (inode.dataLayout << 1);
  if (inode.extended) {
    return new LeWriter(EXTENDED_INODE_SIZE)
      .u16(EXTENDED.format, format)
      .u16(EXTENDED.xattrCount, inode.xattrCount)
      .u16(EXTENDED.mode, inode.mode)
      .u64(EXTENDED.size, inode.size)
      .u32(EXTENDED.u, inode.u)
      .u32(EXTENDED.ino, inode.ino)
      .u32(EXTENDED.uid, inode.uid)
      .u32(EXTENDED.gid, inode.gid)
      .i64(EXTENDED.mtime, inode.mtime)
      .u32(EXTENDED.mtimeNsec, inode.mtimeNsec)
      .u32(EXTENDED.nlink, inode.nlink).bytes;
  }
  return new LeWriter(COMPACT_INODE_SIZE)
    .u16(COMPACT.format, format)
    .u16(COMPACT.xattrCount, inode.xattrCount)
    .u16(COMPACT.mode, inode.mode)
    .u16(COMPACT.nlink, inode.nlink)
    .u32(COMPACT.size, inode.size)
    .u32(COMPACT.u, inode.u)
    .u32(COMPACT.ino, inode.ino)
    .u16(COMPACT.uid, inode.uid)
    .u16(COMPACT.gid, inode.gid).bytes;
}

/** Size in bytes of the inline xattr area for `i_xattr_icount` (0 when there is none). */
export function xattrAreaSize(xattrCount: number): number {
  return xattrCount === 0 ? 0 : 12 + 4 * (xattrCount - 1);
}
