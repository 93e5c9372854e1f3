/**
 * Every media type and annotation of a Nydus image in a registry (spec §5.1/§5.2), in one
 * place. Each says who sets it and who reads it.
 */
import { MediaType } from '@nydus-ts/core';
import type { Descriptor } from '@nydus-ts/core';

/** Media type of a Nydus data blob layer (nydusify, snapshotter; the snapshotter never downloads it). */
export const NYDUS_BLOB_MEDIA_TYPE = 'application/vnd.oci.image.layer.nydus.blob.v1';
/** `artifactType` of a Nydus manifest's descriptor in a merged index (accel `makeManifestIndex`). */
export const NYDUS_MANIFEST_ARTIFACT_TYPE = 'application/vnd.nydus.image.manifest.v1+json';
/**
 * Config media type of a Nydus manifest that shares an index with OCI ones (accel, snapshotter
 * `MergeManifest`; written with mergePlatform and mergeManifest): a runtime without Nydus
 * support does not know it, so it cannot pick the Nydus manifest by mistake.
 */
export const NYDUS_CONFIG_MEDIA_TYPE = 'application/vnd.nydus.image.config.v1+json';
/**
 * Legacy index marker on a Nydus manifest's platform (`platform.os.features`), written before
 * nydus v2.3.5 and with keepSourceManifests; still read (some registries reject the field).
 */
export const NYDUS_OS_FEATURE = 'nydus.remoteimage.v1';

/**
 * The empty layer prepended to each OCI manifest of a merged index (accel `PrependEmptyLayer`):
 * Go's gzip of an empty tar (1024 zero bytes), 32 bytes. With it, no layer of the OCI image is
 * shared with a plain OCI image, whose snapshots nydus-snapshotter could otherwise reuse.
 */
export const EMPTY_LAYER = {
  bytes: Buffer.from('1f8b08000000000000ff621805a360148c5800080000ffff2eafb5ef00040000', 'hex'),
  digest: 'sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1',
  /** sha256 of the 1024 zero bytes: its `rootfs.diff_ids` entry. */
  diffId: 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef',
} as const;
/** Docker's own empty gzip layer (32 bytes; another gzip header of the same empty tar). */
export const DOCKER_EMPTY_LAYER_DIGEST = 'sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4';

/** Bootstrap layer media type: a gzip'd tar, OCI or Docker flavour. */
export function bootstrapLayerMediaType(oci: boolean): string {
  return oci ? MediaType.OciLayerGzip : MediaType.DockerLayerGzip;
}

/** Path of the merged bootstrap inside the bootstrap layer (legacy: `image.boot` at the root). */
export const BOOTSTRAP_PATH_IN_LAYER = 'image/image.boot';
export const LEGACY_BOOTSTRAP_PATH_IN_LAYER = 'image.boot';
/** `image/<blob-id>.blob.meta`: the CI table file of one blob, shipped in the bootstrap layer (§3.7, §5.4). */
export function blobMetaPathInLayer(blobId: string): string {
  return `image/${blobId}.blob.meta`;
}

const P = 'containerd.io/snapshot/';

export const Annotation = {
  /** `"true"` on every Nydus blob layer (nydusify, snapshotter; snapshotter skips download). */
  NydusBlob: `${P}nydus-blob`,
  /** `"true"` on the bootstrap layer, which must be last (snapshotter unpacks it). */
  NydusBootstrap: `${P}nydus-bootstrap`,
  /** `"6"` on the bootstrap layer and the manifest (RAFS version). */
  NydusFsVersion: `${P}nydus-fs-version`,
  /** nydus-ref layers of oci-ref images: `sha256:` of the original tar.gz (not written by us). */
  NydusRef: `${P}nydus-ref`,
  /** Blob layers of encrypted images (not written by us). */
  NydusEncryptedBlob: `${P}nydus-encrypted-blob`,
  /** Older bootstrap layers: JSON array of blob ids (legacy, not written by us). */
  NydusReferenceBlobIds: `${P}nydus-reference-blob-ids`,
  /** Very old images' blob id list (legacy, stripped by `nydusify copy`, never written by us). */
  NydusBlobIds: `${P}nydus-blob-ids`,
  /** Manifest: digest of the source manifest (accel; written by us). */
  NydusSourceDigest: `${P}nydus-source-digest`,
  /** Manifest: the source reference (accel; written by us). */
  NydusSourceReference: `${P}nydus-source-reference`,
  /** Manifest: the builder that made the image (accel; written by us). */
  NydusBuilderVersion: `${P}nydus-builder-version`,
  /** `"true"` on the empty layer prepended to the OCI manifests of a merged index (accel; written with mergePlatform). */
  NydusEmptyLayer: `${P}nydus-empty-layer`,
  /** Used during conversion only and removed from final manifests. */
  Uncompressed: 'containerd.io/uncompressed',
} as const;

/** RAFS version written into `nydus-fs-version`. */
export const NYDUS_FS_VERSION = '6';
/** What `nydus-builder-version` says for images made here. */
export const NYDUS_BUILDER_VERSION = 'nydus-ts 0.1.0';

/** History line of the bootstrap layer (as nydusify/the snapshotter write it). */
export const BOOTSTRAP_HISTORY = { created_by: 'Nydus Converter', comment: 'Nydus Bootstrap Layer' } as const;
/** History line of the empty layer prepended to the OCI manifests of a merged index. */
export const EMPTY_LAYER_HISTORY = { created_by: 'Nydus Converter', comment: 'Nydus Empty Layer' } as const;
/** History line of a chunk-dict blob listed in the manifest. */
export const CHUNK_DICT_HISTORY = { created_by: 'Nydus Converter', comment: 'Nydus Chunk Dict Blob' } as const;

/** True for a Nydus blob layer descriptor. */
export function isNydusBlobLayer(d: Pick<Descriptor, 'mediaType' | 'annotations'>): boolean {
  return d.mediaType === NYDUS_BLOB_MEDIA_TYPE || d.annotations?.[Annotation.NydusBlob] === 'true';
}

/** True for a Nydus bootstrap layer descriptor. */
export function isNydusBootstrapLayer(d: Pick<Descriptor, 'annotations'>): boolean {
  return d.annotations?.[Annotation.NydusBootstrap] === 'true';
}

/** True if an index entry names a Nydus manifest (artifactType or the legacy os.feature). */
export function isNydusManifestDescriptor(d: Pick<Descriptor, 'artifactType' | 'platform'>): boolean {
  return d.artifactType === NYDUS_MANIFEST_ARTIFACT_TYPE || (d.platform?.['os.features'] ?? []).includes(NYDUS_OS_FEATURE);
}

/** True if a manifest (by its layers) is a Nydus image: last layer is a bootstrap layer. */
export function isNydusManifest(m: { layers?: ReadonlyArray<Pick<Descriptor, 'annotations'>> }): boolean {
  const last = m.layers?.[m.layers.length - 1];
  return last !== undefined && isNydusBootstrapLayer(last);
}
