import { DigestMismatchError, FormatError, InvalidArgumentError, NydusError, UnsupportedError, throwIfAborted, type BlobBackend } from '@nydus-ts/core';
import { crc32c, inflateFromCheckpointAsync } from '@nydus-ts/native';
import { digestChunk } from '../chunk-digest.js';
import { BlobFeatures, ChunkFlags, ChunkInfoV2Flags } from '../layout/constants.js';
import type { ZranContext } from '../layout/blob-meta.js';
import type { BootstrapReader, ChunkRef } from './bootstrap-reader.js';
import { decompressChunk } from '../compression.js';

export type { BlobBackend } from '@nydus-ts/core';

export interface RafsFileReaderOptions {
  /** Verify every chunk's digest (and CRC-32C when present) before returning it. Default true. */
  verify?: boolean;
  /**
   * ZRAN blobs: inflated contexts kept (most recently used), so that the chunks of one context
   * (often dozens of small files) cost one range read and one inflate. Default 8 (each ≤ a few MiB).
   */
  zranContextCache?: number;
}

/** Largest inflated span of a zran context read (spec §4.4: out_len ≤ 16 MiB, plus a chunk). */
const MAX_ZRAN_OUT_LEN = 32 << 20;

/** Chunks fetched at once by `read`. */
const READ_CONCURRENCY = 4;

/**
 * Reads regular files of a RAFS filesystem through a BlobBackend: fetches each chunk's
 * compressed bytes, decompresses them with the blob's compressor, checks sizes and (by
 * default) the chunk digest with the filesystem digester. Wrong bytes are never returned.
 */
export class RafsFileReader {
  readonly bootstrap: BootstrapReader;
  private readonly backend: BlobBackend;
  private readonly verify: boolean;
  private readonly zranCacheSize: number;
  /** Inflated zran contexts by `blobIndex:contextIndex`, least recently used first. */
  private readonly zranContexts = new Map<string, Promise<Uint8Array>>();

  constructor(bootstrap: BootstrapReader, backend: BlobBackend, options: RafsFileReaderOptions = {}) {
    this.bootstrap = bootstrap;
    this.backend = backend;
    this.verify = options.verify ?? true;
    const cache = options.zranContextCache ?? 8;
    if (!Number.isInteger(cache) || cache < 0) throw new InvalidArgumentError(`zranContextCache: ${String(cache)} is not a non-negative integer`);
    this.zranCacheSize = cache;
  }

  /** The uncompressed (and verified) data of one chunk. */
  async readChunk(ref: ChunkRef, signal?: AbortSignal): Promise<Uint8Array> {
    throwIfAborted(signal);
    const blob = this.bootstrap.blobs[ref.blobIndex];
    if (blob === undefined || blob.blobId !== ref.blobId) {
      throw new InvalidArgumentError(`chunk ref names blob ${ref.blobIndex} (${ref.blobId}), which this bootstrap does not have`);
    }
    const subject = `chunk ${ref.ciIndex} of blob ${ref.blobId}`;
    if ((blob.features & BlobFeatures.ZRAN) !== 0 || ref.zranContextIndex !== undefined) return this.verified(ref, subject, await this.readZranChunk(ref, subject, signal));
    if ((ref.flags & ChunkFlags.BATCH) !== 0 || ref.batchIndex !== undefined) {
      throw new UnsupportedError(`${subject}: reading batch chunks is not supported yet`);
    }
    if ((ref.flags & ChunkFlags.ENCRYPTED) !== 0 || (blob.features & BlobFeatures.ENCRYPTED) !== 0) {
      throw new UnsupportedError(`${subject}: reading encrypted blobs is not supported`);
    }
    const chunkSize = this.bootstrap.chunkSize;
    if (ref.uncompressedSize === 0 || ref.uncompressedSize > chunkSize || ref.compressedSize === 0 || ref.compressedSize > chunkSize) {
      throw new FormatError(subject, `sizes ${ref.compressedSize}/${ref.uncompressedSize} are not in 1..${chunkSize}`, { value: ref.compressedSize });
    }
    if (!ref.compressed && ref.compressedSize !== ref.uncompressedSize) {
      throw new FormatError(subject, `uncompressed chunk with compressed size ${ref.compressedSize} != ${ref.uncompressedSize}`, { value: ref.compressedSize });
    }
    const raw = await this.backend.readRange(ref.blobId, ref.compressedOffset, ref.compressedSize, signal);
    if (raw.byteLength !== ref.compressedSize) {
      throw new NydusError('DATA_LOSS', `${subject}: backend returned ${raw.byteLength} bytes for [${ref.compressedOffset}, +${ref.compressedSize})`);
    }
    return this.verified(ref, subject, ref.compressed ? decompressChunk(blob.compressor, raw, ref.uncompressedSize, subject) : raw);
  }

  /**
   * A chunk of a gzip layer (spec §4.4): one read of its context's compressed span, inflated
   * from the context's checkpoint (bits and window) up to the chunk's end, then sliced.
   */
  private async readZranChunk(ref: ChunkRef, subject: string, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const meta = this.bootstrap.blobMeta(ref.blobIndex);
    if (meta === undefined) throw new NydusError('FAILED_PRECONDITION', `${subject}: a ZRAN blob is read through its blob meta; attach it first (attachBlobMeta)`);
    const ci = meta.chunks[ref.ciIndex];
    if (ci === undefined || (ci.flags & ChunkInfoV2Flags.ZRAN) === 0) throw new FormatError(subject, `CI entry ${ref.ciIndex} is not a ZRAN chunk`, { value: ref.ciIndex });
    const ctx = meta.zranContexts[ci.contextIndex];
    const end = ci.contextOffset + ci.uncompressedSize;
    if (ctx === undefined || end > ctx.outLen || ci.uncompressedSize !== ref.uncompressedSize || ref.uncompressedSize > this.bootstrap.chunkSize) {
      throw new FormatError(subject, `zran slice [${ci.contextOffset}, +${ci.uncompressedSize}) of context ${ci.contextIndex} does not fit it or the chunk`, { value: ci.contextIndex });
    }
    if (ctx.outLen > MAX_ZRAN_OUT_LEN) throw new FormatError(subject, `zran context ${ci.contextIndex} inflates to ${ctx.outLen} bytes, more than ${MAX_ZRAN_OUT_LEN}`, { value: ctx.outLen });
    const key = `${ref.blobIndex}:${ci.contextIndex}`;
    let inflated = this.zranContexts.get(key);
    if (inflated !== undefined) {
      this.zranContexts.delete(key); // most recently used goes last
    } else {
      inflated = this.inflateContext(ref.blobId, ctx, ctx.outLen, meta.dictionaryTable, subject, signal);
      // A failed read is not kept (the next one tries again).
      inflated.catch(() => {
        if (this.zranContexts.get(key) === inflated) this.zranContexts.delete(key);
      });
    }
    if (this.zranCacheSize > 0) {
      this.zranContexts.set(key, inflated);
      while (this.zranContexts.size > this.zranCacheSize) this.zranContexts.delete(this.zranContexts.keys().next().value!);
    }
    try {
      return (await inflated).subarray(ci.contextOffset, end);
    } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      // Damage past this chunk's end must not fail it: inflate just up to its end.
      const own = await this.inflateContext(ref.blobId, ctx, end, meta.dictionaryTable, subject, signal);
      return own.subarray(ci.contextOffset, end);
    }
  }

  /** The first `outLen` inflated bytes of a context: its compressed span read once, inflated from the checkpoint. */
  private async inflateContext(blobId: string, ctx: ZranContext, outLen: number, dictionaryTable: Uint8Array, subject: string, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const input = await this.backend.readRange(blobId, ctx.inOffset, ctx.inLen, signal);
    if (input.byteLength !== ctx.inLen) {
      throw new NydusError('DATA_LOSS', `${subject}: backend returned ${input.byteLength} bytes for [${ctx.inOffset}, +${ctx.inLen})`);
    }
    const window = dictionaryTable.subarray(ctx.dictOffset, ctx.dictOffset + ctx.dictSize);
    const out = Buffer.allocUnsafe(outLen);
    await inflateFromCheckpointAsync(input, { bits: ctx.ctxBits, byte: ctx.ctxByte, window }, out, subject);
    return out;
  }

  /** `data` once its digest (and CRC-32C when present) match the chunk's, when verifying. */
  private verified(ref: ChunkRef, subject: string, data: Uint8Array): Uint8Array {
    if (this.verify) {
      const actual = digestChunk(this.bootstrap.digester, data);
      if (actual !== ref.digest) throw new DigestMismatchError(subject, ref.digest, actual);
      if ((ref.flags & ChunkFlags.HAS_CRC32) !== 0) {
        const crc = crc32c(data) >>> 0;
        if (crc !== ref.crc32 >>> 0) throw new DigestMismatchError(`${subject} (crc32c)`, hex8(ref.crc32), hex8(crc));
      }
    }
    return data;
  }

  /**
   * Bytes `[offset, offset + length)` of a regular file, clipped to its size. Holds the whole
   * result in memory: use `stream` for whole files.
   */
  async read(nid: number, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const slices = this.bootstrap.mapRange(nid, offset, length);
    const total = slices.reduce((n, s) => n + s.length, 0);
    const out = new Uint8Array(total);
    let pos = 0;
    for (let i = 0; i < slices.length; i += READ_CONCURRENCY) {
      const batch = slices.slice(i, i + READ_CONCURRENCY);
      const datas = await Promise.all(batch.map((s) => this.readChunk(s.chunk, signal)));
      batch.forEach((s, j) => {
        out.set(datas[j]!.subarray(s.chunkOffset, s.chunkOffset + s.length), pos);
        pos += s.length;
      });
    }
    return out;
  }

  /** The content of a regular file, one chunk at a time (never the whole file in memory). */
  async *stream(nid: number, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const { size } = this.bootstrap.inode(nid);
    const cs = this.bootstrap.chunkSize;
    for (let off = 0; off < size; off += cs) {
      for (const s of this.bootstrap.mapRange(nid, off, cs)) {
        const data = await this.readChunk(s.chunk, signal);
        yield data.subarray(s.chunkOffset, s.chunkOffset + s.length);
      }
    }
  }
}

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}
