import { NotFoundError, fileSystemError } from '@nydus-ts/core';
import { BootstrapReader, decodeRdev, type RafsInode } from '@nydus-ts/format';
import { readFile } from 'node:fs/promises';

export async function openBootstrapFile(file: string): Promise<BootstrapReader> {
  const bytes = await readFile(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw fileSystemError(err, file, 'bootstrap');
    throw new NotFoundError(`bootstrap ${file}: no such file`, { cause: err });
  });
  return BootstrapReader.open(bytes);
}

export interface InspectedNode {
  path: string;
  nid: number;
  type: RafsInode['type'];
  mode: string;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  nlink: number;
  linkTarget?: string;
  rdev?: string;
  xattrs?: Record<string, string>;
  chunks?: number;
}

export interface ImageInspection {
  superblock: {
    blockSize: number;
    rootNid: number;
    inodeCount: number;
    blocks: number;
    metaBlkaddr: number;
    extraDevices: number;
    flags: string;
    chunkSize: number;
    compressor: string;
    digester: string;
    chunkTableEntries: number;
    prefetchNids: number[];
  };
  blobs: Array<{
    index: number;
    id: string;
    chunkCount: number;
    compressedSize: number;
    uncompressedSize: number;
    compressor: string;
    digester: string;
    features: string;
    ciOffset: number;
    ciCompressedSize: number;
    ciUncompressedSize: number;
    tocDigest: string;
    tocSize: number;
    metaDigest: string;
    metaSize: number;
    mappedBlkaddr: number;
  }>;
  stats: { files: number; directories: number; symlinks: number; others: number; hardlinkNames: number; fileBytes: number; chunkRefs: number };
  tree?: InspectedNode[];
}

const hex = (n: number): string => '0x' + n.toString(16);

/** `image inspect`: the superblock, blob table, stats and (optionally) the tree of a bootstrap. */
export async function inspectImage(bootstrap: string, options: { tree?: boolean } = {}): Promise<ImageInspection> {
  const reader = await openBootstrapFile(bootstrap);
  const sb = reader.superblock;
  const stats = { files: 0, directories: 0, symlinks: 0, others: 0, hardlinkNames: 0, fileBytes: 0, chunkRefs: 0 };
  const tree: InspectedNode[] = [];
  const seen = new Set<number>();
  for (const { path, nid, inode } of reader.walk()) {
    const again = seen.has(nid);
    seen.add(nid);
    if (inode.type === 'file') {
      if (again) stats.hardlinkNames++;
      else {
        stats.files++;
        stats.fileBytes += inode.size;
      }
    } else if (inode.type === 'directory') stats.directories++;
    else if (inode.type === 'symlink') stats.symlinks++;
    else stats.others++;
    const chunks = inode.type === 'file' && !again ? reader.chunks(nid).length : undefined;
    if (chunks) stats.chunkRefs += chunks;
    if (!options.tree) continue;
    const xattrs = reader.xattrs(nid);
    tree.push({
      path,
      nid,
      type: inode.type,
      mode: '0' + (inode.mode & 0o7777).toString(8),
      uid: inode.uid,
      gid: inode.gid,
      size: inode.size,
      mtime: inode.mtime,
      nlink: inode.nlink,
      ...(inode.type === 'symlink' && { linkTarget: reader.readlink(nid) }),
      ...((inode.type === 'char-device' || inode.type === 'block-device') && {
        rdev: `${decodeRdev(inode.raw.u).major}:${decodeRdev(inode.raw.u).minor}`,
      }),
      ...(xattrs.size > 0 && { xattrs: Object.fromEntries([...xattrs].map(([k, v]) => [k, Buffer.from(v).toString('hex')])) }),
      ...(chunks !== undefined && { chunks }),
    });
  }
  return {
    superblock: {
      blockSize: 1 << sb.blkszbits,
      rootNid: sb.rootNid,
      inodeCount: sb.inodeCount,
      blocks: sb.blocks,
      metaBlkaddr: sb.metaBlkaddr,
      extraDevices: sb.extraDevices,
      flags: hex(reader.extSuperblock.flags),
      chunkSize: reader.chunkSize,
      compressor: reader.compressor,
      digester: reader.digester,
      chunkTableEntries: reader.chunkTable.length,
      prefetchNids: [...reader.prefetchNids],
    },
    blobs: reader.blobs.map(({ index, blobId, entry: e, slot, compressor, digester, features }) => ({
      index,
      id: blobId,
      chunkCount: e.chunkCount,
      compressedSize: e.compressedSize,
      uncompressedSize: e.uncompressedSize,
      compressor,
      digester,
      features: hex(features),
      ciOffset: e.ciOffset,
      ciCompressedSize: e.ciCompressedSize,
      ciUncompressedSize: e.ciUncompressedSize,
      tocDigest: e.tocDigest,
      tocSize: e.tocSize,
      metaDigest: e.metaDigest,
      metaSize: e.metaSize,
      mappedBlkaddr: slot.mappedBlkaddr,
    })),
    stats,
    ...(options.tree && { tree }),
  };
}
