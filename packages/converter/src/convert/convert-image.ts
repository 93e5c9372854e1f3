import { availableParallelism } from 'node:os';
import type { Readable } from 'node:stream';
import {
  FormatError,
  InvalidArgumentError,
  MediaType,
  NotFoundError,
  NydusError,
  UnsupportedError,
  isIndexMediaType,
  isNydusError,
  noopLogger,
  throwIfAborted,
} from '@nydus-ts/core';
import type { Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Logger, Platform } from '@nydus-ts/core';
import { BUILD_LAYER_DEFAULTS, CHUNK_COMPRESSORS, CHUNK_DIGESTERS, MAX_BLOBS, mergeBootstraps, resolveBuildLayerOptions } from '@nydus-ts/format';
import type { ChunkCompressor, ChunkDigester, LayerBuildStats, MergeLayer } from '@nydus-ts/format';
import { Limiter, readBodyLimited, settleAll } from '@nydus-ts/registry/internal';
import { RegistryImageTarget, RetryBudget, copyImage, formatPlatform, formatReference, hostPlatform, parsePlatform, parseReference, platformMatches, resolveRetryOptions, resolveTimeoutOptions, withRetry } from '@nydus-ts/registry';
import type { ImageReference, ImageSource, ManifestData, RegistryClient, RegistryEndpoint, ResolvedRetryOptions, RetryOptions, TimeoutOptions } from '@nydus-ts/registry';
import { packBootstrapLayer } from './bootstrap-layer.js';
import { loadChunkDictImage, parseChunkDictReference } from './chunk-dict-image.js';
import type { ChunkDictImage } from './chunk-dict-image.js';
import { DIRECTORY_LAYER_MEDIA_TYPE, makeRegistryClient, openConvertSource } from './convert-source.js';
import type { ConvertSource } from './convert-source.js';
import { convertLayer } from './layer-converter.js';
import { convertRefLayer, type ConvertedRefLayer } from './ref-layer-converter.js';
import { RefLayerUnsupportedError } from '@nydus-ts/image';
import type { LayerJob } from './layer-job.js';
import { LayerWorkerPool } from './layer-worker-pool.js';
import type { ConvertedLayer } from './layer-converter.js';
import {
  Annotation,
  DOCKER_EMPTY_LAYER_DIGEST,
  EMPTY_LAYER,
  NYDUS_BLOB_MEDIA_TYPE,
  NYDUS_CONFIG_MEDIA_TYPE,
  NYDUS_FS_VERSION,
  isNydusManifest,
  isNydusManifestDescriptor,
} from './nydus-conventions.js';
import { buildMergedIndex, buildNydusManifest, indexData, nydusIndexEntry, platformOf, prependEmptyLayer } from './nydus-manifest.js';
import { throttled } from './throttle.js';

export interface ConvertImageOptions {
  /** Registry reference, `oci:PATH[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:TAG]` or `dir:PATH`. */
  source: string;
  /** Registry reference to push to (tag default `latest`). */
  target: string;
  /** `os/arch[/variant]` to convert from a multi-platform source (default: this machine). */
  platform?: string;
  /** Convert every platform of an index and push an index. */
  allPlatforms?: boolean;
  /** Chunk compressor (default zstd). */
  compressor?: ChunkCompressor;
  /** Chunk size (default 1 MiB). */
  chunkSize?: number;
  /** Chunk digester (default blake3). */
  digester?: ChunkDigester;
  /** Push an index of the source manifests (unchanged) and the Nydus ones (spec §5.5). */
  mergePlatform?: boolean;
  /** When the target tag already holds a manifest or index, add the Nydus manifest(s) to it. */
  mergeManifest?: boolean;
  /**
   * With mergePlatform/mergeManifest: the index form of nydusify before nydus v2.3.5 — source
   * manifests byte-identical, Nydus entries marked with `os.features` too, Nydus configs with
   * OCI/Docker media types. Default: the form the reference tools now write (spec §5.5): an
   * empty layer prepended to each converted source manifest, `artifactType` only, the Nydus
   * config media type. The old form lets nydus-snapshotter and a plain OCI image of the same
   * layers share snapshots (a container may then see the wrong root filesystem), lets runtimes
   * without Nydus support pick the Nydus manifest, and some registries refuse `os.features`.
   */
  keepSourceManifests?: boolean;
  /** OCI media types (default: as the source). */
  oci?: boolean;
  /** Absolute paths whose files nydusd prefetches first. */
  prefetchPatterns?: string[];
  /** A Nydus image (`REF` or `bootstrap:registry:REF`) whose chunks are reused. */
  chunkDict?: string;
  /**
   * Make a targz-ref ("zran") image (spec §4, what nydusify's oci-ref mode makes): the original gzip (or
   * plain tar) layers stay the data blobs; only a small RAFS meta blob per layer and the
   * bootstrap layer are pushed. Originals are mounted or copied into the target repository when
   * missing there. zstd layers fall back to native Nydus blobs. Chunk digests are sha256.
   */
  ociRef?: boolean;
  /** How to reach the source registry (a registry source only; default HTTPS, anonymous). */
  sourceRegistry?: RegistryEndpoint;
  /** How to reach the target registry (default HTTPS, anonymous); also used for a chunk dict in a third registry. */
  targetRegistry?: RegistryEndpoint;
  /** Layers converted at once (default 4). */
  concurrency?: number;
  /**
   * Retries: one budget per layer (its source GETs and `Range` resumes, its upload requests,
   * and the fresh conversions after a failed upload or a corrupted source body), and one per
   * other blob or manifest request. Default 5 tries, 200 ms backoff doubling to 10 s.
   */
  retry?: RetryOptions;
  /** Connect and idle timeouts of every registry request (defaults 30 s / 60 s). */
  timeouts?: TimeoutOptions;
  /**
   * Convert each layer in a worker thread, so that layers build on several cores. Default
   * (undefined): only with more than 2 cores and more than one layer; on 2 cores the main thread
   * plus the gunzip thread already use both, and workers measured no faster (see
   * docs/benchmarks.md). A chunk dict always converts in-process. Both paths produce
   * byte-identical images.
   */
  workers?: boolean;
  logger?: Logger;
  signal?: AbortSignal;
  onProgress?: (event: ConvertProgressEvent) => void;
}

export type ConvertProgressEvent =
  | { type: 'manifest-start'; platform: string | undefined; sourceDigest: Digest; layers: number }
  | { type: 'layer-start'; platform: string | undefined; index: number; digest: Digest; size: number }
  | { type: 'layer-progress'; platform: string | undefined; index: number; digest: Digest; size: number; bytesIn: number; bytesOut: number }
  /** The layer is converted again from the start after `error` (its counts restart at 0). */
  | { type: 'layer-retry'; platform: string | undefined; index: number; digest: Digest; attempt: number; error: string }
  | { type: 'layer-done'; platform: string | undefined; index: number; digest: Digest; blob: Digest | null; bytesIn: number; bytesOut: number; durationMs: number }
  | { type: 'manifest-done'; platform: string | undefined; digest: Digest }
  | { type: 'pushed'; reference: string; digest: Digest; mediaType: string };

export interface ConvertedLayerReport {
  /** Source layer. */
  source: { digest: Digest; mediaType: string; size: number };
  /** The Nydus blob (a layer without file data gets one holding only its bootstrap); null only if none was written. */
  blob: { digest: Digest; size: number } | null;
  /** Compressed bytes read from the source. */
  bytesIn: number;
  /** File content bytes of the layer. */
  contentBytes: number;
  /** Blob bytes pushed. */
  bytesOut: number;
  entries: number;
  chunks: number;
  /** Chunks and bytes taken from the chunk dict (not stored again). */
  dictChunks: number;
  dictBytes: number;
  durationMs: number;
  /**
   * `ociRef` conversions: 'zran' (gzip) or 'tar' (plain tar) reference layers, with what
   * happened to the original; 'native' when the layer could not be referenced (zstd) and was
   * converted to a Nydus blob instead, with the reason.
   */
  ref?:
    | { kind: 'zran' | 'tar'; original: { digest: Digest; size: number; action: 'present' | 'mounted' | 'copied' }; contexts: number }
    | { kind: 'native'; reason: string };
}

export interface ConvertedManifestReport {
  platform: string | undefined;
  source: { digest: Digest; mediaType: string; size: number };
  target: { digest: Digest; mediaType: string; size: number };
  config: Digest;
  bootstrap: { digest: Digest; size: number; diffId: Digest };
  layers: ConvertedLayerReport[];
  /** Chunk-dict blobs the image references (listed as layers, present in the target repo). */
  dictBlobs: Array<{ digest: Digest; size: number; action: 'present' | 'mounted' | 'copied' }>;
}

export interface ConvertImageResult {
  source: string;
  target: string;
  /** What the source reference named. */
  sourceDigest: Digest;
  sourceMediaType: string;
  sourceSize: number;
  /** What the target tag now points at. */
  targetDigest: Digest;
  targetMediaType: string;
  targetSize: number;
  manifests: ConvertedManifestReport[];
  /** Compressed source bytes read / Nydus blob bytes pushed (bootstrap layers excluded). */
  bytesIn: number;
  bytesOut: number;
  /** Chunk data not stored because the chunk dict had it. */
  dedup: { dictChunks: number; dictBytes: number };
  /** Whether the layers were converted in worker threads (else on the main thread). */
  workers: boolean;
  /**
   * `ociRef` conversions: bytes pushed for the image (meta blobs, native fallback blobs,
   * bootstrap layers) against the compressed size of the source layers they stand for.
   */
  ociRef?: { artifactBytes: number; sourceBytes: number };
  durationMs: number;
}

/** The defaults of a conversion (the CLI shows these in its help; it declares none of its own). */
export const CONVERT_IMAGE_DEFAULTS = {
  ...BUILD_LAYER_DEFAULTS,
  /** Chunk digests of a targz-ref (`ociRef`) image, as the reference tools make them. */
  ociRefDigester: 'sha256',
  /** Layers converted at once. */
  concurrency: 4,
} as const satisfies { compressor: ChunkCompressor; digester: ChunkDigester; ociRefDigester: ChunkDigester; chunkSize: number; concurrency: number };

export interface ResolvedConvertOptions {
  retry: ResolvedRetryOptions;
  timeouts: TimeoutOptions | undefined;
  compressor: ChunkCompressor;
  chunkSize: number;
  digester: ChunkDigester;
  concurrency: number;
  platform: Platform | undefined;
  target: ImageReference & { tag: string };
  prefetchPatterns: string[];
  ociRef: boolean;
  oci: boolean;
  allPlatforms: boolean;
  mergePlatform: boolean;
  mergeManifest: boolean;
  keepSourceManifests: boolean;
}

/** Validates everything that can be checked before any network traffic (INVALID_ARGUMENT). */
export function resolveConvertImageOptions(options: ConvertImageOptions): ResolvedConvertOptions {
  if (!options || typeof options !== 'object') throw new InvalidArgumentError('convertImage: options are required');
  if (!options.source) throw new InvalidArgumentError('source is required');
  if (!options.target) throw new InvalidArgumentError('target is required');
  const compressor = options.compressor ?? CONVERT_IMAGE_DEFAULTS.compressor;
  if (!CHUNK_COMPRESSORS.includes(compressor)) throw new InvalidArgumentError(`compressor: "${String(compressor)}" is not one of ${CHUNK_COMPRESSORS.join(', ')}`);
  const ociRef = options.ociRef ?? false;
  if (typeof ociRef !== 'boolean') throw new InvalidArgumentError(`ociRef: ${String(ociRef)} is not a boolean`);
  if (ociRef && options.digester !== undefined && options.digester !== 'sha256') throw new InvalidArgumentError(`digester: oci-ref images use sha256 chunk digests, not ${options.digester}`);
  if (ociRef && options.chunkDict !== undefined) throw new InvalidArgumentError('chunkDict cannot be used with ociRef (reference layers keep their original data)');
  if (ociRef && options.source.startsWith('dir:')) throw new InvalidArgumentError('ociRef needs image layers to reference; a dir: source has none');
  const digester = options.digester ?? (ociRef ? CONVERT_IMAGE_DEFAULTS.ociRefDigester : CONVERT_IMAGE_DEFAULTS.digester);
  if (!CHUNK_DIGESTERS.includes(digester)) throw new InvalidArgumentError(`digester: "${String(digester)}" is not one of ${CHUNK_DIGESTERS.join(', ')}`);
  const build = resolveBuildLayerOptions({
    compressor,
    digester,
    ...(options.chunkSize !== undefined && { chunkSize: options.chunkSize }),
    ...(options.prefetchPatterns !== undefined && { prefetchPatterns: options.prefetchPatterns }),
  });
  const concurrency = options.concurrency ?? CONVERT_IMAGE_DEFAULTS.concurrency;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError(`concurrency: must be a positive integer, got ${String(concurrency)}`);
  if (options.platform !== undefined && options.allPlatforms) throw new InvalidArgumentError('platform and allPlatforms cannot be used together');
  const platform = options.allPlatforms ? undefined : options.platform !== undefined ? parsePlatform(options.platform) : hostPlatform();
  const spec = options.target.startsWith('docker://') ? options.target.slice('docker://'.length) : options.target;
  if (/^(oci|oci-archive|docker-archive|dir):/.test(spec)) throw new InvalidArgumentError(`target ${options.target}: conversion pushes to a registry; give a registry reference`);
  const target = parseReference(spec);
  if (target.digest) throw new InvalidArgumentError(`target ${options.target}: a digest cannot be a target (the manifest is new); use a tag`);
  if (options.source.startsWith('dir:') && options.mergePlatform) throw new InvalidArgumentError('mergePlatform needs an image source (a dir: source has no source manifest to keep)');
  if (options.keepSourceManifests && !options.mergePlatform && !options.mergeManifest) throw new InvalidArgumentError('keepSourceManifests applies to mergePlatform and mergeManifest (the form of the merged index)');
  if (options.chunkDict !== undefined) parseChunkDictReference(options.chunkDict);
  const retry = resolveRetryOptions(options.retry);
  if (options.timeouts) resolveTimeoutOptions(options.timeouts);
  return { retry, timeouts: options.timeouts, compressor, chunkSize: build.chunkSize, digester, concurrency, platform, target: { ...target, tag: target.tag ?? 'latest' }, prefetchPatterns: build.prefetchPatterns, ociRef,
    oci: options.oci ?? false,
    allPlatforms: options.allPlatforms ?? false,
    mergePlatform: options.mergePlatform ?? false,
    mergeManifest: options.mergeManifest ?? false,
    keepSourceManifests: options.keepSourceManifests ?? false,
  };
}

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (err) {
    throw new FormatError(what, 'is not valid JSON', { cause: err });
  }
}

const CONVERTIBLE_LAYER_TYPES = new Set<string>([
  MediaType.OciLayer,
  MediaType.OciLayerGzip,
  MediaType.OciLayerZstd,
  MediaType.DockerLayer,
  MediaType.DockerLayerGzip,
  'application/vnd.docker.image.rootfs.diff.tar.zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DIRECTORY_LAYER_MEDIA_TYPE,
]);

const MAX_CONFIG_BYTES = 16 << 20;

/** A config or other small blob, whole, refusing more than `max` bytes. */
function readSmall(stream: Readable, max: number, what: string): Promise<Buffer> {
  return readBodyLimited(stream, max, () => new NydusError('RESOURCE_EXHAUSTED', `${what} is larger than ${max} bytes`));
}

/** Wraps an error with where it happened, keeping its code (and the original as `cause`). */
function inContext(err: unknown, where: string): unknown {
  if (isNydusError(err)) {
    if (err.code === 'CANCELLED') return err;
    const wrapped = new NydusError(err.code, `${where}: ${err.message}`, { cause: err });
    return wrapped;
  }
  return new NydusError('INTERNAL', `${where}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/** An image source that copyImage may not close (conversion still uses it). */
function unclosable(store: ImageSource): ImageSource {
  const s: ImageSource = {
    name: store.name,
    resolve: (signal) => store.resolve(signal),
    getManifest: (d, signal) => store.getManifest(d, signal),
    fetchBlob: (d, o) => store.fetchBlob(d, o),
  };
  if (store.location) (s as { location?: ImageSource['location'] }).location = store.location;
  return s;
}

interface Selected {
  /** The manifest's descriptor in the source index (platform from there), if any. */
  indexEntry?: Descriptor;
  manifest: ManifestData;
}

/**
 * Converts an OCI/Docker image to a Nydus image (RAFS v6) and pushes it. Per layer: fetch
 * (digest-verified stream) → decompress → tar → RAFS builder → blob upload, several layers at
 * once and nothing on disk. Then the layer bootstraps are merged (whiteouts applied) into the
 * bootstrap layer, and config, manifest(s) and index are pushed, the tag last: a failure never
 * moves the tag.
 */
export async function convertImage(options: ConvertImageOptions): Promise<ConvertImageResult> {
  const started = performance.now();
  const resolved = resolveConvertImageOptions(options);
  const logger = options.logger ?? noopLogger;
  const emit = options.onProgress ?? (() => undefined);
  const controller = new AbortController();
  const onOuterAbort = (): void => controller.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  if (options.signal?.aborted) controller.abort(options.signal.reason);
  const signal = controller.signal;
  const maxConnections = resolved.concurrency + 4;
  const target = resolved.target;
  const targetName = formatReference(target);

  let source: ConvertSource | undefined;
  // Every client: the same retry and timeout settings.
  const net = { retry: resolved.retry, ...(resolved.timeouts && { timeouts: resolved.timeouts }) };
  const targetClient = makeRegistryClient(target.registry, options.targetRegistry, 'targetRegistry', { maxConnections, logger, ...net });
  const extraClients: RegistryClient[] = [];
  // Layers in worker threads (plain-data jobs: the worker opens the source and a target client
  // itself); a chunk dict (not plain data) keeps conversion in-process. Workers for the first
  // layers start now, loading their modules while the source manifest and config are fetched.
  const cores = availableParallelism();
  const workers = options.chunkDict !== undefined || options.ociRef ? false : options.workers;
  let pool: LayerWorkerPool | undefined;
  if (workers === true || (workers === undefined && cores > 2)) {
    pool = new LayerWorkerPool();
    pool.prestart(Math.min(resolved.concurrency, cores));
  }
  try {
    source = await openConvertSource(options.source, {
      ...(options.sourceRegistry && { registry: options.sourceRegistry }),
      maxConnections,
      logger,
      ...net,
      ...(resolved.platform && { platform: resolved.platform }),
    });
    const store = source.store;
    const top = await store.resolve(signal);
    const selected = await selectManifests(store, top, resolved.platform, options.allPlatforms ?? false, signal);
    for (const sel of selected) checkBlobLimit(store, sel);

    let dictImage: ChunkDictImage | undefined;
    if (options.chunkDict !== undefined) {
      const ref = parseChunkDictReference(options.chunkDict);
      const sameAsTarget = ref.registry === target.registry;
      const dictClient = sameAsTarget
        ? targetClient
        : chunkDictClient(ref.registry, source.reference?.registry, options, { maxConnections, logger, ...net });
      if (!sameAsTarget) extraClients.push(dictClient);
      const dictPlatform = resolved.platform ?? platformOf(parseJsonConfigless(selected[0]!), selected[0]!.indexEntry?.platform) ?? hostPlatform();
      dictImage = await loadChunkDictImage(dictClient, ref, dictPlatform, signal).catch((err: unknown) => {
        throw inContext(err, `chunk dict ${options.chunkDict}`);
      });
      if (dictImage.dict.digester !== resolved.digester) throw new InvalidArgumentError(`chunk dict ${options.chunkDict}: its chunks use ${dictImage.dict.digester}, the conversion ${resolved.digester} (use digester ${dictImage.dict.digester})`, { optionNames: ['digester'] });
      if (dictImage.dict.chunkSize !== resolved.chunkSize) throw new InvalidArgumentError(`chunk dict ${options.chunkDict}: its chunk size is ${dictImage.dict.chunkSize}, the conversion's ${resolved.chunkSize} (use chunkSize ${dictImage.dict.chunkSize})`, { optionNames: ['chunkSize'] });
    }

    if (pool && workers === undefined && selected.reduce((n, s) => n + (JSON.parse(s.manifest.bytes.toString('utf8')) as ImageManifest).layers.length, 0) < 2) {
      // one layer: nothing to build in parallel, a worker would only add its start-up
      await pool.close();
      pool = undefined;
    }
    const limiter = new Limiter(resolved.concurrency);
    let firstError: unknown;
    const fail = (err: unknown): never => {
      if (firstError === undefined) {
        firstError = err;
        controller.abort(err);
      }
      throw err;
    };
    const mixedIndex = (options.mergePlatform || options.mergeManifest) && !options.keepSourceManifests;
    const ctx: ManifestContext = {
      source, targetClient, target, resolved, options, signal, limiter, emit, logger, fail,
      ...(pool && { jobEndpoints: await jobEndpoints(options, source.reference?.registry, target.registry) }),
      ...(dictImage && { dictImage }),
      ...(pool && { pool }),
      ...(mixedIndex && { nydusConfigMediaType: NYDUS_CONFIG_MEDIA_TYPE }),
    };
    const results = await Promise.allSettled(selected.map((s) => convertManifest(ctx, s)));
    if (firstError !== undefined) throw firstError;
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) throw rejected.reason;
    const converted = results.map((r) => (r as PromiseFulfilledResult<ConvertedManifest>).value);

    // ---- what the tag points at
    let tagged: ManifestData;
    const legacyForm = options.keepSourceManifests ?? false;
    const entries = converted.map((c) => nydusIndexEntry(c.manifest.descriptor, c.platform, { legacyMarker: legacyForm }));
    const sourceIsIndex = isIndexMediaType(top.descriptor.mediaType);
    const mergeInto: Descriptor[] = [];
    let indexAnnotations: Record<string, string> | undefined;
    if (options.mergePlatform) {
      // The source manifests go into the target repository unchanged (same digests).
      await copyImage({
        source: unclosable(store),
        target: new RegistryImageTarget(targetClient, { registry: target.registry, repository: target.repository }),
        allPlatforms: true,
        concurrency: resolved.concurrency,
        retry: resolved.retry,
        logger,
        signal,
      }).catch((err: unknown) => {
        throw inContext(err, `copying the source manifests of ${store.name} to ${targetName}`);
      });
      const sourceEntries: Descriptor[] = sourceIsIndex
        ? (parseJson<ImageIndex>(top.bytes, 'source index').manifests ?? [])
        : [{ mediaType: top.descriptor.mediaType, digest: top.descriptor.digest, size: top.descriptor.size, ...(converted[0]!.platform && { platform: converted[0]!.platform }) }];
      if (legacyForm) {
        mergeInto.push(...sourceEntries);
      } else {
        const replaced = await pushEmptyLayerManifests(targetClient, target.repository, converted, signal).catch((err: unknown) => {
          throw inContext(err, `pushing the source manifests with an empty layer to ${targetName}`);
        });
        mergeInto.push(...sourceEntries.map((d) => {
          const r = replaced.get(d.digest);
          if (!r) return d; // not converted (another platform, an attestation): as it is
          const platform = d.platform ?? converted.find((c) => c.report.source.digest === d.digest)?.platform;
          return { mediaType: r.mediaType, digest: r.digest, size: r.size, ...(platform && { platform }), annotations: { ...(d.annotations ?? {}), [Annotation.NydusSourceDigest]: d.digest } };
        }));
        indexAnnotations = {
          [Annotation.NydusSourceDigest]: top.descriptor.digest,
          ...(source.reference && { [Annotation.NydusSourceReference]: formatReference(source.reference) }),
          [Annotation.NydusFsVersion]: NYDUS_FS_VERSION,
        };
      }
    }
    let existing: ManifestData | undefined;
    if (options.mergeManifest) {
      existing = await targetClient.getManifest(target.repository, target.tag, { signal }).catch((err: unknown) => {
        if (isNydusError(err, 'NOT_FOUND')) return undefined;
        throw err;
      });
      if (existing) mergeInto.unshift(...(await existingEntries(targetClient, target, existing, legacyForm, signal)));
    }
    if (mergeInto.length > 0) {
      tagged = buildMergedIndex(mergeInto, entries, indexAnnotations);
    } else if (sourceIsIndex && options.allPlatforms) {
      const docker = !options.oci && top.descriptor.mediaType === MediaType.DockerManifestList && converted.every((c) => c.manifest.descriptor.mediaType === MediaType.DockerManifest);
      tagged = indexData(
        converted.map((c) => ({ mediaType: c.manifest.descriptor.mediaType, digest: c.manifest.descriptor.digest, size: c.manifest.descriptor.size, ...(c.platform && { platform: c.platform }) })),
        docker ? MediaType.DockerManifestList : MediaType.OciIndex,
      );
    } else {
      tagged = converted[0]!.manifest;
    }
    throwIfAborted(signal);
    await targetClient.putManifest(target.repository, target.tag, tagged.bytes, tagged.descriptor.mediaType, { signal });
    emit({ type: 'pushed', reference: targetName, digest: tagged.descriptor.digest, mediaType: tagged.descriptor.mediaType });
    logger.info('converted', { source: store.name, target: targetName, digest: tagged.descriptor.digest });

    const reports = converted.map((c) => c.report);
    const sum = (f: (l: ConvertedLayerReport) => number): number => reports.reduce((a, r) => a + r.layers.reduce((b, l) => b + f(l), 0), 0);
    return {
      source: store.name,
      target: targetName,
      sourceDigest: top.descriptor.digest,
      sourceMediaType: top.descriptor.mediaType,
      sourceSize: top.descriptor.size,
      targetDigest: tagged.descriptor.digest,
      targetMediaType: tagged.descriptor.mediaType,
      targetSize: tagged.descriptor.size,
      manifests: reports,
      bytesIn: sum((l) => l.bytesIn),
      bytesOut: sum((l) => l.bytesOut),
      dedup: { dictChunks: sum((l) => l.dictChunks), dictBytes: sum((l) => l.dictBytes) },
      workers: pool !== undefined,
      ...(resolved.ociRef && {
        ociRef: {
          artifactBytes: reports.reduce((a, r) => a + r.bootstrap.size + r.layers.reduce((b, l) => b + (l.blob?.size ?? 0), 0), 0),
          sourceBytes: sum((l) => l.source.size),
        },
      }),
      durationMs: performance.now() - started,
    };
  } catch (err) {
    if (options.signal?.aborted && !isNydusError(err, 'CANCELLED')) throw new NydusError('CANCELLED', 'conversion cancelled', { cause: err });
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', onOuterAbort);
    await Promise.allSettled([source?.close(), targetClient.close(), ...extraClients.map((c) => c.close()), pool?.close()]);
  }
}

/** Platform hint for loading a chunk dict before any config is read: the index entry's. */
function parseJsonConfigless(s: Selected): ImageConfig {
  return { rootfs: { type: 'layers', diff_ids: [] }, ...(s.indexEntry?.platform ? { os: s.indexEntry.platform.os, architecture: s.indexEntry.platform.architecture } : {}) };
}

/** The manifests to convert: one (a manifest, or an index's platform) or all of an index. */
async function selectManifests(store: ImageSource, top: ManifestData, platform: Platform | undefined, all: boolean, signal: AbortSignal): Promise<Selected[]> {
  if (!isIndexMediaType(top.descriptor.mediaType)) {
    checkImageManifest(store, top);
    return [{ manifest: top }];
  }
  const index = parseJson<ImageIndex>(top.bytes, `source ${store.name} index`);
  if (!Array.isArray(index.manifests)) throw new FormatError('index.manifests', `${store.name}: the index has no manifests array`);
  const images = index.manifests.filter((d) => !isNydusManifestDescriptor(d) && !d.artifactType && d.platform && d.platform.os !== 'unknown');
  let chosen: Descriptor[];
  if (all) {
    chosen = images;
    if (chosen.length === 0) throw new NotFoundError(`${store.name}: the index has no image manifests to convert`);
  } else {
    const match = images.find((d) => platformMatches(d.platform, platform!));
    if (!match) {
      const have = images.map((d) => formatPlatform(d.platform!)).join(', ') || 'none';
      throw new NotFoundError(`${store.name} has no manifest for ${formatPlatform(platform!)} (available: ${have}); use platform or allPlatforms`, { optionNames: ['platform', 'allPlatforms'] });
    }
    chosen = [match];
  }
  const out: Selected[] = [];
  for (const d of chosen) {
    const m = await store.getManifest(d, signal);
    if (isIndexMediaType(m.descriptor.mediaType)) throw new FormatError('index', `${store.name}: entry ${d.digest} is itself an index`);
    checkImageManifest(store, m);
    out.push({ indexEntry: d, manifest: m });
  }
  return out;
}

/** Layers that certainly hold no file (the well-known empty tar layers) give no blob. */
const EMPTY_LAYER_DIGESTS = new Set<string>([EMPTY_LAYER.digest, DOCKER_EMPTY_LAYER_DIGEST]);

/**
 * A RAFS v6 bootstrap addresses at most 254 blobs (one per layer with file data): an image with
 * more layers cannot be converted, which is said before any layer is (instead of after all of
 * them were uploaded). Empty layers do not count; others might turn out to hold no file data
 * but are counted, as that is known only once they are read.
 */
function checkBlobLimit(store: ImageSource, sel: Selected): void {
  const manifest = parseJson<ImageManifest>(sel.manifest.bytes, 'manifest');
  const layers = manifest.layers.filter((l) => !EMPTY_LAYER_DIGESTS.has(l.digest)).length;
  if (layers > MAX_BLOBS) {
    const where = sel.indexEntry?.platform ? `${store.name} (${formatPlatform(sel.indexEntry.platform)})` : store.name;
    throw new InvalidArgumentError(`${where} has ${layers} layers, but a Nydus image holds at most ${MAX_BLOBS} data blobs (one per layer): squash the image to fewer layers first`);
  }
}

function checkImageManifest(store: ImageSource, m: ManifestData): void {
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(m.bytes.toString('utf8')) as ImageManifest;
  } catch (err) {
    throw new FormatError('manifest', `${store.name}: ${m.descriptor.digest} is not an image manifest (not JSON)`, { cause: err });
  }
  if (!manifest || typeof manifest !== 'object' || !manifest.config || !Array.isArray(manifest.layers)) {
    throw new FormatError('manifest', `${store.name}: ${m.descriptor.digest} (${m.descriptor.mediaType}) is not an image manifest (no config and layers)`);
  }
  if (isNydusManifest(manifest)) throw new NydusError('FAILED_PRECONDITION', `${store.name} is already a Nydus image`);
  const config = manifest.config.mediaType;
  if (config !== MediaType.OciConfig && config !== MediaType.DockerConfig) {
    throw new UnsupportedError(`${store.name}: ${m.descriptor.digest} is not a container image (config media type ${config})`);
  }
}

/** Entries of what the target tag holds now (an index's entries, or the manifest itself). */
async function existingEntries(client: RegistryClient, target: ImageReference & { tag: string }, existing: ManifestData, legacyMarker: boolean, signal: AbortSignal): Promise<Descriptor[]> {
  if (isIndexMediaType(existing.descriptor.mediaType)) return parseJson<ImageIndex>(existing.bytes, `existing ${target.tag} index`).manifests ?? [];
  const manifest = parseJson<ImageManifest>(existing.bytes, `existing ${target.tag} manifest`);
  let platform: Platform | undefined;
  if (manifest.config && (manifest.config.mediaType === MediaType.OciConfig || manifest.config.mediaType === MediaType.DockerConfig || manifest.config.mediaType === NYDUS_CONFIG_MEDIA_TYPE)) {
    const config = parseJson<ImageConfig>(await readSmall(client.fetchBlob(target.repository, manifest.config, { signal }), MAX_CONFIG_BYTES, 'existing config'), 'existing config');
    platform = platformOf(config);
  }
  const d: Descriptor = { mediaType: existing.descriptor.mediaType, digest: existing.descriptor.digest, size: existing.descriptor.size, ...(platform && { platform }) };
  return [isNydusManifest(manifest) ? nydusIndexEntry(d, platform, { legacyMarker }) : d];
}

interface ManifestContext {
  source: ConvertSource;
  targetClient: RegistryClient;
  target: ImageReference & { tag: string };
  resolved: ResolvedConvertOptions;
  options: ConvertImageOptions;
  signal: AbortSignal;
  limiter: Limiter;
  emit: (e: ConvertProgressEvent) => void;
  logger: Logger;
  fail: (err: unknown) => never;
  /** The registry endpoints as plain data for worker jobs (credentials looked up once). */
  jobEndpoints?: { source?: RegistryEndpoint; target?: RegistryEndpoint };
  dictImage?: ChunkDictImage;
  pool?: LayerWorkerPool;
  /** Config media type of the Nydus manifests, when they go into an index next to OCI ones. */
  nydusConfigMediaType?: string;
}

/**
 * A client for the chunk dict's registry: the source's endpoint when it is the source registry,
 * else the target's settings (without its host: a third registry).
 */
function chunkDictClient(
  registry: string,
  sourceRegistry: string | undefined,
  options: ConvertImageOptions,
  settings: Parameters<typeof makeRegistryClient>[3],
): RegistryClient {
  if (registry === sourceRegistry) return makeRegistryClient(registry, options.sourceRegistry, 'sourceRegistry', settings);
  const { host: _host, ...endpoint } = options.targetRegistry ?? {};
  return makeRegistryClient(registry, endpoint, 'targetRegistry', settings);
}

/**
 * An endpoint as plain data a worker thread can receive: a credentials lookup is asked once for
 * the registry, CA certificates become strings.
 */
async function plainEndpoint(endpoint: RegistryEndpoint | undefined, registry: string): Promise<RegistryEndpoint | undefined> {
  if (!endpoint) return undefined;
  const { credentials, ca, ...rest } = endpoint;
  const plain: RegistryEndpoint = { ...rest };
  const creds = typeof credentials === 'function' ? await credentials(registry) : credentials;
  if (creds) plain.credentials = creds;
  if (ca !== undefined) plain.ca = (Array.isArray(ca) ? ca : [ca]).map((c) => (typeof c === 'string' ? c : c.toString('utf8')));
  return plain;
}

async function jobEndpoints(options: ConvertImageOptions, sourceRegistry: string | undefined, targetRegistry: string): Promise<{ source?: RegistryEndpoint; target?: RegistryEndpoint }> {
  const source = sourceRegistry === undefined ? undefined : await plainEndpoint(options.sourceRegistry, sourceRegistry);
  const target = await plainEndpoint(options.targetRegistry, targetRegistry);
  return { ...(source && { source }), ...(target && { target }) };
}

/** A layer's conversion as a plain-data job for a worker. */
function layerJob(ctx: ManifestContext, layer: Descriptor): LayerJob {
  const { options, resolved, target } = ctx;
  const endpoints = ctx.jobEndpoints ?? {};
  return {
    source: {
      spec: options.source,
      ...(endpoints.source && { endpoint: endpoints.source }),
      ...(resolved.platform && { platform: resolved.platform }),
    },
    target: { registry: target.registry, ...(endpoints.target && { endpoint: endpoints.target }) },
    repository: target.repository,
    maxConnections: 4,
    retry: resolved.retry,
    ...(resolved.timeouts && { timeouts: resolved.timeouts }),
    layer,
    compressor: resolved.compressor,
    chunkSize: resolved.chunkSize,
    digester: resolved.digester,
    prefetchPatterns: resolved.prefetchPatterns,
  };
}

interface ConvertedManifest {
  manifest: ManifestData;
  platform: Platform | undefined;
  report: ConvertedManifestReport;
  /** The source manifest and its config's bytes (for the merged index's empty-layer form). */
  source: { manifest: ManifestData; config: Buffer };
}

/**
 * Each converted source manifest with the empty layer prepended (spec §5.5), pushed with its
 * blobs (the empty layer, the new config; the source layers are there already) by digest.
 * Returns them by the digest of the manifest each replaces.
 */
async function pushEmptyLayerManifests(client: RegistryClient, repository: string, converted: readonly ConvertedManifest[], signal: AbortSignal): Promise<Map<Digest, Descriptor>> {
  const replaced = new Map<Digest, Descriptor>();
  for (const c of converted) {
    const r = prependEmptyLayer(c.source.manifest, c.source.config);
    await settleAll([
      pushSmallBlob(client, repository, r.emptyLayer, EMPTY_LAYER.bytes, signal),
      pushSmallBlob(client, repository, r.config.descriptor, r.config.bytes, signal),
    ]);
    await client.putManifest(repository, r.manifest.descriptor.digest, r.manifest.bytes, r.manifest.descriptor.mediaType, { signal });
    replaced.set(c.source.manifest.descriptor.digest, r.manifest.descriptor);
  }
  return replaced;
}

/** A blob held in memory (a config, a bootstrap layer), unless the repository has it: a failed upload is sent again. */
async function pushSmallBlob(client: RegistryClient, repository: string, descriptor: Descriptor, bytes: Buffer, signal: AbortSignal): Promise<void> {
  if ((await client.headBlob(repository, descriptor.digest, { signal })) !== undefined) return;
  await client.pushBlob(repository, descriptor, bytes, { signal });
}

async function convertManifest(ctx: ManifestContext, sel: Selected): Promise<ConvertedManifest> {
  const { source, targetClient, target, resolved, signal } = ctx;
  const store = source.store;
  const manifest = parseJson<ImageManifest>(sel.manifest.bytes, 'manifest');
  const configBytes = await readSmall(store.fetchBlob(manifest.config, { signal }), MAX_CONFIG_BYTES, `config ${manifest.config.digest}`).catch((err: unknown) => ctx.fail(inContext(err, `${store.name}: config ${manifest.config.digest}`)));
  const config = parseJson<ImageConfig>(configBytes, `config ${manifest.config.digest}`);
  const platform = platformOf(config, sel.indexEntry?.platform);
  const pname = platform ? formatPlatform(platform) : undefined;
  const where = `${store.name}${pname && sel.indexEntry ? ` (${pname})` : ''}`;
  ctx.emit({ type: 'manifest-start', platform: pname, sourceDigest: sel.manifest.descriptor.digest, layers: manifest.layers.length });
  manifest.layers.forEach((l, i) => {
    if (!CONVERTIBLE_LAYER_TYPES.has(l.mediaType)) {
      ctx.fail(new UnsupportedError(`${where}: layer ${i} (${l.digest}) has media type ${l.mediaType}, which is not a tar layer (tar, tar+gzip, tar+zstd)`));
    }
  });

  // ---- layers, in parallel (bounded across all manifests). A failure aborts the others
  // (ctx.fail); every one has ended (its upload cancelled) before this rejects.
  const layers: ConvertedLayer[] = await settleAll(
    manifest.layers.map((layer, index) =>
      ctx.limiter.run(async () => {
        throwIfAborted(signal);
        ctx.emit({ type: 'layer-start', platform: pname, index, digest: layer.digest, size: layer.size });
        let bytesIn = 0;
        let bytesOut = 0;
        const progress = throttled(() => ctx.emit({ type: 'layer-progress', platform: pname, index, digest: layer.digest, size: layer.size, bytesIn, bytesOut }));
        const onRetry = (err: unknown, attempt: number): void => {
          bytesIn = 0;
          bytesOut = 0;
          const error = err instanceof Error ? err.message : String(err);
          ctx.logger.warn('layer conversion failed, converting it again', { layer: layer.digest, attempt, error });
          ctx.emit({ type: 'layer-retry', platform: pname, index, digest: layer.digest, attempt, error });
        };
        try {
          let fallback: string | undefined;
          if (resolved.ociRef && isZstdLayer(layer)) fallback = `${layer.mediaType} layers cannot be referenced in place`;
          else if (resolved.ociRef) {
            try {
              // As a native layer: one budget; a failed upload or a corrupted source starts it afresh.
              const budget = new RetryBudget(resolved.retry);
              const converted = await withRetry(
                () =>
                  convertRefLayer({
                    store: source.store,
                    ...(source.reference && { sourceReference: source.reference }),
                    layer,
                    client: targetClient,
                    target: { registry: target.registry, repository: target.repository },
                    chunkSize: resolved.chunkSize,
                    ...(resolved.prefetchPatterns.length && { prefetchPatterns: resolved.prefetchPatterns }),
                    signal,
                    retryBudget: budget,
                    onBytes: (n) => {
                      bytesIn += n;
                      progress();
                    },
                  }),
                budget.options,
                { budget, signal, onRetry },
              );
              Object.assign(converted, { bytesIn });
              ctx.emit({ type: 'layer-done', platform: pname, index, digest: layer.digest, blob: converted.blob?.digest ?? null, bytesIn, bytesOut: converted.bytesOut, durationMs: converted.durationMs });
              ctx.logger.debug('reference layer converted', { layer: layer.digest, meta: converted.ref.meta.digest, original: converted.ref.original.action, ms: Math.round(converted.durationMs) });
              return converted;
            } catch (err) {
              if (!(err instanceof RefLayerUnsupportedError)) throw err;
              fallback = err.message;
              bytesIn = 0;
            }
          }
          if (fallback !== undefined) ctx.logger.info('layer converted to a native Nydus blob', { layer: layer.digest, reason: fallback });
          if (ctx.pool) {
            const r = await ctx.pool.run(layerJob(ctx, layer), {
              signal,
              onProgress: (i, o) => {
                bytesIn = i;
                bytesOut = o;
                progress();
              },
              onRetry,
            });
            const converted = r.layer;
            bytesIn = r.bytesIn;
            (converted as ConvertedLayer & { bytesIn: number }).bytesIn = layer.mediaType === DIRECTORY_LAYER_MEDIA_TYPE ? converted.stats.bytesIn : bytesIn;
            ctx.emit({ type: 'layer-done', platform: pname, index, digest: layer.digest, blob: converted.blob?.digest ?? null, bytesIn, bytesOut: converted.bytesOut, durationMs: converted.durationMs });
            ctx.logger.debug('layer converted', { layer: layer.digest, blob: converted.blob?.digest, ms: Math.round(converted.durationMs), worker: true });
            return converted;
          }
          const converted = await convertLayer({
            entries: ({ retryBudget }) => source.layerEntries(layer, { signal, retryBudget, onBytes: (n) => { bytesIn += n; progress(); } }),
            retry: resolved.retry,
            onRetry,
            client: targetClient,
            repository: target.repository,
            compressor: resolved.compressor,
            chunkSize: resolved.chunkSize,
            digester: resolved.digester,
            ...(ctx.dictImage && { chunkDict: ctx.dictImage.dict }),
            ...(resolved.prefetchPatterns.length && { prefetchPatterns: resolved.prefetchPatterns }),
            signal,
            onBlobBytes: (n) => {
              bytesOut += n;
              progress();
            },
          });
          (converted as ConvertedLayer & { bytesIn: number }).bytesIn = layer.mediaType === DIRECTORY_LAYER_MEDIA_TYPE ? converted.stats.bytesIn : bytesIn;
          if (fallback !== undefined) (converted as ConvertedLayer & { fallback?: string }).fallback = fallback;
          ctx.emit({ type: 'layer-done', platform: pname, index, digest: layer.digest, blob: converted.blob?.digest ?? null, bytesIn, bytesOut: converted.bytesOut, durationMs: converted.durationMs });
          ctx.logger.debug('layer converted', { layer: layer.digest, blob: converted.blob?.digest, ms: Math.round(converted.durationMs) });
          return converted;
        } catch (err) {
          return ctx.fail(inContext(err, `${where}: layer ${index} (${layer.digest})`));
        }
      }),
    ),
  );

  // ---- merged bootstrap and bootstrap layer
  const merged = await mergeBootstraps(
    layers.map((l) => mergeLayerOf(l)),
    { ...(ctx.dictImage && { chunkDict: ctx.dictImage.dict }), ...(resolved.prefetchPatterns.length && { prefetchPatterns: resolved.prefetchPatterns }), signal },
  ).catch((err: unknown) => ctx.fail(inContext(err, `${where}: merging layer bootstraps`)));
  const metas: Array<{ blobId: string; meta: Uint8Array }> = [];
  // Reference layers ship no `.blob.meta` here: it is in their meta blob (blob_meta_digest),
  // which readers fetch and verify (spec §4.3), and a copy would double the artifact.
  for (const l of layers) if (l.blob && l.blobMeta && refOf(l) === undefined) metas.push({ blobId: l.blob.digest.slice(7), meta: l.blobMeta });

  // ---- chunk-dict blobs the merged image references
  const ownIds = new Set(layers.filter((l) => l.blob).map((l) => l.blob!.digest.slice(7)));
  const dictBlobs: Descriptor[] = [];
  const dictReport: ConvertedManifestReport['dictBlobs'] = [];
  if (ctx.dictImage) {
    for (const id of merged.blobIds) {
      if (ownIds.has(id)) continue;
      const d = ctx.dictImage.blobs.get(id);
      if (!d) ctx.fail(new NydusError('INTERNAL', `${where}: merged bootstrap references blob ${id}, neither a layer's nor the chunk dict's`));
      const action = await ensureDictBlob(ctx, d!).catch((err: unknown) => ctx.fail(inContext(err, `chunk dict blob ${d!.digest}`)));
      dictBlobs.push({ mediaType: NYDUS_BLOB_MEDIA_TYPE, digest: d!.digest, size: d!.size, ...(d!.annotations && { annotations: d!.annotations }) });
      dictReport.push({ digest: d!.digest, size: d!.size, action });
      const meta = ctx.dictImage.blobMetas.get(id);
      if (meta) metas.push({ blobId: id, meta });
    }
  }
  const bootLayer = await packBootstrapLayer(merged.bootstrap, metas);
  const nydus = buildNydusManifest({
    sourceManifest: manifest,
    sourceMediaType: sel.manifest.descriptor.mediaType,
    sourceDigest: sel.manifest.descriptor.digest,
    ...(source.reference && { sourceReference: formatReference(source.reference) }),
    sourceConfig: config,
    blobs: layers.map((l) => l.blob),
    dictBlobs,
    bootstrap: bootLayer,
    oci: ctx.options.oci ?? false,
    ...(ctx.nydusConfigMediaType && { configMediaType: ctx.nydusConfigMediaType }),
  });
  const bootDesc = nydus.manifestJson.layers[nydus.manifestJson.layers.length - 1]!;
  try {
    // blobs → bootstrap layer and config (at once) → manifest (by digest; the tag comes last, in convertImage)
    await settleAll([
      pushSmallBlob(targetClient, target.repository, bootDesc, bootLayer.bytes, signal),
      pushSmallBlob(targetClient, target.repository, nydus.config.descriptor, nydus.config.bytes, signal),
    ]);
    await targetClient.putManifest(target.repository, nydus.manifest.descriptor.digest, nydus.manifest.bytes, nydus.manifest.descriptor.mediaType, { signal });
  } catch (err) {
    ctx.fail(inContext(err, `pushing the Nydus manifest of ${where} to ${formatReference(target)}`));
  }
  ctx.emit({ type: 'manifest-done', platform: pname, digest: nydus.manifest.descriptor.digest });
  const stat = (l: ConvertedLayer): LayerBuildStats => l.stats;
  return {
    manifest: nydus.manifest,
    platform,
    source: { manifest: sel.manifest, config: configBytes },
    report: {
      platform: pname,
      source: { digest: sel.manifest.descriptor.digest, mediaType: sel.manifest.descriptor.mediaType, size: sel.manifest.descriptor.size },
      target: { digest: nydus.manifest.descriptor.digest, mediaType: nydus.manifest.descriptor.mediaType, size: nydus.manifest.descriptor.size },
      config: nydus.config.descriptor.digest,
      bootstrap: { digest: bootLayer.digest, size: bootLayer.size, diffId: bootLayer.diffId },
      layers: layers.map((l, i) => ({
        source: { digest: manifest.layers[i]!.digest, mediaType: manifest.layers[i]!.mediaType, size: manifest.layers[i]!.size },
        blob: l.blob ? { digest: l.blob.digest, size: l.blob.size } : null,
        bytesIn: (l as ConvertedLayer & { bytesIn: number }).bytesIn,
        contentBytes: stat(l).bytesIn,
        bytesOut: l.bytesOut,
        entries: stat(l).entries,
        chunks: stat(l).chunks,
        dictChunks: stat(l).dictChunks,
        dictBytes: stat(l).dictBytes,
        durationMs: l.durationMs,
        ...refReport(l, ctx.resolved.ociRef),
      })),
      dictBlobs: dictReport,
    },
  };
}

function isZstdLayer(layer: Descriptor): boolean {
  return layer.mediaType.endsWith('+zstd') || layer.mediaType.endsWith('.zstd');
}

function refOf(l: ConvertedLayer): ConvertedRefLayer['ref'] | undefined {
  return (l as Partial<ConvertedRefLayer>).ref;
}

/** How a converted layer enters the merge: reference layers by their original, with their meta blob. */
function mergeLayerOf(l: ConvertedLayer): MergeLayer {
  const ref = refOf(l);
  if (ref !== undefined) return l.blobMeta ? { bootstrap: l.bootstrap, blobId: ref.original.digest, blobMeta: ref.meta } : { bootstrap: l.bootstrap };
  return l.blob ? { bootstrap: l.bootstrap, blobId: l.blob.digest } : { bootstrap: l.bootstrap };
}

function refReport(l: ConvertedLayer, ociRef: boolean): Pick<ConvertedLayerReport, 'ref'> {
  const ref = refOf(l);
  if (ref !== undefined) return { ref: { kind: ref.kind, original: ref.original, contexts: ref.contexts } };
  if (!ociRef) return {};
  return { ref: { kind: 'native', reason: (l as ConvertedLayer & { fallback?: string }).fallback ?? 'not a reference layer' } };
}

/** Makes a chunk-dict blob present in the target repository: already there, mounted, or copied. */
async function ensureDictBlob(ctx: ManifestContext, d: Descriptor): Promise<'present' | 'mounted' | 'copied'> {
  const { targetClient, target, signal } = ctx;
  const dict = ctx.dictImage!;
  if ((await targetClient.headBlob(target.repository, d.digest, { signal })) !== undefined) return 'present';
  if (dict.reference.registry === target.registry) {
    if (await targetClient.mountBlob(target.repository, d.digest, dict.reference.repository, { signal }).catch(() => false)) return 'mounted';
  }
  const fromClient = dict.reference.registry === target.registry
    ? targetClient
    : chunkDictClient(dict.reference.registry, ctx.source.reference?.registry, ctx.options, { retry: ctx.resolved.retry, ...(ctx.resolved.timeouts && { timeouts: ctx.resolved.timeouts }) });
  try {
    // As copy does: one budget for the blob's GETs, resumes, upload and fresh starts.
    const budget = new RetryBudget(ctx.resolved.retry);
    await withRetry(async () => {
      const data = fromClient.fetchBlob(dict.reference.repository, d, { signal, retryBudget: budget });
      try {
        await targetClient.pushBlob(target.repository, d, data, { signal, retryBudget: budget });
      } finally {
        data.destroy();
      }
    }, budget.options, { budget, signal });
  } finally {
    if (fromClient !== targetClient) await fromClient.close();
  }
  return 'copied';
}

