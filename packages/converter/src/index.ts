// @nydus-ts/converter: OCI/Docker images to Nydus images between registries (nydusify convert),
// and checks of a converted image against its source (nydusify check). Local image work
// (create, merge, inspect, check, unpack a bootstrap) is @nydus-ts/image's; copying images is
// @nydus-ts/registry's. Pieces for this project's own tools are behind ./internal.

// Conversion.
export { convertImage, resolveConvertImageOptions, CONVERT_IMAGE_DEFAULTS } from './convert/convert-image.js';
export type {
  ConvertImageOptions,
  ResolvedConvertOptions,
  ConvertImageResult,
  ConvertProgressEvent,
  ConvertedLayerReport,
  ConvertedManifestReport,
} from './convert/convert-image.js';

// Checking a converted image against its source.
export { checkConvertedImage, CHECK_CONVERTED_IMAGE_DEFAULTS } from './check/check-converted-image.js';
export type { CheckConvertedImageOptions, CheckReport, CheckCounts } from './check/check-converted-image.js';

// Image sources beyond a registry and oci: layouts (those are @nydus-ts/registry's): archives and dir:.
export { openImageSource, openArchiveSource, parseArchiveLocation, createRegistryClient } from './sources/index.js';
export type { OpenImageSourceOptions, OpenedImageSource, ArchiveKind, ArchiveLocation } from './sources/index.js';
export { OciArchiveSource } from './sources/oci-archive.js';
export { DockerArchiveSource } from './sources/docker-archive.js';
export { DirectoryImageSource, DIRECTORY_LAYER_MEDIA_TYPE, SOURCE_FORMS } from './convert/convert-source.js';

// Nydus image conventions: media types, annotations, the bootstrap layer (spec §5).
export {
  NYDUS_BLOB_MEDIA_TYPE,
  NYDUS_MANIFEST_ARTIFACT_TYPE,
  NYDUS_CONFIG_MEDIA_TYPE,
  NYDUS_OS_FEATURE,
  NYDUS_FS_VERSION,
  EMPTY_LAYER,
  DOCKER_EMPTY_LAYER_DIGEST,
  BOOTSTRAP_PATH_IN_LAYER,
  LEGACY_BOOTSTRAP_PATH_IN_LAYER,
  Annotation,
  bootstrapLayerMediaType,
  blobMetaPathInLayer,
  isNydusBlobLayer,
  isNydusBootstrapLayer,
  isNydusManifestDescriptor,
  isNydusManifest,
} from './convert/nydus-conventions.js';
export { packBootstrapLayer, readBootstrapLayer } from './convert/bootstrap-layer.js';
export type { PackedBootstrapLayer, BootstrapLayerContent } from './convert/bootstrap-layer.js';
// The original layers a targz-ref bootstrap reads from (they travel with the image when copied).
export { referencedOriginalLayers } from './convert/ref-image.js';
