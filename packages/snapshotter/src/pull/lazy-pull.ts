/**
 * A lazy pull into containerd over its gRPC API (containerd-integration.md §4), reproducing
 * containerd's `client.Pull` with unpack and the snapshot labels a remote snapshotter needs:
 *
 * 1. a lease (expiring in 24 h) holds everything written until the image record does;
 * 2. the manifest (chosen from an index by platform, a Nydus one preferred unless asked
 *    otherwise) and config go into the content store, labelled so GC keeps their children;
 * 3. bottom up, each layer is Prepared with `containerd.io/snapshot.ref`, the layer's
 *    `containerd.io/snapshot/*` annotations and the `cri.*` labels. ALREADY_EXISTS means the
 *    snapshotter has it (a remote Nydus layer, or pulled before): nothing is downloaded. Mounts
 *    mean it must be unpacked: the blob is streamed into the content store, applied with the
 *    Diff service (which checks the diff id) and committed;
 * 4. the image record points at the manifest; the lease is deleted.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError, NydusError, isIndexMediaType, isNydusError, noopLogger } from '@nydus-ts/core';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Logger, Platform } from '@nydus-ts/core';
import { RegistryClient, formatReference, hostPlatform, parseReference, platformMatches } from '@nydus-ts/registry';
import type { Credentials, CredentialsProvider } from '@nydus-ts/registry';
import { CONTENT_SERVICE, DIFF_SERVICE, IMAGES_SERVICE, LEASES_SERVICE } from '../proto.js';
import { dialService, unary } from '../grpc-client.js';
import type { CallContext } from '../grpc-client.js';
import { SnapshotsClient } from '../snapshots-client.js';
import { MAX_LABEL_BYTES, SnapshotLabel } from '../labels.js';
import { chainIds } from './chain-id.js';
import { writeContent } from './content-writer.js';

export interface LazyPullOptions {
  /** containerd's gRPC socket. */
  address: string;
  /** Snapshotter to unpack into (`overlayfs`, or a proxy plugin such as `nydus-ts`). */
  snapshotter: string;
  /** Image reference (`host/repo:tag`, `repo@sha256:…`). */
  ref: string;
  /** containerd namespace (default `default`). */
  namespace?: string;
  /** Allow plain HTTP (and unverified TLS) to the registry. */
  plainHttp?: boolean;
  credentials?: Credentials | CredentialsProvider;
  /** Platform to pick from an index (default: this machine's). */
  platform?: Platform;
  /**
   * From an index holding both, take the Nydus manifest (default: yes, unless the snapshotter
   * is containerd's `overlayfs` or `native`, which cannot run Nydus images).
   */
  preferNydus?: boolean;
  /** Labels of the image record. */
  labels?: Record<string, string>;
  logger?: Logger;
  signal?: AbortSignal;
}

export interface PulledLayer {
  digest: string;
  mediaType: string;
  chainId: string;
  /** `remote`: the snapshotter had or made it without data; `unpacked`: downloaded and applied here; `present`: existed before. */
  how: 'remote' | 'unpacked' | 'present';
  /** Bytes downloaded for it. */
  bytes: number;
}

export interface LazyPullResult {
  /** The image record's name. */
  name: string;
  manifest: Descriptor;
  config: Descriptor;
  /** Chain id of the top layer (what `ctr run` prepares the container on). */
  chainId: string;
  layers: PulledLayer[];
  /** Every byte fetched from the registry (manifests, config, unpacked layers). */
  bytesFetched: number;
  nydus: boolean;
  seconds: number;
}

const NYDUS_ARTIFACT_TYPE = 'application/vnd.nydus.image.manifest.v1+json';
const NYDUS_OS_FEATURE = 'nydus.remoteimage.v1';
const GC_EXPIRE = 'containerd.io/gc.expire';

function isNydusDescriptor(d: Descriptor): boolean {
  return d.artifactType === NYDUS_ARTIFACT_TYPE || (d.platform?.['os.features'] ?? []).includes(NYDUS_OS_FEATURE);
}

function isNydusManifest(m: ImageManifest): boolean {
  const last = m.layers[m.layers.length - 1];
  return last?.annotations?.[SnapshotLabel.NydusBootstrap] === 'true';
}

/** The `cri.image-layers` label: this layer and the ones above it, cut to fit containerd's limit. */
function imageLayersLabel(layers: Descriptor[], from: number): string {
  const key = SnapshotLabel.CriImageLayers;
  let value = '';
  for (const l of layers.slice(from)) {
    const next = value ? `${value},${l.digest}` : l.digest;
    if (Buffer.byteLength(key) + Buffer.byteLength(next) > MAX_LABEL_BYTES) break;
    value = next;
  }
  return value;
}

export async function lazyPull(options: LazyPullOptions): Promise<LazyPullResult> {
  const started = Date.now();
  const log = options.logger ?? noopLogger;
  const ms = (): number => Date.now() - started;
  if (!options.snapshotter) throw new InvalidArgumentError('pull: a snapshotter name is required');
  const ref = parseReference(options.ref);
  const name = formatReference(ref);
  const namespace = options.namespace ?? 'default';
  const preferNydus = options.preferNydus ?? !['overlayfs', 'native'].includes(options.snapshotter);
  const platform = options.platform ?? hostPlatform();
  const registry = new RegistryClient({ registry: ref.registry, insecure: options.plainHttp ?? false, logger: log, ...(options.credentials && { credentials: options.credentials }) });
  const leases = dialService(LEASES_SERVICE, options.address);
  const content = dialService(CONTENT_SERVICE, options.address);
  const diff = dialService(DIFF_SERVICE, options.address);
  const images = dialService(IMAGES_SERVICE, options.address);
  const base: CallContext = { namespace };
  const leaseId = `nydus-ts-pull-${Date.now()}-${randomBytes(4).toString('hex')}`;
  let leased = false;
  let bytesFetched = 0;
  try {
    await unary(leases, 'Create', { id: leaseId, labels: { [GC_EXPIRE]: new Date(Date.now() + 24 * 3600_000).toISOString() } }, base);
    leased = true;
    const ctx: CallContext = { namespace, lease: leaseId };
    const snapshots = new SnapshotsClient({ address: options.address, snapshotter: options.snapshotter, namespace, lease: leaseId });

    // 1. manifest (through an index) and config
    const top = await registry.getManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest', { signal: options.signal });
    bytesFetched += top.bytes.length;
    let manifestData = top;
    if (isIndexMediaType(top.descriptor.mediaType) || (JSON.parse(top.bytes.toString()) as { manifests?: unknown }).manifests) {
      const index = JSON.parse(top.bytes.toString()) as ImageIndex;
      const candidates = index.manifests.filter((m) => platformMatches(m.platform, platform));
      if (candidates.length === 0) throw new NydusError('NOT_FOUND', `${name}: no manifest for platform ${platform.os}/${platform.architecture}`);
      const chosen = candidates.find((m) => isNydusDescriptor(m) === preferNydus) ?? candidates[0]!;
      manifestData = await registry.getManifest(ref.repository, chosen.digest, { signal: options.signal });
      bytesFetched += manifestData.bytes.length;
    }
    const manifest = JSON.parse(manifestData.bytes.toString()) as ImageManifest;
    if (!manifest.config || !Array.isArray(manifest.layers)) throw new NydusError('INVALID_FORMAT', `${name}: ${manifestData.descriptor.mediaType} is not an image manifest`);
    const nydus = isNydusManifest(manifest);
    const configBytes = await readAll(registry.fetchBlob(ref.repository, manifest.config, { signal: options.signal }));
    bytesFetched += configBytes.length;
    const config = JSON.parse(configBytes.toString()) as ImageConfig;
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== manifest.layers.length) {
      throw new NydusError('INVALID_FORMAT', `${name}: config lists ${diffIds.length} diff ids for ${manifest.layers.length} layers`);
    }
    log.debug('manifest and config fetched', { ms: ms(), nydus });
    const chains = chainIds(diffIds);
    const topChain = chains[chains.length - 1] ?? '';

    await putContent(content, { ref: `config-${manifest.config.digest}`, digest: manifest.config.digest, size: manifest.config.size, labels: topChain ? { [`containerd.io/gc.ref.snapshot.${options.snapshotter}`]: topChain } : {} }, configBytes, ctx);
    const manifestLabels: Record<string, string> = { 'containerd.io/gc.ref.content.config': manifest.config.digest };
    manifest.layers.forEach((l, i) => (manifestLabels[`containerd.io/gc.ref.content.l.${i}`] = l.digest));
    await putContent(content, { ref: `manifest-${manifestData.descriptor.digest}`, digest: manifestData.descriptor.digest, size: manifestData.bytes.length, labels: manifestLabels }, Buffer.from(manifestData.bytes), ctx);

    log.debug('manifest and config written', { ms: ms() });
    // 2. layers, bottom up
    const layers: PulledLayer[] = [];
    for (let i = 0; i < manifest.layers.length; i++) {
      const layer = manifest.layers[i]!;
      const chainId = chains[i]!;
      const parent = i > 0 ? chains[i - 1]! : '';
      const pulled: PulledLayer = { digest: layer.digest, mediaType: layer.mediaType, chainId, how: 'present', bytes: 0 };
      layers.push(pulled);
      if (await exists(snapshots, chainId)) continue;
      const labels: Record<string, string> = { [SnapshotLabel.TargetRef]: chainId };
      for (const [k, v] of Object.entries(layer.annotations ?? {})) if (k.startsWith('containerd.io/snapshot/')) labels[k] = v;
      labels[SnapshotLabel.CriImageRef] = name;
      labels[SnapshotLabel.CriLayerDigest] = layer.digest;
      labels[SnapshotLabel.CriImageLayers] = imageLayersLabel(manifest.layers, i);
      labels[SnapshotLabel.CriManifestDigest] = manifestData.descriptor.digest;
      const key = `extract-${process.hrtime.bigint()}-${randomBytes(4).toString('hex')} ${chainId}`;
      let mounts;
      try {
        mounts = await snapshots.prepare(key, parent, labels);
      } catch (err) {
        if (!isNydusError(err, 'ALREADY_EXISTS')) throw err;
        await snapshots.stat(chainId); // the remote snapshot it told us about
        pulled.how = 'remote';
        log.debug('layer is remote', { layer: layer.digest, chainId, ms: ms() });
        continue;
      }
      try {
        pulled.bytes = await putContent(
          content,
          { ref: `layer-${layer.digest}`, digest: layer.digest, size: layer.size, labels: { 'containerd.io/uncompressed': diffIds[i]! } },
          () => registry.fetchBlob(ref.repository, layer, { signal: options.signal }),
          ctx,
        );
        bytesFetched += pulled.bytes;
        log.debug('layer written', { layer: layer.digest, bytes: pulled.bytes, ms: ms() });
        const applied = await unary<{ applied: { digest: string } }>(
          diff,
          'Apply',
          { diff: { media_type: layer.mediaType, digest: layer.digest, size: layer.size, annotations: layer.annotations ?? {} }, mounts: mounts.map((m) => ({ ...m, target: '' })), payloads: {} },
          ctx,
        );
        if (applied.applied?.digest !== diffIds[i]) {
          throw new NydusError('DATA_LOSS', `layer ${layer.digest}: applied diff ${applied.applied?.digest} differs from the config's diff id ${diffIds[i]}`);
        }
        log.debug('layer applied', { layer: layer.digest, ms: ms() });
        await snapshots.commit(chainId, key, labels);
        pulled.how = 'unpacked';
        log.debug('layer unpacked', { layer: layer.digest, chainId, bytes: pulled.bytes, ms: ms() });
      } catch (err) {
        await snapshots.remove(key).catch(() => undefined);
        throw err;
      }
    }
    await snapshots.close();

    // 3. the image record
    const target = { media_type: manifestData.descriptor.mediaType, digest: manifestData.descriptor.digest, size: manifestData.bytes.length, annotations: {} };
    const image = { name, target, labels: options.labels ?? {} };
    try {
      await unary(images, 'Create', { image }, ctx);
    } catch (err) {
      if (!isNydusError(err, 'ALREADY_EXISTS')) throw err;
      await unary(images, 'Update', { image, update_mask: { paths: [] } }, ctx);
    }
    log.debug('image record written', { ms: ms() });
    return {
      name,
      manifest: { ...manifestData.descriptor, size: manifestData.bytes.length },
      config: manifest.config,
      chainId: topChain,
      layers,
      bytesFetched,
      nydus,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    if (leased) await unary(leases, 'Delete', { id: leaseId, sync: false }, base).catch((err: unknown) => log.warn('lease not deleted', { lease: leaseId, error: (err as Error).message }));
    for (const c of [leases, content, diff, images]) c.close();
    await registry.close();
  }
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(p);
  return Buffer.concat(parts);
}

async function exists(snapshots: SnapshotsClient, key: string): Promise<boolean> {
  try {
    await snapshots.stat(key);
    return true;
  } catch (err) {
    if (isNydusError(err, 'NOT_FOUND')) return false;
    throw err;
  }
}

/** Writes a blob (or, if containerd has it, sets its labels); returns the bytes sent. */
async function putContent(
  content: grpc.Client,
  o: { ref: string; digest: string; size: number; labels: Record<string, string> },
  data: Buffer | (() => Readable),
  ctx: CallContext,
): Promise<number> {
  const sent = await writeContent(content, o, typeof data === 'function' ? data : () => data, ctx);
  if (sent === 0 && Object.keys(o.labels).length > 0) {
    await unary(content, 'Update', { info: { digest: o.digest, labels: o.labels }, update_mask: { paths: Object.keys(o.labels).map((k) => `labels.${k}`) } }, ctx);
  }
  return sent;
}
