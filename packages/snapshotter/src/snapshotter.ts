/**
 * The snapshotter: containerd's overlay snapshotter semantics for plain OCI layers, plus Nydus
 * images served lazily by nydusd-ts (the remote-snapshot protocol of containerd-integration.md
 * §3): data layers are committed without being downloaded (AlreadyExists), the bootstrap layer
 * is unpacked normally, and a container's snapshot on top of a Nydus image gets an overlay whose
 * lower dir is the daemon's mount of the whole image. One snapshotter runs OCI, native Nydus
 * and zran images side by side.
 *
 * Layout under the root: `metadata.db` (SQLite), `snapshots/<id>/{fs,work[,mnt]}`, `mnt/` (the
 * shared daemon), `socket/<daemon>/api.sock`, `config/<id>.json` (nydusd configs, 0600),
 * `logs/<daemon>.log`, `cache/` (the daemons' blob cache).
 */
import { renameSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, NydusError, isNydusError, noopLogger } from '@nydus-ts/core';
import type { Logger } from '@nydus-ts/core';
import { BootstrapReader } from '@nydus-ts/format';
import { RegistryClient, parseReference } from '@nydus-ts/registry';
import type { Credentials, CredentialsProvider } from '@nydus-ts/registry';
import type { Mount, SnapshotInfo, SnapshotUsage, Snapshotter } from './types.js';
import { MetaStore } from './metastore.js';
import type { SnapshotRecord } from './metastore.js';
import { SnapshotLabel, imageRefOf, isNydusBootstrapLayer, isNydusDataLayer, layerDigestOf } from './labels.js';
import { parseSnapshotFilters } from './filters.js';
import { diskUsage, isOnOverlayfs, overlayHasIndexOption, removeTree } from './fs-util.js';
import { DaemonManager } from './daemon-manager.js';
import type { DaemonMode, InstanceSpec } from './daemon-manager.js';
import { buildNydusdConfig, defaultNydusdConfig, validateNydusdConfigTemplate } from './nydusd-config.js';
import type { NydusdConfigV1, RegistryHostConfig } from './nydusd-config.js';

export interface SnapshotterDaemonOptions {
  /** One daemon for every image (default) or one per image. */
  mode?: DaemonMode;
  /**
   * How to run nydusd-ts: executable and leading arguments, e.g. `[process.execPath,
   * '/…/apps/nydusd-ts/bin/nydusd-ts.js']`. Without it, Nydus images cannot be run (OCI can).
   */
  command?: string[];
  /** Arguments added to every daemon's command line (e.g. `['--mode', 'erofs']`). */
  extraArgs?: string[];
  threadNum?: number;
  /** The daemons' log level (default `info`). */
  logLevel?: string;
  /** How long a daemon may take to answer RUNNING (default 30 s). */
  startTimeoutMs?: number;
  /** nydusd v1 config template; backend and cache dir are filled in per image. */
  config?: NydusdConfigV1;
}

export interface SnapshotterOptions {
  /** Directory holding everything (must not lie on overlayfs). */
  root: string;
  logger?: Logger;
  daemon?: SnapshotterDaemonOptions;
  /** Registry credentials for the daemons (labels carry none); default anonymous. */
  credentials?: CredentialsProvider;
  /** Per registry host (`127.0.0.1:5000`): scheme and TLS verification for the daemons. */
  registryHosts?: Record<string, RegistryHostConfig>;
}

export interface ResolvedSnapshotterOptions {
  root: string;
  logger: Logger;
  daemon: Required<Omit<SnapshotterDaemonOptions, 'command' | 'threadNum'>> & { command: string[] | undefined; threadNum: number | undefined };
  credentials: CredentialsProvider;
  registryHosts: Record<string, RegistryHostConfig>;
}

export function resolveSnapshotterOptions(options: SnapshotterOptions): ResolvedSnapshotterOptions {
  if (typeof options.root !== 'string' || options.root === '') throw new InvalidArgumentError('snapshotter: root must be a non-empty path');
  const d = options.daemon ?? {};
  const mode = d.mode ?? 'shared';
  if (mode !== 'shared' && mode !== 'dedicated') throw new InvalidArgumentError(`snapshotter: daemon mode must be "shared" or "dedicated" (got ${JSON.stringify(mode)})`);
  if (d.threadNum !== undefined && (!Number.isInteger(d.threadNum) || d.threadNum < 1 || d.threadNum > 1024)) {
    throw new InvalidArgumentError(`snapshotter: daemon thread count must be an integer in [1, 1024] (got ${d.threadNum})`);
  }
  if (d.command !== undefined && (d.command.length === 0 || d.command.some((a) => typeof a !== 'string' || a === ''))) {
    throw new InvalidArgumentError('snapshotter: daemon command must be a non-empty list of non-empty strings');
  }
  const startTimeoutMs = d.startTimeoutMs ?? 30_000;
  if (!(startTimeoutMs > 0)) throw new InvalidArgumentError(`snapshotter: daemon start timeout must be positive (got ${startTimeoutMs})`);
  for (const [host, cfg] of Object.entries(options.registryHosts ?? {})) {
    if (cfg.scheme !== undefined && cfg.scheme !== 'http' && cfg.scheme !== 'https') {
      throw new InvalidArgumentError(`snapshotter: registry host ${host}: scheme must be "http" or "https" (got ${JSON.stringify(cfg.scheme)})`);
    }
  }
  return {
    root: path.resolve(options.root),
    logger: options.logger ?? noopLogger,
    daemon: {
      mode,
      command: d.command,
      extraArgs: d.extraArgs ?? [],
      threadNum: d.threadNum,
      logLevel: d.logLevel ?? 'info',
      startTimeoutMs,
      config: d.config ? validateNydusdConfigTemplate(d.config, 'nydusd config') : defaultNydusdConfig(),
    },
    credentials: options.credentials ?? (async () => undefined),
    registryHosts: options.registryHosts ?? {},
  };
}

const BOOTSTRAP_PATHS = ['image/image.boot', 'image.boot'];

function toInfo(rec: SnapshotRecord): SnapshotInfo {
  return { name: rec.name, parent: rec.parent, kind: rec.kind, created: rec.created, updated: rec.updated, labels: rec.labels };
}

export class NydusSnapshotter implements Snapshotter {
  readonly options: ResolvedSnapshotterOptions;
  readonly #store: MetaStore;
  readonly #daemons: DaemonManager;
  readonly #log: Logger;
  readonly #indexOff = overlayHasIndexOption();
  /** Blob ids of bootstrap snapshots (immutable once committed), for cache GC. */
  readonly #blobIdsBySnapshot = new Map<number, string[]>();
  #closed = false;

  private constructor(options: ResolvedSnapshotterOptions, store: MetaStore) {
    this.options = options;
    this.#store = store;
    this.#log = options.logger;
    this.#daemons = new DaemonManager({
      root: options.root,
      store,
      mode: options.daemon.mode,
      command: options.daemon.command ?? [],
      extraArgs: options.daemon.extraArgs,
      threadNum: options.daemon.threadNum,
      logLevel: options.daemon.logLevel,
      startTimeoutMs: options.daemon.startTimeoutMs,
      logger: options.logger,
    });
  }

  /**
   * Opens (or creates) a snapshotter root: removes what a crash left half-made, then re-attaches
   * the running daemons and restarts the dead ones.
   */
  static async open(options: SnapshotterOptions): Promise<NydusSnapshotter> {
    const o = resolveSnapshotterOptions(options);
    await mkdir(o.root, { recursive: true, mode: 0o700 });
    if (await isOnOverlayfs(o.root)) {
      throw new InvalidArgumentError(`snapshotter root ${o.root} lies on overlayfs: overlay mounts cannot use upper dirs there; choose a root on another file system`);
    }
    await mkdir(path.join(o.root, 'snapshots'), { recursive: true, mode: 0o700 });
    await mkdir(path.join(o.root, 'cache'), { recursive: true, mode: 0o700 });
    const store = MetaStore.open(path.join(o.root, 'metadata.db'));
    const sn = new NydusSnapshotter(o, store);
    try {
      await sn.#removeOrphanDirs();
    } catch (err) {
      store.close();
      throw err;
    }
    await sn.#daemons.recover().catch((err: unknown) => {
      sn.#log.error('could not recover nydusd-ts daemons; they are restarted on next use', { error: (err as Error).message });
    });
    if (o.daemon.command) {
      // In the background: serving starts at once; the first container waits for it if need be.
      sn.#daemons.startShared().catch((err: unknown) => {
        sn.#log.error('could not start the shared nydusd-ts; it is started again on first use', { error: (err as Error).message });
      });
    }
    return sn;
  }

  get root(): string {
    return this.options.root;
  }

  get cacheDir(): string {
    return path.join(this.options.root, 'cache');
  }

  #dir(id: number): string {
    return path.join(this.options.root, 'snapshots', String(id));
  }

  #fs(id: number): string {
    return path.join(this.#dir(id), 'fs');
  }

  #check(): void {
    if (this.#closed) throw new NydusError('UNAVAILABLE', 'snapshotter is closed');
  }

  /**
   * Creates a snapshot row and its directory together: the directory is made under a temporary
   * name and renamed to `snapshots/<id>` inside the row's transaction, so after a crash a row
   * always has its directory (and a directory without a row is garbage, removed at start-up).
   */
  async #create(kind: 'ACTIVE' | 'VIEW', key: string, parent: string, labels: Record<string, string>, commitAs?: { name: string; labels: Record<string, string> }): Promise<SnapshotRecord> {
    const tmp = await mkdtemp(path.join(this.options.root, 'snapshots', 'new-'));
    let placed: string | undefined;
    try {
      await mkdir(path.join(tmp, 'fs'));
      await chmod(path.join(tmp, 'fs'), 0o755);
      if (kind === 'ACTIVE') await mkdir(path.join(tmp, 'work'));
      return this.#store.transaction(() => {
        const rec = this.#store.create(kind, key, parent, labels, (id) => {
          renameSync(tmp, this.#dir(id));
          placed = this.#dir(id);
        });
        return commitAs ? this.#store.commit(key, commitAs.name, commitAs.labels, { size: 0, inodes: 0 }) : rec;
      });
    } catch (err) {
      await rm(placed ?? tmp, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * A Nydus data layer (native blob or zran): committed at once under the target name with no
   * content, then AlreadyExists tells containerd to use it (remote-snapshot handshake, §3.2).
   */
  async #prepareRemoteLayer(key: string, parent: string, labels: Record<string, string>): Promise<never> {
    const target = labels[SnapshotLabel.TargetRef]!;
    if (!this.#store.get(target)) {
      try {
        await this.#create('ACTIVE', key, parent, labels, { name: target, labels: { ...labels, [SnapshotLabel.Remote]: 'remote snapshot' } });
        this.#log.debug('remote Nydus layer committed', { key, target, layer: layerDigestOf(labels) });
      } catch (err) {
        // Another namespace or a concurrent pull committed the same chain first: that is success too.
        if (!isNydusError(err, 'ALREADY_EXISTS') || !this.#store.get(target)) throw err;
      }
    }
    throw new NydusError('ALREADY_EXISTS', `target snapshot ${JSON.stringify(target)} already exists (remote Nydus layer)`);
  }

  async prepare(key: string, parent: string, labels: Record<string, string> = {}): Promise<Mount[]> {
    this.#check();
    if (labels[SnapshotLabel.TargetRef] && isNydusDataLayer(labels)) return this.#prepareRemoteLayer(key, parent, labels);
    return this.#createWithMounts('ACTIVE', key, parent, labels);
  }

  async view(key: string, parent: string, labels: Record<string, string> = {}): Promise<Mount[]> {
    this.#check();
    return this.#createWithMounts('VIEW', key, parent, labels);
  }

  async #createWithMounts(kind: 'ACTIVE' | 'VIEW', key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    const rec = await this.#create(kind, key, parent, labels);
    try {
      const lowers = await this.#lowerDirs(rec);
      if (kind === 'ACTIVE' && lowers[0] !== undefined) {
        // The merged root shows the upper dir's owner and mode: keep those of the layer below.
        const below = await stat(lowers[0]);
        await chown(this.#fs(rec.id), below.uid, below.gid);
        await chmod(this.#fs(rec.id), below.mode & 0o7777);
      }
      return this.#mountsOf(rec, lowers);
    } catch (err) {
      // The snapshot is useless without its mounts (e.g. the image's daemon failed to start):
      // undo it, so containerd's rolled-back Prepare leaves nothing behind here either.
      await this.remove(key).catch(() => undefined);
      throw err;
    }
  }

  async mounts(key: string): Promise<Mount[]> {
    this.#check();
    return this.#mountsFor(this.#store.mustGet(key));
  }

  /** Mounts as containerd's overlay snapshotter builds them, with a Nydus image's daemon mount as lower dir. */
  async #mountsFor(rec: SnapshotRecord): Promise<Mount[]> {
    if (rec.kind === 'COMMITTED') {
      throw new NydusError('FAILED_PRECONDITION', `snapshot ${JSON.stringify(rec.name)} is committed: only active and view snapshots have mounts`);
    }
    return this.#mountsOf(rec, await this.#lowerDirs(rec));
  }

  /**
   * The lower dirs of a snapshot, nearest first: its parents' layer dirs, where a Nydus bootstrap
   * layer and everything below it is replaced by the daemon's mount of the whole image.
   */
  async #lowerDirs(rec: SnapshotRecord): Promise<string[]> {
    const ancestors = this.#store.ancestors(rec);
    const metaIndex = rec.labels[SnapshotLabel.TargetRef] ? -1 : ancestors.findIndex((a) => isNydusBootstrapLayer(a.labels));
    let lowers: string[];
    if (metaIndex >= 0) {
      const meta = ancestors[metaIndex]!;
      const imageMount = await this.#daemons.ensureInstance(meta.id, () => this.#instanceSpec(meta));
      lowers = [...ancestors.slice(0, metaIndex).map((a) => this.#fs(a.id)), imageMount];
    } else {
      lowers = ancestors.map((a) => this.#fs(a.id));
    }
    return lowers;
  }

  #mountsOf(rec: SnapshotRecord, lowers: string[]): Mount[] {
    const own = this.#fs(rec.id);
    if (lowers.length === 0) {
      return [{ type: 'bind', source: own, options: [rec.kind === 'VIEW' ? 'ro' : 'rw', 'rbind'] }];
    }
    if (rec.kind === 'VIEW') {
      if (lowers.length === 1) return [{ type: 'bind', source: lowers[0]!, options: ['ro', 'rbind'] }];
      return [{ type: 'overlay', source: 'overlay', options: [...(this.#indexOff ? ['index=off'] : []), `lowerdir=${lowers.join(':')}`] }];
    }
    return [
      {
        type: 'overlay',
        source: 'overlay',
        options: [...(this.#indexOff ? ['index=off'] : []), `workdir=${path.join(this.#dir(rec.id), 'work')}`, `upperdir=${own}`, `lowerdir=${lowers.join(':')}`],
      },
    ];
  }

  async #bootstrapPath(meta: SnapshotRecord): Promise<string> {
    for (const rel of BOOTSTRAP_PATHS) {
      const p = path.join(this.#fs(meta.id), rel);
      if ((await stat(p).catch(() => undefined))?.isFile()) return p;
    }
    throw new NydusError('FAILED_PRECONDITION', `Nydus bootstrap layer ${JSON.stringify(meta.name)} holds no ${BOOTSTRAP_PATHS.join(' or ')}`);
  }

  async #blobIdsOf(meta: SnapshotRecord, bootstrap?: string): Promise<string[]> {
    const cached = this.#blobIdsBySnapshot.get(meta.id);
    if (cached) return cached;
    const bytes = await readFile(bootstrap ?? (await this.#bootstrapPath(meta)));
    const reader = await BootstrapReader.open(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    const ids = reader.blobs.map((b) => b.blobId);
    this.#blobIdsBySnapshot.set(meta.id, ids);
    return ids;
  }

  async #instanceSpec(meta: SnapshotRecord): Promise<InstanceSpec> {
    if (!this.options.daemon.command) {
      throw new NydusError('FAILED_PRECONDITION', 'this snapshotter has no nydusd-ts command configured, so it cannot run Nydus images');
    }
    const imageRef = imageRefOf(meta.labels);
    if (!imageRef) {
      throw new NydusError(
        'FAILED_PRECONDITION',
        `failed to find image ref of snapshot ${JSON.stringify(meta.name)}: pull with \`nydusd-ts pull\`, \`ctr-remote image rpull\` or a CRI client that sets ${SnapshotLabel.CriImageRef}`,
      );
    }
    const t0 = Date.now();
    const bootstrap = await this.#bootstrapPath(meta);
    const ref = parseReference(imageRef);
    const credentials = await this.options.credentials(ref.registry);
    const config = buildNydusdConfig({ template: this.options.daemon.config, imageRef, credentials, cacheDir: this.cacheDir, host: this.options.registryHosts[ref.registry] });
    // (both at once: one reads the bootstrap, the other waits for the registry)
    const [blobIds] = await Promise.all([this.#blobIdsOf(meta, bootstrap), this.#checkRegistryAccess(imageRef, config, credentials)]);
    this.#log.debug('image instance prepared', { ms: Date.now() - t0 });
    return { bootstrap, imageRef, config, blobIds };
  }

  /**
   * One request with the daemon's registry settings before the image is mounted: a registry that
   * refuses them would otherwise show up only as EIO on the container's first reads.
   */
  async #checkRegistryAccess(imageRef: string, config: NydusdConfigV1, credentials: Credentials | undefined): Promise<void> {
    const ref = parseReference(imageRef);
    const backend = config.device.backend.config as { scheme?: string; skip_verify?: boolean };
    const client = new RegistryClient({
      registry: ref.registry,
      insecure: backend.scheme === 'http' || backend.skip_verify === true,
      retry: { attempts: 1 },
      ...(credentials && { credentials }),
    });
    try {
      await client.headManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
    } catch (err) {
      if (isNydusError(err, 'UNAUTHENTICATED') || isNydusError(err, 'PERMISSION_DENIED')) {
        throw new NydusError(
          'FAILED_PRECONDITION',
          `registry ${ref.registry} refuses ${credentials ? 'the credentials' : 'anonymous access'} for ${ref.repository} (${(err as Error).message}): give the snapshotter credentials (its credentials file, in docker's config.json format)`,
          { cause: err },
        );
      }
      // Anything else (a slow or flaky registry) is for the daemon's own retries.
      this.#log.warn('registry check before mounting failed; mounting anyway', { image: imageRef, error: (err as Error).message });
    } finally {
      await client.close();
    }
  }

  async commit(name: string, key: string, labels: Record<string, string> = {}): Promise<void> {
    this.#check();
    const rec = this.#store.mustGet(key);
    const usage = rec.kind === 'ACTIVE' ? await diskUsage(this.#fs(rec.id)) : { size: 0, inodes: 0 };
    const committed = this.#store.commit(key, name, labels, usage);
    if (isNydusBootstrapLayer(committed.labels)) this.#mountAhead(committed);
  }

  /**
   * Mounts a just-pulled Nydus image in the shared daemon in the background, so that its first
   * container does not wait for the daemon to load the bootstrap and blob metas (~0.5 s for a
   * 40k-file image). A failure is only logged: the container's Prepare mounts again and reports it.
   * Dedicated mode waits for a container (one daemon process per image is not free).
   */
  #mountAhead(meta: SnapshotRecord): void {
    if (this.#daemons.mode !== 'shared' || !this.options.daemon.command || !imageRefOf(meta.labels)) return;
    void this.#daemons.ensureInstance(meta.id, () => this.#instanceSpec(meta)).catch((err: unknown) => {
      this.#log.warn('mounting the image ahead of its first container failed; its first container mounts it again', { snapshot: meta.name, error: (err as Error).message });
    });
  }

  async remove(key: string): Promise<void> {
    this.#check();
    const rec = this.#store.mustGet(key);
    if (this.#store.hasChildren(rec.id)) throw new NydusError('FAILED_PRECONDITION', `snapshot ${JSON.stringify(key)} has children: remove them first`);
    // (also when no instance is recorded yet: a mount ahead of use may be on its way)
    if (this.#store.instance(rec.id) || isNydusBootstrapLayer(rec.labels)) await this.#daemons.removeInstance(rec.id);
    this.#store.remove(key);
    this.#blobIdsBySnapshot.delete(rec.id);
    await removeTree(this.#dir(rec.id));
  }

  async stat(key: string): Promise<SnapshotInfo> {
    this.#check();
    return toInfo(this.#store.mustGet(key));
  }

  async update(info: Pick<SnapshotInfo, 'name' | 'labels'>, fieldPaths: string[] = []): Promise<SnapshotInfo> {
    this.#check();
    return toInfo(this.#store.updateLabels(info.name, info.labels ?? {}, fieldPaths));
  }

  async list(filters: string[] = []): Promise<SnapshotInfo[]> {
    this.#check();
    const match = parseSnapshotFilters(filters);
    return this.#store.list().map(toInfo).filter(match);
  }

  async usage(key: string): Promise<SnapshotUsage> {
    this.#check();
    const rec = this.#store.mustGet(key);
    return rec.kind === 'ACTIVE' ? diskUsage(this.#fs(rec.id)) : rec.usage;
  }

  /** Removes directories no row owns (crash leftovers: `new-*`, removed snapshots). */
  async #removeOrphanDirs(): Promise<void> {
    const ids = this.#store.ids();
    const dir = path.join(this.options.root, 'snapshots');
    for (const name of await readdir(dir)) {
      if (/^\d+$/.test(name) && ids.has(Number(name))) continue;
      this.#log.info('removing leftover snapshot directory', { dir: name });
      await removeTree(path.join(dir, name));
    }
  }

  /** Blob cache files of blobs no snapshot refers to any more. */
  async #collectCache(): Promise<string[]> {
    const referenced = new Set<string>();
    for (const inst of this.#store.instances()) for (const id of inst.blobIds) referenced.add(id);
    for (const rec of this.#store.list()) {
      if (isNydusBootstrapLayer(rec.labels) && rec.kind === 'COMMITTED') {
        try {
          for (const id of await this.#blobIdsOf(rec)) referenced.add(id);
        } catch (err) {
          this.#log.warn('cannot read blob table of bootstrap snapshot; keeping the cache', { snapshot: rec.name, error: (err as Error).message });
          return [];
        }
      }
      if (isNydusDataLayer(rec.labels)) {
        // A zran layer's blob is the original OCI layer (nydus-ref); a native one is its own digest.
        for (const digest of [layerDigestOf(rec.labels), rec.labels[SnapshotLabel.NydusRef]]) {
          if (digest?.startsWith('sha256:')) referenced.add(digest.slice('sha256:'.length));
        }
      }
    }
    const removed: string[] = [];
    for (const name of await readdir(this.cacheDir).catch(() => [] as string[])) {
      const m = /^([0-9a-f]{64})/.exec(name);
      if (!m || referenced.has(m[1]!)) continue;
      await rm(path.join(this.cacheDir, name), { recursive: true, force: true });
      removed.push(name);
    }
    if (removed.length > 0) this.#log.info('blob cache files removed', { count: removed.length });
    return removed;
  }

  async cleanup(): Promise<void> {
    this.#check();
    await this.#removeOrphanDirs();
    await this.#collectCache();
  }

  /** The daemon API of the image whose bootstrap snapshot is `name` (metrics), if it is being served. */
  daemonFor(name: string): ReturnType<DaemonManager['clientFor']> {
    const rec = this.#store.get(name);
    return rec && this.#daemons.clientFor(rec.id);
  }

  /** Stops every daemon this snapshotter started and unmounts their images (for tear-down). */
  async stopDaemons(): Promise<void> {
    await this.#daemons.stopAll();
  }

  /** Closes the database. Running daemons keep serving (containers keep running). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#store.close();
  }
}
