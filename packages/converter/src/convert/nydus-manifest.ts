import { createHash } from 'node:crypto';
import { MediaType } from '@nydus-ts/core';
import type { Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Platform } from '@nydus-ts/core';
import type { ManifestData } from '@nydus-ts/registry';
import {
  Annotation,
  BOOTSTRAP_HISTORY,
  CHUNK_DICT_HISTORY,
  EMPTY_LAYER,
  EMPTY_LAYER_HISTORY,
  NYDUS_BUILDER_VERSION,
  NYDUS_FS_VERSION,
  NYDUS_MANIFEST_ARTIFACT_TYPE,
  NYDUS_OS_FEATURE,
  bootstrapLayerMediaType,
  isNydusManifestDescriptor,
} from './nydus-conventions.js';

function sha256(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function isDocker(mediaType: string | undefined): boolean {
  return mediaType === MediaType.DockerManifest || mediaType === MediaType.DockerManifestList;
}

export interface NydusManifestInput {
  sourceManifest: ImageManifest;
  /** Media type the source manifest was served with. */
  sourceMediaType: string;
  sourceDigest: Digest;
  /** Source reference for the `nydus-source-reference` annotation. */
  sourceReference?: string;
  sourceConfig: ImageConfig;
  /** Per source layer, in order: its Nydus blob (null for a layer without file data). */
  blobs: ReadonlyArray<Descriptor | null>;
  /** Chunk-dict blobs the image references, listed after the layer blobs. */
  dictBlobs: readonly Descriptor[];
  bootstrap: { digest: Digest; size: number; diffId: Digest };
  /** OCI media types (else as the source: Docker stays Docker). */
  oci: boolean;
  /**
   * The config descriptor's media type instead of the OCI/Docker one: NYDUS_CONFIG_MEDIA_TYPE
   * for a manifest that goes into an index next to OCI ones (the config bytes are the same).
   */
  configMediaType?: string;
}

export interface NydusManifestOutput {
  manifest: ManifestData;
  manifestJson: ImageManifest;
  config: { descriptor: Descriptor; bytes: Buffer };
  configJson: ImageConfig;
}

/**
 * The Nydus manifest and config of spec §5.3: layers = the Nydus blobs in layer order, then the
 * chunk-dict blobs used, then the bootstrap layer; config `rootfs.diff_ids` = each blob's digest
 * then the uncompressed bootstrap tar's; history keeps the source's lines (a layer that became
 * no blob is marked `empty_layer`) and gains the converter's lines; everything else of the
 * config (env, cmd, labels...) is kept. Manifest annotations are kept plus the Nydus ones.
 */
export function buildNydusManifest(input: NydusManifestInput): NydusManifestOutput {
  const docker = !input.oci && isDocker(input.sourceMediaType);
  const manifestMediaType = docker ? MediaType.DockerManifest : MediaType.OciManifest;
  const configMediaType = docker ? MediaType.DockerConfig : MediaType.OciConfig;

  const blobLayers = input.blobs.filter((b): b is Descriptor => b !== null);
  const bootstrapLayer: Descriptor = {
    mediaType: bootstrapLayerMediaType(!docker),
    digest: input.bootstrap.digest,
    size: input.bootstrap.size,
    annotations: { [Annotation.NydusBootstrap]: 'true', [Annotation.NydusFsVersion]: NYDUS_FS_VERSION },
  };
  const layers = [...blobLayers, ...input.dictBlobs, bootstrapLayer];

  const history = rewriteHistory(input.sourceConfig.history, input.blobs);
  for (let i = 0; i < input.dictBlobs.length; i++) history.push({ ...CHUNK_DICT_HISTORY });
  history.push({ ...BOOTSTRAP_HISTORY });
  const { rootfs: _rootfs, history: _history, ...rest } = input.sourceConfig;
  const configJson: ImageConfig = {
    ...rest,
    rootfs: { type: 'layers', diff_ids: [...blobLayers.map((b) => b.digest), ...input.dictBlobs.map((b) => b.digest), input.bootstrap.diffId] },
    history,
  };
  const configBytes = Buffer.from(JSON.stringify(configJson));
  const config: Descriptor = { mediaType: input.configMediaType ?? configMediaType, digest: sha256(configBytes), size: configBytes.length };

  const annotations: Record<string, string> = {
    ...(input.sourceManifest.annotations ?? {}),
    [Annotation.NydusFsVersion]: NYDUS_FS_VERSION,
    [Annotation.NydusSourceDigest]: input.sourceDigest,
    [Annotation.NydusBuilderVersion]: NYDUS_BUILDER_VERSION,
    ...(input.sourceReference ? { [Annotation.NydusSourceReference]: input.sourceReference } : {}),
  };
  delete annotations[Annotation.NydusBlobIds];
  const manifestJson: ImageManifest = { schemaVersion: 2, mediaType: manifestMediaType, config, layers, annotations };
  const bytes = Buffer.from(JSON.stringify(manifestJson, null, 2));
  return {
    manifest: { descriptor: { mediaType: manifestMediaType, digest: sha256(bytes), size: bytes.length }, bytes },
    manifestJson,
    config: { descriptor: config, bytes: configBytes },
    configJson,
  };
}

/** Source history with the lines of layers that produced no blob marked empty (when they line up). */
function rewriteHistory(history: ImageConfig['history'], blobs: ReadonlyArray<Descriptor | null>): NonNullable<ImageConfig['history']> {
  const out = (history ?? []).map((h) => ({ ...h }));
  const nonEmpty = out.filter((h) => !h.empty_layer);
  if (nonEmpty.length !== blobs.length) return out;
  nonEmpty.forEach((h, i) => {
    if (blobs[i] === null) h.empty_layer = true;
  });
  return out;
}

/** The platform of a converted image: the source index entry's, else the config's. */
export function platformOf(config: ImageConfig, fromIndex?: Platform): Platform | undefined {
  if (fromIndex) return { ...fromIndex };
  if (!config.os || !config.architecture) return undefined;
  return { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
}

/**
 * An index entry for a Nydus manifest next to OCI ones (spec §5.5): marked with `artifactType`
 * as the reference tools now write it; `legacyMarker` adds the `os.features` entry of images
 * made before nydus v2.3.5 (which some registries reject).
 */
export function nydusIndexEntry(manifest: Descriptor, platform: Platform | undefined, options: { legacyMarker?: boolean } = {}): Descriptor {
  let p: Platform | undefined;
  if (platform) {
    p = { ...platform };
    const features = (platform['os.features'] ?? []).filter((f) => f !== NYDUS_OS_FEATURE);
    if (options.legacyMarker) features.push(NYDUS_OS_FEATURE);
    if (features.length > 0) p['os.features'] = features;
    else delete p['os.features'];
  }
  return { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size, artifactType: NYDUS_MANIFEST_ARTIFACT_TYPE, ...(p && { platform: p }) };
}

export interface EmptyLayerManifest {
  manifest: ManifestData;
  config: { descriptor: Descriptor; bytes: Buffer };
  /** The empty layer's descriptor (its bytes are EMPTY_LAYER.bytes). */
  emptyLayer: Descriptor;
}

/**
 * A source image manifest as the merged index of spec §5.5 carries it (accel
 * `PrependEmptyLayer`): the empty layer first (annotated `nydus-empty-layer`), its diff_id and
 * a history line first in a new config, and both the manifest and the config descriptor
 * annotated with the digest they replace (`nydus-source-digest`). Everything else is kept. The
 * history line has no `created` time, so the same source always gives the same manifest.
 */
export function prependEmptyLayer(source: ManifestData, sourceConfig: Buffer): EmptyLayerManifest {
  const manifest = JSON.parse(source.bytes.toString('utf8')) as ImageManifest;
  const config = JSON.parse(sourceConfig.toString('utf8')) as ImageConfig;
  const docker = source.descriptor.mediaType === MediaType.DockerManifest;
  const emptyLayer: Descriptor = {
    mediaType: docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip,
    digest: EMPTY_LAYER.digest,
    size: EMPTY_LAYER.bytes.length,
    annotations: { [Annotation.NydusEmptyLayer]: 'true' },
  };
  const rootfs = config.rootfs ?? { type: 'layers', diff_ids: [] };
  const newConfig: ImageConfig = { ...config, rootfs: { ...rootfs, diff_ids: [EMPTY_LAYER.diffId, ...(rootfs.diff_ids ?? [])] } };
  // Only a history that is there gains a line (one made up would not line up with the layers).
  if (Array.isArray(config.history)) newConfig.history = [{ ...EMPTY_LAYER_HISTORY }, ...config.history];
  const configBytes = Buffer.from(JSON.stringify(newConfig));
  const configDescriptor: Descriptor = {
    mediaType: manifest.config.mediaType,
    digest: sha256(configBytes),
    size: configBytes.length,
    annotations: { ...(manifest.config.annotations ?? {}), [Annotation.NydusSourceDigest]: manifest.config.digest },
  };
  const out: ImageManifest = {
    ...manifest,
    config: configDescriptor,
    layers: [emptyLayer, ...manifest.layers],
    annotations: { ...(manifest.annotations ?? {}), [Annotation.NydusSourceDigest]: source.descriptor.digest },
  };
  const bytes = Buffer.from(JSON.stringify(out, null, 2));
  return {
    manifest: { descriptor: { mediaType: source.descriptor.mediaType, digest: sha256(bytes), size: bytes.length }, bytes },
    config: { descriptor: configDescriptor, bytes: configBytes },
    emptyLayer,
  };
}

/**
 * An OCI index: `base` entries (kept unchanged, minus earlier Nydus entries for platforms now
 * converted), then the new Nydus entries. Used by mergePlatform and mergeManifest.
 */
export function buildMergedIndex(base: readonly Descriptor[], nydus: readonly Descriptor[], annotations?: Record<string, string>): ManifestData {
  const replaced = (d: Descriptor): boolean =>
    isNydusManifestDescriptor(d) && nydus.some((n) => samePlatform(n.platform, d.platform));
  const seen = new Set<string>();
  const manifests: Descriptor[] = [];
  for (const d of [...base.filter((d) => !replaced(d)), ...nydus]) {
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    manifests.push(d);
  }
  return indexData(manifests, MediaType.OciIndex, annotations);
}

function samePlatform(a: Platform | undefined, b: Platform | undefined): boolean {
  if (!a || !b) return a === b;
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

export function indexData(manifests: Descriptor[], mediaType: string, annotations?: Record<string, string>): ManifestData {
  const json: ImageIndex = { schemaVersion: 2, mediaType, manifests, ...(annotations && Object.keys(annotations).length ? { annotations } : {}) };
  const bytes = Buffer.from(JSON.stringify(json, null, 2));
  return { descriptor: { mediaType, digest: sha256(bytes), size: bytes.length }, bytes };
}
