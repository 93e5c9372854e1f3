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
  /** Hex digest of each chunk's uncompressed bytes (bootstrap digester). */
  readonly digest: string[];
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
    this.digest = new Array<string>(count).fill('');
    this.byCompressedOffset = new Uint32Array(0);
    this.compressedRank = new Int32Array(count).fill(-1);
    this.byUncompressedOffset = new Uint32Array(0);
  }

  /**
   * One table per blob of the bootstrap, and for each chunk-table entry k its CI index
   * (`entryCi[k]`); `entryBlob[k]` is its blob index.
   */
  static fromBootstrap(reader: BootstrapReader): { tables: BlobChunkTable[]; entryCi: Uint32Array; entryBlob: Uint16Array } {
    const entries = reader.chunkTable;
    const maxCi = new Array<number>(reader.blobs.length).fill(-1);
    const maxEnd = new Array<number>(reader.blobs.length).fill(0);
    for (const e of entries) {
      maxCi[e.blobIndex] = Math.max(maxCi[e.blobIndex]!, e.index);
      maxEnd[e.blobIndex] = Math.max(maxEnd[e.blobIndex]!, e.uncompressedOffset + e.uncompressedSize);
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
    const entryCi = new Uint32Array(entries.length);
    const entryBlob = new Uint16Array(entries.length);
    entries.forEach((e, k) => {
      const t = tables[e.blobIndex]!;
      const ci = e.index;
      entryCi[k] = ci;
      entryBlob[k] = e.blobIndex;
      if (e.uncompressedOffset % EROFS_BLOCK_SIZE !== 0) {
        throw new FormatError(`chunk_table[${k}].uncompressed_offset`, `${e.uncompressedOffset} is not 4096-byte aligned`, { value: e.uncompressedOffset });
      }
      if (t.known[ci] === 1) {
        if (t.uncompressedOffset[ci] !== e.uncompressedOffset || t.compressedOffset[ci] !== e.compressedOffset || t.digest[ci] !== e.digest) {
          throw new FormatError(`chunk_table[${k}]`, `describes CI index ${ci} of blob ${t.blob.blobId} differently from an earlier entry`, { value: ci });
        }
        return;
      }
      t.known[ci] = 1;
      t.compressedOffset[ci] = e.compressedOffset;
      t.compressedSize[ci] = e.compressedSize;
      t.uncompressedOffset[ci] = e.uncompressedOffset;
      t.uncompressedSize[ci] = e.uncompressedSize;
      t.flags[ci] = e.flags;
      t.crc32[ci] = e.crc32;
      t.digest[ci] = e.digest;
    });
    for (const t of tables) t.sortIndexes();
    return { tables, entryCi, entryBlob };
  }

  private sortIndexes(): void {
    const known: number[] = [];
    for (let ci = 0; ci < this.count; ci++) if (this.known[ci] === 1) known.push(ci);
    const byC = Uint32Array.from(known);
    byC.sort((a, b) => this.compressedOffset[a]! - this.compressedOffset[b]! || a - b);
    const byU = Uint32Array.from(known);
    byU.sort((a, b) => this.uncompressedOffset[a]! - this.uncompressedOffset[b]! || a - b);
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
