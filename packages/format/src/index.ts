export type { LayerEntry, LayerEntryType } from './entry.js';
export { decodeFsName, encodeFsName, hasEscapedBytes, printableFsName } from './names.js';
export * from './layout/index.js';
export { compressChunk, decompressChunk, CHUNK_COMPRESSORS } from './compression.js';
export type { ChunkCompressor } from './compression.js';
export { digestChunk, CHUNK_DIGESTERS } from './chunk-digest.js';
export type { ChunkDigester } from './chunk-digest.js';
export * from './reader/index.js';
export * from './builder/index.js';
