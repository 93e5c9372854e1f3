/**
 * The fuse-native 2.2.6 binding (libfuse 2 high-level API, path based, one libfuse worker
 * thread per concurrent request, each handed to this thread's event loop). Its limits, and what
 * this module does about them:
 * - mount options come from `_fuseOptions()`, which has no `use_ino`, `ro`, `dev` or `suid`
 *   and no negative-entry timeout: a subclass appends them, so `stat.ino` (the RAFS nid) is
 *   what the kernel reports and hardlinks share their inode number;
 * - `getxattr`/`listxattr` copy into the kernel's buffer without checking its size: the subclass
 *   answers ERANGE when the value or list does not fit (and the exact size for size queries);
 * - every operation has a 15 s default timeout answering ETIMEDOUT: it is turned off here, and
 *   the daemon answers every operation itself (EIO after its own deadline);
 * - paths and names cross as UTF-8 strings (a name that is not UTF-8 arrives with U+FFFD; the
 *   filesystem finds it only when unambiguous) and times as milliseconds: documented limits of
 *   the FUSE mode (the erofs mode has neither).
 */
import { createRequire } from 'node:module';

export type FuseCallback = (...args: unknown[]) => void;

/** The operation table fuse-native calls (positional callbacks, negative errno on failure). */
export interface FuseOperations {
  init?(cb: (err: number) => void): void;
  getattr(path: string, cb: (err: number, stat?: object) => void): void;
  readdir(path: string, cb: (err: number, names?: string[]) => void): void;
  readlink?(path: string, cb: (err: number, target?: string) => void): void;
  open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
  release?(path: string, fd: number, cb: (err: number) => void): void;
  read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void;
  getxattr?(path: string, name: string, position: number, cb: (err: number, value?: Buffer) => void): void;
  listxattr?(path: string, cb: (err: number, names?: string[]) => void): void;
  statfs?(path: string, cb: (err: number, statfs?: object) => void): void;
  access?(path: string, mode: number, cb: (err: number) => void): void;
}

export interface FuseMountOptions {
  allowOther?: boolean;
  /** Kernel attribute / entry / negative-entry cache lifetimes in seconds. */
  attrTimeout: number;
  entryTimeout: number;
  negativeTimeout: number;
  fsname: string;
  /** Keep the page cache across opens (the image is immutable). */
  kernelCache?: boolean;
}

interface FuseNativeInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}

interface FuseNativeClass {
  new (mnt: string, ops: FuseOperations, opts: Record<string, unknown>): FuseNativeInstance;
  unmount(mnt: string, cb: (err: Error | null) => void): void;
  prototype: Record<string, unknown>;
}

const require = createRequire(import.meta.url);
let fuseClass: FuseNativeClass | undefined;

/** Our subclass of fuse-native's class, created on first use (loading the addon needs libfuse.so.2). */
function nydusFuseClass(): FuseNativeClass {
  if (fuseClass) return fuseClass;
  const Base = require('fuse-native') as FuseNativeClass;
  const ERANGE = -34;
  const ENODATA = -61;
  class NydusFuse extends (Base as unknown as new (...args: unknown[]) => Record<string, unknown>) {
    _fuseOptions(): string {
      const base = (Base.prototype._fuseOptions as () => string).call(this);
      const extra = (this.opts as { extraOptions: string[] }).extraOptions;
      if (extra.length === 0) return base;
      return base === '' ? `-o${extra.join(',')}` : `${base},${extra.join(',')}`;
    }

    _op_getxattr(signal: (res: number, buf: ArrayBuffer) => void, path: string, name: string, valueBuf: Buffer, position: number): void {
      (this.ops as FuseOperations).getxattr!(path, name, position, (err, value) => {
        if (err) return signal(err, valueBuf.buffer as ArrayBuffer);
        if (!value) return signal(ENODATA, valueBuf.buffer as ArrayBuffer);
        if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer as ArrayBuffer);
        if (value.length > valueBuf.length) return signal(ERANGE, valueBuf.buffer as ArrayBuffer);
        value.copy(valueBuf);
        return signal(value.length, valueBuf.buffer as ArrayBuffer);
      });
    }

    _op_listxattr(signal: (res: number, buf: ArrayBuffer) => void, path: string, listBuf: Buffer): void {
      (this.ops as FuseOperations).listxattr!(path, (err, names) => {
        if (err || !names) return signal(err || ENODATA, listBuf.buffer as ArrayBuffer);
        const list = Buffer.from(names.map((n) => n + '\0').join(''), 'utf8');
        if (listBuf.length === 0) return signal(list.length, listBuf.buffer as ArrayBuffer);
        if (list.length > listBuf.length) return signal(ERANGE, listBuf.buffer as ArrayBuffer);
        list.copy(listBuf);
        return signal(list.length, listBuf.buffer as ArrayBuffer);
      });
    }
  }
  fuseClass = NydusFuse as unknown as FuseNativeClass;
  return fuseClass;
}

/** A FUSE session on one mountpoint. */
export class FuseSession {
  readonly mountpoint: string;
  private readonly fuse: FuseNativeInstance;
  private mounted = false;

  constructor(mountpoint: string, ops: FuseOperations, options: FuseMountOptions) {
    this.mountpoint = mountpoint;
    const extraOptions = [
      'ro',
      'use_ino',
      'default_permissions',
      'dev',
      'suid',
      `attr_timeout=${options.attrTimeout}`,
      `entry_timeout=${options.entryTimeout}`,
      `negative_timeout=${options.negativeTimeout}`,
    ];
    const Fuse = nydusFuseClass();
    this.fuse = new Fuse(mountpoint, ops, {
      allowOther: options.allowOther ?? true,
      kernelCache: options.kernelCache ?? true,
      fsname: options.fsname,
      subtype: 'nydusd-ts',
      timeout: false,
      extraOptions,
    });
  }

  mount(): Promise<void> {
    return new Promise((resolve, reject) =>
      this.fuse.mount((err) => {
        if (err) return reject(err);
        this.mounted = true;
        resolve();
      }),
    );
  }

  /** Detaches the mount (lazily, like `fusermount -uz`) and stops the session. */
  unmount(): Promise<void> {
    if (!this.mounted) return Promise.resolve();
    return new Promise((resolve, reject) =>
      this.fuse.unmount((err) => {
        if (err) return reject(err);
        this.mounted = false;
        resolve();
      }),
    );
  }
}

/** `fusermount -uz MOUNTPOINT`: lazily detaches a (possibly dead) FUSE mount. */
export function lazyUnmount(mountpoint: string): Promise<void> {
  const Fuse = nydusFuseClass();
  return new Promise((resolve, reject) => Fuse.unmount(mountpoint, (err) => (err ? reject(err) : resolve())));
}
