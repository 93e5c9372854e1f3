/**
 * The persistent cache of one blob, shared by every image that uses the blob (opened by blob
 * id): `<work_dir>/<blob id>.blob.data` holds verified chunks at their uncompressed (4 KiB
 * aligned) offsets, a sparse file of the blob's uncompressed size; `<blob id>.chunk_map` holds
 * one ready bit per CI index after a 64-byte header. Bits reach the map file only after the data
 * they cover was written and `fdatasync`ed, so a crash can lose the last chunks but never marks
 * unwritten data ready. In memory a chunk is ready as soon as its bytes are written (readers go
 * through the page cache).
 */
import { read as fsRead, write as fsWrite } from 'node:fs';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { NydusError, noopLogger, type Logger } from '@nydus-ts/core';

const MAP_MAGIC = 'NYTSCMAP';
const MAP_VERSION = 1;
/** magic (8) | version u32 | chunk count u32 | uncompressed size u64 | reserved to 64. */
const MAP_HEADER_SIZE = 64;
const MAP_FIELD = { magic: 0, version: 8, chunkCount: 12, uncompressedSize: 16 } as const;
/** How long written chunks wait before a flush makes them durable (batched fdatasync). */
const FLUSH_DELAY_MS = 250;

export interface BlobCacheFileOptions {
  chunkCount: number;
  uncompressedSize: number;
  logger?: Logger;
}

export class BlobCacheFile {
  readonly blobId: string;
  readonly dataPath: string;
  readonly mapPath: string;
  readonly chunkCount: number;
  readonly uncompressedSize: number;
  /** Chunks being fetched: CI index → settles when the chunk is ready (or failed). */
  readonly inflight = new Map<number, Promise<void>>();
  private readonly ready: Uint8Array;
  /** The map file's bits: a subset of `ready` (durable chunks only). */
  private readonly durable: Uint8Array;
  private readyCount = 0;
  /** Ready in memory but not yet durable. */
  private pending: number[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly logger: Logger;

  private constructor(blobId: string, dir: string, private readonly data: FileHandle, private readonly map: FileHandle, bits: Uint8Array, options: BlobCacheFileOptions) {
    this.blobId = blobId;
    this.dataPath = path.join(dir, `${blobId}.blob.data`);
    this.mapPath = path.join(dir, `${blobId}.chunk_map`);
    this.chunkCount = options.chunkCount;
    this.uncompressedSize = options.uncompressedSize;
    this.ready = bits;
    this.durable = Uint8Array.from(bits);
    for (let ci = 0; ci < this.chunkCount; ci++) if (this.isReady(ci)) this.readyCount++;
    this.logger = options.logger ?? noopLogger;
  }

  /**
   * Opens (or creates) the cache files of `blobId` under `dir`. A map whose header does not
   * match the blob (another chunk count or size, another format) is started afresh.
   */
  static async open(dir: string, blobId: string, options: BlobCacheFileOptions): Promise<BlobCacheFile> {
    if (!/^[0-9a-zA-Z_.-]+$/.test(blobId) || blobId.startsWith('.')) throw new NydusError('INVALID_ARGUMENT', `blob id "${blobId}" cannot name a cache file`);
    await mkdir(dir, { recursive: true });
    const dataPath = path.join(dir, `${blobId}.blob.data`);
    const mapPath = path.join(dir, `${blobId}.chunk_map`);
    const bitmapBytes = Math.ceil(options.chunkCount / 8);
    let bits = new Uint8Array(bitmapBytes);
    let map = await open(mapPath, 'r+').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    let data = map ? await open(dataPath, 'r+').catch(() => undefined) : undefined;
    if (map && data) {
      const header = Buffer.alloc(MAP_HEADER_SIZE + bitmapBytes);
      const { bytesRead } = await map.read(header, 0, header.length, 0);
      const valid =
        bytesRead === header.length &&
        header.toString('latin1', MAP_FIELD.magic, MAP_FIELD.magic + 8) === MAP_MAGIC &&
        header.readUInt32LE(MAP_FIELD.version) === MAP_VERSION &&
        header.readUInt32LE(MAP_FIELD.chunkCount) === options.chunkCount &&
        Number(header.readBigUInt64LE(MAP_FIELD.uncompressedSize)) === options.uncompressedSize &&
        (await data.stat()).size === options.uncompressedSize;
      if (valid) bits = Uint8Array.from(header.subarray(MAP_HEADER_SIZE));
      else {
        options.logger?.warn('cache files do not match the blob: starting them afresh', { blob: blobId });
        await map.close();
        await data.close();
        map = undefined;
        data = undefined;
      }
    } else {
      await map?.close();
      await data?.close();
      map = undefined;
      data = undefined;
    }
    if (!map || !data) {
      // A fresh pair: the data file first (sparse, full size), then the map under a temporary
      // name, renamed into place so a reader never sees a half-written header.
      data = await open(dataPath, 'w+');
      await data.truncate(options.uncompressedSize);
      const header = Buffer.alloc(MAP_HEADER_SIZE + bitmapBytes);
      header.write(MAP_MAGIC, MAP_FIELD.magic, 'latin1');
      header.writeUInt32LE(MAP_VERSION, MAP_FIELD.version);
      header.writeUInt32LE(options.chunkCount, MAP_FIELD.chunkCount);
      header.writeBigUInt64LE(BigInt(options.uncompressedSize), MAP_FIELD.uncompressedSize);
      const tmp = `${mapPath}.tmp-${process.pid}`;
      const fh = await open(tmp, 'w');
      try {
        await fh.write(header, 0, header.length, 0);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      await rename(tmp, mapPath);
      map = await open(mapPath, 'r+');
      bits = new Uint8Array(bitmapBytes);
    }
    return new BlobCacheFile(blobId, dir, data, map, bits, options);
  }

  isReady(ci: number): boolean {
    return (this.ready[ci >>> 3]! & (1 << (ci & 7))) !== 0;
  }

  get readyChunks(): number {
    return this.readyCount;
  }

  /** Every chunk ready. */
  get complete(): boolean {
    return this.readyCount >= this.chunkCount;
  }

  /** Writes a verified chunk at its uncompressed offset and marks it ready (durable after the next flush). */
  async writeChunk(ci: number, uncompressedOffset: number, bytes: Uint8Array): Promise<void> {
    if (this.closed) throw new NydusError('CANCELLED', `cache of blob ${this.blobId} is closed`);
    let done = 0;
    while (done < bytes.byteLength) {
      done += await writeAt(this.data.fd, bytes, done, bytes.byteLength - done, uncompressedOffset + done);
    }
    if (!this.isReady(ci)) {
      this.ready[ci >>> 3]! |= 1 << (ci & 7);
      this.readyCount++;
      this.pending.push(ci);
      this.scheduleFlush();
    }
  }

  /** Reads `length` bytes at `position` of the uncompressed view into `target` at `targetOffset`. */
  async readInto(target: Uint8Array, targetOffset: number, length: number, position: number): Promise<void> {
    let done = 0;
    while (done < length) {
      const n = await readAt(this.data.fd, target, targetOffset + done, length - done, position + done);
      if (n === 0) throw new NydusError('DATA_LOSS', `cache of blob ${this.blobId}: short read at ${position + done}`);
      done += n;
    }
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== undefined || this.closed) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flush().catch((err: unknown) => this.logger.error('cache flush failed', { blob: this.blobId, error: (err as Error).message }));
    }, FLUSH_DELAY_MS);
    this.flushTimer.unref();
  }

  /** Makes every chunk written so far durable: fdatasync the data, then record their bits. */
  flush(): Promise<void> {
    this.flushing = this.flushing.catch(() => undefined).then(async () => {
      if (this.pending.length === 0) return;
      const batch = this.pending;
      this.pending = [];
      try {
        await this.data.datasync();
        for (const ci of batch) this.durable[ci >>> 3]! |= 1 << (ci & 7);
        await this.map.write(this.durable, 0, this.durable.byteLength, MAP_HEADER_SIZE);
      } catch (err) {
        this.pending.push(...batch);
        throw err;
      }
    });
    return this.flushing;
  }

  /** Flushes and closes the files; in-flight fetches fail from here on. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      await this.data.close();
      await this.map.close();
    }
  }

  /** Removes both cache files of a blob (the next open starts empty). */
  static async remove(dir: string, blobId: string): Promise<void> {
    await rm(path.join(dir, `${blobId}.chunk_map`), { force: true });
    await rm(path.join(dir, `${blobId}.blob.data`), { force: true });
  }
}

function writeAt(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fsWrite(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

function readAt(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fsRead(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}
