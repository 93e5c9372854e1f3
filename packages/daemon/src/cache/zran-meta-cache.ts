/**
 * The meta of a ZRAN blob whose CI data is in the seekable layout (zstd frames + seek table):
 * at mount only the CCT header, the seek table and the frames of the CI entries and context
 * table are fetched; a context's dictionary frame is fetched on the first read that needs it
 * (one fetch per frame however many readers wait), checked (zstd content checksum, size from the
 * seek table) and kept on disk, so that neither a second read nor a restarted daemon fetches it
 * again. A failed fetch fails the reads waiting for it and is retried by the next read.
 *
 * Files under the cache dir, named by the meta blob's digest (a meta blob belongs to one
 * conversion, so two images with other chunk sizes over the same gzip layer do not collide):
 * `<meta digest>.zran_meta` holds the uncompressed CI data at its offsets (sparse: only fetched
 * frames), `<meta digest>.zran_meta.map` the seek table and CCT header as fetched plus one
 * presence byte per frame. The map is replaced whole (temp file, fsync, rename) and only after
 * the data it marks present was fdatasync'ed, so a crash can forget frames but never marks
 * unwritten (zero) bytes present; a map that does not match the blob is started afresh.
 */
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { FormatError, NydusError, type BlobBackend, type Logger } from '@nydus-ts/core';
import {
  ciFrameRange,
  ciFramesCovering,
  decodeCiFrame,
  fetchSeekableCiLayout,
  parseBlobMetaHead,
  parseSeekableCiTail,
  type BlobInfo,
  type BlobMeta,
  type SeekableCiLayout,
} from '@nydus-ts/format';

const MAP_MAGIC = 'NYTSZMAP';
const MAP_VERSION = 1;
/** magic (8) | version u32 | frame count u32 | tail size u32 | reserved to 32 | tail | presence (1 byte per frame) */
const MAP_HEADER_SIZE = 32;
const MAP_FIELD = { magic: 0, version: 8, frames: 12, tailSize: 16 } as const;

/** Where a ZRAN chunk source gets the dictionary (inflate window) of a context. */
export interface ZranDictionaries {
  /** Starts making context `z`'s dictionary available, so that it comes while the gzip data is fetched. */
  want(z: number): void;
  /** Context `z`'s dictionary. Rejects when it cannot be fetched or fails its checks. */
  get(z: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Dictionaries of a meta fetched whole (the dictionary table is in memory). */
export class ResidentDictionaries implements ZranDictionaries {
  constructor(private readonly meta: BlobMeta) {}

  want(): void {}

  get(z: number): Promise<Uint8Array> {
    const ctx = this.meta.zranContexts[z]!;
    return Promise.resolve(this.meta.dictionaryTable.subarray(ctx.dictOffset, ctx.dictOffset + ctx.dictSize));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export interface ZranMetaCacheOptions {
  backend: BlobBackend;
  /** The daemon's cache dir (work dir). */
  dir: string;
  logger: Logger;
  /** Called with the size of every meta range fetched from the backend. */
  onFetched?: (bytes: number) => void;
}

interface Shared {
  cache: Promise<ZranMetaCache | undefined>;
  refs: number;
}

/** Open caches by data file path: images sharing a meta blob share its fetches. */
const openCaches = new Map<string, Shared>();

export class ZranMetaCache implements ZranDictionaries {
  /** The CI entries and context table (no dictionary table). */
  readonly meta: BlobMeta;
  readonly layout: SeekableCiLayout;
  private readonly present: Uint8Array;
  private readonly inflight = new Map<number, Promise<Uint8Array>>();
  private persisting: Promise<void> = Promise.resolve();
  private dirty = false;
  private persistQueued = false;
  private closed = false;

  private constructor(
    readonly dataPath: string,
    private readonly mapPath: string,
    private readonly data: FileHandle,
    layout: SeekableCiLayout,
    present: Uint8Array,
    meta: BlobMeta | undefined,
    private readonly o: ZranMetaCacheOptions,
  ) {
    this.layout = layout;
    this.present = present;
    this.meta = meta!;
  }

  /**
   * Opens the meta of `blob` lazily, from the cache when it holds the head, else from the
   * backend. Undefined when the blob's CI data is not in the seekable layout (the caller fetches
   * the meta whole). A damaged head or seek table is a FormatError, as a damaged meta blob is.
   */
  static async open(blob: BlobInfo, options: ZranMetaCacheOptions): Promise<ZranMetaCache | undefined> {
    const dataPath = path.join(options.dir, `${blob.entry.metaDigest}.zran_meta`);
    const shared = openCaches.get(dataPath);
    if (shared) {
      shared.refs++;
      const cache = await shared.cache.catch((err: unknown) => {
        shared.refs--;
        throw err;
      });
      if (cache === undefined) shared.refs--;
      return cache;
    }
    const entry: Shared = { cache: ZranMetaCache.create(blob, dataPath, options), refs: 1 };
    openCaches.set(dataPath, entry);
    try {
      const cache = await entry.cache;
      if (cache === undefined) openCaches.delete(dataPath);
      return cache;
    } catch (err) {
      openCaches.delete(dataPath);
      throw err;
    }
  }

  private static async create(blob: BlobInfo, dataPath: string, o: ZranMetaCacheOptions): Promise<ZranMetaCache | undefined> {
    const mapPath = `${dataPath}.map`;
    let layout: SeekableCiLayout | undefined;
    let present: Uint8Array | undefined;
    let data: FileHandle | undefined;
    const saved = await readMap(mapPath).catch(() => undefined);
    if (saved) {
      try {
        layout = parseSeekableCiTail(blob, saved.tail);
        if (layout !== undefined && layout.seekTable.frames.length === saved.present.length) {
          data = await open(dataPath, 'r+');
          present = saved.present;
        }
      } catch (err) {
        o.logger.warn('zran meta cache map does not match its blob: starting afresh', { blob: blob.blobId, error: (err as Error).message });
      }
    }
    if (!data || !layout || !present) {
      layout = await fetchSeekableCiLayout(blob, o.backend, undefined, o.onFetched);
      if (layout === undefined) return undefined;
      await mkdir(o.dir, { recursive: true });
      await rm(mapPath, { force: true });
      data = await open(dataPath, 'w+');
      await data.truncate(layout.header.ciUncompressedSize);
      present = new Uint8Array(layout.seekTable.frames.length);
    }
    const cache = new ZranMetaCache(dataPath, mapPath, data, layout, present, undefined, o);
    try {
      const parts = await Promise.all(Array.from({ length: layout.headFrames }, (_, i) => cache.frame(i)));
      const head = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      (cache as { meta: BlobMeta }).meta = parseBlobMetaHead(head, layout.header, { entry: blob.entry });
    } catch (err) {
      await cache.closeFiles().catch(() => undefined);
      if (saved && err instanceof FormatError && present.some((p) => p === 1)) {
        // A cached head that does not parse (damaged on disk): once more from the registry.
        o.logger.warn('zran meta cache holds a bad head: starting afresh', { blob: blob.blobId, error: err.message });
        await rm(mapPath, { force: true });
        return ZranMetaCache.create(blob, dataPath, o);
      }
      throw err;
    }
    return cache;
  }

  /** Frames this cache holds on disk (for tests and metrics). */
  get framesPresent(): number {
    return this.present.reduce((n, p) => n + p, 0);
  }

  want(z: number): void {
    this.get(z).catch(() => undefined);
  }

  async get(z: number): Promise<Uint8Array> {
    const ctx = this.meta.zranContexts[z];
    if (ctx === undefined) throw new FormatError(`blob ${this.layout.blob.blobId}`, `no zran context ${z}`);
    if (ctx.dictSize === 0) return new Uint8Array(0);
    const start = this.layout.dictionaryTableOffset + ctx.dictOffset;
    const [first, last] = ciFramesCovering(this.layout, start, ctx.dictSize);
    const starts = this.layout.seekTable.decompressedOffsets;
    if (first === last) {
      const f = await this.frame(first);
      return f.subarray(start - starts[first]!, start - starts[first]! + ctx.dictSize);
    }
    const parts = await Promise.all(Array.from({ length: last - first + 1 }, (_, k) => this.frame(first + k)));
    return Buffer.concat(parts).subarray(start - starts[first]!, start - starts[first]! + ctx.dictSize);
  }

  /** The uncompressed bytes of frame `i`: from disk when present, else fetched, checked and stored. */
  private frame(i: number): Promise<Uint8Array> {
    const running = this.inflight.get(i);
    if (running) return running;
    const cached = (): Promise<Uint8Array> =>
      this.readFrame(i).catch((err: Error) => {
        // Short or unreadable on disk: fetched again (presence is only ever a hint to skip the fetch).
        this.o.logger.warn('zran meta cache frame unreadable: fetching it again', { file: this.dataPath, frame: i, error: err.message });
        this.present[i] = 0;
        return this.fetchFrame(i);
      });
    const p = (this.present[i] === 1 ? cached() : this.fetchFrame(i)).finally(() => this.inflight.delete(i));
    this.inflight.set(i, p);
    return p;
  }

  private async readFrame(i: number): Promise<Uint8Array> {
    const size = this.layout.seekTable.frames[i]!.decompressedSize;
    const out = Buffer.allocUnsafe(size);
    const { bytesRead } = await this.data.read(out, 0, size, this.layout.seekTable.decompressedOffsets[i]!);
    if (bytesRead !== size) throw new NydusError('DATA_LOSS', `${this.dataPath}: frame ${i} short (${bytesRead} of ${size} bytes)`);
    return out;
  }

  private async fetchFrame(i: number): Promise<Uint8Array> {
    const { offset, length } = ciFrameRange(this.layout, i);
    const blob = this.layout.blob;
    const raw = await this.o.backend.readRange(blob.entry.metaDigest, offset, length);
    this.o.onFetched?.(raw.byteLength);
    const bytes = decodeCiFrame(this.layout, i, raw);
    if (this.closed) return bytes;
    await this.data.write(bytes, 0, bytes.length, this.layout.seekTable.decompressedOffsets[i]!);
    this.present[i] = 1;
    this.schedulePersist();
    return bytes;
  }

  private schedulePersist(): void {
    this.dirty = true;
    if (this.persistQueued) return;
    this.persistQueued = true;
    this.persisting = this.persisting.then(async () => {
      this.persistQueued = false;
      if (!this.dirty || this.closed) return;
      this.dirty = false;
      try {
        await this.persist();
      } catch (err) {
        this.o.logger.warn('zran meta cache map not written', { file: this.mapPath, error: (err as Error).message });
      }
    });
  }

  /** Makes the data durable, then replaces the map (temp file, fsync, rename). */
  private async persist(): Promise<void> {
    const present = Uint8Array.from(this.present);
    await this.data.datasync();
    const tail = this.layout.tail;
    const out = Buffer.alloc(MAP_HEADER_SIZE + tail.length + present.length);
    out.write(MAP_MAGIC, MAP_FIELD.magic, 'latin1');
    out.writeUInt32LE(MAP_VERSION, MAP_FIELD.version);
    out.writeUInt32LE(present.length, MAP_FIELD.frames);
    out.writeUInt32LE(tail.length, MAP_FIELD.tailSize);
    out.set(tail, MAP_HEADER_SIZE);
    out.set(present, MAP_HEADER_SIZE + tail.length);
    const tmp = `${this.mapPath}.tmp`;
    const f = await open(tmp, 'w');
    try {
      await f.writeFile(out);
      await f.sync();
    } finally {
      await f.close();
    }
    await rename(tmp, this.mapPath);
  }

  /** Releases this user; the last one waits for fetches and the map write, then closes the file. */
  async close(): Promise<void> {
    const shared = openCaches.get(this.dataPath);
    if (shared && --shared.refs > 0) return;
    openCaches.delete(this.dataPath);
    await Promise.allSettled([...this.inflight.values()]);
    await this.persisting;
    if (this.dirty) await this.persist().catch((err: Error) => this.o.logger.warn('zran meta cache map not written', { file: this.mapPath, error: err.message }));
    await this.closeFiles();
  }

  private async closeFiles(): Promise<void> {
    this.closed = true;
    await this.data.close();
  }
}

async function readMap(mapPath: string): Promise<{ tail: Uint8Array; present: Uint8Array } | undefined> {
  const f = await open(mapPath, 'r');
  try {
    const { size } = await f.stat();
    if (size < MAP_HEADER_SIZE || size > 64 << 20) return undefined;
    const bytes = Buffer.alloc(size);
    const { bytesRead } = await f.read(bytes, 0, size, 0);
    if (bytesRead !== size || bytes.toString('latin1', 0, 8) !== MAP_MAGIC || bytes.readUInt32LE(MAP_FIELD.version) !== MAP_VERSION) return undefined;
    const frames = bytes.readUInt32LE(MAP_FIELD.frames);
    const tailSize = bytes.readUInt32LE(MAP_FIELD.tailSize);
    if (MAP_HEADER_SIZE + tailSize + frames !== size) return undefined;
    const present = bytes.subarray(MAP_HEADER_SIZE + tailSize);
    if (present.some((p) => p > 1)) return undefined;
    return { tail: bytes.subarray(MAP_HEADER_SIZE, MAP_HEADER_SIZE + tailSize), present: Uint8Array.from(present) };
  } finally {
    await f.close();
  }
}
