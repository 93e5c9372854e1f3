// On-disk structures of RAFS v6 (bootstrap, blob meta, ToC), each as the spec lays it out.
export { EROFS_BLOCK_SIZE, EROFS_BLOCK_BITS, EROFS_SUPER_OFFSET, EROFS_SUPER_SIZE, EROFS_SUPER_MAGIC, RAFS_EXT_SUPER_OFFSET, RAFS_EXT_SUPER_SIZE, DEVICE_SLOT_SIZE, DEVICE_SLOT_OFFSET_UNITS, DEVICE_TABLE_OFFSET, BLOB_ENTRY_SIZE, CHUNK_INFO_SIZE, CHUNK_ADDRESS_SIZE, DIRENT_SIZE, INODE_SLOT_SIZE, COMPACT_INODE_SIZE, EXTENDED_INODE_SIZE, XATTR_HEADER_SIZE, XATTR_ENTRY_HEADER_SIZE, ROOT_NID, EROFS_NAME_LEN, MAX_DIRECTORY_DEPTH, MAX_BLOBS, MAPPED_BLKADDR_ALIGN_BLOCKS, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE, DEFAULT_CHUNK_SIZE, MAX_CHUNKS_PER_BLOB, FEATURE_COMPAT_SB_CHKSUM, FEATURE_COMPAT_RAFS_V6, FEATURE_INCOMPAT_CHUNKED_FILE, FEATURE_INCOMPAT_DEVICE_TABLE, RAFS_V6_FEATURE_INCOMPAT, RafsSuperFlags, RAFS_SUPER_FLAGS_RESERVED_COMPAT, RAFS_SUPER_FLAGS_KNOWN, BlobFeatures, BLOB_FEATURES_RESERVED_INCOMPAT, CompressionAlgo, DigestAlgo, compressionNameOf, digestNameOf, superFlagForCompression, superFlagForDigest, InodeVersion, DataLayout, CHUNK_FORMAT_INDEXES, CHUNK_FORMAT_BLKBITS_MASK, FileType, S_IFMT, S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO, fileTypeOfMode, ChunkFlags, ChunkInfoV2Flags, encodeRdev, decodeRdev, alignUp, isPowerOfTwo } from './constants.js';
export type { CompressionName, DigestName, DataLayoutValue } from './constants.js';
export { LeReader, LeWriter, hexOf, isAllZero } from './bytes.js';
export { decodeErofsSuperblock, encodeErofsSuperblock, validateErofsSuperblock, decodeRafsExtSuperblock, encodeRafsExtSuperblock, validateRafsExtSuperblock } from './superblock.js';
export type { ErofsSuperblock, RafsExtSuperblock } from './superblock.js';
export { decodeDeviceSlot, encodeDeviceSlot, ZERO_DIGEST_HEX, decodeBlobEntry, encodeBlobEntry, validateBlobEntry } from './blob-table.js';
export type { DeviceSlot, BlobEntry } from './blob-table.js';
export { inodeSize, decodeInode, decodeInodeAt, encodeInode, xattrAreaSize } from './inode.js';
export type { ErofsInode } from './inode.js';
export { MAX_XATTR_NAME_SUFFIX, MAX_XATTR_VALUE_SIZE, splitXattrName, encodeXattrs, decodeXattrs } from './xattr.js';
export { compareNames, planDirentBlocks, encodeDirentBlocks, DirentList, decodeDirentBlocks, decodeDirentList } from './dirent.js';
export type { Dirent } from './dirent.js';
export { encodeChunkAddress, decodeChunkAddress, CHUNK_INFO_FIELD, encodeChunkInfo, decodeChunkInfo } from './chunk.js';
export type { ChunkAddress, ChunkInfo } from './chunk.js';
export { CI_V1_SIZE, CI_V2_SIZE, encodeChunkInfoV1, writeChunkInfoV1, decodeChunkInfoV1, encodeChunkInfoV2, decodeChunkInfoV2, CCT_HEADER_SIZE, CCT_MAGIC, encodeCompressionContextHeader, decodeCompressionContextHeader, ZRAN_CONTEXT_SIZE, encodeZranContext, decodeZranContext, BATCH_CONTEXT_SIZE, encodeBatchContext, decodeBatchContext } from './blob-meta.js';
export type { BlobChunkInfo, CompressionContextHeader, ZranContext, BatchContext } from './blob-meta.js';
export { TOC_ENTRY_SIZE, TocFlags, TocNames, encodeTocEntry, decodeTocEntry, TAR_HEADER_SIZE, encodeTailTarHeader, decodeTailTarHeader } from './toc.js';
export type { TocEntry } from './toc.js';
