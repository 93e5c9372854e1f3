/**
 * The tree one FUSE session serves, and the FUSE operation table over it. In dedicated mode one
 * filesystem is the root; in shared mode the root is a read-only pseudo directory whose entries
 * are the mounts added through the API (`/ID` appears at `MOUNTPOINT/ID`). Every operation is
 * answered exactly once: failures become negative errnos (EIO for anything unexpected, logged),
 * and a read still waiting when its deadline passes answers EIO, never ETIMEDOUT or a hang.
 */
import { noopLogger, type Logger } from '@nydus-ts/core';
import type { Fop, FsMetrics } from '../metrics/metrics.js';
import { Errno, FsError, errnoOf } from '../fs/fs-error.js';
import type { FileStat, StatFs } from '../fs/rafs-filesystem.js';
import type { FuseOperations } from './fuse-binding.js';

/** What the VFS needs from a mounted filesystem (a RAFS image, or the blob devices of one). */
export interface VfsFilesystem {
  resolve(path: string): number;
  getattr(nid: number): FileStat;
  readdir(path: string): string[];
  readlink(nid: number): string;
  listxattr(nid: number): string[];
  getxattr(nid: number, name: string): Uint8Array;
  statfs(): StatFs;
  open(nid: number, flags: number): void;
  read(nid: number, target: Uint8Array, position: number, length: number): Promise<number>;
  pathOf(nid: number): string;
}

export interface VfsMount {
  /** '' for the root filesystem (dedicated mode), else the first path component. */
  name: string;
  fs: VfsFilesystem;
  metrics: FsMetrics;
  /** A read not answered after this long answers EIO (ms): above the backend's longest read. */
  readDeadlineMs: number;
}

interface Handle {
  mount: VfsMount;
  nid: number;
}

/** What an operation touched, for its metrics. */
interface OpContext {
  mount: VfsMount | undefined;
  ino: number;
}

export interface VfsOptions {
  logger?: Logger;
}

const ROOT_INO = 1;
const PSEUDO_DIR_MODE = 0o040755;

export class Vfs {
  private root: VfsMount | undefined;
  private readonly mounts = new Map<string, VfsMount>();
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;
  private inflight = 0;
  private drained: (() => void) | undefined;
  private readonly logger: Logger;
  private readonly startedMs = Date.now();

  constructor(options: VfsOptions = {}) {
    this.logger = options.logger ?? noopLogger;
  }

  /** Mounts `fs` at the root (dedicated mode). */
  setRoot(mount: VfsMount): void {
    this.root = mount;
  }

  /** Adds a filesystem at `/name` (shared mode). */
  add(mount: VfsMount): void {
    this.mounts.set(mount.name, mount);
  }

  /** Removes `/name`; its open handles answer EBADF from then on. */
  remove(name: string): VfsMount | undefined {
    const m = this.mounts.get(name);
    if (!m) return undefined;
    this.mounts.delete(name);
    for (const [h, handle] of this.handles) if (handle.mount === m) this.handles.delete(h);
    return m;
  }

  get(name: string): VfsMount | undefined {
    return name === '' ? this.root : this.mounts.get(name);
  }

  list(): VfsMount[] {
    return [...(this.root ? [this.root] : []), ...this.mounts.values()];
  }

  /** Operations in progress. */
  get busy(): number {
    return this.inflight;
  }

  /** Settles when no operation is in progress. */
  whenIdle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => (this.drained = resolve));
  }

  /** The mount serving `path` and the path inside it; undefined for the shared-mode pseudo root. */
  private route(path: string): { mount: VfsMount; sub: string } | undefined {
    if (this.root) return { mount: this.root, sub: path };
    if (path === '/') return undefined;
    const slash = path.indexOf('/', 1);
    const name = slash < 0 ? path.slice(1) : path.slice(1, slash);
    const mount = this.mounts.get(name);
    if (!mount) throw new FsError(Errno.ENOENT, `${path}: no such mount`);
    return { mount, sub: slash < 0 ? '/' : path.slice(slash) };
  }

  private pseudoRootStat(): FileStat {
    const t = this.startedMs;
    return { ino: ROOT_INO, mode: PSEUDO_DIR_MODE, nlink: 2 + this.mounts.size, uid: 0, gid: 0, rdev: 0, size: 4096, blksize: 4096, blocks: 8, atime: t, mtime: t, ctime: t, dev: 0, mtimeNsec: 0 };
  }

  /** Runs one operation: counts it, records its metrics, turns failures into errnos. */
  private op<T>(fop: Fop, run: (ctx: OpContext) => T, done: (err: number, value?: T) => void): void {
    const started = performance.now();
    const ctx: OpContext = { mount: undefined, ino: 0 };
    this.inflight++;
    let value: T | undefined;
    let errno = 0;
    try {
      value = run(ctx);
    } catch (err) {
      errno = this.failure(fop, err);
    }
    this.finish(fop, ctx, started, errno, 0);
    done(errno === 0 ? 0 : -errno, value);
  }

  /** A read: like `op`, with a deadline after which it answers EIO (the fetch goes on for others). */
  private async read(handle: Handle, buf: Buffer, pos: number, len: number, done: (result: number) => void): Promise<void> {
    const started = performance.now();
    const ctx: OpContext = { mount: handle.mount, ino: handle.nid };
    this.inflight++;
    let n = 0;
    let errno = 0;
    let timer: NodeJS.Timeout | undefined;
    try {
      n = await Promise.race([
        handle.mount.fs.read(handle.nid, buf, pos, len),
        new Promise<never>((_, reject) => {
          const ms = handle.mount.readDeadlineMs;
          timer = setTimeout(() => reject(new FsError(Errno.EIO, `read not done within ${ms} ms`)), ms);
        }),
      ]);
    } catch (err) {
      errno = this.failure('read', err);
    } finally {
      clearTimeout(timer);
    }
    this.finish('read', ctx, started, errno, n);
    done(errno === 0 ? n : -errno);
  }

  private failure(fop: Fop, err: unknown): number {
    const errno = errnoOf(err);
    if (!(err instanceof FsError)) this.logger.error(`${fop} failed`, { error: err instanceof Error ? err.message : String(err), code: (err as { code?: string }).code });
    else if (errno === Errno.EIO) this.logger.error(`${fop} failed`, { error: err.message });
    return errno;
  }

  private finish(fop: Fop, ctx: OpContext, started: number, errno: number, bytes: number): void {
    const mount = ctx.mount;
    if (mount) {
      // A lookup of a missing name and a missing xattr are ordinary answers, not failures.
      const ok = errno === 0 || errno === Errno.ENOENT || errno === Errno.ENODATA;
      const ino = ctx.ino;
      mount.metrics.record(fop, ok, Math.round((performance.now() - started) * 1000), ino, bytes, () => mount.fs.pathOf(ino));
    }
    if (--this.inflight === 0 && this.drained) {
      const d = this.drained;
      this.drained = undefined;
      d();
    }
  }

  /** Routes `path`, noting the mount in `ctx`; undefined for the shared-mode pseudo root. */
  private enter(ctx: OpContext, path: string): { fs: VfsFilesystem; sub: string } | undefined {
    const r = this.route(path);
    if (!r) return undefined;
    ctx.mount = r.mount;
    return { fs: r.mount.fs, sub: r.sub };
  }

  /** Resolves `path` to a nid of its mount, noting both in `ctx`; undefined for the pseudo root. */
  private node(ctx: OpContext, path: string): { fs: VfsFilesystem; nid: number } | undefined {
    const r = this.enter(ctx, path);
    if (!r) return undefined;
    ctx.ino = r.fs.resolve(r.sub);
    return { fs: r.fs, nid: ctx.ino };
  }

  /** The operation table for fuse-native. */
  operations(): FuseOperations {
    return {
      getattr: (path, cb) =>
        this.op('getattr', (ctx) => {
          const n = this.node(ctx, path);
          return n ? n.fs.getattr(n.nid) : this.pseudoRootStat();
        }, cb),
      readdir: (path, cb) =>
        this.op('readdir', (ctx) => {
          const r = this.enter(ctx, path);
          return r ? r.fs.readdir(r.sub) : ['.', '..', ...[...this.mounts.keys()].sort()];
        }, cb),
      readlink: (path, cb) =>
        this.op('readlink', (ctx) => {
          const n = this.node(ctx, path);
          if (!n) throw new FsError(Errno.EINVAL, '/ is not a symlink');
          return n.fs.readlink(n.nid);
        }, cb),
      open: (path, flags, cb) =>
        this.op('open', (ctx) => {
          const n = this.node(ctx, path);
          if (!n) throw new FsError(Errno.EISDIR, '/ is a directory');
          n.fs.open(n.nid, flags);
          const h = this.nextHandle++;
          if (this.nextHandle > 0xffff_fff0) this.nextHandle = 1;
          this.handles.set(h, { mount: ctx.mount!, nid: n.nid });
          return h;
        }, cb),
      release: (_path, fd, cb) =>
        this.op('release', (ctx) => {
          const h = this.handles.get(fd);
          this.handles.delete(fd);
          if (h) {
            ctx.mount = h.mount;
            ctx.ino = h.nid;
          }
        }, cb),
      read: (_path, fd, buf, len, pos, cb) => {
        const h = this.handles.get(fd);
        if (!h) cb(-Errno.EBADF);
        else void this.read(h, buf, pos, len, cb);
      },
      getxattr: (path, name, _position, cb) =>
        this.op('getxattr', (ctx) => {
          const n = this.node(ctx, path);
          if (!n) throw new FsError(Errno.ENODATA, 'no xattrs on the pseudo root');
          const v = n.fs.getxattr(n.nid, name);
          return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        }, cb),
      listxattr: (path, cb) =>
        this.op('listxattr', (ctx) => {
          const n = this.node(ctx, path);
          return n ? n.fs.listxattr(n.nid) : [];
        }, cb),
      statfs: (path, cb) =>
        this.op('statfs', (ctx) => {
          const r = this.enter(ctx, path);
          return r ? r.fs.statfs() : { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, fsid: 0, flag: 1, namemax: 255 };
        }, cb),
      access: (path, _mode, cb) =>
        this.op('access', (ctx) => {
          this.node(ctx, path);
        }, cb),
    };
  }
}
