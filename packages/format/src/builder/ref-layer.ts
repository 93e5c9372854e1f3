import { InvalidArgumentError, throwIfAborted } from '@nydus-ts/core';
import type { LayerEntry } from '../entry.js';
import { DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, isPowerOfTwo } from '../layout/index.js';
import type { BlobSink, LayerBuildStats } from './blob-writer.js';
import { withBlobEntry, writeBootstrap } from './bootstrap-writer.js';
import { LayerEntries, validatePrefetchPatterns } from './build-layer.js';
import { RefBlobWriter } from './ref-blob-writer.js';
import { FsTree, type TreeBlob } from './tree.js';
import type { RefChunkLocator } from './zran-index.js';

export interface BuildRefLayerOptions {
  /** Digest of the original layer (hex, or `sha256:` prefixed): the blob id chunks point into. */
  blobId: string;
  /** Size of the original layer in bytes (the blob's compressed size). */
  sourceSize: number;
  /**
   * Places chunks in the original: a `ZranIndexBuilder` fed by the inflater of a gzip layer
   * (targz-ref), or a `TarRefLocator` for a plain tar layer (tar-ref).
   */
  locator: RefChunkLocator;
  /** Chunk size: a power of two from 4 KiB to 16 MiB. Default 1 MiB. */
  chunkSize?: number;
  prefetchPatterns?: string[];
  signal?: AbortSignal;
}

export interface RefLayerBuildResult {
  /**
   * The layer bootstrap: its blob is the original layer (features with SEPARATE, and ZRAN for
   * gzip), with the meta blob's ToC digest and size; no blob when the layer has no file data.
   */
  bootstrap: Uint8Array;
  /** The RAFS meta blob written to the sink (the nydus-ref layer): hex sha256 and size. */
  metaBlob: { id: string; size: number };
  /** Content of `<blob id>.blob.meta`; null when the layer has no file data. */
  blobMeta: Uint8Array | null;
  chunkCount: number;
  stats: LayerBuildStats;
}

/**
 * Builds a targz-ref / tar-ref layer (spec §4): the filesystem of `entries` (a tar source whose
 * entries carry `dataOffset`) with chunks that stay in the original layer, sha256 digests,
 * deduplicated within the layer. Writes the RAFS meta blob to `sink`; nothing else is stored.
 */
export async function buildRefLayer(entries: AsyncIterable<LayerEntry>, sink: BlobSink, options: BuildRefLayerOptions): Promise<RefLayerBuildResult> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!isPowerOfTwo(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new InvalidArgumentError(`chunkSize: ${String(chunkSize)} is not a power of two between ${MIN_CHUNK_SIZE} and ${MAX_CHUNK_SIZE}`);
  }
  const blobId = normaliseDigest(options.blobId);
  if (!Number.isSafeInteger(options.sourceSize) || options.sourceSize < 0) throw new InvalidArgumentError(`sourceSize: ${String(options.sourceSize)} is not a byte count`);
  const locator = options.locator;
  if (locator === null || typeof locator !== 'object' || typeof locator.place !== 'function') throw new InvalidArgumentError('locator: needs a place(start, end) method');
  if (sink === null || typeof sink !== 'object' || typeof sink.write !== 'function') throw new InvalidArgumentError('sink: needs a write(bytes) method');
  const prefetchPatterns = validatePrefetchPatterns(options.prefetchPatterns);
  const signal = options.signal;
  throwIfAborted(signal);

  const writer = new RefBlobWriter(sink, chunkSize, locator);
  const tree = new FsTree(writer.stores);
  const layer = new LayerEntries(writer, tree, chunkSize, signal);
  for await (const entry of entries) {
    const wait = layer.add(entry);
    if (wait !== undefined) await wait;
  }
  throwIfAborted(signal);
  const settings = (blobs: TreeBlob[]) => ({
    chunkSize,
    compressor: locator.kind === 'zran' ? ('gzip' as const) : ('none' as const),
    digester: 'sha256' as const,
    explicitUidGid: true,
    blobs,
    prefetchPatterns,
  });
  const blobs = (): TreeBlob[] => (writer.hasData ? [writer.blob] : []);
  // The meta blob inlines the layer bootstrap before its own ToC exists; the bootstrap returned
  // is the same with the ToC's digest and size in the blob's entry.
  let inlined: Uint8Array | undefined;
  const tail = await writer.finish(blobId, options.sourceSize, () => (inlined = writeBootstrap(tree, settings(blobs()))));
  await sink.end?.();
  return {
    bootstrap: writer.hasData ? withBlobEntry(inlined!, 0, writer.blob) : inlined!,
    metaBlob: { id: tail.metaBlobId, size: tail.metaBlobSize },
    blobMeta: tail.blobMeta,
    chunkCount: tail.blob.chunkCount,
    stats: writer.stats,
  };
}

function normaliseDigest(digest: string): string {
  const hex = typeof digest === 'string' && digest.startsWith('sha256:') ? digest.slice(7) : digest;
  if (typeof hex !== 'string' || !/^[0-9a-f]{64}$/.test(hex)) throw new InvalidArgumentError(`blobId: ${String(digest)} is not a sha256 digest`);
  return hex;
}
