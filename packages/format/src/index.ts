// @nydus-ts/format: RAFS v6 images (the bootstrap, data blobs, blob meta and ToC) read and
// written in memory. No I/O: bytes come in through a ByteSource or BlobBackend and go out through
// a BlobSink supplied by the caller. On-disk structures and the builder's tree are behind
// `@nydus-ts/format/internal` (no stability promise).

// File names are bytes: names that are not UTF-8 travel in strings as lone surrogates.
export { decodeFsName, encodeFsName, hasEscapedBytes, printableFsName } from './names.js';

// Layer entries: what the builder takes in and what unpacking a bootstrap gives back.
export type { LayerEntry, LayerEntryType } from './entry.js';

// Chunks: compression and digests.
export { compressChunk, decompressChunk, CHUNK_COMPRESSORS } from './compression.js';
export type { ChunkCompressor } from './compression.js';
export { digestChunk, CHUNK_DIGESTERS } from './chunk-digest.js';
export type { ChunkDigester } from './chunk-digest.js';

// Reading a bootstrap: inodes, directories, xattrs, chunk maps, the blob table.
export { bufferSource } from './reader/byte-source.js';
export type { ByteSource } from './reader/byte-source.js';
export { BootstrapReader, DEFAULT_MAX_BOOTSTRAP_SIZE, MAX_WALK_DEPTH, MAX_SYMLINK_SIZE } from './reader/bootstrap-reader.js';
export type { ChunkTableView } from './reader/chunk-table.js';
export type {
  BootstrapReaderOptions,
  RafsInode,
  RafsInodeType,
  RafsDirent,
  ReaddirOptions,
  BlobInfo,
  ChunkRef,
  ChunkSlice,
  WalkEntry,
} from './reader/bootstrap-reader.js';

// Reading file data through the chunks of its blobs (bytes from a BlobBackend, every chunk verified).
export { RafsFileReader } from './reader/file-reader.js';
export type { BlobBackend, RafsFileReaderOptions } from './reader/file-reader.js';

// Blob meta (the chunk-info array), the blob's ToC and tail sections, whole-blob verification.
export { parseBlobMetaFile, parseBlobMetaSection, parseBlobMetaHead, blobMetaHeadSize, readBlobMeta, checkBlobMetaAgainstEntry, DEFAULT_MAX_BLOB_META_SIZE } from './reader/blob-meta.js';
export type { BlobMeta, BlobMetaOptions } from './reader/blob-meta.js';
export { parseBlobToc, readBlobToc, walkBlobTail, extractBlobSection, MAX_TOC_SIZE, TOC_TAIL_PROBE_SIZE, DEFAULT_MAX_SECTION_SIZE } from './reader/blob-toc.js';
export type { BlobToc, BlobTocLocation, BlobTailSection } from './reader/blob-toc.js';
export { verifyBlob } from './reader/blob-verify.js';
export type { BlobVerification, VerifyBlobOptions } from './reader/blob-verify.js';
// Reference (targz-ref / tar-ref) blobs: their chunk-info arrays live in separate meta blobs.
export { attachRefBlobMetas, fetchRefBlobMeta, isSeparateBlob } from './reader/ref-blob-meta.js';
// ZRAN meta in the seekable layout: the head at mount, each dictionary's zstd frame on first use.
export { fetchSeekableCiLayout, parseSeekableCiTail, ciFrameRange, ciFramesCovering, decodeCiFrame, SeekTableBeyondTail, SEEKABLE_TAIL_PROBE_SIZE } from './reader/ref-blob-meta.js';
export type { SeekableCiLayout } from './reader/ref-blob-meta.js';
export type { SeekTable, SeekTableFrame } from './layout/zstd-seekable.js';
export type { CompressionContextHeader } from './layout/blob-meta.js';

// Flags, limits and fields that the reader's results carry (BlobInfo.features, ChunkRef.flags, RafsInode.rdev).
export {
  BlobFeatures,
  ChunkFlags,
  ChunkInfoV2Flags,
  decodeRdev,
  encodeRdev,
  EROFS_BLOCK_SIZE,
  MAX_BLOBS,
  MIN_CHUNK_SIZE,
  MAX_CHUNK_SIZE,
  DEFAULT_CHUNK_SIZE,
} from './layout/constants.js';
export type { ZranContext } from './layout/blob-meta.js';

// Building one layer: a bootstrap plus a data blob (chunked, deduplicated, compressed).
export { buildLayer, resolveBuildLayerOptions, BUILD_LAYER_DEFAULTS, IMPLIED_DIRECTORY_XATTR, WHOLE_CONTENT } from './builder/build-layer.js';
export type { BuildLayerOptions, ResolvedBuildLayerOptions, LayerBuildResult, LayerBlobInfo, WholeContentSource } from './builder/build-layer.js';
export { INLINED_BLOB_ID } from './builder/blob-writer.js';
export type { BlobSink, LayerBuildStats } from './builder/blob-writer.js';
export { ChunkDict } from './builder/chunk-dict.js';
export type { ChunkDictSource } from './builder/chunk-dict.js';

// Merging layer bootstraps (OCI whiteouts and opaque directories applied).
export { mergeBootstraps } from './builder/merge.js';
export type { MergeLayer, MergeOptions, MergeResult } from './builder/merge.js';

// Reference layers (targz-ref / tar-ref): the original gzip or tar stays the data blob.
export { buildRefLayer } from './builder/ref-layer.js';
export type { BuildRefLayerOptions, RefLayerBuildResult } from './builder/ref-layer.js';
export { TarRefLocator, ZranIndexBuilder } from './builder/zran-index.js';
export type { RefChunkLocator, RefChunkPlace, ZranCheckpoint } from './builder/zran-index.js';
