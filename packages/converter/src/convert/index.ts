// OCI/Docker image → Nydus image conversion (nydusify convert).
export { convertImage, resolveConvertImageOptions } from './convert-image.js';
export type { ConvertImageOptions, ConvertImageResult, ConvertProgressEvent, ConvertedLayerReport, ConvertedManifestReport, ResolvedConvertOptions } from './convert-image.js';
export { convertLayer } from './layer-converter.js';
export { convertRefLayer } from './ref-layer-converter.js';
export type { ConvertRefLayerOptions, ConvertedRefLayer, OriginalLayerAction } from './ref-layer-converter.js';
export { referencedOriginalLayers } from './ref-image.js';
export type { ConvertLayerOptions, ConvertedLayer } from './layer-converter.js';
export { packBootstrapLayer, readBootstrapLayer } from './bootstrap-layer.js';
export type { PackedBootstrapLayer, BootstrapLayerContent } from './bootstrap-layer.js';
export { buildNydusManifest, buildMergedIndex, nydusIndexEntry, platformOf } from './nydus-manifest.js';
export type { NydusManifestInput, NydusManifestOutput } from './nydus-manifest.js';
export { openConvertSource, makeRegistryClient, DirectoryImageSource, DIRECTORY_LAYER_MEDIA_TYPE, SOURCE_FORMS } from './convert-source.js';
export type { ConvertSource, OpenConvertSourceOptions } from './convert-source.js';
export { loadChunkDictImage, parseChunkDictReference } from './chunk-dict-image.js';
export type { ChunkDictImage } from './chunk-dict-image.js';
export * from './nydus-conventions.js';
