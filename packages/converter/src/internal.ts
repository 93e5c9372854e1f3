// @nydus-ts/converter/internal: the steps of a conversion and a check, for this project's own
// tests and tools. No stability promise.

// One layer converted (native blob or targz-ref meta blob).
export { convertLayer } from './convert/layer-converter.js';
export type { ConvertLayerOptions, ConvertedLayer } from './convert/layer-converter.js';
export { convertRefLayer } from './convert/ref-layer-converter.js';
export type { ConvertRefLayerOptions, ConvertedRefLayer, OriginalLayerAction } from './convert/ref-layer-converter.js';
// Manifests and indexes of a converted image.
export { buildNydusManifest, buildMergedIndex, nydusIndexEntry, platformOf } from './convert/nydus-manifest.js';
export type { NydusManifestInput, NydusManifestOutput } from './convert/nydus-manifest.js';
export { NYDUS_BUILDER_VERSION, BOOTSTRAP_HISTORY, EMPTY_LAYER_HISTORY, CHUNK_DICT_HISTORY } from './convert/nydus-conventions.js';
// Sources as conversion opens them, registry clients, chunk dict images.
export { openConvertSource, makeRegistryClient } from './convert/convert-source.js';
export type { ConvertSource, OpenConvertSourceOptions } from './convert/convert-source.js';
export { loadChunkDictImage, parseChunkDictReference } from './convert/chunk-dict-image.js';
export type { ChunkDictImage } from './convert/chunk-dict-image.js';
// Archives: tar members indexed by their headers, served as byte ranges.
export { MAX_ARCHIVE_MANIFEST_BYTES } from './sources/oci-archive.js';
export { MAX_ARCHIVE_CONFIG_BYTES } from './sources/docker-archive.js';
export type { DockerArchiveEntry } from './sources/docker-archive.js';
export { ArchiveFile } from './sources/archive-file.js';
export { indexTarFile, normalizeMemberName } from './sources/tar-index.js';
export type { TarIndex, TarMember } from './sources/tar-index.js';
// The trees a check compares.
export { buildExpectedTree } from './check/expected-tree.js';
export type { ExpectedTreeOptions } from './check/expected-tree.js';
export { buildActualTree } from './check/actual-tree.js';
export type { ActualTreeOptions, ActualTreeResult } from './check/actual-tree.js';
export { compareTrees } from './check/compare.js';
export type { CheckAttrs, CheckEntry, CheckNodeType, CheckTree } from './check/check-tree.js';
