/**
 * The nydusd-ts daemon: one FUSE session at the mountpoint serving either one image at its root
 * (dedicated mode: the bootstrap option) or the images mounted through the API at `/ID` (shared mode),
 * or, in erofs mode, one image through the kernel's EROFS driver over blob device files that the
 * FUSE session serves. States follow nydusd: INIT → RUNNING (→ STOPPED).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, NydusError, noopLogger, type Logger } from '@nydus-ts/core';
import { BlobCacheManager } from './cache/blob-cache-manager.js';
import { BufferPool } from './cache/buffer-pool.js';
import { FetchScheduler } from './cache/fetch-scheduler.js';
import { createDaemonBackend, type DaemonBackend } from './backend/daemon-backend.js';
import { parseDaemonConfig, type DaemonConfig } from './config/daemon-config.js';
import { detachLoopsUnder, mountKernelErofs, unmountKernel, unmountKernelErofs, type KernelErofsMount } from './erofs/kernel-erofs.js';
import { BlobDevices } from './fs/blob-devices.js';
import { RafsFilesystem } from './fs/rafs-filesystem.js';
import { RafsImage } from './fs/rafs-image.js';
import { FuseSession } from './fuse/fuse-binding.js';
import { clearStaleMount, readMountTable } from './fuse/mount-table.js';
import { Vfs, type VfsFilesystem } from './fuse/vfs.js';
import { FsMetrics } from './metrics/metrics.js';
import { Prefetcher } from './prefetch/prefetcher.js';

export type DaemonState = 'INIT' | 'READY' | 'RUNNING' | 'STOPPED';
export type DaemonMode = 'fuse' | 'erofs';

export interface DaemonOptions {
  /** Where the image (dedicated) or the mounts (shared) appear. */
  mountpoint: string;
  /** nydusd configuration for `bootstrap`; the default for API mounts that bring none. */
  config?: DaemonConfig;
  /** The configuration as given (reported by the API's backend collection). */
  rawConfig?: unknown;
  /** Dedicated mode: the image to serve at the mountpoint. Without it: shared mode. */
  bootstrap?: string;
  mode?: DaemonMode;
  id?: string;
  supervisor?: string;
  prefetchFiles?: string[];
  /** Concurrent backend requests (default 16). */
  maxFetches?: number;
  /**
   * Called with the size of every range fetched from a backend: the binary collects the young
   * generation every few MiB, so that dead socket and chunk buffers do not pile up (RSS).
   */
  onFetched?: (bytes: number) => void;
  logger?: Logger;
}

/** One image served by the daemon. */
export interface DaemonInstance {
  /** `/` (dedicated) or `/ID` (shared). */
  mountpoint: string;
  bootstrap: string;
  config: DaemonConfig;
  rawConfig: unknown;
  backend: DaemonBackend;
  image: RafsImage;
  fs: RafsFilesystem | undefined;
  devices: BlobDevices | undefined;
  metrics: FsMetrics;
  prefetcher: Prefetcher | undefined;
  mountedTime: Date;
}

/** Kernel cache lifetimes (s): dedicated mounts are immutable; shared mounts come and go. */
const DEDICATED_TIMEOUT_S = 300;
const SHARED_TIMEOUT_S = 1;
/** Added to the backend's longest read for the FUSE read deadline. */
const READ_DEADLINE_MARGIN_MS = 10_000;

export class Daemon {
  readonly mountpoint: string;
  readonly mode: DaemonMode;
  readonly id: string | undefined;
  readonly supervisor: string | undefined;
  readonly startedAt = new Date();
  private stateValue: DaemonState = 'INIT';
  private readonly options: DaemonOptions;
  private readonly logger: Logger;
  private readonly cacheManager: BlobCacheManager;
  private readonly bufferPool = new BufferPool();
  private readonly vfs: Vfs;
  private readonly instances = new Map<string, DaemonInstance>();
  private session: FuseSession | undefined;
  /** erofs mode: the FUSE session's mountpoint holding the blob device files. */
  private deviceDir: string | undefined;
  private kernelMount: KernelErofsMount | undefined;
  private stopping: Promise<void> | undefined;
  private digestErrorCount = 0;
  private readonly stoppedWaiters: Array<() => void> = [];

  private constructor(options: DaemonOptions) {
    this.options = options;
    this.mountpoint = path.resolve(options.mountpoint);
    this.mode = options.mode ?? 'fuse';
    this.id = options.id;
    this.supervisor = options.supervisor;
    this.logger = options.logger ?? noopLogger;
    this.cacheManager = new BlobCacheManager(this.logger);
    this.vfs = new Vfs({ logger: this.logger });
  }

  get state(): DaemonState {
    return this.stateValue;
  }

  get shared(): boolean {
    return this.options.bootstrap === undefined;
  }

  /** Chunks that failed verification since start (all mounts). */
  get digestErrors(): number {
    return this.digestErrorCount;
  }

  /**
   * Starts a daemon: loads and checks the image (dedicated mode) before anything is mounted,
   * clears a dead mount left at the mountpoint by a killed daemon, mounts, and starts prefetch.
   */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const daemon = new Daemon(options);
    await daemon.boot();
    return daemon;
  }

  private async boot(): Promise<void> {
    const o = this.options;
    if (this.mode === 'erofs' && o.bootstrap === undefined) throw new InvalidArgumentError('mode erofs needs bootstrap (shared mode serves FUSE only)', { optionNames: ['mode', 'bootstrap'] });
    const st = await stat(this.mountpoint).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOTCONN') return undefined; // a dead FUSE mount: cleared below
      throw new InvalidArgumentError(`mountpoint ${this.mountpoint}: ${err.code === 'ENOENT' ? 'no such directory' : err.message}`);
    });
    if (st && !st.isDirectory()) throw new InvalidArgumentError(`mountpoint ${this.mountpoint} is not a directory`);
    let root: DaemonInstance | undefined;
    if (o.bootstrap !== undefined) {
      if (!o.config) throw new InvalidArgumentError('config is required with bootstrap', { optionNames: ['config', 'bootstrap'] });
      root = await this.loadInstance('/', o.bootstrap, o.config, o.rawConfig, o.prefetchFiles ?? []);
    }
    try {
      if (this.mode === 'erofs') await this.mountErofs(root!);
      else await this.mountFuse(root);
    } catch (err) {
      if (root) await this.closeInstance(root);
      throw err;
    }
    this.stateValue = 'RUNNING';
    this.logger.info('daemon running', { mountpoint: this.mountpoint, mode: this.mode, shared: this.shared });
    void root?.prefetcher?.start(); // never rejects: failures are logged
  }

  private async mountFuse(root: DaemonInstance | undefined): Promise<void> {
    await clearStaleMount(this.mountpoint, this.logger);
    if (root) this.vfs.setRoot({ name: '', fs: root.fs!, metrics: root.metrics, readDeadlineMs: root.backend.maxReadMs + READ_DEADLINE_MARGIN_MS });
    if (root) this.instances.set('/', root);
    const timeout = root ? DEDICATED_TIMEOUT_S : SHARED_TIMEOUT_S;
    // Shared mounts come, go and are replaced at the same paths: their page cache is dropped when
    // a file is opened again (no kernel_cache), as their attributes live only 1 s.
    this.session = new FuseSession(this.mountpoint, this.vfs.operations(), {
      attrTimeout: timeout,
      entryTimeout: timeout,
      negativeTimeout: timeout,
      kernelCache: root !== undefined,
      fsname: fsName(this.options.id ?? (root ? root.bootstrap : 'shared')),
    });
    await this.session.mount();
  }

  private async mountErofs(root: DaemonInstance): Promise<void> {
    const workDir = root.config.cache.workDir;
    const deviceDir = path.join(path.resolve(workDir), 'erofs-devices', createHash('sha256').update(this.mountpoint).digest('hex').slice(0, 16));
    // A killed daemon leaves the kernel mount over loop devices over its dead device files: take
    // them down in that order before anything touches the device directory.
    const table = await readMountTable();
    if (table.some((m) => m.mountpoint === this.mountpoint && m.fstype === 'erofs')) {
      this.logger.warn('unmounting a kernel EROFS mount left by an earlier daemon', { mountpoint: this.mountpoint });
      await unmountKernel(this.mountpoint, true);
    }
    const stale = await detachLoopsUnder(deviceDir);
    if (stale.length > 0) this.logger.warn('detached loop devices left by an earlier daemon', { loops: stale });
    await clearStaleMount(deviceDir, this.logger);
    await clearStaleMount(this.mountpoint, this.logger);
    await mkdir(deviceDir, { recursive: true });
    this.deviceDir = deviceDir;
    this.vfs.setRoot({ name: '', fs: root.devices!, metrics: root.metrics, readDeadlineMs: root.backend.maxReadMs + READ_DEADLINE_MARGIN_MS });
    this.instances.set('/', root);
    this.session = new FuseSession(deviceDir, this.vfs.operations(), { attrTimeout: DEDICATED_TIMEOUT_S, entryTimeout: DEDICATED_TIMEOUT_S, negativeTimeout: DEDICATED_TIMEOUT_S, fsname: fsName(this.options.id ?? 'erofs-devices') });
    await this.session.mount();
    try {
      const devices = root.image.blobs.map((_, i) => deviceDir + root.devices!.pathOfBlob(i));
      this.kernelMount = await mountKernelErofs(path.resolve(root.bootstrap), devices, this.mountpoint);
    } catch (err) {
      await this.session.unmount().catch(() => undefined);
      this.session = undefined;
      throw err;
    }
  }

  /**
   * How an image mounted through the API (the snapshotter's shared daemon, on a container's
   * start) is checked: in FUSE mode right after it is served, in the background (the reader checks
   * each structure it serves anyway; ~0.3 s less on every cold start of a 40k-file image); the
   * kernel (erofs mode) only ever gets a bootstrap checked whole. Images given at start are
   * checked whole before anything is mounted.
   */
  private apiMountCheck(): 'load' | 'background' {
    return this.mode === 'erofs' ? 'load' : 'background';
  }

  /** Loads one image with its own backend; nothing is mounted yet. */
  private async loadInstance(mountpoint: string, bootstrap: string, config: DaemonConfig, rawConfig: unknown, prefetchFiles: string[], bootstrapCheck: 'load' | 'background' = 'load'): Promise<DaemonInstance> {
    const logger = this.logger.child({ mount: mountpoint });
    const backend = await createDaemonBackend(config.backend, config.version === 2 ? `backend.${config.backend.type}` : 'device.backend.config', { logger });
    try {
      const image = await RafsImage.load(bootstrap, {
        backend,
        bufferPool: this.bufferPool,
        cacheManager: this.cacheManager,
        scheduler: new FetchScheduler({ maxConcurrent: this.options.maxFetches ?? 16, prefetchConcurrent: config.prefetch.threads, prefetchBandwidth: config.prefetch.bandwidthLimit }),
        workDir: path.resolve(config.cache.workDir),
        amplifyIo: config.amplifyIo,
        prefetchMergeLimit: config.prefetch.batchSize,
        id: mountpoint,
        logger,
        onDigestError: () => this.digestErrorCount++,
        ...(this.options.onFetched && { onFetched: this.options.onFetched }),
        bootstrapCheck,
      });
      const metrics = new FsMetrics(mountpoint, { filesAccount: config.iostatsFiles, accessPattern: config.accessPattern });
      const erofs = this.mode === 'erofs';
      const fs = erofs ? undefined : new RafsFilesystem(image, { enableXattr: config.enableXattr, trackPaths: config.iostatsFiles || config.accessPattern });
      const instance: DaemonInstance = {
        mountpoint,
        bootstrap,
        config,
        rawConfig,
        backend,
        image,
        fs,
        devices: erofs ? new BlobDevices(image) : undefined,
        metrics,
        prefetcher: undefined,
        mountedTime: new Date(),
      };
      const prefetchFs = fs ?? new RafsFilesystem(image);
      if (config.prefetch.enable || prefetchFiles.length > 0) instance.prefetcher = new Prefetcher(prefetchFs, { config: config.prefetch, files: prefetchFiles, logger });
      logger.info('image loaded', { bootstrap, blobs: image.blobs.length, cachedChunks: image.cacheMetrics.readyChunks() });
      return instance;
    } catch (err) {
      await backend.close().catch(() => undefined);
      throw err;
    }
  }

  private async closeInstance(instance: DaemonInstance): Promise<void> {
    instance.prefetcher?.stop();
    await instance.image.close();
    await instance.backend.close();
  }

  // ------------------------------------------------------------------ API operations

  /** The instances by mountpoint (`/` or `/ID`). */
  list(): DaemonInstance[] {
    return [...this.instances.values()];
  }

  /** The instance with this id/mountpoint; with none given, the only one. */
  find(id: string | undefined): DaemonInstance | undefined {
    if (id === undefined || id === '') return this.instances.size === 1 ? this.instances.values().next().value : undefined;
    return this.instances.get(id) ?? this.instances.get(`/${id.replace(/^\/+/, '')}`);
  }

  /**
   * Shared mode: serves the bootstrap `source` at `MOUNTPOINT/<name>` (`mountpoint` is `/<name>`).
   * `config` is nydusd's configuration as a JSON string (or object); the daemon's own is the default.
   */
  async mount(mountpoint: string, source: string, config: string | object | undefined, prefetchFiles: string[] = []): Promise<void> {
    const name = this.checkSharedMountpoint(mountpoint);
    if (this.instances.has(mountpoint)) throw new NydusError('ALREADY_EXISTS', `${mountpoint} is already mounted`);
    const { parsed, raw } = this.configFor(config);
    const instance = await this.loadInstance(mountpoint, source, parsed, raw, prefetchFiles, this.apiMountCheck());
    if (this.instances.has(mountpoint) || this.stateValue === 'STOPPED') {
      await this.closeInstance(instance);
      throw new NydusError('ALREADY_EXISTS', `${mountpoint} is already mounted`);
    }
    this.instances.set(mountpoint, instance);
    this.vfs.add({ name, fs: instance.fs!, metrics: instance.metrics, readDeadlineMs: instance.backend.maxReadMs + READ_DEADLINE_MARGIN_MS });
    void instance.prefetcher?.start();
  }

  /** Replaces the image at `mountpoint` with another bootstrap (nydusd's remount). */
  async remount(mountpoint: string, source: string, config: string | object | undefined, prefetchFiles: string[] = []): Promise<void> {
    const name = this.checkSharedMountpoint(mountpoint);
    const old = this.instances.get(mountpoint);
    if (!old) throw new NydusError('NOT_FOUND', `${mountpoint} is not mounted`);
    const { parsed, raw } = config === undefined ? { parsed: old.config, raw: old.rawConfig } : this.configFor(config);
    const instance = await this.loadInstance(mountpoint, source, parsed, raw, prefetchFiles, this.apiMountCheck());
    this.instances.set(mountpoint, instance);
    this.vfs.remove(name);
    this.vfs.add({ name, fs: instance.fs!, metrics: instance.metrics, readDeadlineMs: instance.backend.maxReadMs + READ_DEADLINE_MARGIN_MS });
    void instance.prefetcher?.start();
    await this.closeInstance(old);
  }

  /** Stops serving `mountpoint`; its cache files stay for the next mount. */
  async umount(mountpoint: string): Promise<void> {
    const name = this.checkSharedMountpoint(mountpoint);
    const instance = this.instances.get(mountpoint);
    if (!instance) throw new NydusError('NOT_FOUND', `${mountpoint} is not mounted`);
    this.instances.delete(mountpoint);
    this.vfs.remove(name);
    await this.closeInstance(instance);
  }

  private checkSharedMountpoint(mountpoint: string): string {
    if (!this.shared) throw new InvalidArgumentError(`this daemon serves one image at its root (started with a bootstrap); ${mountpoint} cannot be mounted through the API`);
    const m = /^\/([^/\0]+)$/.exec(mountpoint);
    if (!m || m[1] === '.' || m[1] === '..') throw new InvalidArgumentError(`mountpoint "${mountpoint}" must be /NAME (one path component)`);
    return m[1]!;
  }

  private configFor(config: string | object | undefined): { parsed: DaemonConfig; raw: unknown } {
    if (config === undefined || config === '') {
      if (!this.options.config) throw new InvalidArgumentError('the mount request has no config and the daemon was started without a config');
      return { parsed: this.options.config, raw: this.options.rawConfig };
    }
    const raw = typeof config === 'string' ? safeJson(config) : config;
    const { config: parsed, warnings } = parseDaemonConfig(config);
    for (const w of warnings) this.logger.warn(`config: ${w}`);
    return { parsed, raw };
  }

  // ------------------------------------------------------------------ shutdown

  /**
   * Graceful stop: stops prefetch, lets in-flight operations finish (up to `graceMs`), unmounts,
   * flushes the caches and closes the backends. Idempotent.
   */
  stop(graceMs = 10_000): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info('daemon stopping', { mountpoint: this.mountpoint });
      for (const i of this.instances.values()) i.prefetcher?.stop();
      if (this.kernelMount) {
        await unmountKernelErofs(this.kernelMount).catch((err: Error) => this.logger.warn('kernel unmount failed', { error: err.message }));
        this.kernelMount = undefined;
      }
      await Promise.race([this.vfs.whenIdle(), new Promise((r) => setTimeout(r, graceMs).unref())]);
      await this.session?.unmount().catch((err: Error) => this.logger.warn('FUSE unmount failed', { error: err.message }));
      for (const i of this.instances.values()) await this.closeInstance(i).catch((err: Error) => this.logger.warn('closing an image failed', { mount: i.mountpoint, error: err.message }));
      this.instances.clear();
      await this.cacheManager.flushAll().catch(() => undefined);
      this.stateValue = 'STOPPED';
      this.logger.info('daemon stopped', { mountpoint: this.mountpoint });
      for (const w of this.stoppedWaiters.splice(0)) w();
    })();
    return this.stopping;
  }

  /** Settles once the daemon has stopped (by `stop()` or the API's exit). */
  whenStopped(): Promise<void> {
    if (this.stateValue === 'STOPPED') return Promise.resolve();
    return new Promise((resolve) => this.stoppedWaiters.push(resolve));
  }

  /** The FUSE mountpoint of erofs mode's blob devices (undefined in FUSE mode). */
  get erofsDeviceDir(): string | undefined {
    return this.deviceDir;
  }

  /** The filesystem behind a VFS mount (tests and metrics). */
  filesystemOf(mountpoint: string): VfsFilesystem | undefined {
    const i = this.instances.get(mountpoint);
    return i?.fs ?? i?.devices;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** fsname mount option: printable, without commas. */
function fsName(s: string): string {
  return 'nydusd-ts:' + s.replace(/[^A-Za-z0-9._/:-]/g, '_').slice(-80);
}

/** Reads and parses a configuration file. */
export async function loadDaemonConfigFile(file: string): Promise<{ config: DaemonConfig; raw: unknown; warnings: string[] }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`config ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, { optionNames: ['config'] });
  }
  const { config, warnings } = parseDaemonConfig(text);
  return { config, raw: JSON.parse(text), warnings };
}
