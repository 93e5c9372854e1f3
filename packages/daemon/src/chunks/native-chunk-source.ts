import { FormatError } from '@nydus-ts/core';
import { ChunkFlags, decompressChunk } from '@nydus-ts/format';
import type { BlobChunkTable } from './blob-chunk-table.js';
import type { ChunkPlanOptions, ChunkSource, DecodedChunk, FetchUnit } from './chunk-source.js';

/**
 * Native RAFS blobs: each chunk is its own compressed extent (lz4_block, zstd or stored raw),
 * chunks lie back to back in CI order. A fetch unit is a run of adjacent chunks, merged up to
 * the limit; decoding decompresses each chunk into exactly its uncompressed size.
 */
export class NativeChunkSource implements ChunkSource {
  constructor(private readonly table: BlobChunkTable) {}

  plan(wanted: readonly number[], options: ChunkPlanOptions): FetchUnit[] {
    const t = this.table;
    const order = t.byCompressedOffset;
    const wantedSet = new Set(wanted);
    const sorted = [...wanted].sort((a, b) => t.compressedRank[a]! - t.compressedRank[b]!);
    const taken = new Set<number>();
    const units: FetchUnit[] = [];
    for (const first of sorted) {
      if (taken.has(first)) continue;
      const offset = t.compressedOffset[first]!;
      let end = offset + t.compressedSize[first]!;
      let uncompressed = t.uncompressedSize[first]!;
      const chunks = [first];
      taken.add(first);
      for (let rank = t.compressedRank[first]! + 1; rank < order.length; rank++) {
        const next = order[rank]!;
        if (t.compressedOffset[next] !== end) break; // a gap: bytes this image cannot decode
        const nextEnd = end + t.compressedSize[next]!;
        const want = wantedSet.has(next) && !taken.has(next);
        if (nextEnd - offset > options.mergeLimit) break;
        if (!want && (uncompressed + t.uncompressedSize[next]! > options.amplifyTo || taken.has(next) || options.isSettled(next))) break;
        chunks.push(next);
        taken.add(next);
        end = nextEnd;
        uncompressed += t.uncompressedSize[next]!;
      }
      units.push({ offset, length: end - offset, chunks });
    }
    return units;
  }

  decode(unit: FetchUnit, raw: Uint8Array, alloc?: (size: number) => Uint8Array): DecodedChunk[] {
    const t = this.table;
    const algo = t.blob.compressor;
    return unit.chunks.map((ci): DecodedChunk => {
      const at = t.compressedOffset[ci]! - unit.offset;
      const csize = t.compressedSize[ci]!;
      const usize = t.uncompressedSize[ci]!;
      const what = `chunk ${ci} of blob ${t.blob.blobId}`;
      try {
        if (at < 0 || at + csize > raw.byteLength) throw new FormatError(what, `compressed extent [${t.compressedOffset[ci]}, +${csize}) lies outside the fetched range`);
        const bytes = raw.subarray(at, at + csize);
        if ((t.flags[ci]! & ChunkFlags.COMPRESSED) === 0) {
          if (csize !== usize) throw new FormatError(what, `stored raw but sizes differ (${csize} != ${usize})`);
          return { ci, data: bytes };
        }
        return { ci, data: decompressChunk(algo, bytes, usize, what, alloc?.(usize)) };
      } catch (err) {
        return { ci, error: err as Error };
      }
    });
  }
}
