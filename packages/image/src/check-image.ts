import { DigestMismatchError, FormatError, NotFoundError } from '@nydus-ts/core';
import { RafsFileReader, attachRefBlobMetas, isSeparateBlob, verifyBlob, type ByteSource, type ChunkRef } from '@nydus-ts/format';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { openBootstrapFile } from './inspect-image.js';
import { LocalBlobBackend } from '@nydus-ts/backend';

export interface CheckImageOptions {
  bootstrap: string;
  /** With blobs: every blob must exist and be intact as a whole (see `checkImage`). */
  blobDir?: string;
  signal?: AbortSignal;
}

export interface CheckedBlob {
  id: string;
  present?: boolean;
  size?: number;
  /** Hex sha256 of the blob file. */
  sha256?: string;
  /** The id is the file's sha256 (blobs named by other tools may differ; not a fault by itself). */
  idIsSha256?: boolean;
  /** ToC sections whose sha256 matched. */
  tocSections?: string[];
  /** Chunks of the blob's CI array checked against its digest array (absent without one). */
  chunksVerified?: number;
}

export interface CheckImageResult {
  bootstrap: string;
  fsVersion: 6;
  compressor: string;
  digester: string;
  inodes: number;
  blobs: CheckedBlob[];
  /** Chunks the bootstrap references, each verified once. */
  chunksVerified: number;
  bytesVerified: number;
}

/**
 * `image check`: validates the bootstrap structure by walking and decoding every node, and,
 * given a blob dir, verifies every blob whole (`verifyBlob`: the file's sha256 against its
 * id, tail headers, ToC and every ToC section's digest, the CI array, every chunk against the
 * digest array) and every chunk the bootstrap references: against the blob's verified digest
 * array and CI entry, or, for blobs without them, read and checked against its digest.
 */
export async function checkImage(options: CheckImageOptions): Promise<CheckImageResult> {
  const reader = await openBootstrapFile(options.bootstrap);
  const files: number[] = [];
  let inodes = 0;
  for (const { nid, inode } of reader.walk()) {
    inodes++;
    if (inode.type === 'directory') reader.readdir(nid);
    else if (inode.type === 'symlink') reader.readlink(nid);
    reader.xattrs(nid);
    if (inode.type === 'file') {
      reader.chunks(nid);
      files.push(nid);
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
    // Chunk digests of blobs whose every chunk was checked against them, by blob index.
    const verifiedDigests = new Map<number, Uint8Array>();
    for (const [index, info] of reader.blobs.entries()) {
      const blob = result.blobs[index]!;
      if (isSeparateBlob(info)) {
        // A reference blob is the original layer (gzip or tar), not a Nydus blob: its bytes must
        // have its id as sha256; its CI, ToC and digests are in the meta blob, verified above.
        const sha256 = await sha256File(backend.pathOf(info.blobId));
        if (sha256 !== info.blobId) throw new DigestMismatchError(`original layer ${info.blobId}`, info.blobId, sha256);
        Object.assign(blob, { sha256, idIsSha256: true });
        continue;
      }
      const source: ByteSource = { size: blob.size!, read: (offset, length) => backend.readRange(info.blobId, offset, length) };
      const v = await verifyBlob(source, info, options.signal ? { signal: options.signal } : {});
      Object.assign(blob, { sha256: v.sha256, idIsSha256: v.idIsSha256, tocSections: v.tocSections }, v.chunksVerified !== undefined && { chunksVerified: v.chunksVerified });
      if (v.meta !== undefined && reader.blobMeta(index) === undefined) reader.attachBlobMeta(index, v.meta);
      if (v.chunksVerified !== undefined && v.chunkDigests !== undefined) verifiedDigests.set(index, v.chunkDigests);
    }
    // Every chunk the bootstrap references, once: resolved again now that the CI arrays are
    // attached (the reader checks each chunk-table entry against its CI entry).
    const refs = new Map<string, ChunkRef>();
    for (const nid of files) for (const ref of reader.chunks(nid)) refs.set(`${ref.blobIndex}:${ref.ciIndex}:${ref.uncompressedOffset}`, ref);
    const fileReader = new RafsFileReader(reader, backend);
    for (const ref of refs.values()) {
      options.signal?.throwIfAborted();
      const digests = verifiedDigests.get(ref.blobIndex);
      if (digests !== undefined) checkAgainstVerifiedBlob(ref, digests);
      else await fileReader.readChunk(ref);
      result.chunksVerified++;
      result.bytesVerified += ref.uncompressedSize;
    }
  } finally {
    await backend.close();
  }
  return result;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(piece as Buffer);
  return hash.digest('hex');
}

/** A chunk-table entry of a blob verified whole: its digest and extent must be the blob's own. */
function checkAgainstVerifiedBlob(ref: ChunkRef, digests: Uint8Array): void {
  const subject = `chunk ${ref.ciIndex} of blob ${ref.blobId}`;
  const recorded = Buffer.from(digests.buffer, digests.byteOffset + 32 * ref.ciIndex, 32).toString('hex');
  if (ref.digest !== recorded) throw new DigestMismatchError(`${subject} (bootstrap chunk table against the blob's digest array)`, recorded, ref.digest);
  if (ref.ci === undefined || ref.ci.compressedSize !== ref.compressedSize || ref.ci.compressed !== ref.compressed) {
    throw new FormatError(`chunk_table ${subject}`, `compressed size ${ref.compressedSize} or flags disagree with the blob's CI entry`, { value: ref.compressedSize });
  }
}
