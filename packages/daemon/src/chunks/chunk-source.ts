/**
 * How the bytes of a blob's chunks are obtained: the seam between the chunk cache (which knows
 * which chunks are missing, shares fetches, verifies and stores chunks) and the blob's format.
 * A source groups missing chunks into fetch units (one backend range each) and decodes a
 * fetched unit into the uncompressed bytes of its chunks. Native blobs fetch each chunk's
 * compressed extent, adjacent ones merged ({@link NativeChunkSource}); other blob kinds (ZRAN
 * gzip-checkpoint contexts, batches) plug in here with their own planning and decoding.
 */
import { UnsupportedError, type BlobBackend, type Logger } from '@nydus-ts/core';
import { BlobFeatures, ChunkFlags, fetchRefBlobMeta } from '@nydus-ts/format';
import type { BlobChunkTable } from './blob-chunk-table.js';
import { NativeChunkSource } from './native-chunk-source.js';
import { ResidentDictionaries, ZranMetaCache } from '../cache/zran-meta-cache.js';
import { ZranChunkSource } from './zran-chunk-source.js';

/** One backend request and the chunks it yields. */
export interface FetchUnit {
  /** Byte range of the blob to fetch. */
  offset: number;
  length: number;
  /** CI indexes of the chunks decoded from this range (the wanted ones and any extras). */
  chunks: number[];
}

export interface ChunkPlanOptions {
  /** Largest single fetch in bytes (adjacent chunks are merged up to it). */
  mergeLimit: number;
  /**
   * Widen a fetch with the chunks that follow the wanted ones in the blob while the unit's
   * chunks hold at most this many uncompressed bytes (nydusd's `amplify_io`, which counts user
   * I/O bytes; 0: fetch only what is wanted). Extras are cached like wanted chunks.
   */
  amplifyTo: number;
  /** True for chunks already cached or being fetched: a plan never includes them as extras. */
  isSettled(ci: number): boolean;
}

/** One decoded chunk of a unit: its uncompressed bytes, or why it could not be decoded. */
export type DecodedChunk = { ci: number; data: Uint8Array; error?: undefined } | { ci: number; data?: undefined; error: Error };

export interface ChunkSource {
  /** Groups `wanted` (distinct CI indexes, not settled) into fetch units covering all of them. */
  plan(wanted: readonly number[], options: ChunkPlanOptions): FetchUnit[];
  /**
   * Decodes a unit from its fetched bytes (exactly `unit.length`). Returns one entry per chunk
   * of the unit, each exactly the chunk's uncompressed size; verification is the caller's.
   * `alloc`, when given, provides output buffers of at least the size asked (reused by the
   * caller once the chunks are stored); a source may also allocate its own.
   */
  decode(unit: FetchUnit, raw: Uint8Array, alloc?: (size: number) => Uint8Array): DecodedChunk[] | Promise<DecodedChunk[]>;
  /** Releases what the source holds open (a lazily fetched meta's cache file). */
  close?(): Promise<void>;
}

export interface ChunkSourceContext {
  backend: BlobBackend;
  logger: Logger;
  /** The cache dir: a lazily fetched ZRAN meta keeps its frames there. */
  cacheDir: string;
  /** Called with the size of every meta range fetched (ZRAN metas). */
  onMetaFetched?: (bytes: number) => void;
}

/**
 * The chunk source for one blob of an image. A ZRAN blob (targz-ref) whose CI data is in the
 * seekable layout fetches at mount only its CCT header, seek table and the frames of its CI
 * entries and contexts (checked by their zstd checksums), and each dictionary on first use
 * ({@link ZranMetaCache}); any other ZRAN blob fetches its meta blob (named by blob_meta_digest)
 * whole and checks it against its digest. Either way a damaged meta is refused at mount with a
 * DigestMismatchError / FormatError. Throws UnsupportedError for blob kinds this daemon cannot
 * read yet (batch, encrypted).
 */
export async function createChunkSource(table: BlobChunkTable, context: ChunkSourceContext): Promise<ChunkSource> {
  const blob = table.blob;
  if ((blob.features & BlobFeatures.ENCRYPTED) !== 0) throw new UnsupportedError(`blob ${blob.blobId}: encrypted blobs are not supported`);
  if ((blob.features & BlobFeatures.BATCH) !== 0) throw new UnsupportedError(`blob ${blob.blobId}: batch chunks are not supported yet`);
  for (let ci = 0; ci < table.count; ci++) {
    if (table.known[ci] === 1 && (table.flags[ci]! & (ChunkFlags.BATCH | ChunkFlags.ENCRYPTED)) !== 0) {
      throw new UnsupportedError(`blob ${blob.blobId}: chunk ${ci} is a batch or encrypted chunk, which is not supported yet`);
    }
  }
  if ((blob.features & BlobFeatures.ZRAN) !== 0) {
    const lazy = await ZranMetaCache.open(blob, { backend: context.backend, dir: context.cacheDir, logger: context.logger, ...(context.onMetaFetched && { onFetched: context.onMetaFetched }) });
    if (lazy) {
      try {
        return new ZranChunkSource(table, lazy.meta, lazy);
      } catch (err) {
        await lazy.close();
        throw err;
      }
    }
    const bytes = { n: 0 };
    const meta = await fetchRefBlobMeta(blob, countingBackend(context.backend, bytes));
    context.onMetaFetched?.(bytes.n);
    return new ZranChunkSource(table, meta, new ResidentDictionaries(meta));
  }
  return new NativeChunkSource(table);
}

/** `backend` counting the bytes it returns into `bytes.n`. */
function countingBackend(backend: BlobBackend, bytes: { n: number }): BlobBackend {
  return {
    readRange: async (blobId, offset, length, signal) => {
      const out = await backend.readRange(blobId, offset, length, signal);
      bytes.n += out.byteLength;
      return out;
    },
  };
}
