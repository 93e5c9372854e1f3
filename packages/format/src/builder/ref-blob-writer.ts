import { InvalidArgumentError, NydusError } from '@nydus-ts/core';
import { createHash, type Hash } from 'node:crypto';
import { compressChunk, compressZstdSeekable } from '../compression.js';
import { digestChunkInto } from '../chunk-digest.js';
import {
  BlobFeatures,
  CCT_HEADER_SIZE,
  CI_V2_SIZE,
  ChunkFlags,
  ChunkInfoV2Flags,
  CompressionAlgo,
  DigestAlgo,
  EROFS_BLOCK_SIZE,
  MAX_CHUNKS_PER_BLOB,
  TAR_HEADER_SIZE,
  TOC_ENTRY_SIZE,
  TocFlags,
  TocNames,
  ZERO_DIGEST_HEX,
  ZRAN_CONTEXT_SIZE,
  alignUp,
  encodeChunkInfoV2,
  encodeCompressionContextHeader,
  encodeTailTarHeader,
  encodeTocEntry,
  type TocEntry,
} from '../layout/index.js';
import type { BlobSink, LayerBuildStats } from './blob-writer.js';
import type { RefChunkLocator } from './zran-index.js';
import { ZranIndexBuilder } from './zran-index.js';
import { ChunkStore, type TreeBlob } from './tree.js';

/**
 * Dictionaries per zstd frame of a zran blob's CI data (docs/format-notes: lazy dictionaries).
 * Larger groups compress a little better; smaller ones make a reader fetch less per context.
 */
const DICTIONARIES_PER_FRAME = 1;

/**
 * zstd level of a zran blob's CI frames. 32 KiB windows compressed one by one lose what one
 * frame over all of them finds (node image: +2% of its CI data at level 3); level 9 more than
 * makes up for it (−2.3% against one level-3 frame) for ~0.1 s of CPU per 6 MB of windows,
 * while grouping 2 or 4 windows per frame gains nothing (docs/benchmarks.md, zran).
 */
const ZRAN_CI_ZSTD_LEVEL = 9;

/**
 * Frame ends of a zran blob's CI data in the seekable layout: one frame for the CI entries and
 * the context table (what a reader needs at mount), then the dictionary table in frames of
 * DICTIONARIES_PER_FRAME dictionaries (empty dictionaries join their neighbours).
 */
export function zranCiFrameEnds(tablesOffset: number, dictionarySizes: readonly number[], perFrame = DICTIONARIES_PER_FRAME): number[] {
  const ends = [tablesOffset + dictionarySizes.length * ZRAN_CONTEXT_SIZE];
  let at = ends[0]!;
  let inFrame = 0;
  for (const size of dictionarySizes) {
    if (size === 0) continue;
    at += size;
    if (++inFrame === perFrame) {
      ends.push(at);
      inFrame = 0;
    }
  }
  if (at > ends[ends.length - 1]!) ends.push(at);
  return ends;
}

/** Features of a reference layer's blob in its own bootstrap (spec §1.5: targz-ref 0x7000_003F). */
const REF_FEATURES =
  BlobFeatures.ALIGNED |
  BlobFeatures.INLINED_FS_META |
  BlobFeatures.CHUNK_INFO_V2 |
  BlobFeatures.SEPARATE |
  BlobFeatures.INLINED_CHUNK_DIGEST |
  BlobFeatures.HAS_TAR_HEADER |
  BlobFeatures.HAS_TOC |
  BlobFeatures.CAP_TAR_TOC;

export interface RefMetaTail {
  /** The original layer's entry in the layer bootstrap (id = layer digest, ToC of the meta blob). */
  blob: TreeBlob;
  /** Hex sha256 and size of the RAFS meta blob written to the sink (the nydus-ref layer). */
  metaBlobId: string;
  metaBlobSize: number;
  /** Content of `<id>.blob.meta` (spec §3.7); null for a layer without file data. */
  blobMeta: Uint8Array | null;
}

/**
 * The chunk side of a targz-ref / tar-ref layer build (spec §4): chunks are not stored anywhere,
 * they stay in the original layer; each stored chunk gets a CI v2 entry placed by the locator
 * (zran context and offset, or the tar offset). At the end the RAFS meta blob (spec §4.2) goes
 * to the sink: CI entries with the zran tables (zstd), CCT header, chunk digests, the layer's
 * bootstrap and a ToC, each section followed by its tail tar header.
 */
export class RefBlobWriter {
  readonly blob: TreeBlob;
  readonly stats: LayerBuildStats = {
    entries: 0,
    files: 0,
    bytesIn: 0,
    chunks: 0,
    dedupChunks: 0,
    dedupBytes: 0,
    dictChunks: 0,
    dictBytes: 0,
    compressedBytes: 0,
  };
  readonly usedDictBlobs: TreeBlob[] = [];
  readonly stores: readonly [ChunkStore, ChunkStore];
  readonly mustFlush = false;
  private readonly store: ChunkStore;
  private ci = Buffer.alloc(64 * CI_V2_SIZE);
  private chunkCount = 0;
  private uncompressedCursor = 0;
  private readonly zran: boolean;

  constructor(
    private readonly sink: BlobSink,
    chunkSize: number,
    private readonly locator: RefChunkLocator,
  ) {
    this.zran = locator.kind === 'zran';
    this.blob = {
      blobId: '',
      chunkSize,
      chunkCount: 0,
      compressionAlgo: this.zran ? CompressionAlgo.gzip : CompressionAlgo.none,
      digestAlgo: DigestAlgo.sha256,
      features: 0,
      compressedSize: 0,
      uncompressedSize: 0,
      tocSize: 0,
      ciCompressor: 0,
      ciOffset: 0,
      ciCompressedSize: 0,
      ciUncompressedSize: 0,
      tocDigest: ZERO_DIGEST_HEX,
      metaDigest: ZERO_DIGEST_HEX,
      metaSize: 0,
      cipherIv: new Uint8Array(8),
      cipherAlgo: 0,
    };
    this.store = new ChunkStore([this.blob]);
    this.stores = [this.store, new ChunkStore(this.usedDictBlobs, true)];
  }

  get hasData(): boolean {
    return this.chunkCount > 0;
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  chunkSpace(): undefined {
    return undefined;
  }

  /**
   * Indexes one chunk of file data (deduplicated within the layer by sha256) found at
   * `sourceOffset` of the layer's uncompressed tar stream; returns its chunk ref.
   */
  addChunk(data: Uint8Array, fileOffset: number, sourceOffset: number): number {
    if (!(sourceOffset >= 0)) throw new InvalidArgumentError('reference layers need the source offset of every chunk (entries with dataOffset)');
    const size = data.length;
    this.stats.chunks++;
    const store = this.store;
    const digestAt = store.stagingSlot();
    digestChunkInto('sha256', data, store.digests, digestAt);
    const first = store.findStaged();
    if (first >= 0 && store.uncompressedSizeOf(first) === size) {
      this.stats.dedupChunks++;
      this.stats.dedupBytes += size;
      return first;
    }
    if (this.chunkCount >= MAX_CHUNKS_PER_BLOB) throw new NydusError('RESOURCE_EXHAUSTED', `a blob holds at most ${MAX_CHUNKS_PER_BLOB} chunks; use a larger chunkSize`);
    const place = this.locator.place(sourceOffset, sourceOffset + size);
    const uncompressedOffset = this.uncompressedCursor;
    const compressed = this.zran;
    const index = store.add(compressed ? ChunkFlags.COMPRESSED : 0, place.compressedSize, size, place.compressedOffset, uncompressedOffset, fileOffset, 0, first < 0);
    if (index !== this.chunkCount) throw new NydusError('INTERNAL', `chunk store index ${index} != CI index ${this.chunkCount}`);
    if ((index + 1) * CI_V2_SIZE > this.ci.length) {
      const next = Buffer.alloc(this.ci.length * 2);
      this.ci.copy(next);
      this.ci = next;
    }
    encodeChunkInfoV2(
      {
        uncompressedOffset,
        uncompressedSize: size,
        compressedOffset: place.compressedOffset,
        compressedSize: place.compressedSize,
        compressed,
        flags: compressed ? ChunkInfoV2Flags.ZRAN : 0,
        contextIndex: place.contextIndex,
        contextOffset: place.contextOffset,
      },
      this.ci,
      index * CI_V2_SIZE,
    );
    this.chunkCount++;
    this.uncompressedCursor += alignUp(size, EROFS_BLOCK_SIZE);
    this.stats.compressedBytes += place.compressedSize;
    return index;
  }

  /**
   * Writes the RAFS meta blob and finalises `this.blob` as the original layer's entry:
   * `blobId` the layer digest (hex), `sourceSize` the layer's size. `bootstrapFor()` lays out
   * the layer bootstrap as `this.blob` then stands (inlined into the meta blob).
   */
  async finish(blobId: string, sourceSize: number, bootstrapFor: () => Uint8Array): Promise<RefMetaTail> {
    const hash: Hash = createHash('sha256');
    let position = 0;
    const write = async (bytes: Uint8Array): Promise<void> => {
      hash.update(bytes);
      position += bytes.length;
      await this.sink.write(bytes);
    };
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
    const n = this.chunkCount;
    const features = REF_FEATURES | (this.zran ? BlobFeatures.ZRAN : 0);
    const toc: TocEntry[] = [];

    // A layer without file data has no chunk sections, and its bootstrap lists no blob.
    let ciRaw: Uint8Array = new Uint8Array(0);
    let header: Uint8Array = new Uint8Array(0);
    if (n > 0) {
      // | CI entries + zran contexts + dictionaries (zstd) | CCT header | T"blob.meta" |   (ci_offset 0)
      // zran: zstd frames | entries + contexts | dictionaries, one frame each | seek table (skippable) |
      const entries = this.ci.subarray(0, n * CI_V2_SIZE);
      const tables = this.locator instanceof ZranIndexBuilder ? this.locator.tables() : new Uint8Array(0);
      const zranCount = this.locator instanceof ZranIndexBuilder ? this.locator.contextCount : 0;
      ciRaw = Buffer.concat([entries, tables]);
      // zran: seekable zstd frames, so that a reader can fetch a context's dictionary alone.
      const packed = this.locator instanceof ZranIndexBuilder ? compressZstdSeekable(ciRaw, zranCiFrameEnds(entries.length, this.locator.dictionarySizes), ZRAN_CI_ZSTD_LEVEL) : compressChunk('zstd', ciRaw);
      const ciZstd = packed.length < ciRaw.length;
      const ciStored = ciZstd ? packed : ciRaw;
      header = encodeCompressionContextHeader({
        features,
        ciCompressor: ciZstd ? CompressionAlgo.zstd : CompressionAlgo.none,
        ciEntries: n,
        ciOffset: 0,
        ciCompressedSize: ciStored.length,
        ciUncompressedSize: ciRaw.length,
        zranOffset: this.zran ? entries.length : 0,
        zranSize: tables.length,
        zranCount,
      });
      await write(ciStored);
      await write(header);
      await write(encodeTailTarHeader(TocNames.META, ciStored.length + CCT_HEADER_SIZE));
      toc.push({ flags: ciZstd ? TocFlags.ZSTD : TocFlags.NONE, name: TocNames.META, digest: sha(ciRaw), compressedOffset: 0, compressedSize: ciStored.length, uncompressedSize: ciRaw.length });
      toc.push({ flags: TocFlags.NONE, name: TocNames.META_HEADER, digest: sha(header), compressedOffset: ciStored.length, compressedSize: CCT_HEADER_SIZE, uncompressedSize: CCT_HEADER_SIZE });

      // | digests | T"blob.digest" |
      const digests = Buffer.from(this.store.digests.subarray(0, n * 32));
      const digestsOffset = position;
      await write(digests);
      await write(encodeTailTarHeader(TocNames.DIGEST, digests.length));
      toc.push({ flags: TocFlags.NONE, name: TocNames.DIGEST, digest: sha(digests), compressedOffset: digestsOffset, compressedSize: digests.length, uncompressedSize: digests.length });

      Object.assign(this.blob, {
        blobId,
        chunkCount: n,
        features,
        compressedSize: sourceSize,
        uncompressedSize: this.uncompressedCursor,
        ciCompressor: ciZstd ? CompressionAlgo.zstd : CompressionAlgo.none,
        ciOffset: 0,
        ciCompressedSize: ciStored.length,
        ciUncompressedSize: ciRaw.length,
      });
    }

    // | bootstrap (zstd) | T"image.boot" |
    const bootstrap = bootstrapFor();
    const bootPacked = compressChunk('zstd', bootstrap);
    const bootZstd = bootPacked.length < bootstrap.length;
    const bootStored = bootZstd ? bootPacked : bootstrap;
    const bootOffset = position;
    await write(bootStored);
    await write(encodeTailTarHeader(TocNames.BOOTSTRAP, bootStored.length));
    toc.push({ flags: bootZstd ? TocFlags.ZSTD : TocFlags.NONE, name: TocNames.BOOTSTRAP, digest: sha(bootstrap), compressedOffset: bootOffset, compressedSize: bootStored.length, uncompressedSize: bootstrap.length });

    // | ToC entries | T"rafs.blob.toc" |
    const tocBytes = new Uint8Array(toc.length * TOC_ENTRY_SIZE + TAR_HEADER_SIZE);
    toc.forEach((e, i) => encodeTocEntry(e, tocBytes, i * TOC_ENTRY_SIZE));
    tocBytes.set(encodeTailTarHeader(TocNames.TOC, toc.length * TOC_ENTRY_SIZE), toc.length * TOC_ENTRY_SIZE);
    await write(tocBytes);
    Object.assign(this.blob, { tocSize: tocBytes.length, tocDigest: sha(tocBytes) });

    let blobMeta: Uint8Array | null = null;
    if (n > 0) {
      blobMeta = new Uint8Array(alignUp(ciRaw.length, EROFS_BLOCK_SIZE) + CCT_HEADER_SIZE);
      blobMeta.set(ciRaw, 0);
      blobMeta.set(header, blobMeta.length - CCT_HEADER_SIZE);
    }
    return { blob: this.blob, metaBlobId: hash.digest('hex'), metaBlobSize: position, blobMeta };
  }
}
