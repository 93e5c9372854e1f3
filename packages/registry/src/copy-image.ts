import type { Readable } from 'node:stream';
import { FormatError, InvalidArgumentError, NotFoundError, isIndexMediaType, isNydusError, noopLogger, throwIfAborted } from '@nydus-ts/core';
import type { Descriptor, Digest, ImageIndex, ImageManifest, Logger, Platform } from '@nydus-ts/core';
import { endpointFor } from './endpoint.js';
import type { RegistryEndpoint } from './endpoint.js';
import { parseImageLocation } from './image-location.js';
import type { ImageSource, ImageTarget } from './image-store.js';
import { Limiter } from './limiter.js';
import { OciLayoutSource, OciLayoutTarget } from './oci-layout.js';
import { formatPlatform, hostPlatform, parsePlatform, platformMatches } from './platform.js';
import { RegistryClient } from './registry-client.js';
import type { ManifestData } from './registry-client.js';
import { RegistryImageSource, RegistryImageTarget } from './registry-image-store.js';
import { RetryBudget, resolveRetryOptions, resolveTimeoutOptions, withRetry } from './retry.js';
import type { RetryOptions, TimeoutOptions } from './retry.js';
import { checkPushChunkSize } from './blob-upload.js';
import { settleAll } from './settle-all.js';

/** One side of a copy: how to reach its registry (the host is the reference's), and its connection pool. */
export interface CopySideOptions extends RegistryEndpoint {
  /** Keep-alive connections per host (default: concurrency + 2). */
  maxConnections?: number;
}

/** Context handed to {@link CopyImageOptions.extraBlobs}. */
export interface ExtraBlobsContext {
  source: ImageSource;
  /** The manifest's own descriptor and exact bytes. */
  manifest: ManifestData;
  signal?: AbortSignal;
}

export type CopyProgressEvent =
  | { type: 'manifest'; digest: Digest; mediaType: string; size: number }
  | { type: 'blob-start'; digest: Digest; size: number }
  | { type: 'blob-progress'; digest: Digest; size: number; bytes: number }
  | { type: 'blob-retry'; digest: Digest; attempt: number; error: string }
  | { type: 'blob-done'; digest: Digest; size: number; action: 'copied' | 'skipped' | 'mounted' };

export interface CopyImageOptions {
  /** `host/repo[:tag][@digest]`, `oci:PATH[:TAG]`, or an {@link ImageSource}. */
  source: string | ImageSource;
  /** Same forms; a registry target with neither tag nor digest is tagged `latest`. */
  target: string | ImageTarget;
  /** The source registry (for a registry reference). */
  sourceRegistry?: CopySideOptions;
  /** The target registry (for a registry reference). */
  targetRegistry?: CopySideOptions;
  /**
   * For a multi-platform source: the platform whose manifest is copied (its manifest, not a
   * rewritten index). Default: the machine's platform. Ignored with `allPlatforms`.
   */
  platform?: Platform | string;
  /** Copy the index and every child unchanged. */
  allPlatforms?: boolean;
  /** 0 (default): monolithic blob uploads; else chunked PATCH uploads of this many bytes (4 KiB to 1 GiB). */
  pushChunkSize?: number;
  /** Blobs transferred at once (default 4). */
  concurrency?: number;
  /**
   * Blobs a manifest needs that it does not list (e.g. the gzip layers a targz-ref Nydus
   * bootstrap points at). They are copied before the manifest is pushed.
   */
  extraBlobs?: (manifest: ImageManifest, ctx: ExtraBlobsContext) => Promise<Descriptor[]>;
  onProgress?: (event: CopyProgressEvent) => void;
  /**
   * Retries: one budget per blob (its GETs, `Range` resumes, upload requests and fresh starts
   * together) and per manifest request.
   */
  retry?: RetryOptions;
  /** Connect and idle timeouts of every registry request (defaults 30 s / 60 s). */
  timeouts?: TimeoutOptions;
  signal?: AbortSignal;
  logger?: Logger;
}

/** The defaults of a copy (the CLI shows these in its help; it declares none of its own). */
export const COPY_IMAGE_DEFAULTS = {
  /** Blobs transferred at once. */
  concurrency: 4,
  /** 0: one monolithic PUT per blob. */
  pushChunkSize: 0,
} as const;

export interface CopyImageResult {
  source: string;
  target: string;
  /** Digest, media type and size of what the target's tag now points at. */
  digest: Digest;
  mediaType: string;
  size: number;
  /** Platforms copied (empty for a single-manifest image without platform info). */
  platforms: string[];
  manifests: number;
  blobs: { total: number; copied: number; skipped: number; mounted: number };
  /** Blob bytes sent to the target (retries included). */
  bytesSent: number;
  durationMs: number;
}

const nonDistributable = /foreign|nondistributable/;

function parseJson<T>(m: ManifestData, what: string): T {
  try {
    return JSON.parse(m.bytes.toString('utf8')) as T;
  } catch (err) {
    throw new FormatError(what, `${m.descriptor.digest} is not valid JSON`, { cause: err });
  }
}

interface ClientSettings {
  maxConnections: number;
  retry?: RetryOptions;
  timeouts?: TimeoutOptions;
  logger: Logger;
}

function openSource(spec: string | ImageSource, side: CopySideOptions, common: ClientSettings): { store: ImageSource; client?: RegistryClient } {
  if (typeof spec !== 'string') return { store: spec };
  const loc = parseImageLocation(spec);
  if (loc.kind === 'oci-layout') return { store: new OciLayoutSource(loc.path, loc.tag) };
  const client = makeClient(loc.reference.registry, side, 'sourceRegistry', common);
  return { store: new RegistryImageSource(client, loc.reference), client };
}

function makeClient(registry: string, side: CopySideOptions, option: string, common: ClientSettings): RegistryClient {
  const { maxConnections, ...endpoint } = side;
  return new RegistryClient({
    ...endpointFor(registry, endpoint, option),
    registry,
    maxConnections: maxConnections ?? common.maxConnections,
    retry: common.retry ?? {},
    ...(common.timeouts && { timeouts: common.timeouts }),
    logger: common.logger,
  });
}

/**
 * Copies an image between registries and/or OCI layout directories. Blobs stream from source
 * to target through memory with backpressure (never to disk for a registry target); manifests
 * and indexes are copied byte for byte, children before parents, the tagged one last, so a
 * failed copy never leaves a tag pointing at missing content. Existing blobs are skipped;
 * blobs in another repository of the same registry are mounted. The first failure stops the
 * copy: transfers not begun are not begun, those under way are aborted, and the copy rejects
 * with that failure once every one of them has ended.
 */
export async function copyImage(options: CopyImageOptions): Promise<CopyImageResult> {
  const started = Date.now();
  const logger = options.logger ?? noopLogger;
  const concurrency = options.concurrency ?? COPY_IMAGE_DEFAULTS.concurrency;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError(`concurrency must be a positive integer, got ${concurrency}`);
  const chunkSize = checkPushChunkSize(options.pushChunkSize ?? COPY_IMAGE_DEFAULTS.pushChunkSize, 'pushChunkSize');
  const platform = options.allPlatforms
    ? undefined
    : typeof options.platform === 'string'
      ? parsePlatform(options.platform)
      : (options.platform ?? hostPlatform());
  const retry = resolveRetryOptions(options.retry);
  if (options.timeouts) resolveTimeoutOptions(options.timeouts); // bad values fail before any request
  const common: ClientSettings = { maxConnections: concurrency + 2, retry, logger, ...(options.timeouts && { timeouts: options.timeouts }) };

  const src = openSource(options.source, options.sourceRegistry ?? {}, common);
  let target: ImageTarget;
  let targetClient: RegistryClient | undefined;
  if (typeof options.target === 'string') {
    const loc = parseImageLocation(options.target);
    if (loc.kind === 'oci-layout') {
      target = new OciLayoutTarget(loc.path, loc.tag);
    } else {
      targetClient = makeClient(loc.reference.registry, options.targetRegistry ?? {}, 'targetRegistry', common);
      target = new RegistryImageTarget(targetClient, loc.reference, { chunkSize });
    }
  } else {
    target = options.target;
  }
  const source = src.store;
  // The first failure aborts the rest of the copy (see failed).
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  let firstError: { reason: unknown } | undefined;
  const failed = (err: unknown): never => {
    if (!firstError) {
      firstError = { reason: err };
      stop.abort(err);
    } else if (!isNydusError(err, 'CANCELLED')) {
      logger.debug('copy: another transfer failed after the first failure', { error: err instanceof Error ? err.message : String(err) });
    }
    throw err;
  };
  // Warm the target up (scheme probe, auth challenge, a connection) while the source manifest is
  // fetched; a failure here is left to the requests that follow.
  const warmUp = new AbortController();
  void targetClient?.ping({ signal: AbortSignal.any([signal, warmUp.signal]) }).catch(() => undefined);
  const emit = options.onProgress ?? (() => undefined);
  const limiter = new Limiter(concurrency);
  const blobs = new Map<string, Promise<void>>();
  const stats = { total: 0, copied: 0, skipped: 0, mounted: 0, bytesSent: 0, manifests: 0 };
  const platforms: string[] = [];

  const transferBlob = async (desc: Descriptor): Promise<void> => {
    throwIfAborted(signal);
    emit({ type: 'blob-start', digest: desc.digest, size: desc.size });
    if (await target.hasBlob(desc, signal)) {
      stats.skipped++;
      emit({ type: 'blob-done', digest: desc.digest, size: desc.size, action: 'skipped' });
      return;
    }
    if (source.location && target.mountBlob && source.location.registry === target.location?.registry && source.location.repository !== target.location.repository) {
      if (await target.mountBlob(desc, source.location, signal)) {
        stats.mounted++;
        emit({ type: 'blob-done', digest: desc.digest, size: desc.size, action: 'mounted' });
        return;
      }
    }
    // One budget for everything this blob's transfer does: the source's GETs and resumes, the
    // upload's requests and, after a corrupted body or a failed upload, the fresh starts.
    const budget = new RetryBudget(retry);
    await withRetry(
      async () => {
        let sent = 0;
        const onBytes = (n: number): void => {
          sent += n;
          stats.bytesSent += n;
          if (options.onProgress) emit({ type: 'blob-progress', digest: desc.digest, size: desc.size, bytes: sent });
        };
        const data: Readable = source.fetchBlob(desc, { signal, onBytes, retryBudget: budget });
        try {
          await target.pushBlob(desc, data, { signal, retryBudget: budget });
        } finally {
          data.destroy();
        }
      },
      retry,
      {
        signal,
        budget,
        onRetry: (err, attempt) => {
          logger.warn('blob transfer failed, retrying', { digest: desc.digest, attempt, error: err instanceof Error ? err.message : String(err) });
          emit({ type: 'blob-retry', digest: desc.digest, attempt, error: err instanceof Error ? err.message : String(err) });
        },
      },
    );
    stats.copied++;
    emit({ type: 'blob-done', digest: desc.digest, size: desc.size, action: 'copied' });
  };

  const copyBlob = (desc: Descriptor): Promise<void> => {
    let p = blobs.get(desc.digest);
    if (!p) {
      stats.total++;
      p = limiter.run(() => transferBlob(desc)).catch(failed);
      blobs.set(desc.digest, p);
    }
    return p;
  };

  const copyManifest = async (m: ManifestData, top: boolean): Promise<void> => {
    throwIfAborted(signal);
    emit({ type: 'manifest', digest: m.descriptor.digest, mediaType: m.descriptor.mediaType, size: m.descriptor.size });
    const manifest = parseJson<ImageManifest>(m, 'manifest');
    if (!manifest.config || !Array.isArray(manifest.layers)) {
      throw new FormatError('manifest', `${m.descriptor.digest} (${m.descriptor.mediaType}) has no config/layers`);
    }
    const wanted: Descriptor[] = [manifest.config, ...manifest.layers.filter((l) => !(l.urls?.length && nonDistributable.test(l.mediaType)))];
    if (options.extraBlobs) wanted.push(...(await options.extraBlobs(manifest, { source, manifest: m, signal })));
    await settleAll(wanted.map((d) => copyBlob(d)));
    await target.putManifest(m, { top, signal });
    stats.manifests++;
  };

  const copyNode = async (m: ManifestData, top: boolean): Promise<void> => {
    if (!isIndexMediaType(m.descriptor.mediaType)) return copyManifest(m, top);
    const index = parseJson<ImageIndex>(m, 'index');
    if (!Array.isArray(index.manifests)) throw new FormatError('index.manifests', `${m.descriptor.digest} has no manifests array`);
    await settleAll(
      index.manifests.map(async (child) => {
        try {
          if (child.platform) platforms.push(formatPlatform(child.platform));
          const cm = await source.getManifest(child, signal);
          await copyNode(cm, false);
        } catch (err) {
          failed(err);
        }
      }),
    );
    emit({ type: 'manifest', digest: m.descriptor.digest, mediaType: m.descriptor.mediaType, size: m.descriptor.size });
    await target.putManifest(m, { top, signal });
    stats.manifests++;
  };

  try {
    let top = await source.resolve(signal);
    if (isIndexMediaType(top.descriptor.mediaType) && platform) {
      const index = parseJson<ImageIndex>(top, 'index');
      const candidates = (index.manifests ?? []).filter((d) => platformMatches(d.platform, platform));
      // Prefer a plain image over artifacts sharing the platform (e.g. a Nydus manifest in a merged index).
      const chosen = candidates.find((d) => !d.artifactType && !d.platform?.['os.features']?.length) ?? candidates[0];
      if (!chosen) {
        const have = (index.manifests ?? []).map((d) => (d.platform ? formatPlatform(d.platform) : '?')).join(', ');
        throw new NotFoundError(`${source.name} has no manifest for ${formatPlatform(platform)} (available: ${have}); use platform or allPlatforms`, { optionNames: ['platform', 'allPlatforms'] });
      }
      platforms.push(formatPlatform(chosen.platform!));
      top = await source.getManifest(chosen, signal);
      if (isIndexMediaType(top.descriptor.mediaType)) throw new FormatError('index', `platform entry ${chosen.digest} is itself an index`);
      logger.info('copying one platform of a multi-platform image', { platform: formatPlatform(chosen.platform!), digest: chosen.digest });
    }
    await copyNode(top, true);
    return {
      source: source.name,
      target: target.name,
      digest: top.descriptor.digest,
      mediaType: top.descriptor.mediaType,
      size: top.descriptor.size,
      platforms: [...new Set(platforms)],
      manifests: stats.manifests,
      blobs: { total: stats.total, copied: stats.copied, skipped: stats.skipped, mounted: stats.mounted },
      bytesSent: stats.bytesSent,
      durationMs: Date.now() - started,
    };
  } catch (err) {
    // What the others failed with after the first failure aborted them is its consequence.
    throw firstError ? firstError.reason : err;
  } finally {
    warmUp.abort();
    await Promise.all([src.client?.close(), targetClient?.close(), source.close?.(), target.close?.()]);
  }
}
