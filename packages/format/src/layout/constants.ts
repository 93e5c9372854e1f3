/** EROFS / RAFS v6 constants (spec §1). */

export const EROFS_BLOCK_SIZE = 4096;
export const EROFS_BLOCK_BITS = 12;
/** Absolute offset of the EROFS superblock. */
export const EROFS_SUPER_OFFSET = 1024;
export const EROFS_SUPER_SIZE = 128;
export const EROFS_SUPER_MAGIC = 0xe0f5e1e2;
/** Absolute offset of the RAFS v6 extended superblock. */
export const RAFS_EXT_SUPER_OFFSET = 1152;
export const RAFS_EXT_SUPER_SIZE = 256;
/** `s_devt_slotoff` is in units of the slot size; 11 × 128 = 1408. */
export const DEVICE_SLOT_SIZE = 128;
export const DEVICE_SLOT_OFFSET_UNITS = 11;
export const DEVICE_TABLE_OFFSET = DEVICE_SLOT_OFFSET_UNITS * DEVICE_SLOT_SIZE;
export const BLOB_ENTRY_SIZE = 256;
export const CHUNK_INFO_SIZE = 80;
export const CHUNK_ADDRESS_SIZE = 8;
export const DIRENT_SIZE = 12;
export const INODE_SLOT_SIZE = 32;
export const COMPACT_INODE_SIZE = 32;
export const EXTENDED_INODE_SIZE = 64;
export const XATTR_HEADER_SIZE = 12;
export const XATTR_ENTRY_HEADER_SIZE = 4;
/** The root inode sits one block after the meta base, so its nid is 4096 / 32. */
export const ROOT_NID = 128;
export const EROFS_NAME_LEN = 255;
/**
 * Deepest directory nesting, in path components below the root (PATH_MAX 4096 allows at most
 * 2048 levels): the builder refuses deeper directories and the reader and merge refuse to walk
 * them, so that nothing builds what its own tools cannot read. Non-directories may sit one
 * level below the deepest directory.
 */
export const MAX_DIRECTORY_DEPTH = 2048;
/** Device slots hold at most 254 blobs (device id is one byte, 0 = the bootstrap). */
export const MAX_BLOBS = 254;
/** Blob placement for `mapped_blkaddr` starts on 512 KiB boundaries (in blocks). */
export const MAPPED_BLKADDR_ALIGN_BLOCKS = 0x80000 / EROFS_BLOCK_SIZE;

export const MIN_CHUNK_SIZE = 0x1000;
export const MAX_CHUNK_SIZE = 0x1000000;
export const DEFAULT_CHUNK_SIZE = 0x100000;
/** CI index is 24 bits. */
export const MAX_CHUNKS_PER_BLOB = 0xffffff;

/** `s_feature_compat` */
export const FEATURE_COMPAT_SB_CHKSUM = 0x1;
export const FEATURE_COMPAT_RAFS_V6 = 0x4000_0000;
/** `s_feature_incompat` */
export const FEATURE_INCOMPAT_CHUNKED_FILE = 0x4;
export const FEATURE_INCOMPAT_DEVICE_TABLE = 0x8;
export const RAFS_V6_FEATURE_INCOMPAT = FEATURE_INCOMPAT_CHUNKED_FILE | FEATURE_INCOMPAT_DEVICE_TABLE;

/** `RafsSuperFlags` in the extended superblock (u64, but all defined bits fit in 32). */
export const RafsSuperFlags = {
  COMPRESSION_NONE: 0x1,
  COMPRESSION_LZ4: 0x2,
  HASH_BLAKE3: 0x4,
  HASH_SHA256: 0x8,
  EXPLICIT_UID_GID: 0x10,
  HAS_XATTR: 0x20,
  COMPRESSION_GZIP: 0x40,
  COMPRESSION_ZSTD: 0x80,
  INLINED_CHUNK_DIGEST: 0x100,
  TARTFS_MODE: 0x200,
  ENCRYPTION_NONE: 0x0100_0000,
  ENCRYPTION_ASE_128_XTS: 0x0200_0000,
} as const;
/** Reserved-compatible bits 0x0400_0000..0x8000_0000: accepted and ignored. */
export const RAFS_SUPER_FLAGS_RESERVED_COMPAT = 0xfc00_0000;
export const RAFS_SUPER_FLAGS_KNOWN = 0x3ff | 0x0300_0000 | RAFS_SUPER_FLAGS_RESERVED_COMPAT;

/** `BlobFeatures` (spec §1.5). */
export const BlobFeatures = {
  ALIGNED: 0x1,
  INLINED_FS_META: 0x2,
  CHUNK_INFO_V2: 0x4,
  ZRAN: 0x8,
  SEPARATE: 0x10,
  INLINED_CHUNK_DIGEST: 0x20,
  TARFS: 0x40,
  BATCH: 0x80,
  ENCRYPTED: 0x100,
  IS_CHUNKDICT_GENERATED: 0x200,
  IS_SEPARATED_WITH_PREFETCH_FILES: 0x400,
  EXTERNAL: 0x800,
  HAS_TAR_HEADER: 0x1000_0000,
  HAS_TOC: 0x2000_0000,
  CAP_TAR_TOC: 0x4000_0000,
  V5_NO_EXT_BLOB_TABLE: 0x8000_0000,
} as const;
/** Reserved-incompatible blob feature bits: a blob with any of these is rejected. */
export const BLOB_FEATURES_RESERVED_INCOMPAT = 0x0000_f000;

/** Compression algorithm as stored in blob entries and CCT headers. */
export const CompressionAlgo = { none: 0, lz4_block: 1, gzip: 2, zstd: 3 } as const;
export type CompressionName = keyof typeof CompressionAlgo;
/** Digest algorithm as stored in blob entries. */
export const DigestAlgo = { blake3: 0, sha256: 1 } as const;
export type DigestName = keyof typeof DigestAlgo;

export function compressionNameOf(algo: number): CompressionName | undefined {
  return (Object.keys(CompressionAlgo) as CompressionName[]).find((k) => CompressionAlgo[k] === algo);
}
export function digestNameOf(algo: number): DigestName | undefined {
  return (Object.keys(DigestAlgo) as DigestName[]).find((k) => DigestAlgo[k] === algo);
}

export function superFlagForCompression(name: CompressionName): number {
  switch (name) {
    case 'none':
      return RafsSuperFlags.COMPRESSION_NONE;
    case 'lz4_block':
      return RafsSuperFlags.COMPRESSION_LZ4;
    case 'gzip':
      return RafsSuperFlags.COMPRESSION_GZIP;
    case 'zstd':
      return RafsSuperFlags.COMPRESSION_ZSTD;
  }
}
export function superFlagForDigest(name: DigestName): number {
  return name === 'blake3' ? RafsSuperFlags.HASH_BLAKE3 : RafsSuperFlags.HASH_SHA256;
}

/** `i_format` bit 0 and data layouts (bits 1..3). */
export const InodeVersion = { COMPACT: 0, EXTENDED: 1 } as const;
export const DataLayout = { FLAT_PLAIN: 0, FLAT_INLINE: 2, CHUNK_BASED: 4 } as const;
export type DataLayoutValue = (typeof DataLayout)[keyof typeof DataLayout];
/** Chunk format in `i_u` of regular files. */
export const CHUNK_FORMAT_INDEXES = 0x20;
export const CHUNK_FORMAT_BLKBITS_MASK = 0x1f;

/** Directory entry file types. */
export const FileType = {
  UNKNOWN: 0,
  REG: 1,
  DIR: 2,
  CHRDEV: 3,
  BLKDEV: 4,
  FIFO: 5,
  SOCK: 6,
  SYMLINK: 7,
} as const;

/** st_mode type bits. */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export function fileTypeOfMode(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return FileType.REG;
    case S_IFDIR:
      return FileType.DIR;
    case S_IFCHR:
      return FileType.CHRDEV;
    case S_IFBLK:
      return FileType.BLKDEV;
    case S_IFIFO:
      return FileType.FIFO;
    case S_IFSOCK:
      return FileType.SOCK;
    case S_IFLNK:
      return FileType.SYMLINK;
    default:
      return FileType.UNKNOWN;
  }
}

/** Chunk table (`RafsV5ChunkInfo`) flags. */
export const ChunkFlags = { COMPRESSED: 0x1, HOLECHUNK: 0x2, ENCRYPTED: 0x4, BATCH: 0x8, HAS_CRC32: 0x10 } as const;
/** CI v2 flags (top byte of word 0). */
export const ChunkInfoV2Flags = { COMPRESSED: 0x01, ZRAN: 0x02, BATCH: 0x04, ENCRYPTED: 0x08, HAS_CRC32: 0x10 } as const;

/** glibc makedev() truncated to 32 bits, as RAFS stores rdev in `i_u`. */
export function encodeRdev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}
export function decodeRdev(rdev: number): { major: number; minor: number } {
  return { major: (rdev >>> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
