/**
 * Snapshot labels of the remote-snapshot protocol, in one place. Each says who sets it. containerd
 * passes a snapshotter only `containerd.io/snapshot.ref` and keys under `containerd.io/snapshot/`.
 */
const P = 'containerd.io/snapshot/';

export const SnapshotLabel = {
  /** Set by containerd's unpacker (and our pull client) on every layer Prepare: the chainID this Prepare becomes. */
  TargetRef: 'containerd.io/snapshot.ref',
  /** Layer annotation of Nydus data layers (nydusify): never downloaded, committed remotely. */
  NydusBlob: `${P}nydus-blob`,
  /** Layer annotation of the Nydus bootstrap layer (nydusify): unpacked normally, then served by nydusd-ts. */
  NydusBootstrap: `${P}nydus-bootstrap`,
  /** Layer annotation of zran (OCI-ref) data layers: the original OCI layer's digest. */
  NydusRef: `${P}nydus-ref`,
  /** Layer annotation: RAFS version of the bootstrap (`"6"`). */
  NydusFsVersion: `${P}nydus-fs-version`,
  /** Client labels (CRI, nerdctl, our pull client): the image reference. */
  CriImageRef: `${P}cri.image-ref`,
  /** Client labels: this layer's compressed digest. */
  CriLayerDigest: `${P}cri.layer-digest`,
  /** Client labels: this layer's digest and those above it, comma-separated. */
  CriImageLayers: `${P}cri.image-layers`,
  /** Client labels: the manifest digest. */
  CriManifestDigest: `${P}cri.manifest-digest`,
  /** `ctr-remote image rpull`: the image reference. */
  StargzReference: `${P}remote/stargz.reference`,
  /** `ctr-remote image rpull`: this layer's digest. */
  StargzDigest: `${P}remote/stargz.digest`,
  /** `ctr-remote image rpull`: digests of the layers, comma-separated. */
  StargzLayers: `${P}remote/stargz.layers`,
  /** Set by this snapshotter on layers it committed without unpacking them (its own marker). */
  Remote: `${P}remote`,
} as const;

/** The image reference a layer was pulled as (CRI/nerdctl/our client, else ctr-remote's label). */
export function imageRefOf(labels: Record<string, string>): string | undefined {
  return labels[SnapshotLabel.CriImageRef] || labels[SnapshotLabel.StargzReference] || undefined;
}

/** The compressed digest of the layer a snapshot was prepared for. */
export function layerDigestOf(labels: Record<string, string>): string | undefined {
  return labels[SnapshotLabel.CriLayerDigest] || labels[SnapshotLabel.StargzDigest] || undefined;
}

/** A Nydus data layer (native blob or zran OCI-ref): committed remotely, never unpacked. */
export function isNydusDataLayer(labels: Record<string, string>): boolean {
  return SnapshotLabel.NydusBlob in labels || SnapshotLabel.NydusRef in labels;
}

export function isNydusBootstrapLayer(labels: Record<string, string>): boolean {
  return SnapshotLabel.NydusBootstrap in labels;
}

/** containerd's limit (labels/validate.go): key plus value at most 4096 bytes, key not empty. */
export const MAX_LABEL_BYTES = 4096;
