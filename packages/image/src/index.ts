// @nydus-ts/image: local Nydus images, as `nydus-image` handles them: build a layer from a
// directory or a tar, merge layer bootstraps, inspect, check and unpack; plus the layer streams
// they are made of (tar and directory readers, a tar writer, layer decompression). No registry:
// registry conversion is @nydus-ts/converter's.

// Local image commands (`nydusify-ts image create|merge|inspect|check|unpack`).
export { createImage, resolveCreateImageOptions, CREATE_IMAGE_DEFAULTS, SOURCE_TYPES } from './create-image.js';
export type { CreateImageOptions, ResolvedCreateImageOptions, CreateImageResult, SourceType } from './create-image.js';
export { mergeImage } from './merge-image.js';
export type { MergeImageOptions } from './merge-image.js';
export { inspectImage } from './inspect-image.js';
export type { ImageInspection, InspectedNode } from './inspect-image.js';
export { checkImage } from './check-image.js';
export type { CheckImageOptions, CheckImageResult } from './check-image.js';
export { unpackImage, bootstrapEntries } from './unpack-image.js';
export type { UnpackImageOptions } from './unpack-image.js';

// Layer streams: LayerEntry sequences (see @nydus-ts/format) from and to tars and directories.
export { readTarEntries } from './layer/tar-reader.js';
export type { ReadTarEntriesOptions } from './layer/tar-reader.js';
export { writeTarEntries } from './layer/tar-writer.js';
export type { WriteTarEntriesOptions } from './layer/tar-writer.js';
export { readDirectoryEntries } from './layer/dir-reader.js';
export type { ReadDirectoryEntriesOptions } from './layer/dir-reader.js';
export { decompressStream, detectCompression } from './layer/decompress.js';
export type { DecompressStreamOptions, LayerCompression } from './layer/decompress.js';

// Reference layers (targz-ref / tar-ref): a RAFS meta blob built from one pass over the original.
export { RefLayerUnsupportedError, buildRefLayerFromStream, inflateWithCheckpoints } from './layer/ref-layer.js';
export type { BuildRefLayerFromStreamOptions, RefLayerResult } from './layer/ref-layer.js';
