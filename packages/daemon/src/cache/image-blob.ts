/**
 * One image's use of one blob: makes chunks ready in the blob's shared cache. Missing chunks are
 * planned into fetch units by the blob's {@link ChunkSource}, fetched through the scheduler,
 * decoded, verified (digest, and CRC-32C when flagged) and written; readers of a chunk already
 * being fetched wait for that fetch. A chunk that fails verification is logged with its blob and
 * CI index, counted, never cached, and its readers get a DigestMismatchError (EIO).
 */
import { DigestMismatchError, NydusError, type BlobBackend, type Logger } from '@nydus-ts/core';
import { crc32c } from '@nydus-ts/native';
import { ChunkFlags, digestChunk, type ChunkDigester } from '@nydus-ts/format';
import type { BlobChunkTable } from '../chunks/blob-chunk-table.js';
import type { ChunkSource, FetchUnit } from '../chunks/chunk-source.js';
import type { BlobcacheMetrics } from '../metrics/metrics.js';
import type { BlobCacheFile } from './blob-cache-file.js';
import type { BufferPool } from './buffer-pool.js';
import type { FetchPriority, FetchScheduler, FetchTask } from './fetch-scheduler.js';

export interface ImageBlobOptions {
  table: BlobChunkTable;
  source: ChunkSource;
  file: BlobCacheFile;
  /** Where chunk bytes come from; `readInto`, when there, fills pooled buffers. */
  backend: BlobBackend & { readInto?(blobId: string, offset: number, target: Uint8Array, signal?: AbortSignal): Promise<void> };
  /** Reused fetch and decode buffers (optional). */
  bufferPool?: BufferPool;
  scheduler: FetchScheduler;
  digester: ChunkDigester;
  metrics: BlobcacheMetrics;
  logger: Logger;
  /** Largest merged on-demand fetch (bytes). */
  mergeLimit: number;
  /** On-demand fetches are widened to this many bytes with the chunks that follow (0: off). */
  amplifyTo: number;
  /** Largest merged prefetch fetch (bytes). */
  prefetchMergeLimit: number;
  /** Called once per chunk that fails verification (daemon-wide counters). */
  onDigestError?: () => void;
  /** Called with the size of every fetched range (e.g. to collect garbage every few MiB). */
  onFetched?: (bytes: number) => void;
}

/** In-flight fetch tasks by blob cache and CI index, so waiting readers can promote them. */
const inflightTasks = new WeakMap<BlobCacheFile, Map<number, FetchTask>>();

export class ImageBlob {
  readonly table: BlobChunkTable;
  readonly file: BlobCacheFile;
  private readonly o: ImageBlobOptions;
  private readonly tasks: Map<number, FetchTask>;
  /** Chunks some read of this image has needed (for the fetched / touched ratio). */
  private readonly touched: Uint8Array;

  constructor(options: ImageBlobOptions) {
    this.o = options;
    this.table = options.table;
    this.file = options.file;
    let tasks = inflightTasks.get(options.file);
    if (!tasks) inflightTasks.set(options.file, (tasks = new Map()));
    this.tasks = tasks;
    this.touched = new Uint8Array(options.table.count);
  }

  /** Records that a read needed chunk `ci` (counted once per chunk, by compressed size). */
  touch(ci: number): void {
    if (this.touched[ci] === 1) return;
    this.touched[ci] = 1;
    this.o.metrics.touchedChunks++;
    this.o.metrics.touchedBytes += this.table.compressedSize[ci]!;
  }

  get blobId(): string {
    return this.table.blob.blobId;
  }

  /** Every chunk in `cis` is ready once this settles; rejects if any of them could not be made ready. */
  ensure(cis: readonly number[], priority: FetchPriority = 'demand'): Promise<void> {
    const file = this.file;
    let waits: Promise<void>[] | undefined;
    let wanted: number[] | undefined;
    for (const ci of cis) {
      if (file.isReady(ci)) continue;
      const p = file.inflight.get(ci);
      if (p !== undefined) {
        (waits ??= []).push(p);
        if (priority === 'demand') {
          this.o.metrics.sharedFetches++;
          const task = this.tasks.get(ci);
          if (task) this.o.scheduler.promote(task);
        }
        continue;
      }
      if (wanted === undefined) wanted = [ci];
      else if (!wanted.includes(ci)) wanted.push(ci);
    }
    if (wanted !== undefined) {
      for (const ci of wanted) {
        if (ci >= this.table.count || this.table.known[ci] !== 1) {
          return Promise.reject(new NydusError('INVALID_FORMAT', `blob ${this.blobId}: no chunk-table entry for CI index ${ci}`));
        }
      }
      const units = this.o.source.plan(wanted, {
        mergeLimit: priority === 'demand' ? this.o.mergeLimit : this.o.prefetchMergeLimit,
        amplifyTo: priority === 'demand' ? this.o.amplifyTo : this.o.prefetchMergeLimit,
        isSettled: (ci) => file.isReady(ci) || file.inflight.has(ci),
      });
      const wantedSet = new Set(wanted);
      for (const unit of units) {
        for (const p of this.startUnit(unit, priority, wantedSet)) (waits ??= []).push(p);
      }
    }
    if (waits === undefined) return Promise.resolve();
    return waits.length === 1 ? waits[0]! : Promise.all(waits).then(() => undefined);
  }

  /** Registers the unit's chunks as in flight and schedules its fetch; returns the wanted chunks' promises. */
  private startUnit(unit: FetchUnit, priority: FetchPriority, wanted: Set<number>): Promise<void>[] {
    const file = this.file;
    const settle = new Map<number, { resolve: () => void; reject: (err: unknown) => void }>();
    const mine: Promise<void>[] = [];
    for (const ci of unit.chunks) {
      const p = new Promise<void>((resolve, reject) => settle.set(ci, { resolve, reject }));
      p.catch(() => undefined); // extras may fail with nobody waiting
      file.inflight.set(ci, p);
      if (wanted.has(ci)) mine.push(p);
    }
    const metrics = this.o.metrics;
    const pool = this.o.bufferPool;
    const backend = this.o.backend;
    // Pooled buffers of this unit (fetched bytes, decoded chunks), given back once it is stored.
    const held: Buffer[] = [];
    const alloc = pool
      ? (size: number): Uint8Array => {
          const b = pool.acquire(size);
          held.push(b);
          return b.subarray(0, size);
        }
      : undefined;
    const releaseHeld = (): void => {
      for (const b of held.splice(0)) pool!.release(b);
    };
    const { task, result } = this.o.scheduler.schedule(priority, unit.length, async (task) => {
      metrics.fetchRequests++;
      if (task.priority === 'prefetch') {
        metrics.prefetchRequestsCount++;
        metrics.prefetchMrCount++;
        metrics.prefetchTotalSize += unit.length;
      }
      let raw: Uint8Array;
      if (alloc && backend.readInto) {
        raw = alloc(unit.length);
        await backend.readInto(this.blobId, unit.offset, raw);
      } else {
        raw = await backend.readRange(this.blobId, unit.offset, unit.length);
      }
      if (raw.byteLength !== unit.length) throw new NydusError('DATA_LOSS', `blob ${this.blobId}: backend returned ${raw.byteLength} bytes for [${unit.offset}, +${unit.length})`);
      metrics.fetchBytes += unit.length;
      if (task.priority === 'prefetch') metrics.prefetchDataAmount += unit.length;
      this.o.onFetched?.(unit.length);
      return this.o.source.decode(unit, raw, alloc);
    });
    for (const ci of unit.chunks) this.tasks.set(ci, task);
    const done = (ci: number): void => {
      file.inflight.delete(ci);
      this.tasks.delete(ci);
    };
    result.then(
      async (decoded) => {
        const seen = new Set<number>();
        await Promise.all(
          decoded.map(async (d) => {
            const s = settle.get(d.ci);
            if (!s || seen.has(d.ci)) return;
            seen.add(d.ci);
            try {
              if (d.error) throw d.error;
              this.verify(d.ci, d.data);
              await file.writeChunk(d.ci, this.table.uncompressedOffset[d.ci]!, d.data);
              metrics.chunksFetched++;
              done(d.ci);
              s.resolve();
            } catch (err) {
              done(d.ci);
              s.reject(err);
            }
          }),
        );
        for (const [ci, s] of settle) {
          if (seen.has(ci)) continue;
          done(ci);
          s.reject(new NydusError('INTERNAL', `blob ${this.blobId}: chunk ${ci} missing from its decoded fetch unit`));
        }
        releaseHeld();
      },
      (err: unknown) => {
        releaseHeld();
        for (const [ci, s] of settle) {
          done(ci);
          s.reject(err);
        }
      },
    );
    return mine;
  }

  private verify(ci: number, data: Uint8Array): void {
    const t = this.table;
    const subject = `chunk ${ci} of blob ${this.blobId}`;
    const fail = (err: DigestMismatchError): never => {
      this.o.metrics.digestErrors++;
      this.o.onDigestError?.();
      this.o.logger.error('chunk verification failed: not cached', { blob: this.blobId, chunk: ci, expected: err.expected, actual: err.actual });
      throw err;
    };
    if (data.byteLength !== t.uncompressedSize[ci]) {
      fail(new DigestMismatchError(`${subject} (size)`, String(t.uncompressedSize[ci]), String(data.byteLength)));
    }
    const actual = digestChunk(this.o.digester, data);
    const expected = t.digestHex(ci);
    if (actual !== expected) fail(new DigestMismatchError(subject, expected, actual));
    if ((t.flags[ci]! & ChunkFlags.HAS_CRC32) !== 0) {
      const crc = crc32c(data) >>> 0;
      if (crc !== t.crc32[ci]! >>> 0) fail(new DigestMismatchError(`${subject} (crc32c)`, hex8(t.crc32[ci]!), hex8(crc)));
    }
  }
}

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}
