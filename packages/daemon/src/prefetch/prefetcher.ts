/**
 * Background prefetch of one image: the files named by the prefetchFiles option (or the API's
 * `prefetch_files`), the bootstrap's prefetch table, and with `prefetch_all` every chunk of
 * every blob, in that order. Chunks go through the same cache path as reads, as prefetch-priority
 * fetches (behind every on-demand read, limited in concurrency and bandwidth by the scheduler).
 */
import { noopLogger, type Logger } from '@nydus-ts/core';
import type { PrefetchConfig } from '../config/daemon-config.js';
import type { RafsFilesystem } from '../fs/rafs-filesystem.js';

export interface PrefetchOptions {
  config: PrefetchConfig;
  /** Absolute paths inside the image (files or directories). */
  files: string[];
  logger?: Logger;
}

export class Prefetcher {
  private readonly fs: RafsFilesystem;
  private readonly options: PrefetchOptions;
  private readonly logger: Logger;
  private stopped = false;
  private running: Promise<void> | undefined;

  constructor(fs: RafsFilesystem, options: PrefetchOptions) {
    this.fs = fs;
    this.options = options;
    this.logger = options.logger ?? noopLogger;
  }

  /** Starts prefetching in the background (once); `done` settles when it finishes or stops. */
  start(): Promise<void> {
    this.running ??= this.run().catch((err: unknown) => this.logger.warn('prefetch stopped', { error: (err as Error).message }));
    return this.running;
  }

  stop(): void {
    this.stopped = true;
  }

  get done(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** The chunks to prefetch per blob, in order, without repeats. */
  private plan(): Map<number, number[]> {
    const fs = this.fs;
    const reader = fs.image.reader;
    const wanted = new Map<number, { list: number[]; seen: Set<number> }>();
    const add = (blob: number, ci: number): void => {
      let w = wanted.get(blob);
      if (!w) wanted.set(blob, (w = { list: [], seen: new Set() }));
      if (!w.seen.has(ci)) {
        w.seen.add(ci);
        w.list.push(ci);
      }
    };
    const visited = new Set<number>();
    let all = this.options.config.prefetchAll;
    const addTree = (nid: number): void => {
      if (visited.has(nid)) return;
      visited.add(nid);
      const inode = reader.inode(nid);
      if (inode.type === 'file') {
        for (const [b, cis] of fs.chunksOf(nid)) for (const ci of cis) add(b, ci);
      } else if (inode.type === 'directory') {
        for (const d of reader.readdir(nid)) addTree(d.nid);
      }
    };
    for (const path of this.options.files) {
      try {
        addTree(fs.resolve(path));
      } catch (err) {
        this.logger.warn('prefetch file not found in the image', { path, error: (err as Error).message });
      }
    }
    if (this.options.config.enable) {
      const table = reader.prefetchNids;
      if (table.length === 1 && table[0] === reader.rootNid) all = true;
      else for (const nid of table) addTree(nid);
    }
    if (all) {
      fs.image.blobs.forEach((blob, b) => {
        for (const ci of blob.table.byCompressedOffset) add(b, ci);
      });
    }
    return new Map([...wanted].map(([b, w]) => [b, w.list]));
  }

  private async run(): Promise<void> {
    if (!this.options.config.enable && this.options.files.length === 0) return;
    const plan = this.plan();
    const image = this.fs.image;
    const metrics = image.cacheMetrics;
    const batchSize = Math.max(1, this.options.config.batchSize);
    // Batches of not-yet-ready chunks, each within batchSize compressed bytes.
    const batches: Array<{ blob: number; cis: number[] }> = [];
    for (const [b, cis] of plan) {
      const blob = image.blobs[b]!;
      let batch: number[] = [];
      let bytes = 0;
      for (const ci of cis) {
        if (blob.file.isReady(ci)) continue;
        const size = blob.table.compressedSize[ci]!;
        if (batch.length > 0 && bytes + size > batchSize) {
          batches.push({ blob: b, cis: batch });
          batch = [];
          bytes = 0;
        }
        batch.push(ci);
        bytes += size;
      }
      if (batch.length > 0) batches.push({ blob: b, cis: batch });
    }
    if (batches.length === 0) return;
    const started = Date.now();
    metrics.prefetchBeginTimeSecs = Math.floor(started / 1000);
    const workers = Math.max(1, Math.min(this.options.config.threads, batches.length));
    metrics.prefetchWorkers = workers;
    this.logger.info('prefetch started', { batches: batches.length, workers });
    let next = 0;
    let failed = 0;
    const worker = async (): Promise<void> => {
      while (!this.stopped && next < batches.length) {
        const { blob, cis } = batches[next++]!;
        metrics.prefetchUnmergedChunks += cis.length;
        try {
          await image.blobs[blob]!.ensure(cis, 'prefetch');
        } catch (err) {
          failed++;
          this.logger.debug('prefetch batch failed', { blob: image.blobs[blob]!.blobId, error: (err as Error).message });
        }
      }
    };
    await Promise.all(Array.from({ length: workers }, worker));
    metrics.prefetchWorkers = 0;
    metrics.prefetchEndTimeSecs = Math.floor(Date.now() / 1000);
    metrics.prefetchCumulativeTimeMillis += Date.now() - started;
    this.logger.info(this.stopped ? 'prefetch stopped' : 'prefetch finished', { batches: batches.length, failed, ms: Date.now() - started });
  }
}
