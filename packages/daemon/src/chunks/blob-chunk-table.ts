import { FormatError } from '@nydus-ts/core';
import { EROFS_BLOCK_SIZE, type BlobInfo, type BootstrapReader } from '@nydus-ts/format';

/**
 * What one image knows about the chunks of one of its blobs, indexed by CI index (the chunk's
 * index in its blob): offsets, sizes, flags, CRC and digest, in typed arrays so that the read
 * path touches no per-chunk objects. Built once per mount from the bootstrap's chunk table.
 */
export class BlobChunkTable {
  readonly blob: BlobInfo;
  /** CI indexes 0..count-1 may occur (the blob's chunk count). */
  readonly count: number;
  /** Size of the blob's uncompressed (4 KiB-aligned) view: the cache data file's size. */
  readonly viewSize: number;
  /** 1 where this image's chunk table describes the CI index. */
  readonly known: Uint8Array;
  readonly compressedOffset: Float64Array;
  readonly compressedSize: Uint32Array;
  readonly uncompressedOffset: Float64Array;
  readonly uncompressedSize: Uint32Array;
  /** Chunk-table flags (ChunkFlags). */
  readonly flags: Uint32Array;
  readonly crc32: Uint32Array;
  /** The 32-byte digest of each chunk's uncompressed bytes (bootstrap digester), CI index × 32. */
  readonly digests: Uint8Array;
  /** Known CI indexes sorted by compressed offset (the order chunks lie in the blob). */
  byCompressedOffset: Uint32Array;
  /** Position of each CI index in `byCompressedOffset` (-1 when unknown). */
  readonly compressedRank: Int32Array;
  /** Known CI indexes sorted by uncompressed offset (for the blob's uncompressed view). */
  byUncompressedOffset: Uint32Array;

  private constructor(blob: BlobInfo, count: number, viewSize: number) {
    this.blob = blob;
    this.count = count;
    this.viewSize = viewSize;
    this.known = new Uint8Array(count);
    this.compressedOffset = new Float64Array(count);
    this.compressedSize = new Uint32Array(count);
    this.uncompressedOffset = new Float64Array(count);
    this.uncompressedSize = new Uint32Array(count);
    this.flags = new Uint32Array(count);
    this.crc32 = new Uint32Array(count);
    this.digests = new Uint8Array(count * 32);
    this.byCompressedOffset = new Uint32Array(0);
    this.compressedRank = new Int32Array(count).fill(-1);
    this.byUncompressedOffset = new Uint32Array(0);
  }

  /**
   * One table per blob of the bootstrap, and for each chunk-table entry k its CI index
   * (`entryCi[k]`); `entryBlob[k]` is its blob index.
   */
  static fromBootstrap(reader: BootstrapReader): { tables: BlobChunkTable[]; entryCi: Uint32Array; entryBlob: Uint16Array } {
    // Straight from the chunk table's bytes: no object or string per entry (a 40k-chunk image
    // mounts ~0.2 s sooner, and the daemon keeps no per-chunk strings).
    const entries = reader.chunkEntries;
    const n = entries.count;
    const maxCi = new Array<number>(reader.blobs.length).fill(-1);
    const maxEnd = new Array<number>(reader.blobs.length).fill(0);
    for (let k = 0; k < n; k++) {
      const b = entries.blobIndex(k);
      maxCi[b] = Math.max(maxCi[b]!, entries.ciIndex(k));
      maxEnd[b] = Math.max(maxEnd[b]!, entries.uncompressedOffset(k) + entries.uncompressedSize(k));
    }
    const tables = reader.blobs.map((blob, b) => {
      const count = Math.max(blob.entry.chunkCount, maxCi[b]! + 1);
      const declared = blob.entry.uncompressedSize;
      if (declared !== 0 && maxEnd[b]! > declared) {
        throw new FormatError(`blob_table[${b}].uncompressed_size`, `${declared} bytes, but chunks of blob ${blob.blobId} reach ${maxEnd[b]}`, { value: declared });
      }
      const size = Math.ceil(Math.max(declared, maxEnd[b]!) / EROFS_BLOCK_SIZE) * EROFS_BLOCK_SIZE;
      return new BlobChunkTable(blob, count, size);
    });
    const entryCi = new Uint32Array(n);
    const entryBlob = new Uint16Array(n);
    for (let k = 0; k < n; k++) {
      const b = entries.blobIndex(k);
      const t = tables[b]!;
      const ci = entries.ciIndex(k);
      const uncompressedOffset = entries.uncompressedOffset(k);
      entryCi[k] = ci;
      entryBlob[k] = b;
      if (uncompressedOffset % EROFS_BLOCK_SIZE !== 0) {
        throw new FormatError(`chunk_table[${k}].uncompressed_offset`, `${uncompressedOffset} is not 4096-byte aligned`, { value: uncompressedOffset });
      }
      if (t.known[ci] === 1) {
        if (t.uncompressedOffset[ci] !== uncompressedOffset || t.compressedOffset[ci] !== entries.compressedOffset(k) || !entries.digestEquals(k, t.digests, ci * 32)) {
          throw new FormatError(`chunk_table[${k}]`, `describes CI index ${ci} of blob ${t.blob.blobId} differently from an earlier entry`, { value: ci });
        }
        continue;
      }
      t.known[ci] = 1;
      t.compressedOffset[ci] = entries.compressedOffset(k);
      t.compressedSize[ci] = entries.compressedSize(k);
      t.uncompressedOffset[ci] = uncompressedOffset;
      t.uncompressedSize[ci] = entries.uncompressedSize(k);
      t.flags[ci] = entries.flags(k);
      t.crc32[ci] = entries.crc32(k);
      entries.copyDigest(k, t.digests, ci * 32);
    }
    for (const t of tables) t.sortIndexes();
    return { tables, entryCi, entryBlob };
  }

  /** Hex digest of chunk `ci` (as `digestChunk` gives it). */
  digestHex(ci: number): string {
    return Buffer.from(this.digests.buffer, this.digests.byteOffset + ci * 32, 32).toString('hex');
  }

  private sortIndexes(): void {
    const known: number[] = [];
    for (let ci = 0; ci < this.count; ci++) if (this.known[ci] === 1) known.push(ci);
    // Builders write chunks in CI order, so both orders usually hold already: check before sorting.
    const sortedBy = (offset: Float64Array): boolean => {
      for (let i = 1; i < known.length; i++) if (offset[known[i]!]! < offset[known[i - 1]!]!) return false;
      return true;
    };
    const byC = Uint32Array.from(known);
    if (!sortedBy(this.compressedOffset)) byC.sort((a, b) => this.compressedOffset[a]! - this.compressedOffset[b]! || a - b);
    const byU = Uint32Array.from(known);
    if (!sortedBy(this.uncompressedOffset)) byU.sort((a, b) => this.uncompressedOffset[a]! - this.uncompressedOffset[b]! || a - b);
    this.byCompressedOffset = byC;
    this.byUncompressedOffset = byU;
    byC.forEach((ci, rank) => (this.compressedRank[ci] = rank));
  }

  /**
   * The known chunks whose uncompressed ranges overlap `[offset, offset + length)` of the
   * blob's uncompressed view, in offset order.
   */
  chunksInRange(offset: number, length: number): number[] {
    const order = this.byUncompressedOffset;
    const end = offset + length;
    // first chunk whose end is after `offset`
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const ci = order[mid]!;
      if (this.uncompressedOffset[ci]! + this.uncompressedSize[ci]! <= offset) lo = mid + 1;
      else hi = mid;
    }
    const out: number[] = [];
    for (let i = lo; i < order.length; i++) {
      const ci = order[i]!;
      if (this.uncompressedOffset[ci]! >= end) break;
      out.push(ci);
    }
    return out;
  }
}
