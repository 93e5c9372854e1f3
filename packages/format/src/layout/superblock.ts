import { FormatError } from '@nydus-ts/core';
import { LeReader, LeWriter } from './bytes.js';
import {
  BLOB_ENTRY_SIZE,
  DEVICE_SLOT_OFFSET_UNITS,
  EROFS_BLOCK_BITS,
  EROFS_SUPER_MAGIC,
  EROFS_SUPER_OFFSET,
  EROFS_SUPER_SIZE,
  FEATURE_COMPAT_RAFS_V6,
  RAFS_EXT_SUPER_OFFSET,
  RAFS_EXT_SUPER_SIZE,
  RAFS_SUPER_FLAGS_KNOWN,
  RAFS_V6_FEATURE_INCOMPAT,
  RafsSuperFlags,
  isPowerOfTwo,
  MIN_CHUNK_SIZE,
  MAX_CHUNK_SIZE,
} from './constants.js';

/** EROFS on-disk superblock, 128 bytes at absolute offset 1024 (spec §1.2). */
export interface ErofsSuperblock {
  /** s_magic @0 */ magic: number;
  /** s_checksum @4 */ checksum: number;
  /** s_feature_compat @8 */ featureCompat: number;
  /** s_blkszbits @12 */ blkszbits: number;
  /** s_extslots @13 */ extslots: number;
  /** s_root_nid @14 */ rootNid: number;
  /** s_inos @16 */ inodeCount: number;
  /** s_build_time @24 */ buildTime: number;
  /** s_build_time_nsec @32 */ buildTimeNsec: number;
  /** s_blocks @36 */ blocks: number;
  /** s_meta_blkaddr @40 */ metaBlkaddr: number;
  /** s_xattr_blkaddr @44 */ xattrBlkaddr: number;
  /** s_uuid @48 (16 bytes) */ uuid: Uint8Array;
  /** s_volume_name @64 (16 bytes) */ volumeName: Uint8Array;
  /** s_feature_incompat @80 */ featureIncompat: number;
  /** s_u (available compression algorithms / lz4 max distance) @84 */ u: number;
  /** s_extra_devices @86 */ extraDevices: number;
  /** s_devt_slotoff @88 */ devtSlotOff: number;
}

const SB = {
  magic: 0,
  checksum: 4,
  featureCompat: 8,
  blkszbits: 12,
  extslots: 13,
  rootNid: 14,
  inodeCount: 16,
  buildTime: 24,
  buildTimeNsec: 32,
  blocks: 36,
  metaBlkaddr: 40,
  xattrBlkaddr: 44,
  uuid: 48,
  volumeName: 64,
  featureIncompat: 80,
  u: 84,
  extraDevices: 86,
  devtSlotOff: 88,
} as const;

export function decodeErofsSuperblock(file: Uint8Array): ErofsSuperblock {
  const r = new LeReader(file.subarray(EROFS_SUPER_OFFSET, EROFS_SUPER_OFFSET + EROFS_SUPER_SIZE), 'superblock', EROFS_SUPER_OFFSET);
  const magic = r.u32(SB.magic, 's_magic');
  // Checked before anything else so that a file of another kind is reported as such.
  if (magic !== EROFS_SUPER_MAGIC) {
    throw new FormatError('superblock.s_magic', `bad magic 0x${magic.toString(16)} (want 0xe0f5e1e2): not a RAFS v6 bootstrap`, { offset: EROFS_SUPER_OFFSET, value: magic });
  }
  return {
    magic,
    checksum: r.u32(SB.checksum, 's_checksum'),
    featureCompat: r.u32(SB.featureCompat, 's_feature_compat'),
    blkszbits: r.u8(SB.blkszbits, 's_blkszbits'),
    extslots: r.u8(SB.extslots, 's_extslots'),
    rootNid: r.u16(SB.rootNid, 's_root_nid'),
    inodeCount: r.u64(SB.inodeCount, 's_inos'),
    buildTime: r.u64(SB.buildTime, 's_build_time'),
    buildTimeNsec: r.u32(SB.buildTimeNsec, 's_build_time_nsec'),
    blocks: r.u32(SB.blocks, 's_blocks'),
    metaBlkaddr: r.u32(SB.metaBlkaddr, 's_meta_blkaddr'),
    xattrBlkaddr: r.u32(SB.xattrBlkaddr, 's_xattr_blkaddr'),
    uuid: r.slice(SB.uuid, 16, 's_uuid'),
    volumeName: r.slice(SB.volumeName, 16, 's_volume_name'),
    featureIncompat: r.u32(SB.featureIncompat, 's_feature_incompat'),
    u: r.u16(SB.u, 's_u'),
    extraDevices: r.u16(SB.extraDevices, 's_extra_devices'),
    devtSlotOff: r.u16(SB.devtSlotOff, 's_devt_slotoff'),
  };
}

export function encodeErofsSuperblock(sb: ErofsSuperblock): Uint8Array {
  return new LeWriter(EROFS_SUPER_SIZE)
    .u32(SB.magic, sb.magic)
    .u32(SB.checksum, sb.checksum)
    .u32(SB.featureCompat, sb.featureCompat)
    .u8(SB.blkszbits, sb.blkszbits)
    .u8(SB.extslots, sb.extslots)
    .u16(SB.rootNid, sb.rootNid)
    .u64(SB.inodeCount, sb.inodeCount)
    .u64(SB.buildTime, sb.buildTime)
    .u32(SB.buildTimeNsec, sb.buildTimeNsec)
    .u32(SB.blocks, sb.blocks)
    .u32(SB.metaBlkaddr, sb.metaBlkaddr)
    .u32(SB.xattrBlkaddr, sb.xattrBlkaddr)
    .set(SB.uuid, sb.uuid)
    .set(SB.volumeName, sb.volumeName)
    .u32(SB.featureIncompat, sb.featureIncompat)
    .u16(SB.u, sb.u)
    .u16(SB.extraDevices, sb.extraDevices)
    .u16(SB.devtSlotOff, sb.devtSlotOff).bytes;
}

/** The checks a RAFS v6 reader applies to the EROFS superblock. */
export function validateErofsSuperblock(sb: ErofsSuperblock): void {
  const fail = (field: string, msg: string, value: unknown, rel: number): never => {
    throw new FormatError(`superblock.${field}`, msg, { offset: EROFS_SUPER_OFFSET + rel, value });
  };
  if (sb.magic !== EROFS_SUPER_MAGIC) fail('s_magic', `bad magic 0x${sb.magic.toString(16)} (want 0xe0f5e1e2)`, sb.magic, SB.magic);
  if (sb.checksum !== 0) fail('s_checksum', `must be 0, is 0x${sb.checksum.toString(16)}`, sb.checksum, SB.checksum);
  if ((sb.featureCompat & FEATURE_COMPAT_RAFS_V6) === 0) {
    fail('s_feature_compat', `RAFS_V6 bit 0x40000000 not set (0x${sb.featureCompat.toString(16)})`, sb.featureCompat, SB.featureCompat);
  }
  if (sb.blkszbits !== EROFS_BLOCK_BITS && sb.blkszbits !== 9) fail('s_blkszbits', `unsupported block size bits ${sb.blkszbits}`, sb.blkszbits, SB.blkszbits);
  if (sb.extslots !== 0) fail('s_extslots', `must be 0, is ${sb.extslots}`, sb.extslots, SB.extslots);
  if (sb.inodeCount === 0) fail('s_inos', 'inode count is 0', sb.inodeCount, SB.inodeCount);
  if (sb.xattrBlkaddr !== 0) fail('s_xattr_blkaddr', `shared xattrs are not supported (${sb.xattrBlkaddr})`, sb.xattrBlkaddr, SB.xattrBlkaddr);
  if (sb.featureIncompat !== RAFS_V6_FEATURE_INCOMPAT) {
    fail('s_feature_incompat', `must be 0xc (chunked file + device table), is 0x${sb.featureIncompat.toString(16)}`, sb.featureIncompat, SB.featureIncompat);
  }
  if (sb.u !== 0) fail('s_u', `must be 0, is ${sb.u}`, sb.u, SB.u);
  if (sb.devtSlotOff !== DEVICE_SLOT_OFFSET_UNITS) fail('s_devt_slotoff', `must be 11, is ${sb.devtSlotOff}`, sb.devtSlotOff, SB.devtSlotOff);
}

/** RAFS v6 extended superblock, 256 bytes at absolute offset 1152 (spec §1.3). */
export interface RafsExtSuperblock {
  /** s_flags @0 (RafsSuperFlags; u64 of which only the low 32 bits are defined) */ flags: number;
  /** s_blob_table_offset @8 */ blobTableOffset: number;
  /** s_blob_table_size @16 */ blobTableSize: number;
  /** s_chunk_size @20 */ chunkSize: number;
  /** s_chunk_table_offset @24 */ chunkTableOffset: number;
  /** s_chunk_table_size @32 */ chunkTableSize: number;
  /** s_prefetch_table_offset @40 */ prefetchTableOffset: number;
  /** s_prefetch_table_size @48 */ prefetchTableSize: number;
}

const EXT = {
  flags: 0,
  blobTableOffset: 8,
  blobTableSize: 16,
  chunkSize: 20,
  chunkTableOffset: 24,
  chunkTableSize: 32,
  prefetchTableOffset: 40,
  prefetchTableSize: 48,
} as const;

export function decodeRafsExtSuperblock(file: Uint8Array): RafsExtSuperblock {
  const r = new LeReader(file.subarray(RAFS_EXT_SUPER_OFFSET, RAFS_EXT_SUPER_OFFSET + RAFS_EXT_SUPER_SIZE), 'ext_superblock', RAFS_EXT_SUPER_OFFSET);
  const flags = r.u64Parts(EXT.flags, 's_flags');
  if (flags.hi !== 0) {
    throw new FormatError('ext_superblock.s_flags', `undefined flag bits 0x${flags.hi.toString(16)} in the high word`, {
      offset: RAFS_EXT_SUPER_OFFSET,
      value: flags.hi,
    });
  }
  return {
    flags: flags.lo,
    blobTableOffset: r.u64(EXT.blobTableOffset, 's_blob_table_offset'),
    blobTableSize: r.u32(EXT.blobTableSize, 's_blob_table_size'),
    chunkSize: r.u32(EXT.chunkSize, 's_chunk_size'),
    chunkTableOffset: r.u64(EXT.chunkTableOffset, 's_chunk_table_offset'),
    chunkTableSize: r.u64(EXT.chunkTableSize, 's_chunk_table_size'),
    prefetchTableOffset: r.u64(EXT.prefetchTableOffset, 's_prefetch_table_offset'),
    prefetchTableSize: r.u32(EXT.prefetchTableSize, 's_prefetch_table_size'),
  };
}

export function encodeRafsExtSuperblock(ext: RafsExtSuperblock): Uint8Array {
  return new LeWriter(RAFS_EXT_SUPER_SIZE)
    .u64(EXT.flags, ext.flags >>> 0)
    .u64(EXT.blobTableOffset, ext.blobTableOffset)
    .u32(EXT.blobTableSize, ext.blobTableSize)
    .u32(EXT.chunkSize, ext.chunkSize)
    .u64(EXT.chunkTableOffset, ext.chunkTableOffset)
    .u64(EXT.chunkTableSize, ext.chunkTableSize)
    .u64(EXT.prefetchTableOffset, ext.prefetchTableOffset)
    .u32(EXT.prefetchTableSize, ext.prefetchTableSize).bytes;
}

/** Checks of the extended superblock against itself and the file size. */
export function validateRafsExtSuperblock(ext: RafsExtSuperblock, fileSize: number, blockSize: number): void {
  const fail = (field: string, msg: string, value: unknown, rel: number): never => {
    throw new FormatError(`ext_superblock.${field}`, msg, { offset: RAFS_EXT_SUPER_OFFSET + rel, value });
  };
  if ((ext.flags & ~RAFS_SUPER_FLAGS_KNOWN) !== 0) {
    fail('s_flags', `undefined flag bits 0x${(ext.flags & ~RAFS_SUPER_FLAGS_KNOWN).toString(16)}`, ext.flags, EXT.flags);
  }
  const compression =
    ext.flags & (RafsSuperFlags.COMPRESSION_NONE | RafsSuperFlags.COMPRESSION_LZ4 | RafsSuperFlags.COMPRESSION_GZIP | RafsSuperFlags.COMPRESSION_ZSTD);
  if (!isPowerOfTwo(compression)) fail('s_flags', `exactly one compression flag must be set (0x${ext.flags.toString(16)})`, ext.flags, EXT.flags);
  const hash = ext.flags & (RafsSuperFlags.HASH_BLAKE3 | RafsSuperFlags.HASH_SHA256);
  if (!isPowerOfTwo(hash)) fail('s_flags', `exactly one digest flag must be set (0x${ext.flags.toString(16)})`, ext.flags, EXT.flags);
  if (!isPowerOfTwo(ext.chunkSize) || ext.chunkSize < MIN_CHUNK_SIZE || ext.chunkSize > MAX_CHUNK_SIZE) {
    fail('s_chunk_size', `chunk size ${ext.chunkSize} is not a power of two in 4 KiB..16 MiB`, ext.chunkSize, EXT.chunkSize);
  }
  if (ext.blobTableSize % BLOB_ENTRY_SIZE !== 0) fail('s_blob_table_size', `${ext.blobTableSize} is not a multiple of 256`, ext.blobTableSize, EXT.blobTableSize);
  if (ext.blobTableOffset % blockSize !== 0 || ext.blobTableOffset < blockSize) {
    fail('s_blob_table_offset', `${ext.blobTableOffset} is not block aligned or inside the superblock block`, ext.blobTableOffset, EXT.blobTableOffset);
  }
  if (ext.blobTableOffset + ext.blobTableSize > fileSize) {
    fail('s_blob_table_offset', `blob table [${ext.blobTableOffset}, +${ext.blobTableSize}) exceeds the file (${fileSize} bytes)`, ext.blobTableOffset, EXT.blobTableOffset);
  }
  if (ext.chunkTableSize % 80 !== 0) fail('s_chunk_table_size', `${ext.chunkTableSize} is not a multiple of 80`, ext.chunkTableSize, EXT.chunkTableSize);
  if (ext.chunkTableSize > 0 && (ext.chunkTableOffset % blockSize !== 0 || ext.chunkTableOffset + ext.chunkTableSize > fileSize)) {
    fail('s_chunk_table_offset', `chunk table [${ext.chunkTableOffset}, +${ext.chunkTableSize}) is unaligned or exceeds the file`, ext.chunkTableOffset, EXT.chunkTableOffset);
  }
  if (ext.prefetchTableSize % 4 !== 0) fail('s_prefetch_table_size', `${ext.prefetchTableSize} is not a multiple of 4`, ext.prefetchTableSize, EXT.prefetchTableSize);
  if (ext.prefetchTableSize > 0 && ext.prefetchTableOffset + ext.prefetchTableSize > fileSize) {
    fail('s_prefetch_table_offset', `prefetch table exceeds the file`, ext.prefetchTableOffset, EXT.prefetchTableOffset);
  }
}
