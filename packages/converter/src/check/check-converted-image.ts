import { createHash } from 'node:crypto';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  FormatError,
  InvalidArgumentError,
  MediaType,
  NotFoundError,
  NydusError,
  isIndexMediaType,
  isManifestMediaType,
  isNydusError,
  noopLogger,
  throwIfAborted,
} from '@nydus-ts/core';
import type { Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Logger, Platform } from '@nydus-ts/core';
import { BootstrapReader, DEFAULT_MAX_BOOTSTRAP_SIZE, RafsFileReader, checkBlobMetaAgainstEntry, fetchRefBlobMeta, isSeparateBlob, parseBlobMetaFile } from '@nydus-ts/format';
import { Limiter, readBodyLimited } from '@nydus-ts/registry/internal';
import { formatPlatform, hostPlatform, parseImageLocation, parsePlatform, platformMatches } from '@nydus-ts/registry';
import type { ImageSource, ManifestData, RegistryClient, RegistryEndpoint, RetryOptions, TimeoutOptions } from '@nydus-ts/registry';
import { decompressStream, readTarEntries } from '@nydus-ts/image';
import { RegistryBlobBackend } from '@nydus-ts/backend';
import { createRegistryClient, openImageSource } from '../sources/index.js';
import { buildActualTree } from './actual-tree.js';
import { compareTrees } from './compare.js';
import { buildExpectedTree } from './expected-tree.js';
import { Annotation, BOOTSTRAP_PATH_IN_LAYER, LEGACY_BOOTSTRAP_PATH_IN_LAYER, NYDUS_BLOB_MEDIA_TYPE, NYDUS_FS_VERSION, isNydusManifestDescriptor } from '../convert/nydus-conventions.js';

// Nydus image conventions (spec §5.1/§5.2) as check reads them.
const BOOTSTRAP_PATHS = [BOOTSTRAP_PATH_IN_LAYER, LEGACY_BOOTSTRAP_PATH_IN_LAYER];
const ANNOTATION_BLOB = Annotation.NydusBlob;
const ANNOTATION_BOOTSTRAP = Annotation.NydusBootstrap;
const ANNOTATION_FS_VERSION = Annotation.NydusFsVersion;
/** `image/<blob id>.blob.meta`: a blob's CI table, shipped in the bootstrap layer (§3.7, §5.4). */
const BLOB_META_PATH = /^image\/([0-9a-f]{64})\.blob\.meta$/;
const MAX_CONFIG_BYTES = 16 << 20;
/** Read-ahead window for file data: files are read in blob order, so neighbours share requests. */
const READ_AHEAD = 4 << 20;

/** The defaults of a check (the CLI shows these in its help; it declares none of its own). */
export const CHECK_CONVERTED_IMAGE_DEFAULTS = {
  /** Files read from the target at once. */
  concurrency: 8,
} as const;

export interface CheckConvertedImageOptions {
  /** The original image: registry reference, `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REF]`, or a source. */
  source: string | ImageSource;
  /** The Nydus image: a registry reference (blobs are read by range from its repository). */
  target: string;
  /** Platform to check in multi-platform images (default: this machine's). */
  platform?: Platform | string;
  /** How to reach the source registry (a registry source only; default HTTPS, anonymous). */
  sourceRegistry?: RegistryEndpoint;
  /** How to reach the target registry (default HTTPS, anonymous). */
  targetRegistry?: RegistryEndpoint;
  /** Also download every blob layer whole to verify its digest (default: HEAD for presence and size, chunk digests for data). */
  verifyBlobs?: boolean;
  /** Files read at once from the target (default 8). */
  concurrency?: number;
  /** Retries of failed registry requests (per request; a blob read resumes within one budget). */
  retry?: RetryOptions;
  /** Connect and idle timeouts of every registry request (defaults 30 s / 60 s). */
  timeouts?: TimeoutOptions;
  logger?: Logger;
  signal?: AbortSignal;
}

export interface CheckCounts {
  sourceLayers: number;
  targetLayers: number;
  /** Blobs in the bootstrap's blob table. */
  blobs: number;
  sourceEntries: number;
  targetEntries: number;
  /** Regular-file inodes read from the target, and their bytes. */
  filesRead: number;
  bytesRead: number;
  /** Range requests made to the target registry for file data. */
  rangeRequests: number;
}

export interface CheckReport {
  /** True when there is no difference. */
  ok: boolean;
  source: { name: string; digest: Digest };
  target: { name: string; digest: Digest };
  platform: string;
  /**
   * One line per finding, sorted: `manifest: …`, `config: …`, `blob sha256:…: …`,
   * `bootstrap: …`, and `/path: what SOURCE != TARGET` for the filesystem.
   */
  differences: string[];
  counts: CheckCounts;
  durationMs: number;
}

function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
  } catch (err) {
    throw new FormatError(what, 'not valid JSON', { cause: err });
  }
}

/**
 * From an index, the manifest for `platform`: the Nydus one (artifactType or the legacy
 * os.feature) for the target, a non-Nydus one for the source; a single match of either kind
 * when nothing is marked (an index of converted manifests made without mergePlatform).
 */
async function selectManifest(
  get: (d: Descriptor) => Promise<ManifestData>,
  top: ManifestData,
  platform: Platform,
  side: 'source' | 'target',
  name: string,
): Promise<ManifestData> {
  if (!isIndexMediaType(top.descriptor.mediaType)) return top;
  const index = parseJson<ImageIndex>(top.bytes, `${side} index`);
  if (!Array.isArray(index.manifests)) throw new FormatError(`${side} index`, `${name}: no manifests array`);
  const matching = index.manifests.filter((m) => platformMatches(m.platform, platform));
  const marked = matching.filter(isNydusManifestDescriptor);
  const unmarked = matching.filter((m) => !isNydusManifestDescriptor(m));
  const pick = side === 'target' ? (marked[0] ?? (unmarked.length === 1 ? unmarked[0] : undefined)) : unmarked[0];
  if (!pick) {
    const have = index.manifests.map((m) => `${m.platform ? formatPlatform(m.platform) : '?'}${isNydusManifestDescriptor(m) ? ' (nydus)' : ''}`);
    throw new NotFoundError(`${side} ${name}: no ${side === 'target' ? 'Nydus' : 'OCI'} manifest for ${formatPlatform(platform)} in the index (it has: ${have.join(', ') || 'nothing'})`);
  }
  return get(pick);
}

function readSmallBlob(stream: Readable, max: number, what: string): Promise<Buffer> {
  return readBodyLimited(stream, max, () => new NydusError('RESOURCE_EXHAUSTED', `${what} is larger than ${max} bytes`));
}

/** Problems of the Nydus manifest itself (spec §5.2, §5.3). */
function checkManifestLayout(m: ImageManifest, diffs: string[]): void {
  const layers = m.layers;
  const last = layers.length - 1;
  layers.forEach((l, i) => {
    const a = l.annotations ?? {};
    if (i === last) {
      if (a[ANNOTATION_BOOTSTRAP] !== 'true') diffs.push(`manifest: layer ${i} (the last) lacks annotation ${ANNOTATION_BOOTSTRAP}`);
      if (a[ANNOTATION_FS_VERSION] === undefined) diffs.push(`manifest: layer ${i} (bootstrap) lacks annotation ${ANNOTATION_FS_VERSION}`);
      else if (a[ANNOTATION_FS_VERSION] !== NYDUS_FS_VERSION) diffs.push(`manifest: layer ${i} (bootstrap) annotation ${ANNOTATION_FS_VERSION} is "${a[ANNOTATION_FS_VERSION]}", expected "${NYDUS_FS_VERSION}"`);
      if (l.mediaType !== MediaType.OciLayerGzip && l.mediaType !== MediaType.DockerLayerGzip) {
        diffs.push(`manifest: layer ${i} (bootstrap) media type ${l.mediaType} is not a gzip tar layer`);
      }
      return;
    }
    if (a[ANNOTATION_BOOTSTRAP] === 'true') diffs.push(`manifest: layer ${i} is annotated as the bootstrap but is not the last layer`);
    if (l.mediaType !== NYDUS_BLOB_MEDIA_TYPE) diffs.push(`manifest: layer ${i} media type ${l.mediaType} != ${NYDUS_BLOB_MEDIA_TYPE}`);
    if (a[ANNOTATION_BLOB] !== 'true') diffs.push(`manifest: layer ${i} lacks annotation ${ANNOTATION_BLOB}`);
  });
}

/** The bootstrap from the bootstrap layer (gzip tar) and the sha256 of the uncompressed tar. */
async function readBootstrapLayer(client: RegistryClient, repository: string, layer: Descriptor, signal?: AbortSignal): Promise<{ bootstrap: Buffer | undefined; metas: Map<string, Buffer>; diffId: Digest; names: string[] }> {
  const hash = createHash('sha256');
  const blob = client.fetchBlob(repository, layer, signal ? { signal } : {});
  async function* tap(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const c of src) {
      hash.update(c);
      yield c;
    }
  }
  const found = new Map<string, Buffer>();
  const metas = new Map<string, Buffer>();
  const names: string[] = [];
  for await (const entry of readTarEntries(tap(decompressStream(blob, signal ? { signal } : {})), signal ? { signal } : {})) {
    names.push(entry.path);
    const meta = BLOB_META_PATH.exec(entry.path);
    if (entry.type !== 'file' || (!BOOTSTRAP_PATHS.includes(entry.path) && !meta)) continue;
    if (entry.size > DEFAULT_MAX_BOOTSTRAP_SIZE) throw new NydusError('RESOURCE_EXHAUSTED', `bootstrap ${entry.path} of ${entry.size} bytes is too large`);
    const buf = Buffer.allocUnsafe(entry.size);
    let pos = 0;
    for await (const c of entry.content ?? []) {
      buf.set(c, pos);
      pos += c.length;
    }
    if (meta) metas.set(meta[1]!, buf);
    else found.set(entry.path, buf);
  }
  const bootstrap = found.get(BOOTSTRAP_PATHS[0]!) ?? found.get(BOOTSTRAP_PATHS[1]!);
  return { bootstrap, metas, diffId: `sha256:${hash.digest('hex')}`, names };
}

/**
 * Validates a Nydus image against its source: the manifest and its annotations, the config's
 * diff_ids, the bootstrap (read and validated whole), every blob of the bootstrap's blob table
 * listed and present in the target repository with the manifest's size, and the filesystem —
 * types, modes, owners, sizes, link targets, devices, xattrs, hardlink groups and file contents
 * (sha256, read by range through the chunk-verifying RAFS reader) — against the source layers
 * applied in order with OCI whiteouts. Never holds a blob in memory (bootstrap and configs
 * excepted). Throws only when the check cannot be carried out (unreachable registry, no such
 * image); every finding goes into the report.
 */
export async function checkConvertedImage(options: CheckConvertedImageOptions): Promise<CheckReport> {
  const started = Date.now();
  const logger = options.logger ?? noopLogger;
  const signal = options.signal;
  const concurrency = options.concurrency ?? CHECK_CONVERTED_IMAGE_DEFAULTS.concurrency;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError(`concurrency must be a positive integer, got ${concurrency}`);
  const platform = options.platform === undefined ? hostPlatform() : typeof options.platform === 'string' ? parsePlatform(options.platform) : options.platform;
  if (!options.target) throw new InvalidArgumentError('target is required');
  if (!options.source) throw new InvalidArgumentError('source is required');
  const targetLoc = parseImageLocation(options.target);
  if (targetLoc.kind !== 'registry') throw new InvalidArgumentError(`target ${options.target}: check reads a Nydus image from a registry, not from ${targetLoc.kind}`);
  const ref = targetLoc.reference;
  const repo = ref.repository;

  const net = { ...(options.retry && { retry: options.retry }), ...(options.timeouts && { timeouts: options.timeouts }) };
  const client = createRegistryClient(ref.registry, {
    ...(options.targetRegistry && { registry: options.targetRegistry }),
    registryOption: 'targetRegistry',
    logger,
    maxConnections: concurrency + 2,
    ...net,
  });
  const diffs: string[] = [];
  const counts: CheckCounts = { sourceLayers: 0, targetLayers: 0, blobs: 0, sourceEntries: 0, targetEntries: 0, filesRead: 0, bytesRead: 0, rangeRequests: 0 };
  let opened: { source: ImageSource; close(): Promise<void> } | undefined;
  try {
    opened = typeof options.source === 'string'
      ? await openImageSource(options.source, { ...(options.sourceRegistry && { registry: options.sourceRegistry }), registryOption: 'sourceRegistry', logger, ...net, ...(signal && { signal }) })
      : { source: options.source, close: async () => {} };
    const source = opened.source;
    // ---------------------------------------------------------------- manifests
    const targetTop = await client.getManifest(repo, ref.digest ?? ref.tag ?? 'latest', signal ? { signal } : {});
    const target = await selectManifest((d) => client.getManifest(repo, d.digest, signal ? { signal } : {}), targetTop, platform, 'target', options.target);
    const sourceTop = await source.resolve(signal);
    const sourceManifestData = await selectManifest((d) => source.getManifest(d, signal), sourceTop, platform, 'source', source.name);
    const report = (): CheckReport => ({
      ok: diffs.length === 0,
      source: { name: source.name, digest: sourceManifestData.descriptor.digest },
      target: { name: options.target, digest: target.descriptor.digest },
      platform: formatPlatform(platform),
      differences: [...diffs].sort(),
      counts,
      durationMs: Date.now() - started,
    });
    logger.info('check: manifests resolved', { source: sourceManifestData.descriptor.digest, target: target.descriptor.digest });

    if (!isManifestMediaType(target.descriptor.mediaType)) {
      diffs.push(`manifest: target ${target.descriptor.digest} is a ${target.descriptor.mediaType}, not an image manifest`);
      return report();
    }
    const tm = parseJson<ImageManifest>(target.bytes, 'target manifest');
    const sm = parseJson<ImageManifest>(sourceManifestData.bytes, 'source manifest');
    if (!Array.isArray(tm.layers) || tm.layers.length === 0) {
      diffs.push('manifest: the target has no layers');
      return report();
    }
    if (!Array.isArray(sm.layers)) throw new FormatError('source manifest', `${source.name}: no layers array`);
    counts.sourceLayers = sm.layers.length;
    counts.targetLayers = tm.layers.length;
    checkManifestLayout(tm, diffs);

    // ---------------------------------------------------------------- configs
    const [tcBytes, scBytes] = await Promise.all([
      readSmallBlob(client.fetchBlob(repo, tm.config, signal ? { signal } : {}), MAX_CONFIG_BYTES, 'target config'),
      readSmallBlob(source.fetchBlob(sm.config, signal ? { signal } : {}), MAX_CONFIG_BYTES, 'source config'),
    ]);
    const tc = parseJson<ImageConfig>(tcBytes, 'target config');
    const sc = parseJson<ImageConfig>(scBytes, 'source config');
    const diffIds = tc.rootfs?.diff_ids;
    if (!Array.isArray(diffIds)) diffs.push('config: rootfs.diff_ids is missing');
    else if (diffIds.length !== tm.layers.length) diffs.push(`config: ${diffIds.length} diff_ids for ${tm.layers.length} layers`);
    else {
      tm.layers.slice(0, -1).forEach((l, i) => {
        if (diffIds[i] !== l.digest) diffs.push(`config: diff_id ${i} ${diffIds[i]} != the blob layer's digest ${l.digest}`);
      });
    }
    for (const key of ['os', 'architecture', 'variant'] as const) {
      if ((sc[key] ?? '') !== (tc[key] ?? '')) diffs.push(`config: ${key} ${JSON.stringify(sc[key] ?? '')} != ${JSON.stringify(tc[key] ?? '')}`);
    }

    // ---------------------------------------------------------------- blobs present
    const limiter = new Limiter(concurrency);
    const present = new Map<Digest, number | undefined>();
    await Promise.all(tm.layers.map((l) => limiter.run(async () => {
      present.set(l.digest, await client.headBlob(repo, l.digest, signal ? { signal } : {}));
    })));
    tm.layers.forEach((l, i) => {
      const size = present.get(l.digest);
      const what = i === tm.layers.length - 1 ? `blob ${l.digest} (bootstrap layer)` : `blob ${l.digest}`;
      if (size === undefined) diffs.push(`${what}: missing from target`);
      else if (size !== l.size) diffs.push(`${what}: size ${size} in target != ${l.size} in manifest`);
    });
    if (options.verifyBlobs) {
      await Promise.all(tm.layers.slice(0, -1).filter((l) => present.get(l.digest) === l.size).map((l) => limiter.run(async () => {
        try {
          await pipeline(client.fetchBlob(repo, l, signal ? { signal } : {}), new Writable({ write: (_c, _e, cb) => cb() }));
        } catch (err) {
          if (!isNydusError(err, 'DATA_LOSS')) throw err;
          diffs.push(`blob ${l.digest}: content does not match its digest (${err.message})`);
        }
      })));
    }

    // ---------------------------------------------------------------- bootstrap
    const bootLayer = tm.layers[tm.layers.length - 1]!;
    if (present.get(bootLayer.digest) === undefined) return report();
    let boot: Awaited<ReturnType<typeof readBootstrapLayer>>;
    try {
      boot = await readBootstrapLayer(client, repo, bootLayer, signal);
    } catch (err) {
      if (!isNydusError(err) || !['DATA_LOSS', 'INVALID_FORMAT', 'UNSUPPORTED'].includes(err.code)) throw err;
      diffs.push(`bootstrap: layer ${bootLayer.digest} is not a readable gzip tar: ${err.message}`);
      return report();
    }
    if (Array.isArray(diffIds) && diffIds.length === tm.layers.length && diffIds[diffIds.length - 1] !== boot.diffId) {
      diffs.push(`config: last diff_id ${diffIds[diffIds.length - 1]} != the bootstrap layer's uncompressed digest ${boot.diffId}`);
    }
    if (boot.bootstrap === undefined) {
      diffs.push(`bootstrap: layer ${bootLayer.digest} has no image/image.boot (it has: ${boot.names.join(', ') || 'nothing'})`);
      return report();
    }
    let reader: BootstrapReader;
    try {
      reader = await BootstrapReader.open(boot.bootstrap, signal ? { signal } : {});
    } catch (err) {
      if (!isNydusError(err) || err.code === 'CANCELLED') throw err;
      diffs.push(`bootstrap: invalid: ${err.message}`);
      return report();
    }
    counts.blobs = reader.blobs.length;
    const listed = new Set(tm.layers.slice(0, -1).map((l) => l.digest));
    // oci-ref images: nydus-ref layers (meta blobs) name their original layer, which the
    // bootstrap's blob table names and the manifest does not list (spec §4.3, §5.3).
    const refMetaOf = new Map<string, string>();
    for (const l of tm.layers.slice(0, -1)) {
      const original = l.annotations?.[Annotation.NydusRef];
      if (original !== undefined) refMetaOf.set(original, l.digest);
    }
    const skip = new Set<string>();
    for (const b of reader.blobs) {
      const digest: Digest = `sha256:${b.blobId}`;
      if (!/^[0-9a-f]{64}$/.test(b.blobId)) {
        diffs.push(`bootstrap: blob table entry ${b.index} has id "${b.blobId}", not a sha256 digest`);
        skip.add(b.blobId);
        continue;
      }
      if (isSeparateBlob(b)) {
        const meta = refMetaOf.get(digest);
        if (meta === undefined) diffs.push(`bootstrap: reference blob ${digest} has no nydus-ref layer in the manifest`);
        else if (meta !== `sha256:${b.entry.metaDigest}`) diffs.push(`bootstrap: reference blob ${digest} names meta blob sha256:${b.entry.metaDigest}, the manifest's nydus-ref layer is ${meta}`);
        const size = await client.headBlob(repo, digest, signal ? { signal } : {});
        if (size === undefined) {
          diffs.push(`blob ${digest} (original layer of a reference blob): missing from target`);
          skip.add(b.blobId);
        } else {
          present.set(digest, size);
          if (size !== b.entry.compressedSize) diffs.push(`blob ${digest} (original layer): size ${size} in target != ${b.entry.compressedSize} in the blob table`);
        }
        continue;
      }
      if (!listed.has(digest)) {
        diffs.push(`bootstrap: blob ${digest} (blob table entry ${b.index}) is not a layer of the manifest`);
        const size = await client.headBlob(repo, digest, signal ? { signal } : {});
        if (size === undefined) {
          diffs.push(`blob ${digest}: missing from target`);
          skip.add(b.blobId);
        }
      } else if (present.get(digest) === undefined) {
        skip.add(b.blobId);
      }
    }

    // Each blob's CI table (`image/<id>.blob.meta`, read by nydusd) must be there and agree with
    // the blob table.
    for (const b of reader.blobs) {
      // (Reference blobs' CI tables are in their meta blobs, checked when attached below.)
      if (skip.has(b.blobId) || isSeparateBlob(b)) continue;
      const meta = boot.metas.get(b.blobId);
      const path = `image/${b.blobId}.blob.meta`;
      if (meta === undefined) {
        diffs.push(`bootstrap: layer lacks ${path}`);
        continue;
      }
      try {
        checkBlobMetaAgainstEntry(parseBlobMetaFile(meta), b.entry, path);
      } catch (err) {
        if (!isNydusError(err, 'INVALID_FORMAT')) throw err;
        diffs.push(`bootstrap: ${path}: ${err.message}`);
      }
    }

    // ---------------------------------------------------------------- trees
    throwIfAborted(signal);
    const blobSizes = new Map<string, number>();
    for (const [digest, size] of present) if (size !== undefined) blobSizes.set(digest, size);
    const backend = new RegistryBlobBackend(client, repo, { readAhead: READ_AHEAD, maxWindows: 8, blobSizes });
    // Reference blobs are read through their meta blobs (fetched whole, digest-checked).
    for (const b of reader.blobs.filter((x) => isSeparateBlob(x) && !skip.has(x.blobId))) {
      try {
        reader.attachBlobMeta(b.index, await fetchRefBlobMeta(b, backend, signal));
      } catch (err) {
        if (!isNydusError(err) || err.code === 'CANCELLED') throw err;
        diffs.push(`blob sha256:${b.blobId}: meta blob sha256:${b.entry.metaDigest}: ${err.message}`);
        skip.add(b.blobId);
      }
    }
    // The target's files (ranged reads) and the source's layers (streamed) are read at once.
    const expectedPromise = buildExpectedTree(source, sm.layers, { ...(signal && { signal }), onLayer: (i, n) => logger.debug('check: source layer applied', { layer: i, entries: n }) });
    expectedPromise.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
    let actualResult: Awaited<ReturnType<typeof buildActualTree>>;
    try {
      actualResult = await buildActualTree(reader, new RafsFileReader(reader, backend), { concurrency, skipBlobs: skip, ...(signal && { signal }) });
    } catch (err) {
      if (!isNydusError(err, 'INVALID_FORMAT')) throw err;
      diffs.push(`bootstrap: invalid: ${err.message}`);
      await expectedPromise;
      return report();
    }
    for (const [blobId, n] of actualResult.skippedFiles) diffs.push(`blob sha256:${blobId}: ${n} file(s) of the target have data in it and were not compared`);
    counts.targetEntries = actualResult.tree.size;
    counts.filesRead = actualResult.filesRead;
    counts.bytesRead = actualResult.bytesRead;
    counts.rangeRequests = backend.stats.requests;
    logger.info('check: target tree read', { entries: actualResult.tree.size, files: actualResult.filesRead, bytes: actualResult.bytesRead });

    const expected = await expectedPromise;
    counts.sourceEntries = expected.size;
    diffs.push(...compareTrees(expected, actualResult.tree).filter((line) => !/content unreadable in target: data in missing blob/.test(line)));
    return report();
  } finally {
    await Promise.allSettled([client.close(), opened?.close()]);
  }
}
