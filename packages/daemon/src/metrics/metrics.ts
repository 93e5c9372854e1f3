/**
 * Counters in nydusd's shapes (its `GlobalIoStats`, `BackendMetrics` and `BlobcacheMetrics`),
 * served as JSON by the API and as Prometheus text by `GET /metrics`.
 */

/** Filesystem operations in nydusd's `StatsFop` order (the index into fop arrays). */
export const FOPS = ['getattr', 'readlink', 'open', 'release', 'read', 'statfs', 'getxattr', 'listxattr', 'opendir', 'lookup', 'readdir', 'readdirplus', 'access', 'forget', 'batch_forget'] as const;
export type Fop = (typeof FOPS)[number];
const FOP_INDEX = new Map<Fop, number>(FOPS.map((f, i) => [f, i]));

/** Read-size classes: ≤1K, ≤4K, ≤16K, ≤64K, ≤128K, ≤512K, ≤1M, >1M. */
export const BLOCK_SIZE_BOUNDS = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 128 << 10, 512 << 10, 1 << 20];
/** Latency classes (µs): ≤1ms, ≤20ms, ≤50ms, ≤100ms, ≤500ms, ≤1s, ≤2s, >2s. */
export const LATENCY_BOUNDS_US = [1_000, 20_000, 50_000, 100_000, 500_000, 1_000_000, 2_000_000];

export function sizeClass(bytes: number): number {
  let i = 0;
  while (i < BLOCK_SIZE_BOUNDS.length && bytes > BLOCK_SIZE_BOUNDS[i]!) i++;
  return i;
}

export function latencyClass(micros: number): number {
  let i = 0;
  while (i < LATENCY_BOUNDS_US.length && micros > LATENCY_BOUNDS_US[i]!) i++;
  return i;
}

/** One file's counters (`iostats_files`). */
export interface FileIoStats {
  ino: number;
  path: string;
  nr_open: number;
  total_fops: number;
  data_read: number;
  block_count_read: number[];
  fop_hits: number[];
  fop_errors: number[];
}

/** How a file was first and most read (`access_pattern`): the trace a prefetch list is made from. */
export interface AccessPatternRecord {
  ino: number;
  file_path: string;
  nr_read: number;
  first_access_time_secs: number;
  first_access_time_nanos: number;
  /** Position of the file's first read among all first reads of this filesystem. */
  first_access_order: number;
}

/** Filesystem counters of one mount (nydusd `GlobalIoStats`). */
export class FsMetrics {
  readonly id: string;
  filesAccountEnabled: boolean;
  accessPatternEnabled: boolean;
  readonly measureLatency = true;
  dataRead = 0;
  readonly blockCountRead = new Array<number>(BLOCK_SIZE_BOUNDS.length + 1).fill(0);
  readonly fopHits = new Array<number>(FOPS.length).fill(0);
  readonly fopErrors = new Array<number>(FOPS.length).fill(0);
  readonly fopCumulativeLatencyTotal = new Array<number>(FOPS.length).fill(0);
  readonly readLatencyDist = new Array<number>(LATENCY_BOUNDS_US.length + 1).fill(0);
  nrOpens = 0;
  nrMaxOpens = 0;
  lastFopTp = 0;
  private readonly files = new Map<number, FileIoStats>();
  private readonly patterns = new Map<number, AccessPatternRecord>();

  constructor(id: string, options: { filesAccount?: boolean; accessPattern?: boolean } = {}) {
    this.id = id;
    this.filesAccountEnabled = options.filesAccount ?? false;
    this.accessPatternEnabled = options.accessPattern ?? false;
  }

  /** Records one operation: `bytes` for reads, `micros` its latency. `path` is used for per-file records. */
  record(fop: Fop, ok: boolean, micros: number, ino = 0, bytes = 0, path?: () => string): void {
    const i = FOP_INDEX.get(fop)!;
    this.lastFopTp = Math.floor(Date.now() / 1000);
    if (ok) {
      this.fopHits[i]!++;
      if (fop === 'read') {
        this.dataRead += bytes;
        this.blockCountRead[sizeClass(bytes)]!++;
      } else if (fop === 'open') {
        this.nrOpens++;
        if (this.nrOpens > this.nrMaxOpens) this.nrMaxOpens = this.nrOpens;
      } else if (fop === 'release') {
        this.nrOpens = Math.max(0, this.nrOpens - 1);
      }
    } else {
      this.fopErrors[i]!++;
    }
    this.fopCumulativeLatencyTotal[i]! += micros;
    if (fop === 'read') this.readLatencyDist[latencyClass(micros)]!++;
    if (ino === 0) return;
    if (this.filesAccountEnabled && (fop === 'open' || fop === 'read' || fop === 'release' || fop === 'getattr')) {
      let f = this.files.get(ino);
      if (!f) {
        f = { ino, path: path ? path() : '', nr_open: 0, total_fops: 0, data_read: 0, block_count_read: new Array(BLOCK_SIZE_BOUNDS.length + 1).fill(0), fop_hits: new Array(FOPS.length).fill(0), fop_errors: new Array(FOPS.length).fill(0) };
        this.files.set(ino, f);
      }
      f.total_fops++;
      if (ok) {
        f.fop_hits[i]!++;
        if (fop === 'open') f.nr_open++;
        if (fop === 'read') {
          f.data_read += bytes;
          f.block_count_read[sizeClass(bytes)]!++;
        }
      } else {
        f.fop_errors[i]!++;
      }
    }
    if (this.accessPatternEnabled && fop === 'read' && ok) {
      let p = this.patterns.get(ino);
      if (!p) {
        const now = Date.now();
        p = { ino, file_path: path ? path() : '', nr_read: 0, first_access_time_secs: Math.floor(now / 1000), first_access_time_nanos: (now % 1000) * 1e6, first_access_order: this.patterns.size };
        this.patterns.set(ino, p);
      }
      p.nr_read++;
    }
  }

  toJSON(): Record<string, unknown> {
    return {
      files_account_enabled: this.filesAccountEnabled,
      access_pattern_enabled: this.accessPatternEnabled,
      measure_latency: this.measureLatency,
      id: this.id,
      data_read: this.dataRead,
      block_count_read: this.blockCountRead,
      fop_hits: this.fopHits,
      fop_errors: this.fopErrors,
      fop_cumulative_latency_total: this.fopCumulativeLatencyTotal,
      read_latency_dist: this.readLatencyDist,
      nr_opens: this.nrOpens,
      nr_max_opens: this.nrMaxOpens,
      last_fop_tp: this.lastFopTp,
    };
  }

  /** Per-file counters keyed by inode number (nydusd's `/metrics/files` shape). */
  filesJSON(): Record<string, FileIoStats> {
    return Object.fromEntries([...this.files].map(([ino, f]) => [String(ino), f]));
  }

  /** Files read so far, in the order of their first read. */
  patternJSON(): AccessPatternRecord[] {
    return [...this.patterns.values()];
  }
}

/** Backend counters (nydusd `BackendMetrics`), latencies in µs. */
export class BackendMetrics {
  readonly backendType: string;
  readCount = 0;
  readErrors = 0;
  readAmountTotal = 0;
  readCumulativeLatencyTotal = 0;
  /** [size class][latency class]. */
  readonly readLatencyDist: number[][] = Array.from({ length: BLOCK_SIZE_BOUNDS.length + 1 }, () => new Array<number>(LATENCY_BOUNDS_US.length + 1).fill(0));
  /** Retried requests (not in nydusd's shape). */
  retries = 0;

  constructor(backendType: string) {
    this.backendType = backendType;
  }

  record(bytes: number, micros: number, ok: boolean): void {
    this.readCount++;
    if (!ok) this.readErrors++;
    else this.readAmountTotal += bytes;
    this.readCumulativeLatencyTotal += micros;
    this.readLatencyDist[sizeClass(bytes)]![latencyClass(micros)]!++;
  }

  toJSON(): Record<string, unknown> {
    return {
      backend_type: this.backendType,
      read_count: this.readCount,
      read_errors: this.readErrors,
      read_amount_total: this.readAmountTotal,
      read_cumulative_latency_total: this.readCumulativeLatencyTotal,
      read_latency_dist: this.readLatencyDist,
      retries: this.retries,
    };
  }
}

/** Chunk-cache counters (nydusd `BlobcacheMetrics` plus verification failures). */
export class BlobcacheMetrics {
  readonly id: string;
  readonly storePath: string;
  readonly underlyingFiles = new Set<string>();
  /** Reads served partly / wholly from cached chunks, and all reads. */
  partialHits = 0;
  wholeHits = 0;
  total = 0;
  /** Chunks in ready state (of all the mount's blobs), and whether every chunk is. */
  readyChunks: () => number = () => 0;
  allReady: () => boolean = () => false;
  prefetchDataAmount = 0;
  prefetchRequestsCount = 0;
  prefetchWorkers = 0;
  prefetchTotalSize = 0;
  prefetchMrCount = 0;
  prefetchUnmergedChunks = 0;
  prefetchCumulativeTimeMillis = 0;
  prefetchBeginTimeSecs = 0;
  prefetchEndTimeSecs = 0;
  /** Chunks whose bytes did not match their digest or CRC (never cached). */
  digestErrors = 0;
  /** Chunks fetched, decoded, verified and written. */
  chunksFetched = 0;
  /** Backend requests for chunk data and their compressed bytes. */
  fetchRequests = 0;
  fetchBytes = 0;
  /** Readers that found their chunk already being fetched and waited for it. */
  sharedFetches = 0;
  /** Distinct chunks reads have needed, and their compressed bytes (what a perfect fetcher fetches). */
  touchedChunks = 0;
  touchedBytes = 0;
  /** Backend requests for blob meta (ZRAN CI data: at mount, and dictionaries on first use) and their bytes. */
  metaFetchRequests = 0;
  metaFetchBytes = 0;

  constructor(id: string, storePath: string) {
    this.id = id;
    this.storePath = storePath;
  }

  toJSON(): Record<string, unknown> {
    return {
      id: this.id,
      underlying_files: [...this.underlyingFiles],
      store_path: this.storePath,
      partial_hits: this.partialHits,
      whole_hits: this.wholeHits,
      total: this.total,
      entries_count: this.readyChunks(),
      prefetch_data_amount: this.prefetchDataAmount,
      prefetch_requests_count: this.prefetchRequestsCount,
      prefetch_workers: this.prefetchWorkers,
      prefetch_total_size: this.prefetchTotalSize,
      prefetch_mr_count: this.prefetchMrCount,
      prefetch_unmerged_chunks: this.prefetchUnmergedChunks,
      prefetch_cumulative_time_millis: this.prefetchCumulativeTimeMillis,
      prefetch_begin_time_secs: this.prefetchBeginTimeSecs,
      prefetch_end_time_secs: this.prefetchEndTimeSecs,
      buffered_backend_size: 0,
      data_all_ready: this.allReady(),
      digest_errors: this.digestErrors,
      chunks_fetched: this.chunksFetched,
      fetch_requests: this.fetchRequests,
      fetch_bytes: this.fetchBytes,
      shared_fetches: this.sharedFetches,
      touched_chunks: this.touchedChunks,
      touched_bytes: this.touchedBytes,
      meta_fetch_requests: this.metaFetchRequests,
      meta_fetch_bytes: this.metaFetchBytes,
    };
  }
}
