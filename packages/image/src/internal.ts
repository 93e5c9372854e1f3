// @nydus-ts/image/internal: pieces of the local image commands and layer streams that this
// project's other packages, tests and tools use. No stability promise.

// Tar header fields and checksums (ustar / GNU / PAX, as Go's archive/tar reads them).
export { BLOCK_SIZE, Field, TypeFlag, headerChecksum, headerChecksumSigned, isZeroBlock, readString, readNumber, normalizeTarPath } from './layer/tar-header.js';
export { encodeTarHeader } from './layer/tar-writer.js';
// Bytes sniffed to tell gzip, zstd and plain tar apart.
export { SNIFF_LENGTH } from './layer/decompress.js';
// Files read in chunks, and written under a temporary name then renamed.
export { readFileChunks } from './layer/file-chunks.js';
export type { ReadFileChunksOptions } from './layer/file-chunks.js';
export { AtomicFileWriter, writeFileAtomic } from './atomic-file.js';
// Pieces of `image create` and `image inspect`.
export { openLayerSource, loadChunkDict } from './create-image.js';
export { openBootstrapFile } from './inspect-image.js';
