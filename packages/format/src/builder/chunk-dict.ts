import { FormatError, InvalidArgumentError } from '@nydus-ts/core';
import {
  BLOB_ENTRY_SIZE,
  CHUNK_INFO_SIZE,
  EROFS_BLOCK_SIZE,
  RafsSuperFlags,
  decodeBlobEntry,
  decodeChunkInfo,
  decodeErofsSuperblock,
  decodeRafsExtSuperblock,
  digestNameOf,
  validateBlobEntry,
  validateErofsSuperblock,
  validateRafsExtSuperblock,
  type BlobEntry,
  type ChunkInfo,
  type DigestName,
} from '../layout/index.js';
import type { TreeBlob, TreeChunk } from './tree.js';

/** What a chunk dict needs from a parsed bootstrap (a `BootstrapReader` has this shape). */
export interface ChunkDictSource {
  readonly blobs: ReadonlyArray<{ readonly entry: BlobEntry }>;
  readonly chunkTable: readonly ChunkInfo[];
}

/** Dedup key of a chunk: digest and uncompressed size (spec §2). */
export function chunkKey(digestHex: string, uncompressedSize: number): string {
  return `${digestHex}:${uncompressedSize}`;
}

/**
 * Chunks of an existing image that new layers may reference instead of storing the data
 * again (a chunk dict bootstrap). A build that hits a dict chunk appends the dict's blob
 * to its blob table.
 */
export class ChunkDict {
  /** Chunk size shared by every dict blob (a build must use the same). */
  readonly chunkSize: number;
  /** Digest algorithm of the dict's chunk digests (a build must use the same). */
  readonly digester: DigestName;
  /** The dict's blobs, in its blob-table order. */
  readonly blobs: readonly TreeBlob[];
  private readonly byKey = new Map<string, TreeChunk>();
  private readonly blobIds: ReadonlySet<string>;

  private constructor(blobs: readonly BlobEntry[], chunkTable: readonly ChunkInfo[]) {
    if (blobs.length === 0) throw new InvalidArgumentError('chunkDict: the dict bootstrap references no blobs');
    const first = blobs[0]!;
    const digester = digestNameOf(first.digestAlgo);
    if (digester === undefined) throw new InvalidArgumentError(`chunkDict: unknown digest algorithm ${first.digestAlgo}`);
    for (const b of blobs) {
      if (b.chunkSize !== first.chunkSize) throw new InvalidArgumentError(`chunkDict: blobs disagree on chunk size (${first.chunkSize} vs ${b.chunkSize})`);
      if (b.digestAlgo !== first.digestAlgo) throw new InvalidArgumentError('chunkDict: blobs disagree on the digest algorithm');
    }
    this.chunkSize = first.chunkSize;
    this.digester = digester;
    const treeBlobs = blobs.map(({ blobIndex: _index, ...rest }) => ({ ...rest, cipherIv: rest.cipherIv.slice() }));
    this.blobs = treeBlobs;
    this.blobIds = new Set(blobs.map((b) => b.blobId));
    for (const c of chunkTable) {
      const blob = treeBlobs[c.blobIndex];
      if (blob === undefined) throw new FormatError('chunk_table.blob_index', `chunk ${c.digest} references blob ${c.blobIndex} of ${blobs.length}`, { value: c.blobIndex });
      const key = chunkKey(c.digest, c.uncompressedSize);
      if (this.byKey.has(key)) continue;
      const { blobIndex: _b, ...info } = c;
      this.byKey.set(key, { ...info, blob });
    }
  }

  /**
   * A dict over an existing bootstrap: a parsed one (e.g. a `BootstrapReader`) or its bytes
   * (then only the superblocks, blob table and chunk table are decoded and validated).
   */
  static fromBootstrap(source: Uint8Array | ChunkDictSource): ChunkDict {
    if (!(source instanceof Uint8Array)) return new ChunkDict(source.blobs.map((b) => b.entry), source.chunkTable);
    const bootstrap = source;
    const sb = decodeErofsSuperblock(bootstrap);
    validateErofsSuperblock(sb);
    const ext = decodeRafsExtSuperblock(bootstrap);
    validateRafsExtSuperblock(ext, bootstrap.length, EROFS_BLOCK_SIZE);
    if ((ext.flags & RafsSuperFlags.TARTFS_MODE) !== 0) throw new InvalidArgumentError('chunkDict: a TARFS bootstrap cannot serve as a chunk dict');
    const blobs: BlobEntry[] = [];
    for (let i = 0; i < ext.blobTableSize / BLOB_ENTRY_SIZE; i++) {
      const off = ext.blobTableOffset + i * BLOB_ENTRY_SIZE;
      const e = decodeBlobEntry(bootstrap.subarray(off, off + BLOB_ENTRY_SIZE), off, i);
      validateBlobEntry(e, i, ext.chunkSize, off);
      blobs.push(e);
    }
    const chunks: ChunkInfo[] = [];
    for (let i = 0; i < ext.chunkTableSize / CHUNK_INFO_SIZE; i++) {
      const off = ext.chunkTableOffset + i * CHUNK_INFO_SIZE;
      chunks.push(decodeChunkInfo(bootstrap.subarray(off, off + CHUNK_INFO_SIZE), off, i));
    }
    return new ChunkDict(blobs, chunks);
  }

  /** Number of distinct chunks. */
  get size(): number {
    return this.byKey.size;
  }

  /** The dict chunk with this digest and uncompressed size, if any. */
  lookup(digestHex: string, uncompressedSize: number): TreeChunk | undefined {
    return this.byKey.get(chunkKey(digestHex, uncompressedSize));
  }

  /** True if `blobId` is one of the dict's blobs. */
  hasBlob(blobId: string): boolean {
    return this.blobIds.has(blobId);
  }
}
