// @nydus-ts/daemon: the nydusd-ts lazy-loading daemon as a library (the binary only wires it).
export { Daemon, loadDaemonConfigFile } from './daemon.js';
export type { DaemonOptions, DaemonInstance, DaemonState, DaemonMode } from './daemon.js';
export { ApiServer } from './api/api-server.js';
export type { ApiServerOptions } from './api/api-server.js';
export { renderPrometheus } from './api/prometheus.js';
export { parseDaemonConfig, ConfigError } from './config/daemon-config.js';
export type {
  DaemonConfig,
  ParsedDaemonConfig,
  BackendConfig,
  RegistryBackendConfig,
  LocalfsBackendConfig,
  RegistryMirrorConfig,
  RegistryProxyConfig,
  CacheConfig,
  PrefetchConfig,
} from './config/daemon-config.js';
export { createDaemonBackend } from './backend/daemon-backend.js';
export type { DaemonBackend, DaemonBackendOptions } from './backend/daemon-backend.js';
export { BlobCacheFile } from './cache/blob-cache-file.js';
export { BlobCacheManager } from './cache/blob-cache-manager.js';
export { BufferPool } from './cache/buffer-pool.js';
export { FetchScheduler } from './cache/fetch-scheduler.js';
export type { FetchPriority, FetchSchedulerOptions } from './cache/fetch-scheduler.js';
export { ImageBlob } from './cache/image-blob.js';
export { BlobChunkTable } from './chunks/blob-chunk-table.js';
export { createChunkSource } from './chunks/chunk-source.js';
export type { ChunkSource, ChunkSourceContext, ChunkPlanOptions, FetchUnit, DecodedChunk } from './chunks/chunk-source.js';
export { NativeChunkSource } from './chunks/native-chunk-source.js';
export { ZranChunkSource } from './chunks/zran-chunk-source.js';
export { RafsImage, DEFAULT_MERGE_LIMIT } from './fs/rafs-image.js';
export type { RafsImageOptions } from './fs/rafs-image.js';
export { RafsFilesystem } from './fs/rafs-filesystem.js';
export type { FileStat, StatFs, RafsFilesystemOptions } from './fs/rafs-filesystem.js';
export { BlobDevices } from './fs/blob-devices.js';
export { FsError, Errno, errnoOf } from './fs/fs-error.js';
export { readMountTable, isMountpoint, clearStaleMount } from './fuse/mount-table.js';
export type { MountEntry } from './fuse/mount-table.js';
export { FsMetrics, BackendMetrics, BlobcacheMetrics, FOPS } from './metrics/metrics.js';
export type { Fop, FileIoStats, AccessPatternRecord } from './metrics/metrics.js';
export { Prefetcher } from './prefetch/prefetcher.js';
