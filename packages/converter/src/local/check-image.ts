import { NotFoundError } from '@nydus-ts/core';
import { RafsFileReader, attachRefBlobMetas, type ChunkRef } from '@nydus-ts/format';
import { stat } from 'node:fs/promises';
import { openBootstrapFile } from './inspect-image.js';
import { LocalBlobBackend } from '@nydus-ts/backend';

export interface CheckImageOptions {
  bootstrap: string;
  /** With blobs: every blob must exist and every chunk must decompress to its digest. */
  blobDir?: string;
  signal?: AbortSignal;
}

export interface CheckImageResult {
  bootstrap: string;
  fsVersion: 6;
  compressor: string;
  digester: string;
  inodes: number;
  blobs: Array<{ id: string; present?: boolean; size?: number }>;
  chunksVerified: number;
  bytesVerified: number;
}

/**
 * `image check`: validates the bootstrap structure by walking and decoding every node, and,
 * given a blob dir, reads and verifies every chunk the bootstrap references (each once).
 */
export async function checkImage(options: CheckImageOptions): Promise<CheckImageResult> {
  const reader = await openBootstrapFile(options.bootstrap);
  const refs = new Map<string, ChunkRef>();
  let inodes = 0;
  for (const { nid, inode } of reader.walk()) {
    inodes++;
    if (inode.type === 'directory') reader.readdir(nid);
    else if (inode.type === 'symlink') reader.readlink(nid);
    reader.xattrs(nid);
    if (inode.type === 'file') {
      for (const ref of reader.chunks(nid)) refs.set(`${ref.blobIndex}:${ref.ciIndex}:${ref.uncompressedOffset}`, ref);
    }
  }
  const result: CheckImageResult = {
    bootstrap: options.bootstrap,
    fsVersion: 6,
    compressor: reader.compressor,
    digester: reader.digester,
    inodes,
    blobs: reader.blobs.map((b) => ({ id: b.blobId })),
    chunksVerified: 0,
    bytesVerified: 0,
  };
  if (!options.blobDir) return result;

  const backend = new LocalBlobBackend(options.blobDir);
  try {
    for (const blob of result.blobs) {
      const st = await stat(backend.pathOf(blob.id)).catch(() => undefined);
      blob.present = st !== undefined;
      if (st) blob.size = st.size;
    }
    const missing = result.blobs.filter((b) => !b.present).map((b) => b.id);
    if (missing.length > 0) throw new NotFoundError(`blob(s) missing from ${options.blobDir}: ${missing.join(', ')}`);
    // Reference (targz-ref / tar-ref) blobs are read through their meta blobs, also in the blob dir.
    await attachRefBlobMetas(reader, backend, options.signal);
    const files = new RafsFileReader(reader, backend);
    for (const ref of refs.values()) {
      options.signal?.throwIfAborted();
      await files.readChunk(ref);
      result.chunksVerified++;
      result.bytesVerified += ref.uncompressedSize;
    }
  } finally {
    await backend.close();
  }
  return result;
}
