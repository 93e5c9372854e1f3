// @nydus-ts/format/internal: the on-disk structures of RAFS v6 as the spec lays them out, the
// builder's in-memory tree and the bootstrap writer. For this project's own packages, tests and
// tools; no stability promise: any of these may change with the code.

// On-disk structures (superblocks, blob table, inodes, xattrs, dirents, chunk infos, blob meta, ToC).
export { EROFS_BLOCK_SIZE, EROFS_BLOCK_BITS, EROFS_SUPER_OFFSET, EROFS_SUPER_SIZE, EROFS_SUPER_MAGIC, RAFS_EXT_SUPER_OFFSET, RAFS_EXT_SUPER_SIZE, DEVICE_SLOT_SIZE, DEVICE_SLOT_OFFSET_UNITS, DEVICE_TABLE_OFFSET, BLOB_ENTRY_SIZE, CHUNK_INFO_SIZE, CHUNK_ADDRESS_SIZE, DIRENT_SIZE, INODE_SLOT_SIZE, COMPACT_INODE_SIZE, EXTENDED_INODE_SIZE, XATTR_HEADER_SIZE, XATTR_ENTRY_HEADER_SIZE, ROOT_NID, EROFS_NAME_LEN, MAX_DIRECTORY_DEPTH, MAX_BLOBS, MAPPED_BLKADDR_ALIGN_BLOCKS, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE, DEFAULT_CHUNK_SIZE, MAX_CHUNKS_PER_BLOB, FEATURE_COMPAT_SB_CHKSUM, FEATURE_COMPAT_RAFS_V6, FEATURE_INCOMPAT_CHUNKED_FILE, FEATURE_INCOMPAT_DEVICE_TABLE, RAFS_V6_FEATURE_INCOMPAT, RafsSuperFlags, RAFS_SUPER_FLAGS_RESERVED_COMPAT, RAFS_SUPER_FLAGS_KNOWN, BlobFeatures, BLOB_FEATURES_RESERVED_INCOMPAT, CompressionAlgo, DigestAlgo, compressionNameOf, digestNameOf, superFlagForCompression, superFlagForDigest, InodeVersion, DataLayout, CHUNK_FORMAT_INDEXES, CHUNK_FORMAT_BLKBITS_MASK, FileType, S_IFMT, S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO, fileTypeOfMode, ChunkFlags, ChunkInfoV2Flags, encodeRdev, decodeRdev, alignUp, isPowerOfTwo } from './layout/constants.js';
export type { CompressionName, DigestName, DataLayoutValue } from './layout/constants.js';
export { LeReader, LeWriter, hexOf, isAllZero } from './layout/bytes.js';
export { decodeErofsSuperblock, encodeErofsSuperblock, validateErofsSuperblock, decodeRafsExtSuperblock, encodeRafsExtSuperblock, validateRafsExtSuperblock } from './layout/superblock.js';
export type { ErofsSuperblock, RafsExtSuperblock } from './layout/superblock.js';
export { decodeDeviceSlot, encodeDeviceSlot, ZERO_DIGEST_HEX, decodeBlobEntry, encodeBlobEntry, validateBlobEntry } from './layout/blob-table.js';
export type { DeviceSlot, BlobEntry } from './layout/blob-table.js';
export { inodeSize, decodeInode, decodeInodeAt, encodeInode, xattrAreaSize } from './layout/inode.js';
export type { ErofsInode } from './layout/inode.js';
export { MAX_XATTR_NAME_SUFFIX, MAX_XATTR_VALUE_SIZE, splitXattrName, encodeXattrs, decodeXattrs } from './layout/xattr.js';
export { compareNames, planDirentBlocks, encodeDirentBlocks, DirentList, decodeDirentBlocks, decodeDirentList } from './layout/dirent.js';
export type { Dirent } from './layout/dirent.js';
export { encodeChunkAddress, decodeChunkAddress, CHUNK_INFO_FIELD, encodeChunkInfo, decodeChunkInfo } from './layout/chunk.js';
export type { ChunkAddress, ChunkInfo } from './layout/chunk.js';
export { CI_V1_SIZE, CI_V2_SIZE, encodeChunkInfoV1, writeChunkInfoV1, decodeChunkInfoV1, encodeChunkInfoV2, decodeChunkInfoV2, CCT_HEADER_SIZE, CCT_MAGIC, encodeCompressionContextHeader, decodeCompressionContextHeader, ZRAN_CONTEXT_SIZE, encodeZranContext, decodeZranContext, BATCH_CONTEXT_SIZE, encodeBatchContext, decodeBatchContext } from './layout/blob-meta.js';
export type { BlobChunkInfo, CompressionContextHeader, ZranContext, BatchContext } from './layout/blob-meta.js';
export { ZSTD_SEEK_TABLE_MAGIC, ZSTD_SEEKABLE_MAGIC, ZSTD_SKIPPABLE_HEADER_SIZE, ZSTD_SEEK_TABLE_FOOTER_SIZE, ZSTD_SEEKABLE_MAX_FRAMES, seekTableSize, encodeSeekTable, seekTableSizeFromFooter, decodeSeekTable } from './layout/zstd-seekable.js';
export type { SeekTable, SeekTableFrame } from './layout/zstd-seekable.js';
export { TOC_ENTRY_SIZE, TocFlags, TocNames, encodeTocEntry, decodeTocEntry, TAR_HEADER_SIZE, encodeTailTarHeader, decodeTailTarHeader } from './layout/toc.js';
export type { TocEntry } from './layout/toc.js';

// The builder's in-memory tree and chunk store.
export { TYPE_BITS, kindOfMode, K_FILE, K_DIR, K_SYMLINK, K_CHR, K_BLK, K_FIFO, K_SOCK, KINDS, KIND_CODE, nameKey, nameBytes, displayName, NO_XATTRS, SECOND_STORE, ChunkStore, FsTree, ChildSorter } from './builder/tree.js';
export type { NodeKind, TreeBlob, TreeChunk, ForeignChunk, KeyedNode, ChildLists } from './builder/tree.js';

// Bootstrap and blob writers.
export { writeBootstrap, writeBootstrapTo, withBlobEntry, writeBootstrapOfReferencedBlobs } from './builder/bootstrap-writer.js';
export type { BootstrapSettings, ReferencedBlobsSettings } from './builder/bootstrap-writer.js';
export { BlobWriter } from './builder/blob-writer.js';
export type { BlobTail } from './builder/blob-writer.js';
export { checkRange } from './reader/byte-source.js';
