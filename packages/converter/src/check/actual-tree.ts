import { createHash } from 'node:crypto';
import { isNydusError, throwIfAborted } from '@nydus-ts/core';
import { decodeRdev, type BootstrapReader, type RafsFileReader } from '@nydus-ts/format';
import { Limiter } from '@nydus-ts/registry/internal';
import { assignLinkGroups, xattrMap, type CheckAttrs, type CheckTree } from './check-tree.js';

const infrastructure = new Set(['CANCELLED', 'UNAVAILABLE', 'UNAUTHENTICATED', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'INTERNAL']);

export interface ActualTreeOptions {
  /** Files hashed at once (each reads its chunks in order). Default 8. */
  concurrency?: number;
  /** Files whose chunks lie in one of these blobs are not read (marked unreadable once per blob). */
  skipBlobs?: ReadonlySet<string>;
  signal?: AbortSignal;
}

export interface ActualTreeResult {
  tree: CheckTree;
  /** Regular-file inodes whose content was read and hashed. */
  filesRead: number;
  bytesRead: number;
  /** Files not read because their data is in a skipped (missing) blob, by blob id. */
  skippedFiles: Map<string, number>;
}

/**
 * The tree of a Nydus bootstrap: every node from `walk()` (which validates each directory and
 * inode it passes) with its xattrs and link target, and every regular file's content sha256
 * streamed through `files` (chunk by chunk, each chunk digest-verified by the reader). A file
 * that cannot be read (missing blob, corrupt chunk) is recorded as unreadable, not thrown.
 */
export async function buildActualTree(reader: BootstrapReader, files: RafsFileReader, options: ActualTreeOptions = {}): Promise<ActualTreeResult> {
  const tree: CheckTree = new Map();
  const byNid = new Map<number, CheckAttrs>();
  const nidOf = new Map<string, number>();
  for (const { path, nid, inode } of reader.walk()) {
    let attrs = byNid.get(nid);
    if (attrs === undefined) {
      attrs = {
        type: inode.type,
        mode: inode.mode & 0o7777,
        uid: inode.uid,
        gid: inode.gid,
        size: inode.type === 'file' ? inode.size : 0,
        xattrs: xattrMap(reader.xattrs(nid)),
      };
      if (inode.type === 'symlink') attrs.linkTarget = reader.readlink(nid);
      if (inode.type === 'char-device' || inode.type === 'block-device') attrs.rdev = inode.rdev ?? decodeRdev(inode.raw.u);
      byNid.set(nid, attrs);
    }
    tree.set(path, { path, attrs });
    nidOf.set(path, nid);
  }
  assignLinkGroups(tree, (e) => nidOf.get(e.path));

  const limiter = new Limiter(options.concurrency ?? 8);
  const skipped = new Map<string, number>();
  let filesRead = 0;
  let bytesRead = 0;
  const jobs: Promise<void>[] = [];
  // In blob order (by each file's first chunk), so that reads of neighbouring files hit the
  // backend's read-ahead windows instead of each making its own request.
  const fileNids = [...byNid].filter(([, a]) => a.type === 'file').map(([nid]) => {
    const first = reader.chunks(nid)[0];
    return { nid, blob: first?.blobIndex ?? -1, offset: first?.compressedOffset ?? 0 };
  });
  fileNids.sort((p, q) => p.blob - q.blob || p.offset - q.offset);
  for (const { nid } of fileNids) {
    const attrs = byNid.get(nid)!;
    if (options.skipBlobs && options.skipBlobs.size > 0) {
      const missing = reader.chunks(nid).find((c) => options.skipBlobs!.has(c.blobId));
      if (missing) {
        attrs.unreadable = `data in missing blob sha256:${missing.blobId}`;
        skipped.set(missing.blobId, (skipped.get(missing.blobId) ?? 0) + 1);
        continue;
      }
    }
    jobs.push(
      limiter.run(async () => {
        throwIfAborted(options.signal);
        const hash = createHash('sha256');
        let n = 0;
        try {
          for await (const piece of files.stream(nid, options.signal)) {
            hash.update(piece);
            n += piece.length;
          }
          attrs.sha256 = hash.digest('hex');
          filesRead++;
          bytesRead += n;
        } catch (err) {
          // Bad data is a finding; a failing network, credentials or a bug is not.
          if (!isNydusError(err) || infrastructure.has(err.code)) throw err;
          attrs.unreadable = err instanceof Error ? err.message : String(err);
        }
      }),
    );
  }
  const settled = await Promise.allSettled(jobs);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return { tree, filesRead, bytesRead, skippedFiles: skipped };
}
