// RAFS v6 writer side: layer builder, bootstrap writer and bootstrap merge.
export { IMPLIED_DIRECTORY_XATTR, WHOLE_CONTENT, buildLayer, resolveBuildLayerOptions } from './build-layer.js';
export type { WholeContentSource } from './build-layer.js';
export type { BuildLayerOptions, ResolvedBuildLayerOptions, LayerBuildResult, LayerBlobInfo } from './build-layer.js';
export { INLINED_BLOB_ID } from './blob-writer.js';
export type { BlobSink, LayerBuildStats } from './blob-writer.js';
export { ChunkDict } from './chunk-dict.js';
export type { ChunkDictSource } from './chunk-dict.js';
export { writeBootstrap, writeBootstrapTo } from './bootstrap-writer.js';
export type { BootstrapSettings } from './bootstrap-writer.js';
export { ChunkStore, FsTree } from './tree.js';
export type { NodeKind, TreeBlob, TreeChunk } from './tree.js';
export { mergeBootstraps } from './merge.js';
export type { MergeLayer, MergeOptions, MergeResult } from './merge.js';
export { buildRefLayer } from './ref-layer.js';
export type { BuildRefLayerOptions, RefLayerBuildResult } from './ref-layer.js';
export { TarRefLocator, ZranIndexBuilder } from './zran-index.js';
export type { RefChunkLocator, RefChunkPlace, ZranCheckpoint } from './zran-index.js';
