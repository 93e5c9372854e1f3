/**
 * Starts, watches, re-attaches and stops the nydusd-ts processes that serve Nydus images. The
 * daemons run as their own processes (detached, in their own session) so that a snapshotter
 * crash or restart leaves running containers' mounts serving; their records live in the
 * snapshotter's database so a restarted snapshotter re-attaches them, or restarts those that
 * died and mounts their images again.
 *
 * shared mode: one daemon with its FUSE root at `<root>/mnt`; each image is added through the API
 * (`POST /api/v1/mount?mountpoint=/<snapshot id>`) and appears at `<root>/mnt/<snapshot id>`.
 * dedicated mode: one daemon per image, mounted at `<root>/snapshots/<snapshot id>/mnt`.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NydusError } from '@nydus-ts/core';
import type { Logger } from '@nydus-ts/core';
import type { DaemonRecord, MetaStore, RafsInstanceRecord } from './metastore.js';
import { NydusdClient } from './nydusd-client.js';
import type { NydusdConfigV1 } from './nydusd-config.js';
import { isMountpoint, unmount } from './fs-util.js';

export type DaemonMode = 'shared' | 'dedicated';

export interface DaemonManagerOptions {
  root: string;
  store: MetaStore;
  mode: DaemonMode;
  /** The nydusd-ts command: executable and leading arguments (`[node, .../nydusd-ts.js]`). */
  command: readonly string[];
  /** Extra daemon arguments (e.g. `--mode erofs`), after ours. */
  extraArgs: readonly string[];
  threadNum: number | undefined;
  logLevel: string;
  startTimeoutMs: number;
  logger: Logger;
}

/** What a new image instance needs; computed only when the image is not served yet. */
export interface InstanceSpec {
  bootstrap: string;
  imageRef: string;
  config: NydusdConfigV1;
  blobIds: string[];
}

const SHARED_ID = 'shared';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True if process `pid` is the daemon whose API socket is `apiSocket` (not a recycled pid). */
async function isDaemonProcess(pid: number, apiSocket: string): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.split('\0').includes(apiSocket);
  } catch {
    return false;
  }
}

export class DaemonManager {
  readonly #o: DaemonManagerOptions;
  /** One operation at a time per daemon/image (start, mount, restart, stop). */
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(options: DaemonManagerOptions) {
    this.#o = options;
  }

  get mode(): DaemonMode {
    return this.#o.mode;
  }

  #serialize<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#locks.set(key, tail);
    void tail.then(() => {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    });
    return next;
  }

  #socketPath(daemonId: string): string {
    return path.join(this.#o.root, 'socket', daemonId, 'api.sock');
  }

  #configFile(snapshotId: number): string {
    return path.join(this.#o.root, 'config', `${snapshotId}.json`);
  }

  /** Where an image appears; `<root>/mnt/<id>` (shared) or `<root>/snapshots/<id>/mnt` (dedicated). */
  #instanceMountpoint(snapshotId: number): string {
    return this.#o.mode === 'shared' ? path.join(this.#o.root, 'mnt', String(snapshotId)) : path.join(this.#o.root, 'snapshots', String(snapshotId), 'mnt');
  }

  async #healthy(d: DaemonRecord): Promise<boolean> {
    if (!pidAlive(d.pid)) return false;
    try {
      const info = await new NydusdClient(d.apiSocket, { timeoutMs: 3000 }).daemonInfo();
      return info.state === 'RUNNING';
    } catch {
      return false;
    }
  }

  async #spawn(id: string, mode: DaemonMode, mountpoint: string, args: string[]): Promise<DaemonRecord> {
    const apiSocket = this.#socketPath(id);
    await mkdir(path.dirname(apiSocket), { recursive: true, mode: 0o700 });
    await rm(apiSocket, { force: true });
    await mkdir(mountpoint, { recursive: true });
    if (await isMountpoint(mountpoint)) await unmount(mountpoint); // a dead daemon's mount
    const logDir = path.join(this.#o.root, 'logs');
    await mkdir(logDir, { recursive: true });
    const logFile = path.join(logDir, `${id}.log`);
    const fd = openSync(logFile, 'a', 0o600);
    const [exe, ...lead] = this.#o.command;
    if (!exe) throw new NydusError('INVALID_ARGUMENT', 'daemon command is empty');
    const log = this.#o.logger.child({ daemon: id });
    let child;
    try {
      child = spawn(exe, [...lead, ...args], { detached: true, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    let exited: string | undefined;
    let spawnError: Error | undefined;
    child.on('exit', (code, signal) => (exited = signal ? `signal ${signal}` : `exit code ${code}`));
    child.on('error', (err) => (spawnError = err));
    child.unref();
    const record: DaemonRecord = { id, mode, pid: child.pid ?? -1, apiSocket, mountpoint, args };
    log.info('nydusd-ts started', { pid: record.pid, mountpoint, log: logFile });
    const client = new NydusdClient(apiSocket, { timeoutMs: 3000 });
    const deadline = Date.now() + this.#o.startTimeoutMs;
    let lastState = 'no API socket yet';
    for (;;) {
      if (spawnError) throw new NydusError('UNAVAILABLE', `nydusd-ts (${exe}) could not be started: ${spawnError.message}`, { cause: spawnError });
      if (exited !== undefined) {
        const tail = (await readFile(logFile, 'utf8').catch(() => '')).slice(-2000);
        throw new NydusError('UNAVAILABLE', `nydusd-ts ${id} exited while starting (${exited}); log ${logFile}:\n${tail}`);
      }
      try {
        const info = await client.daemonInfo();
        lastState = `state ${info.state}`;
        if (info.state === 'RUNNING') break;
      } catch (err) {
        lastState = (err as Error).message;
      }
      if (Date.now() > deadline) {
        await this.#kill(record);
        throw new NydusError('UNAVAILABLE', `nydusd-ts ${id} did not reach RUNNING within ${this.#o.startTimeoutMs} ms (${lastState}); log ${logFile}`);
      }
      await sleep(100);
    }
    this.#o.store.putDaemon(record);
    return record;
  }

  #commonArgs(id: string): string[] {
    const args = ['--apisock', this.#socketPath(id), '--id', id, '--log-level', this.#o.logLevel];
    if (this.#o.threadNum !== undefined) args.push('--thread-num', String(this.#o.threadNum));
    return args;
  }

  async #ensureSharedDaemon(): Promise<DaemonRecord> {
    const existing = this.#o.store.daemon(SHARED_ID);
    if (existing && (await this.#healthy(existing))) return existing;
    if (existing) return this.#restart(existing);
    const mountpoint = path.join(this.#o.root, 'mnt');
    return this.#spawn(SHARED_ID, 'shared', mountpoint, ['--mountpoint', mountpoint, ...this.#commonArgs(SHARED_ID), ...this.#o.extraArgs]);
  }

  async #mountInShared(daemon: DaemonRecord, inst: Pick<RafsInstanceRecord, 'snapshotId' | 'bootstrap' | 'configFile'>): Promise<void> {
    const config = await readFile(inst.configFile, 'utf8');
    await new NydusdClient(daemon.apiSocket, { timeoutMs: 60_000 }).mount(`/${inst.snapshotId}`, { source: inst.bootstrap, fs_type: 'rafs', config });
  }

  /** Kills a daemon process (SIGTERM, then SIGKILL) if it still is the recorded one, and unmounts its mountpoint. */
  async #kill(d: DaemonRecord): Promise<void> {
    if (pidAlive(d.pid) && (await isDaemonProcess(d.pid, d.apiSocket))) {
      process.kill(d.pid, 'SIGTERM');
      for (let i = 0; i < 100 && pidAlive(d.pid); i++) await sleep(100);
      if (pidAlive(d.pid)) process.kill(d.pid, 'SIGKILL');
      for (let i = 0; i < 50 && pidAlive(d.pid); i++) await sleep(100);
    }
    if (await isMountpoint(d.mountpoint)) await unmount(d.mountpoint);
    await rm(d.apiSocket, { force: true });
  }

  /** Starts a dead daemon again with its recorded arguments and mounts its images again. */
  async #restart(d: DaemonRecord): Promise<DaemonRecord> {
    this.#o.logger.warn('nydusd-ts is not running: restarting it', { daemon: d.id, pid: d.pid });
    await this.#kill(d);
    const fresh = await this.#spawn(d.id, d.mode, d.mountpoint, d.args);
    if (d.mode === 'shared') {
      for (const inst of this.#o.store.instances().filter((i) => i.daemonId === d.id)) await this.#mountInShared(fresh, inst);
    }
    return fresh;
  }

  /**
   * The mountpoint serving the image of bootstrap snapshot `snapshotId`, starting or re-using a
   * daemon (restarting a dead one). `spec` is called only when the image is not served yet.
   */
  ensureInstance(snapshotId: number, spec: () => Promise<InstanceSpec>): Promise<string> {
    return this.#serialize(`instance:${snapshotId}`, async () => {
      const existing = this.#o.store.instance(snapshotId);
      if (existing) {
        const daemon = this.#o.store.daemon(existing.daemonId);
        if (!daemon) throw new NydusError('INTERNAL', `image instance ${snapshotId} refers to unknown daemon ${existing.daemonId}`);
        await this.#serialize(`daemon:${daemon.id}`, async () => {
          if (!(await this.#healthy(daemon))) await this.#restart(daemon);
        });
        return existing.mountpoint;
      }
      const s = await spec();
      const configFile = this.#configFile(snapshotId);
      await mkdir(path.dirname(configFile), { recursive: true, mode: 0o700 });
      await writeFile(`${configFile}.tmp`, JSON.stringify(s.config, null, 2), { mode: 0o600 });
      await rename(`${configFile}.tmp`, configFile);
      const mountpoint = this.#instanceMountpoint(snapshotId);
      const inst: RafsInstanceRecord = { snapshotId, daemonId: '', mountpoint, bootstrap: s.bootstrap, imageRef: s.imageRef, configFile, blobIds: s.blobIds };
      if (this.#o.mode === 'shared') {
        const daemon = await this.#serialize(`daemon:${SHARED_ID}`, () => this.#ensureSharedDaemon());
        const t = Date.now();
        await this.#mountInShared(daemon, inst);
        this.#o.logger.debug('image mounted in the shared nydusd-ts', { snapshot: snapshotId, ms: Date.now() - t });
        inst.daemonId = daemon.id;
      } else {
        const id = `d${snapshotId}`;
        const daemon = await this.#serialize(`daemon:${id}`, () =>
          this.#spawn(id, 'dedicated', mountpoint, ['--config', configFile, '--bootstrap', s.bootstrap, '--mountpoint', mountpoint, ...this.#commonArgs(id), ...this.#o.extraArgs]),
        );
        inst.daemonId = daemon.id;
      }
      this.#o.store.putInstance(inst);
      this.#o.logger.info('image served by nydusd-ts', { snapshot: snapshotId, daemon: inst.daemonId, image: s.imageRef, mountpoint });
      return mountpoint;
    });
  }

  /** Stops serving an image: unmount from the shared daemon, or stop its dedicated daemon. */
  removeInstance(snapshotId: number): Promise<void> {
    return this.#serialize(`instance:${snapshotId}`, async () => {
      const inst = this.#o.store.instance(snapshotId);
      if (!inst) return;
      const daemon = this.#o.store.daemon(inst.daemonId);
      if (daemon?.mode === 'shared') {
        if (await this.#healthy(daemon)) {
          await new NydusdClient(daemon.apiSocket).umount(`/${snapshotId}`).catch((err: unknown) => {
            this.#o.logger.warn('unmount from shared nydusd-ts failed', { snapshot: snapshotId, error: (err as Error).message });
          });
        }
      } else if (daemon) {
        await this.#serialize(`daemon:${daemon.id}`, () => this.#kill(daemon));
      }
      this.#o.store.transaction(() => {
        this.#o.store.deleteInstance(snapshotId);
        if (daemon?.mode === 'dedicated') this.#o.store.deleteDaemon(daemon.id);
      });
      await rm(inst.configFile, { force: true });
      this.#o.logger.info('image no longer served', { snapshot: snapshotId });
    });
  }

  /** At start-up: re-attach running daemons, restart dead ones (remounting their images). */
  async recover(): Promise<void> {
    const instances = this.#o.store.instances();
    for (const d of this.#o.store.daemons()) {
      await this.#serialize(`daemon:${d.id}`, async () => {
        const used = instances.some((i) => i.daemonId === d.id) || d.id === SHARED_ID;
        if (!used) {
          await this.#kill(d);
          this.#o.store.deleteDaemon(d.id);
        } else if (await this.#healthy(d)) {
          this.#o.logger.info('re-attached running nydusd-ts', { daemon: d.id, pid: d.pid });
        } else {
          await this.#restart(d);
        }
      });
    }
  }

  /**
   * Starts the shared daemon now, so that the first container does not wait for it (as
   * nydus-snapshotter does in shared mode). It then runs until {@link stopAll}.
   */
  async startShared(): Promise<void> {
    if (this.#o.mode !== 'shared') return;
    await this.#serialize(`daemon:${SHARED_ID}`, () => this.#ensureSharedDaemon());
  }

  /** Stops every daemon and unmounts its images (tear-down; a normal snapshotter exit leaves them running). */
  async stopAll(): Promise<void> {
    for (const inst of this.#o.store.instances()) await this.removeInstance(inst.snapshotId);
    for (const d of this.#o.store.daemons()) {
      await this.#serialize(`daemon:${d.id}`, () => this.#kill(d));
      this.#o.store.deleteDaemon(d.id);
    }
  }

  /** The API client of the daemon serving an image (metrics), if any. */
  clientFor(snapshotId: number): { client: NydusdClient; instanceId: string | undefined } | undefined {
    const inst = this.#o.store.instance(snapshotId);
    const daemon = inst && this.#o.store.daemon(inst.daemonId);
    if (!inst || !daemon) return undefined;
    // A dedicated daemon serves one image (no id needed); a shared one names it by its mountpoint.
    return { client: new NydusdClient(daemon.apiSocket), instanceId: daemon.mode === 'shared' ? `/${snapshotId}` : undefined };
  }
}
