// The persistent, verified chunk cache without FUSE: reads through RafsFilesystem fetch only
// missing chunks (adjacent ones merged), concurrent readers share one fetch, chunks survive a
// restart with zero fetches, bits reach the map file only after a flush, a corrupted chunk is
// refused (EIO), counted and never cached, and two images sharing a blob share its cache.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DigestMismatchError, noopLogger, type BlobBackend } from '@nydus-ts/core';
import { LocalBlobBackend } from '@nydus-ts/backend';
import { createRandom } from '@nydus-ts/testing';
import { BlobCacheFile, BlobCacheManager, FetchScheduler, RafsFilesystem, RafsImage } from '../src/index.js';
import { buildLocalImage } from './support/images.js';

const opened: Array<{ close(): Promise<void> }> = [];

/** A local backend that records every range it serves. */
class RecordingBackend implements BlobBackend {
  readonly reads: Array<{ blobId: string; offset: number; length: number }> = [];
  private readonly inner: LocalBlobBackend;
  constructor(dir: string) {
    this.inner = new LocalBlobBackend(dir);
    opened.push(this);
  }
  async readRange(blobId: string, offset: number, length: number): Promise<Uint8Array> {
    this.reads.push({ blobId, offset, length });
    await new Promise((r) => setTimeout(r, 5)); // a little latency, so that readers overlap
    return this.inner.readRange(blobId, offset, length);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('chunk cache', () => {
  let work: string;
  let src: string;
  let blobDir: string;
  let boot: string;
  let blobId: string;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-cache-'));
    src = path.join(work, 'src');
    await mkdir(path.join(src, 'dir'), { recursive: true });
    const rnd = createRandom(5);
    const add = async (rel: string, data: Buffer): Promise<void> => {
      files.set('/' + rel, data);
      await writeFile(path.join(src, rel), data);
    };
    await add('big.bin', Buffer.concat([rnd.bytes(300_000), Buffer.alloc(200_000, 7), rnd.bytes(150_000)]));
    for (let i = 0; i < 40; i++) await add(`dir/f${String(i).padStart(2, '0')}`, rnd.bytes(1000 + i * 997));
    await add('text.txt', Buffer.from('hello, cache\n'.repeat(1000)));
    blobDir = path.join(work, 'blobs');
    boot = path.join(work, 'image.boot');
    blobId = (await buildLocalImage(src, boot, blobDir, { compressor: 'zstd', chunkSize: '0x10000' })).blobId!;
  }, 120_000);

  afterAll(async () => {
    for (const b of opened) await b.close();
    await rm(work, { recursive: true, force: true });
  });

  async function load(cacheDir: string, backend: BlobBackend, manager = new BlobCacheManager(noopLogger), bootstrap = boot, amplifyIo = 0): Promise<{ image: RafsImage; fs: RafsFilesystem; manager: BlobCacheManager }> {
    const image = await RafsImage.load(bootstrap, { backend, cacheManager: manager, scheduler: new FetchScheduler(), workDir: cacheDir, amplifyIo, id: '/' });
    return { image, fs: new RafsFilesystem(image), manager };
  }

  async function readAll(fs: RafsFilesystem, p: string): Promise<Buffer> {
    const nid = fs.resolve(p);
    const size = fs.getattr(nid).size;
    const out = Buffer.alloc(size);
    for (let at = 0; at < size; at += 128 * 1024) await fs.read(nid, out.subarray(at), at, Math.min(128 * 1024, size - at));
    return out;
  }

  it('reads every file correctly; merges adjacent chunks; a restart re-uses the cache with zero fetches', async () => {
    const cacheDir = path.join(work, 'cache-1');
    const backend = new RecordingBackend(blobDir);
    const { image, fs } = await load(cacheDir, backend);
    for (const [p, data] of files) expect(sha(await readAll(fs, p)), p).toBe(sha(data));
    // big.bin has 10 chunks of 64 KiB; its reads come 128 KiB at a time: 2 chunks per request.
    const fetched = backend.reads.reduce((n, r) => n + r.length, 0);
    expect(backend.reads.length).toBeLessThan(image.cacheMetrics.chunksFetched);
    expect(fetched).toBe(image.cacheMetrics.fetchBytes);
    expect(image.cacheMetrics.digestErrors).toBe(0);
    await image.close();

    const again = new RecordingBackend(blobDir);
    const second = await load(cacheDir, again);
    for (const [p, data] of files) expect(sha(await readAll(second.fs, p)), p).toBe(sha(data));
    expect(again.reads).toEqual([]);
    expect(second.image.cacheMetrics.wholeHits).toBe(second.image.cacheMetrics.total);
    await second.image.close();
  });

  it('concurrent readers of one chunk share a single fetch', async () => {
    const backend = new RecordingBackend(blobDir);
    const { image, fs } = await load(path.join(work, 'cache-2'), backend);
    const results = await Promise.all(Array.from({ length: 16 }, () => readAll(fs, '/big.bin')));
    for (const r of results) expect(sha(r)).toBe(sha(files.get('/big.bin')!));
    const offsets = backend.reads.map((r) => r.offset);
    expect(new Set(offsets).size).toBe(offsets.length);
    expect(image.cacheMetrics.sharedFetches).toBeGreaterThan(0);
    await image.close();
  });

  it('amplification widens an on-demand fetch with the chunks that follow, up to the limit', async () => {
    const backend = new RecordingBackend(blobDir);
    const { image, fs } = await load(path.join(work, 'cache-3'), backend, undefined, boot, 1 << 20);
    expect((await readAll(fs, '/dir/f00')).equals(files.get('/dir/f00')!)).toBe(true);
    expect(backend.reads).toHaveLength(1);
    // The small files were written after each other: one request brought several of them.
    expect(image.cacheMetrics.chunksFetched).toBeGreaterThan(5);
    const before = backend.reads.length;
    expect((await readAll(fs, '/dir/f01')).equals(files.get('/dir/f01')!)).toBe(true);
    expect(backend.reads.length).toBe(before);
    await image.close();
  });

  it('ready bits reach the map file only after the data is flushed', async () => {
    const dir = path.join(work, 'cache-4');
    const file = await BlobCacheFile.open(dir, 'a'.repeat(64), { chunkCount: 20, uncompressedSize: 20 * 4096 });
    const mapBits = async (): Promise<number[]> => [...(await readFile(file.mapPath)).subarray(64)];
    await file.writeChunk(3, 3 * 4096, Buffer.alloc(4096, 1));
    await file.writeChunk(9, 9 * 4096, Buffer.alloc(100, 2));
    expect(file.isReady(3) && file.isReady(9)).toBe(true);
    expect(await mapBits()).toEqual([0, 0, 0]);
    await file.flush();
    expect(await mapBits()).toEqual([0b1000, 0b10, 0]);
    await file.close();
    const reopened = await BlobCacheFile.open(dir, 'a'.repeat(64), { chunkCount: 20, uncompressedSize: 20 * 4096 });
    expect([reopened.isReady(3), reopened.isReady(9), reopened.isReady(4)]).toEqual([true, true, false]);
    const out = Buffer.alloc(100);
    await reopened.readInto(out, 0, 100, 9 * 4096);
    expect(out.equals(Buffer.alloc(100, 2))).toBe(true);
    await reopened.close();
    // A map for another blob shape starts afresh.
    const other = await BlobCacheFile.open(dir, 'a'.repeat(64), { chunkCount: 21, uncompressedSize: 21 * 4096 });
    expect(other.readyChunks).toBe(0);
    await other.close();
  });

  it('a corrupted chunk gives EIO (DigestMismatchError) to its readers, is counted and never cached; other files read fine', async () => {
    const badDir = path.join(work, 'bad-blobs');
    await mkdir(badDir);
    const blob = Buffer.from(await readFile(path.join(blobDir, blobId)));
    // Flip a byte inside big.bin's first chunk (the blob starts with chunk data).
    const probe = await load(path.join(work, 'cache-probe'), new RecordingBackend(blobDir));
    const firstChunk = probe.image.blobs[0]!.table;
    const ci = probe.image.entryCi[probe.image.reader.chunkEntryIndexes(probe.fs.resolve('/big.bin'))[0]!]!;
    blob[firstChunk.compressedOffset[ci]! + 10] ^= 0xff;
    await probe.image.close();
    await writeFile(path.join(badDir, blobId), blob);

    const backend = new RecordingBackend(badDir);
    const { image, fs } = await load(path.join(work, 'cache-5'), backend);
    const nid = fs.resolve('/big.bin');
    await expect(fs.read(nid, Buffer.alloc(4096), 0, 4096)).rejects.toBeInstanceOf(DigestMismatchError);
    expect(image.cacheMetrics.digestErrors).toBe(1);
    expect(image.blobs[0]!.file.isReady(ci)).toBe(false);
    await expect(fs.read(nid, Buffer.alloc(4096), 0, 4096)).rejects.toBeInstanceOf(DigestMismatchError);
    expect(image.cacheMetrics.digestErrors).toBe(2);
    // The rest of the file, and every other file, still read correctly.
    const tail = Buffer.alloc(65536);
    expect(await fs.read(nid, tail, 5 * 65536, 65536)).toBe(65536);
    expect(tail.equals(files.get('/big.bin')!.subarray(5 * 65536, 6 * 65536))).toBe(true);
    for (const [p, data] of files) if (p !== '/big.bin') expect(sha(await readAll(fs, p)), p).toBe(sha(data));
    await image.close();
  });

  it('two images sharing a blob share its cache files and ready chunks', async () => {
    const cacheDir = path.join(work, 'cache-6');
    const manager = new BlobCacheManager(noopLogger);
    const copy = path.join(work, 'copy.boot');
    await writeFile(copy, await readFile(boot));
    const backend = new RecordingBackend(blobDir);
    const a = await load(cacheDir, backend, manager);
    const b = await load(cacheDir, backend, manager, copy);
    expect(a.image.blobs[0]!.file).toBe(b.image.blobs[0]!.file);
    await readAll(a.fs, '/text.txt');
    const n = backend.reads.length;
    expect((await readAll(b.fs, '/text.txt')).equals(files.get('/text.txt')!)).toBe(true);
    expect(backend.reads.length).toBe(n);
    await a.image.close();
    expect((await readAll(b.fs, '/dir/f05')).equals(files.get('/dir/f05')!)).toBe(true);
    await b.image.close();
    // Closed by its last user: the handle is gone.
    const fh = await open(path.join(cacheDir, `${blobId}.chunk_map`), 'r');
    await fh.close();
  });
});
