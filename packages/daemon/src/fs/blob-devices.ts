/**
 * The erofs-mode view of an image: a directory with one regular file per blob, named by blob id,
 * holding the blob's uncompressed 4 KiB-block view (chunk at its uncompressed offset, zeros in
 * between). The kernel's EROFS mounts the bootstrap with `device=` pointing at these files;
 * each read fetches, decodes and verifies the chunks under it, then copies from the cache file,
 * whose layout is exactly this view.
 */
import { Errno, FsError } from './fs-error.js';
import type { FileStat, StatFs } from './rafs-filesystem.js';
import type { RafsImage } from './rafs-image.js';
import type { VfsFilesystem } from '../fuse/vfs.js';

const ROOT = 1;
const BLOCK = 4096;

export class BlobDevices implements VfsFilesystem {
  readonly image: RafsImage;
  private readonly names: Map<string, number>;
  private readonly mtimeMs: number;

  constructor(image: RafsImage) {
    this.image = image;
    this.names = new Map(image.blobs.map((b, i) => [b.blobId, i + 2]));
    const sb = image.reader.superblock;
    this.mtimeMs = sb.buildTime * 1000;
  }

  /** The device file of blob `index` relative to the mount: `/<blob id>`. */
  pathOfBlob(index: number): string {
    return `/${this.image.blobs[index]!.blobId}`;
  }

  resolve(path: string): number {
    if (path === '/') return ROOT;
    const nid = this.names.get(path.slice(1));
    if (nid === undefined) throw new FsError(Errno.ENOENT, `${path}: no such blob device`);
    return nid;
  }

  getattr(nid: number): FileStat {
    const t = this.mtimeMs;
    if (nid === ROOT) return { ino: ROOT, mode: 0o040555, nlink: 2, uid: 0, gid: 0, rdev: 0, size: BLOCK, blksize: BLOCK, blocks: 8, atime: t, mtime: t, ctime: t, dev: 0, mtimeNsec: 0 };
    const size = this.blob(nid).table.viewSize;
    return { ino: nid, mode: 0o100444, nlink: 1, uid: 0, gid: 0, rdev: 0, size, blksize: BLOCK, blocks: Math.ceil(size / 512), atime: t, mtime: t, ctime: t, dev: 0, mtimeNsec: 0 };
  }

  readdir(path: string): string[] {
    if (path !== '/') throw new FsError(Errno.ENOTDIR, `${path}: not a directory`);
    return ['.', '..', ...this.names.keys()];
  }

  readlink(): string {
    throw new FsError(Errno.EINVAL, 'no symlinks here');
  }

  listxattr(): string[] {
    return [];
  }

  getxattr(nid: number, name: string): Uint8Array {
    throw new FsError(Errno.ENODATA, `nid ${nid} has no xattr ${name}`);
  }

  statfs(): StatFs {
    const blocks = this.image.blobs.reduce((n, b) => n + b.table.viewSize / BLOCK, 0);
    return { bsize: BLOCK, frsize: BLOCK, blocks, bfree: 0, bavail: 0, files: this.names.size + 1, ffree: 0, favail: 0, fsid: 0, flag: 1, namemax: 255 };
  }

  open(nid: number, flags: number): void {
    if ((flags & 3) !== 0) throw new FsError(Errno.EROFS, 'read-only filesystem');
    if (nid !== ROOT) this.blob(nid);
  }

  pathOf(nid: number): string {
    return nid === ROOT ? '/' : `/${this.blob(nid).blobId}`;
  }

  private blob(nid: number): RafsImage['blobs'][number] {
    const b = this.image.blobs[nid - 2];
    if (!b) throw new FsError(Errno.ENOENT, `no blob device ${nid}`);
    return b;
  }

  async read(nid: number, target: Uint8Array, position: number, length: number): Promise<number> {
    if (nid === ROOT) throw new FsError(Errno.EISDIR, 'is a directory');
    const blob = this.blob(nid);
    const size = blob.table.viewSize;
    if (position >= size || length <= 0) return 0;
    const n = Math.min(length, size - position);
    const metrics = this.image.cacheMetrics;
    metrics.total++;
    const cis = blob.table.chunksInRange(position, n);
    for (const ci of cis) blob.touch(ci);
    const missing = cis.filter((ci) => !blob.file.isReady(ci));
    if (missing.length === 0) metrics.wholeHits++;
    else {
      if (missing.length < cis.length) metrics.partialHits++;
      await blob.ensure(missing);
    }
    await blob.file.readInto(target, 0, n, position);
    return n;
  }
}
