/** The daemon's counters in the Prometheus text exposition format (version 0.0.4). */
import type { Daemon } from '../daemon.js';
import { BLOCK_SIZE_BOUNDS, FOPS, LATENCY_BOUNDS_US } from '../metrics/metrics.js';

type Labels = Record<string, string>;

class Exposition {
  private readonly lines: string[] = [];
  private readonly declared = new Set<string>();

  metric(name: string, type: 'counter' | 'gauge', help: string, value: number, labels: Labels = {}): void {
    if (!this.declared.has(name)) {
      this.declared.add(name);
      this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    }
    const l = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
      .join(',');
    this.lines.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`);
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

export function renderPrometheus(daemon: Daemon): string {
  const e = new Exposition();
  e.metric('nydusd_up', 'gauge', 'Daemon state: 1 when RUNNING.', daemon.state === 'RUNNING' ? 1 : 0, { state: daemon.state });
  e.metric('nydusd_chunk_verify_errors_total', 'counter', 'Chunks whose bytes did not match their digest or CRC (never cached), all mounts.', daemon.digestErrors);
  const mem = process.memoryUsage();
  e.metric('nydusd_process_resident_memory_bytes', 'gauge', 'Resident set size of the daemon.', mem.rss);
  for (const [kind, value] of [['heap_used', mem.heapUsed], ['heap_total', mem.heapTotal], ['external', mem.external], ['array_buffers', mem.arrayBuffers]] as const) {
    e.metric('nydusd_process_memory_bytes', 'gauge', 'JavaScript heap and off-heap memory of the daemon.', value, { kind });
  }
  for (const i of daemon.list()) {
    const mount = { mount: i.mountpoint };
    const m = i.metrics;
    e.metric('nydusd_data_read_bytes_total', 'counter', 'Bytes read from the filesystem.', m.dataRead, mount);
    e.metric('nydusd_open_files', 'gauge', 'Files open now.', m.nrOpens, mount);
    FOPS.forEach((fop, k) => {
      e.metric('nydusd_fop_hits_total', 'counter', 'Successful filesystem operations.', m.fopHits[k]!, { ...mount, fop });
      e.metric('nydusd_fop_errors_total', 'counter', 'Failed filesystem operations.', m.fopErrors[k]!, { ...mount, fop });
      e.metric('nydusd_fop_latency_microseconds_total', 'counter', 'Cumulative latency of filesystem operations.', m.fopCumulativeLatencyTotal[k]!, { ...mount, fop });
    });
    let cumulative = 0;
    m.readLatencyDist.forEach((n, k) => {
      cumulative += n;
      const le = k < LATENCY_BOUNDS_US.length ? String(LATENCY_BOUNDS_US[k]! / 1e6) : '+Inf';
      e.metric('nydusd_read_latency_seconds_bucket', 'counter', 'Read latency histogram (cumulative buckets).', cumulative, { ...mount, le });
    });
    m.blockCountRead.forEach((n, k) => {
      const le = k < BLOCK_SIZE_BOUNDS.length ? String(BLOCK_SIZE_BOUNDS[k]) : '+Inf';
      e.metric('nydusd_read_size_count', 'counter', 'Reads per request-size class (bytes, upper bound).', n, { ...mount, le });
    });
    const b = i.backend.metrics;
    const backend = { ...mount, backend: b.backendType };
    e.metric('nydusd_backend_reads_total', 'counter', 'Backend range reads.', b.readCount, backend);
    e.metric('nydusd_backend_read_errors_total', 'counter', 'Failed backend range reads.', b.readErrors, backend);
    e.metric('nydusd_backend_read_bytes_total', 'counter', 'Bytes received from the backend.', b.readAmountTotal, backend);
    e.metric('nydusd_backend_retries_total', 'counter', 'Backend reads retried.', b.retries, backend);
    const c = i.image.cacheMetrics;
    e.metric('nydusd_cache_chunks_ready', 'gauge', 'Chunks ready in the cache.', c.readyChunks(), mount);
    e.metric('nydusd_cache_reads_total', 'counter', 'Reads through the chunk cache.', c.total, mount);
    e.metric('nydusd_cache_whole_hits_total', 'counter', 'Reads served wholly from cached chunks.', c.wholeHits, mount);
    e.metric('nydusd_cache_partial_hits_total', 'counter', 'Reads served partly from cached chunks.', c.partialHits, mount);
    e.metric('nydusd_cache_fetch_requests_total', 'counter', 'Backend requests for chunk data.', c.fetchRequests, mount);
    e.metric('nydusd_cache_fetch_bytes_total', 'counter', 'Compressed chunk bytes fetched.', c.fetchBytes, mount);
    e.metric('nydusd_cache_chunks_fetched_total', 'counter', 'Chunks fetched, verified and cached.', c.chunksFetched, mount);
    e.metric('nydusd_cache_shared_fetches_total', 'counter', 'Reads that waited for a fetch already in flight.', c.sharedFetches, mount);
    e.metric('nydusd_cache_digest_errors_total', 'counter', 'Chunks that failed verification.', c.digestErrors, mount);
    e.metric('nydusd_prefetch_bytes_total', 'counter', 'Bytes fetched by prefetch.', c.prefetchDataAmount, mount);
  }
  return e.text();
}
