// RAFS v6 reader side: bootstrap, blob meta, ToC and file data (no I/O; bytes come through
// ByteSource / BlobBackend implementations supplied by the caller).
export { bufferSource, type ByteSource } from './byte-source.js';
export {
  BootstrapReader,
  DEFAULT_MAX_BOOTSTRAP_SIZE,
  MAX_WALK_DEPTH,
  MAX_SYMLINK_SIZE,
  type BootstrapReaderOptions,
  type RafsInode,
  type RafsInodeType,
  type RafsDirent,
  type ReaddirOptions,
  type BlobInfo,
  type ChunkRef,
  type ChunkSlice,
  type WalkEntry,
} from './bootstrap-reader.js';
export {
  parseBlobMetaFile,
  parseBlobMetaSection,
  readBlobMeta,
  checkBlobMetaAgainstEntry,
  DEFAULT_MAX_BLOB_META_SIZE,
  type BlobMeta,
  type BlobMetaOptions,
} from './blob-meta.js';
export {
  parseBlobToc,
  readBlobToc,
  walkBlobTail,
  extractBlobSection,
  MAX_TOC_SIZE,
  TOC_TAIL_PROBE_SIZE,
  DEFAULT_MAX_SECTION_SIZE,
  type BlobToc,
  type BlobTocLocation,
  type BlobTailSection,
} from './blob-toc.js';
export { RafsFileReader, type BlobBackend, type RafsFileReaderOptions } from './file-reader.js';
export { verifyBlob, type BlobVerification, type VerifyBlobOptions } from './blob-verify.js';
export { attachRefBlobMetas, fetchRefBlobMeta, isSeparateBlob } from './ref-blob-meta.js';
