/**
 * A RAFS v6 image ready to serve: the bootstrap (checked whole at load, so that a truncated or
 * mutated one is refused before anything is mounted — or, when asked, right after load in the
 * background, the reader checking each structure anyway on first use), the chunk tables of its blobs and, per
 * blob, the shared cache file and chunk source. Filesystem views (full FUSE, blob devices) read
 * through it; it never does network I/O itself outside `ImageBlob.ensure`.
 */
import { readFile } from 'node:fs/promises';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { FormatError, NotFoundError, noopLogger, type BlobBackend, type Logger } from '@nydus-ts/core';
import { BootstrapReader, DEFAULT_MAX_BOOTSTRAP_SIZE } from '@nydus-ts/format';
import type { BlobCacheManager } from '../cache/blob-cache-manager.js';
import type { BufferPool } from '../cache/buffer-pool.js';
import type { FetchScheduler } from '../cache/fetch-scheduler.js';
import { ImageBlob } from '../cache/image-blob.js';
import { BlobChunkTable } from '../chunks/blob-chunk-table.js';
import { createChunkSource, type ChunkSource } from '../chunks/chunk-source.js';
import { BlobcacheMetrics } from '../metrics/metrics.js';

export interface RafsImageOptions {
  backend: BlobBackend & { readInto?(blobId: string, offset: number, target: Uint8Array, signal?: AbortSignal): Promise<void> };
  /** Reused fetch and decode buffers (shared by the daemon's images). */
  bufferPool?: BufferPool;
  cacheManager: BlobCacheManager;
  scheduler: FetchScheduler;
  workDir: string;
  /** On-demand fetches widened to this many bytes (nydusd `amplify_io`). */
  amplifyIo: number;
  /** Largest merged fetch (default 1 MiB, nydusd's batch size). */
  mergeLimit?: number;
  prefetchMergeLimit?: number;
  /** Id for metrics (the mountpoint in shared mode). */
  id: string;
  logger?: Logger;
  onDigestError?: () => void;
  /** Called with the size of every fetched range. */
  onFetched?: (bytes: number) => void;
  /**
   * When to read every structure of the bootstrap once: `load` (default: a bad bootstrap fails
   * the load) or `background` (after load, in slices between other work; a structure found bad
   * is logged, and reads reaching it fail as they would anyway). A 40k-file image takes ~0.3 s.
   */
  bootstrapCheck?: 'load' | 'background';
}

/** Default largest merged fetch: nydusd's 1 MiB batch size. */
export const DEFAULT_MERGE_LIMIT = 1 << 20;

export class RafsImage {
  readonly reader: BootstrapReader;
  readonly blobs: ImageBlob[];
  /** Per chunk-table entry: CI index and blob index. */
  readonly entryCi: Uint32Array;
  readonly entryBlob: Uint16Array;
  readonly cacheMetrics: BlobcacheMetrics;
  readonly bootstrapPath: string | undefined;
  private readonly cacheManager: BlobCacheManager;
  private readonly workDir: string;
  private closed = false;

  private constructor(
    reader: BootstrapReader,
    blobs: ImageBlob[],
    entryCi: Uint32Array,
    entryBlob: Uint16Array,
    metrics: BlobcacheMetrics,
    options: RafsImageOptions,
    private readonly sources: ChunkSource[],
    bootstrapPath?: string,
  ) {
    this.reader = reader;
    this.blobs = blobs;
    this.entryCi = entryCi;
    this.entryBlob = entryBlob;
    this.cacheMetrics = metrics;
    this.cacheManager = options.cacheManager;
    this.workDir = options.workDir;
    this.bootstrapPath = bootstrapPath;
  }

  /** Loads a bootstrap file, checks it whole and opens the caches of its blobs. */
  static async load(bootstrap: string | Uint8Array, options: RafsImageOptions): Promise<RafsImage> {
    let bytes: Uint8Array;
    let path: string | undefined;
    if (typeof bootstrap === 'string') {
      path = bootstrap;
      try {
        bytes = await readFile(bootstrap);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') throw new NotFoundError(`bootstrap ${bootstrap}: no such file`, { cause: err });
        throw new FormatError(`bootstrap ${bootstrap}`, `cannot be read (${code ?? (err as Error).message})`, { cause: err });
      }
      if (bytes.byteLength > DEFAULT_MAX_BOOTSTRAP_SIZE) throw new FormatError(`bootstrap ${bootstrap}`, `${bytes.byteLength} bytes exceed the ${DEFAULT_MAX_BOOTSTRAP_SIZE}-byte limit`);
    } else {
      bytes = bootstrap;
    }
    const logger = options.logger ?? noopLogger;
    let reader: BootstrapReader;
    const background = options.bootstrapCheck === 'background';
    try {
      reader = await BootstrapReader.open(bytes);
      if (!background) await checkWholeBootstrap(reader);
    } catch (err) {
      // Name the file: a daemon serving several images says which one is bad.
      if (path !== undefined && err instanceof FormatError) throw new FormatError(`bootstrap ${path}`, err.message, { cause: err, value: err.field });
      throw err;
    }
    const { tables, entryCi, entryBlob } = BlobChunkTable.fromBootstrap(reader);
    const metrics = new BlobcacheMetrics(options.id, options.workDir);
    const blobs: ImageBlob[] = [];
    const onMetaFetched = (bytes: number): void => {
      metrics.metaFetchRequests++;
      metrics.metaFetchBytes += bytes;
      options.onFetched?.(bytes);
    };
    // Sources at once: a ZRAN blob's source fetches and verifies its meta first.
    const opened = await Promise.allSettled(tables.map((table) => createChunkSource(table, { backend: options.backend, logger, cacheDir: options.workDir, onMetaFetched })));
    const sources = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const closeSources = async (): Promise<void> => {
      for (const source of sources) await source.close?.().catch(() => undefined);
    };
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await closeSources();
      throw failed.reason;
    }
    try {
      for (const [i, table] of tables.entries()) {
        const source = sources[i]!;
        const file = await options.cacheManager.acquire(options.workDir, table.blob.blobId, table.count, table.viewSize);
        metrics.underlyingFiles.add(file.dataPath);
        blobs.push(
          new ImageBlob({
            table,
            source,
            file,
            backend: options.backend,
            ...(options.bufferPool && { bufferPool: options.bufferPool }),
            scheduler: options.scheduler,
            digester: reader.digester,
            metrics,
            logger: logger.child({ blob: table.blob.blobId }),
            mergeLimit: options.mergeLimit ?? DEFAULT_MERGE_LIMIT,
            amplifyTo: options.amplifyIo,
            prefetchMergeLimit: options.prefetchMergeLimit ?? DEFAULT_MERGE_LIMIT,
            ...(options.onDigestError && { onDigestError: options.onDigestError }),
            ...(options.onFetched && { onFetched: options.onFetched }),
          }),
        );
      }
    } catch (err) {
      for (const b of blobs) await options.cacheManager.release(b.file, options.workDir).catch(() => undefined);
      await closeSources();
      throw err;
    }
    metrics.readyChunks = () => blobs.reduce((n, b) => n + b.file.readyChunks, 0);
    metrics.allReady = () => blobs.every((b) => b.file.complete);
    const image = new RafsImage(reader, blobs, entryCi, entryBlob, metrics, options, sources, path);
    if (background) {
      void checkWholeBootstrap(reader, () => image.closed).catch((err: unknown) => {
        logger.error('bootstrap check found a bad structure: reads that reach it fail', { bootstrap: path ?? '(in memory)', error: (err as Error).message });
      });
    }
    return image;
  }

  /** Releases the blob caches (flushing them when this was their last user). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const b of this.blobs) await this.cacheManager.release(b.file, this.workDir);
    for (const source of this.sources) await source.close?.();
  }
}

/**
 * Reads every inode, directory, symlink, xattr area and chunk address once, so that every
 * structure the filesystem can reach is known to be valid before the image is mounted (the
 * reader otherwise checks them lazily, on first access). Yields to the event loop now and then.
 */
async function checkWholeBootstrap(reader: BootstrapReader, stopped: () => boolean = () => false): Promise<void> {
  let n = 0;
  for (const node of reader.walk()) {
    reader.xattrs(node.nid);
    if (node.inode.type === 'symlink') reader.readlinkBytes(node.nid);
    else if (node.inode.type === 'file') reader.chunkEntryIndexes(node.nid);
    if (++n % 1024 === 0) {
      await yieldToLoop();
      if (stopped()) return;
    }
  }
  for (const nid of reader.prefetchNids) reader.inode(nid);
}
