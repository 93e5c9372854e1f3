/**
 * The read-only filesystem operations of one RAFS image, independent of FUSE (testable without a
 * mount): path resolution, attributes as the kernel's EROFS driver reports them (inode number =
 * nid, the bootstrap's modes, owners, sizes, nlink, times and device numbers), directory
 * listings in on-disk order, symlinks, xattrs, statfs, and reads that make the chunks under a
 * range ready in the cache and copy them from the cache file into the caller's buffer.
 */
import type { RafsInode } from '@nydus-ts/format';
import { Errno, FsError } from './fs-error.js';
import type { RafsImage } from './rafs-image.js';

/** What `getattr` answers (the field names fuse-native reads; times in ms). */
export interface FileStat {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
  dev: number;
  /** Nanoseconds within the second (FUSE passes milliseconds; kept for tests). */
  mtimeNsec: number;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

export interface RafsFilesystemOptions {
  /** Serve extended attributes (nydusd `enable_xattr`); when off, xattr calls answer ENOTSUP. */
  enableXattr?: boolean;
  /** Added to every inode number (shared mode keeps mounts apart); default 0. */
  inoBase?: number;
  /** Remember a path per nid (for per-file metrics and access patterns). */
  trackPaths?: boolean;
}

const ST_RDONLY = 1;
/** Access-mode bits of open flags (O_RDONLY is 0). */
const O_ACCMODE = 3;
const BLOCK = 4096;

/** Per-file chunk-table entries, resolved once per file. */
interface FileChunks {
  size: number;
  entries: Uint32Array;
}

export class RafsFilesystem {
  readonly image: RafsImage;
  private readonly enableXattr: boolean;
  private readonly inoBase: number;
  private readonly paths = new Map<string, number>();
  private readonly firstPaths: Map<number, string> | undefined;
  private readonly stats = new Map<number, FileStat>();
  private readonly files = new Map<number, FileChunks>();
  private readonly chunkSize: number;
  private readonly buildTimeMs: number;
  private readonly buildTimeNsec: number;

  constructor(image: RafsImage, options: RafsFilesystemOptions = {}) {
    this.image = image;
    this.enableXattr = options.enableXattr ?? true;
    this.inoBase = options.inoBase ?? 0;
    if (options.trackPaths) this.firstPaths = new Map();
    this.chunkSize = image.reader.chunkSize;
    const sb = image.reader.superblock;
    this.buildTimeMs = sb.buildTime * 1000 + Math.floor(sb.buildTimeNsec / 1e6);
    this.buildTimeNsec = sb.buildTimeNsec;
    this.paths.set('/', image.reader.rootNid);
  }

  get rootNid(): number {
    return this.image.reader.rootNid;
  }

  // ------------------------------------------------------------------ names

  /** The nid at an absolute path (`/`, `/a/b`); ENOENT or ENOTDIR otherwise. */
  resolve(path: string): number {
    const cached = this.paths.get(path);
    if (cached !== undefined) return cached;
    if (path.length === 0 || path.charCodeAt(0) !== 0x2f) throw new FsError(Errno.ENOENT, `${path}: not an absolute path`);
    const slash = path.lastIndexOf('/');
    const parent = this.resolve(slash === 0 ? '/' : path.slice(0, slash));
    const nid = this.lookup(parent, path.slice(slash + 1));
    if (nid === undefined) throw new FsError(Errno.ENOENT, `${path}: no such file or directory`);
    this.paths.set(path, nid);
    if (this.firstPaths && !this.firstPaths.has(nid)) this.firstPaths.set(nid, path);
    return nid;
  }

  /** The child `name` of directory `dirNid`, by binary search over the byte-sorted entries. */
  lookup(dirNid: number, name: string): number | undefined {
    const reader = this.image.reader;
    if (reader.inode(dirNid).type !== 'directory') throw new FsError(Errno.ENOTDIR, `nid ${dirNid} is not a directory`);
    if (name === '') return dirNid;
    const key = Buffer.from(name, 'utf8');
    if (key.length > 255) throw new FsError(Errno.ENAMETOOLONG, `name of ${key.length} bytes`);
    const list = reader.direntList(dirNid);
    let lo = 0;
    let hi = list.count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = Buffer.compare(list.name(mid), key);
      if (c === 0) return list.nid(mid);
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return name.includes('\ufffd') ? this.lookupLossy(dirNid, name) : undefined;
  }

  /**
   * A name that is not valid UTF-8 reaches us with U+FFFD in place of its bad bytes (the FUSE
   * binding passes strings): it names the one entry that decodes to it, or none if several do.
   */
  private lookupLossy(dirNid: number, name: string): number | undefined {
    const list = this.image.reader.direntList(dirNid);
    let found: number | undefined;
    for (let i = 0; i < list.count; i++) {
      if (Buffer.from(list.name(i)).toString('utf8') !== name) continue;
      if (found !== undefined) return undefined;
      found = list.nid(i);
    }
    return found;
  }

  /**
   * Entries of a directory in on-disk (byte-sorted) order, `.` and `..` included, as the kernel
   * lists them; the children's paths are remembered so that the lookups that follow are cheap.
   * Names that are not valid UTF-8 come back with U+FFFD (the FUSE binding only passes strings);
   * their paths are not remembered: `lookup` decides whether such a name is unambiguous.
   */
  readdir(path: string): string[] {
    const nid = this.resolve(path);
    const reader = this.image.reader;
    if (reader.inode(nid).type !== 'directory') throw new FsError(Errno.ENOTDIR, `${path}: not a directory`);
    const list = reader.direntList(nid);
    const prefix = path === '/' ? '/' : path + '/';
    const names = new Array<string>(list.count);
    for (let i = 0; i < list.count; i++) {
      const name = Buffer.from(list.name(i)).toString('utf8');
      names[i] = name;
      if (list.isDots(i, 1) || list.isDots(i, 2) || name.includes('\ufffd')) continue;
      const child = list.nid(i);
      this.paths.set(prefix + name, child);
      if (this.firstPaths && !this.firstPaths.has(child)) this.firstPaths.set(child, prefix + name);
    }
    return names;
  }

  /** The path a nid was first reached by (with `trackPaths`; '' otherwise). */
  pathOf(nid: number): string {
    return this.firstPaths?.get(nid) ?? '';
  }

  // ------------------------------------------------------------------ attributes

  getattr(nid: number): FileStat {
    let st = this.stats.get(nid);
    if (st !== undefined) return st;
    const inode = this.image.reader.inode(nid);
    const raw = inode.raw;
    const mtimeMs = raw.extended ? inode.mtime * 1000 + Math.floor(inode.mtimeNsec / 1e6) : this.buildTimeMs;
    const size = inode.size;
    st = {
      ino: this.inoBase + nid,
      mode: inode.mode,
      nlink: inode.nlink,
      uid: inode.uid,
      gid: inode.gid,
      rdev: inode.type === 'char-device' || inode.type === 'block-device' ? raw.u >>> 0 : 0,
      size,
      blksize: BLOCK,
      blocks: Math.ceil(size / BLOCK) * (BLOCK / 512),
      atime: mtimeMs,
      mtime: mtimeMs,
      ctime: mtimeMs,
      dev: 0,
      mtimeNsec: raw.extended ? inode.mtimeNsec : this.buildTimeNsec,
    };
    this.stats.set(nid, st);
    return st;
  }

  inode(nid: number): RafsInode {
    return this.image.reader.inode(nid);
  }

  readlink(nid: number): string {
    const inode = this.image.reader.inode(nid);
    if (inode.type !== 'symlink') throw new FsError(Errno.EINVAL, `nid ${nid} is not a symlink`);
    return this.image.reader.readlink(nid);
  }

  listxattr(nid: number): string[] {
    if (!this.enableXattr) throw new FsError(Errno.ENOTSUP, 'extended attributes are disabled (enable_xattr)');
    return [...this.image.reader.xattrs(nid).keys()];
  }

  getxattr(nid: number, name: string): Uint8Array {
    if (!this.enableXattr) throw new FsError(Errno.ENOTSUP, 'extended attributes are disabled (enable_xattr)');
    const value = this.image.reader.xattrs(nid).get(name);
    if (value === undefined) throw new FsError(Errno.ENODATA, `nid ${nid} has no xattr ${name}`);
    return value;
  }

  statfs(): StatFs {
    const sb = this.image.reader.superblock;
    return { bsize: BLOCK, frsize: BLOCK, blocks: sb.blocks, bfree: 0, bavail: 0, files: sb.inodeCount, ffree: 0, favail: 0, fsid: 0, flag: ST_RDONLY, namemax: 255 };
  }

  /** Checks that a file can be opened read-only; writes are EROFS. */
  open(nid: number, flags: number): void {
    const inode = this.image.reader.inode(nid);
    if ((flags & O_ACCMODE) !== 0) throw new FsError(Errno.EROFS, 'read-only filesystem');
    if (inode.type === 'directory') return;
    if (inode.type === 'file') this.fileChunks(nid);
  }

  // ------------------------------------------------------------------ data

  private fileChunks(nid: number): FileChunks {
    let f = this.files.get(nid);
    if (f === undefined) {
      f = { size: this.image.reader.inode(nid).size, entries: this.image.reader.chunkEntryIndexes(nid) };
      this.files.set(nid, f);
    }
    return f;
  }

  /**
   * Reads up to `length` bytes at `position` of regular file `nid` into `target` (from offset 0)
   * and returns the count (0 at or after the end). Missing chunks are fetched and verified first.
   */
  async read(nid: number, target: Uint8Array, position: number, length: number): Promise<number> {
    const f = this.fileChunks(nid);
    if (position >= f.size || length <= 0) return 0;
    const end = Math.min(f.size, position + length);
    const cs = this.chunkSize;
    const first = Math.floor(position / cs);
    const last = Math.floor((end - 1) / cs);
    const image = this.image;
    const metrics = image.cacheMetrics;
    metrics.total++;
    let missing: Map<number, number[]> | undefined;
    let readyCount = 0;
    for (let i = first; i <= last; i++) {
      const k = f.entries[i]!;
      const blob = image.blobs[image.entryBlob[k]!]!;
      const ci = image.entryCi[k]!;
      blob.touch(ci);
      if (blob.file.isReady(ci)) {
        readyCount++;
        continue;
      }
      missing ??= new Map();
      const list = missing.get(image.entryBlob[k]!);
      if (list) list.push(ci);
      else missing.set(image.entryBlob[k]!, [ci]);
    }
    if (missing === undefined) metrics.wholeHits++;
    else {
      if (readyCount > 0) metrics.partialHits++;
      const waits: Promise<void>[] = [];
      for (const [b, cis] of missing) waits.push(image.blobs[b]!.ensure(cis));
      await (waits.length === 1 ? waits[0] : Promise.all(waits));
    }
    if (first === last) {
      const k = f.entries[first]!;
      const blob = image.blobs[image.entryBlob[k]!]!;
      await blob.file.readInto(target, 0, end - position, blob.table.uncompressedOffset[image.entryCi[k]!]! + (position - first * cs));
      return end - position;
    }
    const reads: Promise<void>[] = [];
    for (let i = first; i <= last; i++) {
      const k = f.entries[i]!;
      const blob = image.blobs[image.entryBlob[k]!]!;
      const chunkStart = i * cs;
      const from = Math.max(position, chunkStart);
      const to = Math.min(end, chunkStart + cs);
      reads.push(blob.file.readInto(target, from - position, to - from, blob.table.uncompressedOffset[image.entryCi[k]!]! + (from - chunkStart)));
    }
    await Promise.all(reads);
    return end - position;
  }

  /** The chunks of a file grouped by blob (for prefetch). */
  chunksOf(nid: number): Map<number, number[]> {
    const f = this.fileChunks(nid);
    const out = new Map<number, number[]>();
    for (const k of f.entries) {
      const b = this.image.entryBlob[k]!;
      const list = out.get(b);
      if (list) list.push(this.image.entryCi[k]!);
      else out.set(b, [this.image.entryCi[k]!]);
    }
    return out;
  }
}
