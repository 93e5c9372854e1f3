export { readTarEntries } from './layer/tar-reader.js';
export type { ReadTarEntriesOptions } from './layer/tar-reader.js';
export { writeTarEntries } from './layer/tar-writer.js';
export type { WriteTarEntriesOptions } from './layer/tar-writer.js';
export { readDirectoryEntries } from './layer/dir-reader.js';
export type { ReadDirectoryEntriesOptions } from './layer/dir-reader.js';
export { decompressStream, detectCompression } from './layer/decompress.js';
export type { DecompressStreamOptions, LayerCompression } from './layer/decompress.js';
export * from './local/index.js';
