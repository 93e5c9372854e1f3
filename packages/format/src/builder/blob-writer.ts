import { NydusError } from '@nydus-ts/core';
import { crc32c } from '@nydus-ts/native';
import { createHash, type Hash } from 'node:crypto';
import { compressBatchAsync, compressChunk, compressChunkInto, compressesOffThread, type ChunkCompressor } from '../compression.js';
import { digestChunkInto, type ChunkDigester } from '../chunk-digest.js';
import {
  BlobFeatures,
  CCT_HEADER_SIZE,
  CI_V1_SIZE,
  ChunkFlags,
  CompressionAlgo,
  DigestAlgo,
  EROFS_BLOCK_SIZE,
  MAX_CHUNKS_PER_BLOB,
  TAR_HEADER_SIZE,
  TOC_ENTRY_SIZE,
  TocFlags,
  TocNames,
  ZERO_DIGEST_HEX,
  alignUp,
  writeChunkInfoV1,
  encodeCompressionContextHeader,
  encodeTailTarHeader,
  encodeTocEntry,
  type TocEntry,
} from '../layout/index.js';
import type { ChunkDict } from './chunk-dict.js';
import { ChunkStore, SECOND_STORE, type TreeBlob, type TreeChunk } from './tree.js';

/**
 * Where the data blob goes. Awaiting each write is the backpressure. The builder never
 * touches bytes again once it has passed them to `write`, so a sink may keep them.
 */
export interface BlobSink {
  write(bytes: Uint8Array): Promise<void>;
  /**
   * True when the sink is done with `bytes` once `write` has resolved (it wrote or copied
   * them): the builder then reuses its output buffers instead of allocating new ones (less
   * garbage, lower peak memory). Default false: the sink may keep what it was given.
   */
  readonly releasesOnResolve?: boolean;
  /**
   * Called once after the last byte of a complete blob was written (not when the build fails),
   * so that the sink can start finishing it, e.g. flushing and syncing a file, while the builder
   * goes on with the bootstrap.
   */
  end?(): Promise<void>;
}

/** Counters of one layer build. */
export interface LayerBuildStats {
  /** Entries consumed. */
  entries: number;
  /** Regular-file entries (hardlinks not counted). */
  files: number;
  /** File content bytes read. */
  bytesIn: number;
  /** Chunks cut from file content (incl. deduplicated ones). */
  chunks: number;
  /** Chunks found earlier in this layer. */
  dedupChunks: number;
  dedupBytes: number;
  /** Chunks found in the chunk dict. */
  dictChunks: number;
  dictBytes: number;
  /** Bytes of chunk data stored in the blob (compressed or raw, padding excluded). */
  compressedBytes: number;
}

export const INLINED_BLOB_ID = 'x'.repeat(64);

function chunkFlags(crc: number, compressed: boolean): number {
  return (crc !== 0 ? ChunkFlags.HAS_CRC32 : 0) | (compressed ? ChunkFlags.COMPRESSED : 0);
}

const TOC_FLAG: Record<ChunkCompressor, number> = { none: TocFlags.NONE, zstd: TocFlags.ZSTD, lz4_block: TocFlags.LZ4_BLOCK };

/** A growable byte array for per-chunk tables (CI entries, digests). */
class ByteTable {
  bytes: Buffer;
  length = 0;
  constructor(initial: number) {
    this.bytes = Buffer.alloc(initial);
  }
  reserve(n: number): number {
    if (this.length + n > this.bytes.length) {
      const next = Buffer.alloc(Math.max(this.bytes.length * 2, this.length + n));
      next.set(this.bytes.subarray(0, this.length));
      this.bytes = next;
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  view(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

/**
 * Chunks compressed together off-thread (one thread-pool task), placed in the blob in the order
 * they were added. Chunk i's bytes are `src[bounds[i] .. bounds[i+1])` (copies the job owns),
 * its compressed frame sits at the same offset of `out`.
 */
interface CompressJob {
  indices: number[];
  crcs: number[];
  bounds: number[];
  src: Buffer;
  out: Buffer;
  /** Undefined while the job still takes chunks. */
  settled: Promise<void> | undefined;
  /** Set once compressed: the length per chunk (0: store raw), or why it failed. */
  outcome: { results: Int32Array } | { failure: unknown } | undefined;
}

/** Jobs compressing off-thread at once (the thread pool runs a few; more only queue). */
const MAX_JOBS = 6;
/** Chunks per job at most (small files: one thread-pool round trip for many of them). */
const MAX_JOB_CHUNKS = 512;

export interface BlobTail {
  /** The own blob's table entry, final (real id, ToC digest/size). */
  blob: TreeBlob;
  /** Bytes written to the sink. */
  size: number;
  /** Content of `<id>.blob.meta` (spec §3.7). */
  blobMeta: Uint8Array;
}

/**
 * Writes the chunks of one data blob to a sink and, at the end, its tail sections (spec
 * §3.1 layout (c), or (b) with an inlined bootstrap). Chunk data is deduplicated against
 * this blob and then the chunk dict.
 */
export class BlobWriter {
  /** The blob entry chunks point at; its id and sizes are filled in by `finish`. */
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
  /** Dict blobs in the order of their first use. */
  readonly usedDictBlobs: TreeBlob[] = [];
  /**
   * The own blob's chunks (chunk refs below SECOND_STORE, chunk i = CI index i) and the dict
   * chunks this layer references (refs from SECOND_STORE on; its blobs are `usedDictBlobs`).
   */
  readonly stores: readonly [ChunkStore, ChunkStore];

  private readonly hash: Hash = createHash('sha256');
  /** Bytes of the blob so far, including the unflushed slab. */
  private position = 0;
  private uncompressedCursor = 0;
  private readonly ci = new ByteTable(64 * CI_V1_SIZE);
  /** Own chunks in columns (digests, offsets, sizes) by CI index. */
  private readonly store: ChunkStore;
  private chunkCount = 0;
  /** Chunk refs of the dict chunks used so far. */
  private readonly fromDict = new Map<TreeChunk, number>();
  private readonly usedDictBlobIndex = new Map<TreeBlob, number>();
  /**
   * Output assembly: chunks are compressed (or copied) straight into `slab`; a full slab is
   * queued in `pending` and written by `flush()`. A slab handed to the sink is reused only if
   * the sink `releasesOnResolve` (then it goes to `spare` once its write resolved).
   */
  private slab: Buffer;
  private slabUsed = 0;
  private readonly slabSize: number;
  private pending: Buffer[] = [];
  private readonly spare: Buffer[] = [];
  private failure: unknown;
  /** Chunks not yet placed in the blob, oldest first (compressors that run off-thread only). */
  private readonly jobs: CompressJob[] = [];
  /** The last job while it still takes chunks. */
  private openJob: CompressJob | undefined;
  private readonly spareJobBuffers: Array<{ src: Buffer; out: Buffer }> = [];
  private readonly offThread: boolean;

  constructor(
    private readonly sink: BlobSink,
    private readonly chunkSize: number,
    private readonly compressor: ChunkCompressor,
    private readonly digester: ChunkDigester,
    private readonly dict: ChunkDict | undefined,
    private readonly inlineBootstrap: boolean,
  ) {
    // Room for at least one raw chunk plus its 'none' padding; 4 MiB keeps sink writes large.
    this.slabSize = Math.max(4 << 20, chunkSize + EROFS_BLOCK_SIZE);
    this.slab = Buffer.allocUnsafe(this.slabSize);
    this.offThread = compressesOffThread(compressor);
    this.blob = {
      blobId: '',
      chunkSize,
      chunkCount: 0,
      compressionAlgo: CompressionAlgo[compressor],
      digestAlgo: DigestAlgo[digester],
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

  /** True once at least one chunk has been stored in this blob. */
  get hasData(): boolean {
    return this.chunkCount > 0;
  }

  /** True when full slabs or compressing chunks wait for `flush()` (call it before the next addChunk). */
  get mustFlush(): boolean {
    return this.pending.length > 0 || this.jobs.length > MAX_JOBS || (this.jobs.length > 0 && this.jobs[0]!.outcome !== undefined);
  }

  /**
   * Places the chunks that finished compressing (waiting for the oldest while the queue is full)
   * and writes the queued full slabs to the sink (the backpressure point).
   */
  async flush(): Promise<void> {
    await this.placeJobs(MAX_JOBS - 1);
    await this.writeSlabs();
  }

  /** Places finished jobs in order, waiting for the oldest until at most `keep` remain. */
  private async placeJobs(keep: number): Promise<void> {
    const jobs = this.jobs;
    while (jobs.length > 0) {
      const job = jobs[0]!;
      if (job.outcome === undefined) {
        if (jobs.length <= keep) return;
        if (job === this.openJob) this.submit(job);
        await job.settled;
      }
      jobs.shift();
      const outcome = job.outcome!;
      if ('failure' in outcome) {
        this.failure ??= outcome.failure;
        throw outcome.failure;
      }
      this.place(job, outcome.results);
    }
  }

  private async writeSlabs(): Promise<void> {
    while (this.pending.length > 0) {
      const bytes = this.pending.shift()!;
      try {
        await this.sink.write(bytes);
      } catch (err) {
        this.failure ??= err;
        throw err;
      }
      if (this.sink.releasesOnResolve === true) this.spare.push(Buffer.from(bytes.buffer, bytes.byteOffset, this.slabSize));
    }
  }

  /** Queues the used part of the slab (hashing it) and starts a new slab. */
  private seal(): void {
    if (this.slabUsed === 0) return;
    const bytes = this.slab.subarray(0, this.slabUsed);
    this.hash.update(bytes);
    this.pending.push(bytes);
    this.slab = this.spare.pop() ?? Buffer.allocUnsafe(this.slabSize);
    this.slabUsed = 0;
  }

  /** Writes tail bytes after the slabs (the slab must have been sealed and flushed). */
  private async write(bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return;
    this.hash.update(bytes);
    this.position += bytes.length;
    await this.sink.write(bytes);
  }

  /**
   * Stores (or deduplicates) one chunk of file data at `fileOffset` and returns its chunk ref
   * (into `stores`), final. Synchronous: the stored bytes are compressed (or copied) into the output slab, so
   * the writer keeps no reference to `data` and the caller may reuse its memory at once. When
   * `mustFlush` turns true the caller awaits `flush()` before adding more.
   */
  addChunk(data: Uint8Array, fileOffset: number): number {
    if (this.failure !== undefined) throw this.failure;
    const size = data.length;
    this.stats.chunks++;
    const store = this.store;
    const digestAt = store.stagingSlot(); // may grow (replace) store.digests: call it first
    digestChunkInto(this.digester, data, store.digests, digestAt);
    // The first chunk with this digest; a same-digest chunk of another size is stored anew.
    const first = store.findStaged();
    if (first >= 0 && store.uncompressedSizeOf(first) === size) {
      this.stats.dedupChunks++;
      this.stats.dedupBytes += size;
      return first;
    }
    const dictChunk = this.dict?.lookup(store.digestHex(store.count), size);
    if (dictChunk !== undefined) {
      this.stats.dictChunks++;
      this.stats.dictBytes += size;
      let ref = this.fromDict.get(dictChunk);
      if (ref === undefined) {
        let blobIndex = this.usedDictBlobIndex.get(dictChunk.blob);
        if (blobIndex === undefined) {
          blobIndex = this.usedDictBlobs.length;
          this.usedDictBlobIndex.set(dictChunk.blob, blobIndex);
          this.usedDictBlobs.push(dictChunk.blob);
        }
        ref = SECOND_STORE + this.stores[1].addForeign({ ...dictChunk, fileOffset }, blobIndex, dictChunk.index);
        this.fromDict.set(dictChunk, ref);
      }
      return ref;
    }
    if (this.chunkCount >= MAX_CHUNKS_PER_BLOB) {
      throw new NydusError('RESOURCE_EXHAUSTED', `a blob holds at most ${MAX_CHUNKS_PER_BLOB} chunks; use a larger chunkSize`);
    }
    const aligned = alignUp(size, EROFS_BLOCK_SIZE);
    const crc = crc32c(data);
    if (this.offThread) return this.queueChunk(data, fileOffset, first < 0, crc);
    // Room for the chunk stored raw (plus, for 'none', its padding to the next block).
    if (this.slabUsed + aligned > this.slabSize) this.seal();
    const at = this.slabUsed;
    const packedSize = compressChunkInto(this.compressor, data, this.slab, at);
    const compressed = packedSize > 0;
    let storedSize = packedSize;
    if (!compressed) {
      this.slab.set(data, at);
      storedSize = size;
    }
    const compressedOffset = this.position;
    const uncompressedOffset = this.uncompressedCursor;
    // Raw blobs keep every chunk at its uncompressed offset: the data region is an EROFS device.
    if (this.compressor === 'none') {
      if (compressedOffset !== uncompressedOffset) throw new NydusError('INTERNAL', `uncompressed blob cursor ${compressedOffset} != ${uncompressedOffset}`);
      this.slab.fill(0, at + size, at + aligned);
      storedSize = size;
      this.slabUsed += aligned;
      this.position += aligned;
    } else {
      this.slabUsed += storedSize;
      this.position += storedSize;
    }
    const flags = chunkFlags(crc, compressed);
    const index = this.newChunk(flags, storedSize, size, compressedOffset, fileOffset, crc, first < 0);
    this.encodeCi(index, compressedOffset, storedSize, size, compressed);
    this.stats.compressedBytes += storedSize;
    if (this.slabUsed === this.slabSize) this.seal();
    return index;
  }

  /** Records chunk `chunkCount` (uncompressed side final; compressed side possibly later). */
  private newChunk(flags: number, storedSize: number, size: number, compressedOffset: number, fileOffset: number, crc: number, indexForDedup: boolean): number {
    const uncompressedOffset = this.uncompressedCursor;
    const index = this.store.add(flags, storedSize, size, compressedOffset, uncompressedOffset, fileOffset, crc, indexForDedup);
    if (index !== this.chunkCount) throw new NydusError('INTERNAL', `chunk store index ${index} != CI index ${this.chunkCount}`);
    this.chunkCount++;
    this.uncompressedCursor += alignUp(size, EROFS_BLOCK_SIZE);
    // reserve() may grow (replace) the backing array: the entry is encoded by index later.
    this.ci.reserve(CI_V1_SIZE);
    return index;
  }

  private ciView: DataView | undefined;

  private encodeCi(index: number, compressedOffset: number, storedSize: number, size: number, _compressed: boolean): void {
    // (v1 entries tell compression by the sizes.) One DataView while the table keeps its memory.
    const bytes = this.ci.bytes;
    if (this.ciView === undefined || this.ciView.buffer !== bytes.buffer) this.ciView = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    writeChunkInfoV1(this.ciView, index * CI_V1_SIZE, compressedOffset, storedSize, this.store.uncompressedOffsetOf(index), size);
  }

  /**
   * Adds a chunk to the open compression job (starting one, or submitting a full one first): its
   * place in the blob is known once every earlier chunk is placed, so the output bytes are the
   * same as compressing inline. The chunk's bytes are copied: the caller may reuse `data`.
   */
  private queueChunk(data: Uint8Array, fileOffset: number, indexForDedup: boolean, crc: number): number {
    const size = data.length;
    const index = this.newChunk(0, 0, size, 0, fileOffset, crc, indexForDedup);
    const job = this.openJobFor(size);
    if (job.indices.length === 0) this.jobs.push(job);
    const at = job.bounds[job.bounds.length - 1]!;
    // A chunk assembled in `chunkSpace` is in place already.
    if (data.buffer !== job.src.buffer || data.byteOffset !== job.src.byteOffset + at) job.src.set(data, at);
    job.indices.push(index);
    job.crcs.push(crc);
    job.bounds.push(at + size);
    if (at + size === job.src.length) this.submit(job);
    return index;
  }

  /**
   * Memory in which the caller may assemble the next chunk of `size` bytes before passing it to
   * `addChunk` (which then need not copy it into a compression job); undefined when the
   * compressor runs inline. Valid until the next `addChunk` or `flush`.
   */
  chunkSpace(size: number): Buffer | undefined {
    if (!this.offThread) return undefined;
    const job = this.openJobFor(size);
    const at = job.bounds[job.bounds.length - 1]!;
    return job.src.subarray(at, at + size);
  }

  /**
   * The open job if it has room for a chunk of `size` bytes (a full one is submitted first), or
   * a new one, which joins `jobs` with its first chunk.
   */
  private openJobFor(size: number): CompressJob {
    let job = this.openJob;
    if (job !== undefined && (job.bounds[job.bounds.length - 1]! + size > job.src.length || job.indices.length >= MAX_JOB_CHUNKS)) {
      this.submit(job);
      job = undefined;
    }
    if (job === undefined) {
      const buffers = this.spareJobBuffers.pop() ?? { src: Buffer.allocUnsafe(this.chunkSize), out: Buffer.allocUnsafe(this.chunkSize) };
      job = { indices: [], crcs: [], bounds: [0], ...buffers, settled: undefined, outcome: undefined };
      this.openJob = job;
    }
    return job;
  }

  /** Starts compressing a job's chunks on the thread pool; it takes no more chunks. */
  private submit(job: CompressJob): void {
    if (this.openJob === job) this.openJob = undefined;
    const results = new Int32Array(job.indices.length);
    job.settled = compressBatchAsync(this.compressor, job.src, job.out, Uint32Array.from(job.bounds), results).then(
      () => void (job.outcome = { results }),
      (failure: unknown) => void (job.outcome = { failure }),
    );
  }

  /** Appends a compressed job's chunks to the blob and completes their records. */
  private place(job: CompressJob, results: Int32Array): void {
    for (let k = 0; k < job.indices.length; k++) {
      const start = job.bounds[k]!;
      const size = job.bounds[k + 1]! - start;
      const packed = results[k]!;
      const compressed = packed > 0;
      const storedSize = compressed ? packed : size;
      if (this.slabUsed + storedSize > this.slabSize) this.seal();
      this.slab.set((compressed ? job.out : job.src).subarray(start, start + storedSize), this.slabUsed);
      const compressedOffset = this.position;
      this.slabUsed += storedSize;
      this.position += storedSize;
      const index = job.indices[k]!;
      this.store.setStored(index, chunkFlags(job.crcs[k]!, compressed), storedSize, compressedOffset);
      this.encodeCi(index, compressedOffset, storedSize, size, compressed);
      this.stats.compressedBytes += storedSize;
      if (this.slabUsed === this.slabSize) this.seal();
    }
    if (this.spareJobBuffers.length < MAX_JOBS) this.spareJobBuffers.push({ src: job.src, out: job.out });
  }

  /** Writes every stored chunk to the sink; rethrows an earlier sink or compression failure. */
  async drain(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    await this.placeJobs(0);
    this.seal();
    await this.writeSlabs();
  }

  /**
   * Writes the tail sections and finalises `this.blob`. `bootstrapFor()` serialises the
   * bootstrap as `this.blob` stands; it is called for the inlined copy only.
   */
  async finish(bootstrapFor: () => Uint8Array): Promise<BlobTail> {
    await this.drain();
    const n = this.chunkCount;
    const features =
      BlobFeatures.ALIGNED |
      BlobFeatures.INLINED_CHUNK_DIGEST |
      BlobFeatures.HAS_TAR_HEADER |
      BlobFeatures.HAS_TOC |
      BlobFeatures.CAP_TAR_TOC |
      (this.inlineBootstrap ? BlobFeatures.INLINED_FS_META : 0);
    const toc: TocEntry[] = [];
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

    // | chunks | T"image.blob" |
    const dataSize = this.position;
    await this.write(encodeTailTarHeader(TocNames.BLOB, dataSize));
    toc.push({ flags: TocFlags.NONE, name: TocNames.BLOB, digest: this.hash.copy().digest('hex'), compressedOffset: 0, compressedSize: dataSize, uncompressedSize: this.uncompressedCursor });

    // | CI | CCT header | T"blob.meta" |
    const ciRaw = this.ci.view();
    const ciPacked = compressChunk(this.compressor, ciRaw);
    const ciCompressor: ChunkCompressor = ciPacked.length < ciRaw.length ? this.compressor : 'none';
    const ciStored = ciCompressor === 'none' ? ciRaw : ciPacked;
    const ciOffset = this.position;
    const header = encodeCompressionContextHeader({
      features,
      ciCompressor: CompressionAlgo[ciCompressor],
      ciEntries: n,
      ciOffset,
      ciCompressedSize: ciStored.length,
      ciUncompressedSize: ciRaw.length,
      zranOffset: 0,
      zranSize: 0,
      zranCount: 0,
    });
    await this.write(ciStored.slice());
    await this.write(header);
    await this.write(encodeTailTarHeader(TocNames.META, ciStored.length + CCT_HEADER_SIZE));
    toc.push({ flags: TOC_FLAG[ciCompressor], name: TocNames.META, digest: sha(ciRaw), compressedOffset: ciOffset, compressedSize: ciStored.length, uncompressedSize: ciRaw.length });
    toc.push({ flags: TocFlags.NONE, name: TocNames.META_HEADER, digest: sha(header), compressedOffset: ciOffset + ciStored.length, compressedSize: CCT_HEADER_SIZE, uncompressedSize: CCT_HEADER_SIZE });

    // | digests | T"blob.digest" |
    const digests = this.store.digests.subarray(0, this.chunkCount * 32).slice();
    const digestsOffset = this.position;
    await this.write(digests);
    await this.write(encodeTailTarHeader(TocNames.DIGEST, digests.length));
    toc.push({ flags: TocFlags.NONE, name: TocNames.DIGEST, digest: sha(digests), compressedOffset: digestsOffset, compressedSize: digests.length, uncompressedSize: digests.length });

    Object.assign(this.blob, {
      chunkCount: n,
      features,
      uncompressedSize: this.uncompressedCursor,
      ciCompressor: CompressionAlgo[ciCompressor],
      ciOffset,
      ciCompressedSize: ciStored.length,
      ciUncompressedSize: ciRaw.length,
    });

    // | bootstrap (zstd) | T"image.boot" |   (layout (b))
    if (this.inlineBootstrap) {
      // The inlined copy cannot know the blob's id or ToC: placeholder id, zero ToC (spec §2, §3.6).
      Object.assign(this.blob, { blobId: INLINED_BLOB_ID, compressedSize: this.position, tocSize: 0, tocDigest: ZERO_DIGEST_HEX });
      toc.push(await this.writeInlinedBootstrap(bootstrapFor()));
    }

    // | ToC entries | T"rafs.blob.toc" |
    const tocBytes = await this.writeToc(toc);

    Object.assign(this.blob, {
      blobId: this.hash.digest('hex'),
      compressedSize: this.position,
      tocSize: tocBytes.length,
      tocDigest: createHash('sha256').update(tocBytes).digest('hex'),
    });

    // `<id>.blob.meta`: uncompressed CI, zero padding to 4 KiB, CCT header.
    const blobMeta = new Uint8Array(alignUp(ciRaw.length, EROFS_BLOCK_SIZE) + CCT_HEADER_SIZE);
    blobMeta.set(ciRaw, 0);
    blobMeta.set(header, blobMeta.length - CCT_HEADER_SIZE);
    return { blob: this.blob, size: this.position, blobMeta };
  }

  /**
   * The blob of a layer without file data whose bootstrap is inlined (as the reference
   * converter writes it): `| bootstrap (zstd) | T"image.boot" | ToC | T"rafs.blob.toc" |`, no
   * chunk sections. The layer bootstrap lists no blob for it. Returns the blob's id and size.
   */
  async finishBootstrapOnly(bootstrap: Uint8Array): Promise<{ id: string; size: number }> {
    if (this.hasData) throw new NydusError('INTERNAL', 'finishBootstrapOnly on a blob that holds chunks');
    await this.drain();
    const toc = [await this.writeInlinedBootstrap(bootstrap)];
    await this.writeToc(toc);
    return { id: this.hash.digest('hex'), size: this.position };
  }

  /** Writes a bootstrap (zstd when smaller) and its tail header; returns its ToC entry. */
  private async writeInlinedBootstrap(inlined: Uint8Array): Promise<TocEntry> {
    const packed = compressChunk('zstd', inlined);
    const zstd = packed.length < inlined.length;
    const stored = zstd ? packed : inlined;
    const offset = this.position;
    await this.write(stored);
    await this.write(encodeTailTarHeader(TocNames.BOOTSTRAP, stored.length));
    const digest = createHash('sha256').update(inlined).digest('hex');
    return { flags: zstd ? TocFlags.ZSTD : TocFlags.NONE, name: TocNames.BOOTSTRAP, digest, compressedOffset: offset, compressedSize: stored.length, uncompressedSize: inlined.length };
  }

  /** Writes the ToC entries and their tail header; returns those bytes (the ToC digest covers them). */
  private async writeToc(toc: TocEntry[]): Promise<Uint8Array> {
    const tocBytes = new Uint8Array(toc.length * TOC_ENTRY_SIZE + TAR_HEADER_SIZE);
    toc.forEach((e, i) => encodeTocEntry(e, tocBytes, i * TOC_ENTRY_SIZE));
    tocBytes.set(encodeTailTarHeader(TocNames.TOC, toc.length * TOC_ENTRY_SIZE), toc.length * TOC_ENTRY_SIZE);
    await this.write(tocBytes);
    return tocBytes;
  }

  get dataSize(): number {
    return this.position;
  }
  get uncompressedSize(): number {
    return this.uncompressedCursor;
  }
}
