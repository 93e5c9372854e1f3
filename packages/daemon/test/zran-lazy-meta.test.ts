// ZRAN metas in the seekable layout (zstd frames + seek table): nydusd-ts fetches at mount only
// the CCT header, the seek table and the frame of the CI entries and contexts; a context's
// dictionary frame on the first read that needs it; keeps the frames in its cache dir across
// restarts; a damaged dictionary frame fails the reads of that context only, and the next read
// after the damage is gone succeeds. Metas without a seek table (single zstd frame as older
// nydus-ts wrote, uncompressed CI as the reference tools' fixture) are fetched whole at mount.
// A real loopback docker-registry, `nydusify-ts convert --oci-ref`, the daemon in its own process.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noopLogger, type BlobBackend, type Digest, type ImageManifest } from '@nydus-ts/core';
import { BootstrapReader, SEEKABLE_TAIL_PROBE_SIZE, ciFrameRange, ciFramesCovering, compressChunk, digestChunk, parseBlobMetaSection, parseSeekableCiTail, type BlobMeta, type SeekableCiLayout } from '@nydus-ts/format';
import { CCT_HEADER_SIZE, CompressionAlgo, decodeCompressionContextHeader, encodeCompressionContextHeader } from '@nydus-ts/format/internal';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { diffTrees, snapshotTree, type TreeSnapshot } from '@nydus-ts/testing';
import { BlobChunkTable, createChunkSource } from '../src/index.js';
import { blobData, fetchBootstrap, nydusify, pushOneLayerImage, registryConfig } from './support/images.js';
import { DaemonScope, forceUnmount, type NydusdProcess } from './support/nydusd-process.js';

const run = promisify(execFile);
const SMALL_FILES = 24;
/** In tar (name) order each small file follows a big one, so that they spread over the contexts. */
const bigName = (i: number): string => `f${String(i).padStart(2, '0')}-a-big.txt`;
const smallName = (i: number): string => `f${String(i).padStart(2, '0')}-b-small.txt`;
const smallText = (name: string): string => `small file ${Number(name.slice(1, 3))}\n`.repeat(5);

interface BlobCacheJson {
  meta_fetch_requests: number;
  meta_fetch_bytes: number;
}

describe('nydusd-ts fetches the dictionaries of a seekable ZRAN meta lazily', () => {
  const daemons = new DaemonScope();
  let work: string;
  let registry: TestRegistry;
  let client: RegistryClient;
  let source: TreeSnapshot;
  let boot: string;
  let reader: BootstrapReader;
  let layerDigest: Digest;
  let metaDigest: string;
  let metaBlob: Buffer;
  let meta: BlobMeta;
  let layout: SeekableCiLayout;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-zran-lazy-'));
    registry = await startRegistry();
    client = new RegistryClient({ registry: registry.host, insecure: true });
    // Hex text (compresses to about half): ~12 MB of tar, ~6.5 MB of gzip, a dozen contexts;
    // small files between the big ones land in different contexts.
    const tree = path.join(work, 'tree');
    await mkdir(tree);
    for (let i = 0; i < SMALL_FILES; i++) {
      await writeFile(path.join(tree, bigName(i)), randomBytes(250_000).toString('hex'));
      await writeFile(path.join(tree, smallName(i)), smallText(smallName(i)));
    }
    const tgz = path.join(work, 'layer.tar.gz');
    await run('tar', ['--numeric-owner', '--sort=name', '-czf', tgz, '-C', tree, '.']);
    source = await snapshotTree(tree);
    layerDigest = await pushOneLayerImage(client, 'src/lazy', await readFile(tgz));
    await nydusify(['convert', '--oci-ref', '--source', `${registry.host}/src/lazy:v1`, '--target', `${registry.host}/zran/lazy:v1`, '--source-insecure', '--target-insecure']);
    boot = path.join(work, 'image.boot');
    const { manifest } = await fetchBootstrap(registry.host, 'zran/lazy', 'v1', boot);
    metaDigest = (manifest as ImageManifest).layers[0]!.digest.slice(7);
    metaBlob = await readFile(blobData(registry, `sha256:${metaDigest}`));
    reader = await BootstrapReader.open(await readFile(boot));
    const blob = reader.blobs[0]!;
    expect(blob.entry.metaDigest).toBe(metaDigest);
    const sectionEnd = blob.entry.ciOffset + blob.entry.ciCompressedSize + CCT_HEADER_SIZE;
    meta = parseBlobMetaSection(metaBlob.subarray(blob.entry.ciOffset, sectionEnd), { entry: blob.entry });
    layout = parseSeekableCiTail(blob, metaBlob.subarray(blob.entry.ciOffset, sectionEnd))!;
    expect(layout).toBeDefined();
    expect(meta.zranContexts.length).toBeGreaterThan(6);
  }, 600_000);

  afterAll(async () => {
    await daemons.cleanup();
    await client?.close();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  }, 120_000);

  async function mount(tag: string, cache: string): Promise<{ d: NydusdProcess; mnt: string }> {
    const dir = path.join(work, tag);
    await mkdir(dir, { recursive: true });
    const config = path.join(dir, 'config.json');
    await writeFile(config, registryConfig(registry.host, 'zran/lazy', cache));
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt, { recursive: true });
    const d = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args: ['--config', config, '--bootstrap', boot] });
    return { d, mnt };
  }

  const cacheMetrics = async (d: NydusdProcess): Promise<BlobCacheJson> => (await d.api('GET', '/api/v1/metrics/blobcache')).json as BlobCacheJson;
  const backendBytes = async (d: NydusdProcess): Promise<number> => ((await d.api('GET', '/api/v1/metrics/backend')).json as { read_amount_total: number }).read_amount_total;

  /** The context of the (one-chunk) small file `name`. */
  function contextOf(name: string): number {
    const chunks = reader.chunks(reader.lookup(`/${name}`)!);
    expect(chunks.length).toBe(1);
    return meta.chunks[chunks[0]!.ciIndex]!.contextIndex;
  }

  /** Compressed size of the frame holding context `z`'s dictionary (one frame per dictionary). */
  function dictionaryFrame(z: number): number {
    const ctx = meta.zranContexts[z]!;
    const [first, last] = ciFramesCovering(layout, layout.dictionaryTableOffset + ctx.dictOffset, ctx.dictSize);
    expect(last).toBe(first);
    return first;
  }

  /** Small files whose context has a dictionary, one per context. */
  function smallFilesByContext(): Map<number, string> {
    const out = new Map<number, string>();
    for (let i = 0; i < SMALL_FILES; i++) {
      const name = smallName(i);
      const z = contextOf(name);
      if (meta.zranContexts[z]!.dictSize > 0 && !out.has(z)) out.set(z, name);
    }
    return out;
  }

  const tableAndHeader = (): number => layout.tail.length;
  const probe = (): number => Math.min(reader.blobs[0]!.entry.ciCompressedSize, SEEKABLE_TAIL_PROBE_SIZE) + CCT_HEADER_SIZE;

  it('mount fetches the tail and the head frame only; a small file fetches its context dictionary only; the tree equals the source; a restart fetches nothing again; a damaged map or cached head is fetched again', async () => {
    const entry = reader.blobs[0]!.entry;
    expect(tableAndHeader()).toBeLessThan(probe());
    const cache = path.join(work, 'cache-a');
    const { d, mnt } = await mount('a', cache);
    const atMount = await cacheMetrics(d);
    const headBytes = layout.seekTable.frames[0]!.compressedSize;
    expect(atMount.meta_fetch_bytes).toBe(probe() + headBytes);
    expect(atMount.meta_fetch_requests).toBe(2);
    expect(atMount.meta_fetch_bytes).toBeLessThan(entry.ciCompressedSize / 4);
    // Nothing else came from the registry (no prefetch configured).
    expect(await backendBytes(d)).toBe(atMount.meta_fetch_bytes);

    const files = smallFilesByContext();
    expect(files.size).toBeGreaterThan(3);
    const [[z, name]] = [...files];
    expect(await readFile(path.join(mnt, name), 'utf8')).toBe(smallText(name));
    const afterOne = await cacheMetrics(d);
    expect(afterOne.meta_fetch_requests - atMount.meta_fetch_requests).toBe(1);
    expect(afterOne.meta_fetch_bytes - atMount.meta_fetch_bytes).toBe(layout.seekTable.frames[dictionaryFrame(z!)]!.compressedSize);

    const served = await snapshotTree(mnt);
    expect(diffTrees(source, served, { ignoreRootMtime: true, ignoreDirNlink: true, ignorePath: (p) => p === '' })).toEqual([]);
    const all = await cacheMetrics(d);
    // Every context read once: the head and every dictionary frame once each, never more.
    const dictionaryFrames = layout.seekTable.frames.slice(layout.headFrames).reduce((n, f) => n + f.compressedSize, 0);
    expect(all.meta_fetch_bytes).toBe(probe() + headBytes + dictionaryFrames);
    expect(await d.stop()).toBe(0);
    expect((await readdir(cache)).sort()).toEqual(expect.arrayContaining([`${metaDigest}.zran_meta`, `${metaDigest}.zran_meta.map`]));

    // Restarted on the same cache: no meta byte fetched, at mount or for any read.
    const again = await mount('a2', cache);
    expect((await cacheMetrics(again.d)).meta_fetch_bytes).toBe(0);
    const served2 = await snapshotTree(again.mnt);
    expect(diffTrees(source, served2, { ignoreRootMtime: true, ignoreDirNlink: true, ignorePath: (p) => p === '' })).toEqual([]);
    expect((await cacheMetrics(again.d)).meta_fetch_bytes).toBe(0);
    expect(await again.d.stop()).toBe(0);

    // A damaged map is started afresh (fetched again), never trusted into zero dictionaries.
    await writeFile(path.join(cache, `${metaDigest}.zran_meta.map`), 'garbage');
    await rm(path.join(cache, `${entry.blobId}.blob.data`));
    await rm(path.join(cache, `${entry.blobId}.chunk_map`));
    const third = await mount('a3', cache);
    expect((await cacheMetrics(third.d)).meta_fetch_bytes).toBe(probe() + headBytes);
    expect(await readFile(path.join(third.mnt, name), 'utf8')).toBe(smallText(name));
    expect(await third.d.stop()).toBe(0);

    // A cached head damaged on disk (the map intact) is fetched again, not mounted.
    const cached = await readFile(path.join(cache, `${metaDigest}.zran_meta`));
    cached.fill(0xff, 0, 64);
    await writeFile(path.join(cache, `${metaDigest}.zran_meta`), cached);
    const fourth = await mount('a4', cache);
    expect((await cacheMetrics(fourth.d)).meta_fetch_bytes).toBe(probe() + headBytes);
    expect(await readFile(path.join(fourth.mnt, name), 'utf8')).toBe(smallText(name));
    expect(await fourth.d.stop()).toBe(0);
  }, 600_000);

  it('concurrent readers of one context share one fetch of its window; after kill -9 a restarted daemon serves the same bytes', async () => {
    // Every file whose chunks all lie in one context with a window.
    const byContext = new Map<number, string[]>();
    for (const [rel, node] of source.nodes) {
      if (node.type !== 'file' || node.size === 0) continue;
      const contexts = new Set(reader.chunks(reader.lookup(`/${rel}`)!).map((c) => meta.chunks[c.ciIndex]!.contextIndex));
      if (contexts.size !== 1) continue;
      const [z] = contexts;
      if (meta.zranContexts[z!]!.dictSize === 0) continue;
      byContext.set(z!, [...(byContext.get(z!) ?? []), rel]);
    }
    const [z, names] = [...byContext].sort((a, b) => b[1].length - a[1].length)[0]!;
    expect(names.length).toBeGreaterThan(1);
    const cache = path.join(work, 'cache-c');
    const { d, mnt } = await mount('c', cache);
    const atMount = await cacheMetrics(d);
    const reads = await Promise.all([...names, ...names].map((n) => readFile(path.join(mnt, n))));
    reads.forEach((got, i) => expect(createHash('sha256').update(got).digest('hex'), names[i % names.length]).toBe(source.nodes.get(names[i % names.length]!)!.sha256));
    const after = await cacheMetrics(d);
    expect(after.meta_fetch_requests - atMount.meta_fetch_requests).toBe(1);
    expect(after.meta_fetch_bytes - atMount.meta_fetch_bytes).toBe(layout.seekTable.frames[dictionaryFrame(z)]!.compressedSize);

    // Killed without a chance to flush: whatever the cache kept, the next daemon serves the source's bytes.
    await snapshotTree(mnt);
    expect(await d.stop('SIGKILL')).toBe(null);
    await forceUnmount(mnt);
    const again = await mount('c2', cache);
    const served = await snapshotTree(again.mnt);
    expect(diffTrees(source, served, { ignoreRootMtime: true, ignoreDirNlink: true, ignorePath: (p) => p === '' })).toEqual([]);
    expect((await cacheMetrics(again.d)).meta_fetch_bytes).toBeLessThanOrEqual(reader.blobs[0]!.entry.ciCompressedSize + CCT_HEADER_SIZE);
    expect(await again.d.stop()).toBe(0);
  }, 600_000);

  it('a damaged dictionary frame gives EIO for the files of its context only; the next read after the damage is gone succeeds', async () => {
    const files = smallFilesByContext();
    const [bad, badName] = [...files][1]!;
    const frame = dictionaryFrame(bad);
    const { offset, length } = ciFrameRange(layout, frame);
    const storage = blobData(registry, `sha256:${metaDigest}`);
    const damaged = Buffer.from(metaBlob);
    damaged[offset + (length >> 1)] ^= 0x20;
    await writeFile(storage, damaged);
    try {
      const { d, mnt } = await mount('b', path.join(work, 'cache-b'));
      let ok = 0;
      for (const [z, name] of files) {
        if (z === bad) {
          await expect(readFile(path.join(mnt, name)), name).rejects.toMatchObject({ code: 'EIO' });
        } else {
          expect(await readFile(path.join(mnt, name), 'utf8'), name).toBe(smallText(name));
          ok++;
        }
      }
      expect(ok).toBe(files.size - 1);
      // Other files of the damaged context fail too; files of other contexts do not.
      const big = reader.chunks(reader.lookup(`/${bigName(Number(badName.slice(1, 3)))}`)!);
      if (big.every((c) => meta.chunks[c.ciIndex]!.contextIndex === bad)) {
        await expect(readFile(path.join(mnt, bigName(Number(badName.slice(1, 3)))))).rejects.toMatchObject({ code: 'EIO' });
      }
      await writeFile(storage, metaBlob);
      expect(await readFile(path.join(mnt, badName), 'utf8')).toBe(smallText(badName));
      expect(await d.stop()).toBe(0);
    } finally {
      await writeFile(storage, metaBlob);
    }
  }, 600_000);

  it('metas without a seek table (one zstd frame, or uncompressed CI as the reference tools write) are fetched whole and read the same chunks', async () => {
    const blob = reader.blobs[0]!;
    const entry = blob.entry;
    const original = await readFile(blobData(registry, layerDigest));
    const header = decodeCompressionContextHeader(metaBlob.subarray(entry.ciOffset + entry.ciCompressedSize), 0);
    for (const kind of ['zstd', 'none'] as const) {
      // The meta blob rewritten with its CI data as one frame / stored raw: CI section only.
      const ci = kind === 'zstd' ? compressChunk('zstd', meta.ciData) : meta.ciData;
      const algo = kind === 'zstd' ? CompressionAlgo.zstd : CompressionAlgo.none;
      const cct = encodeCompressionContextHeader({ ...header, ciCompressor: algo, ciCompressedSize: ci.length });
      const rewritten = Buffer.concat([ci, cct]);
      const digest = createHash('sha256').update(rewritten).digest('hex');
      const table = BlobChunkTable.fromBootstrap(reader).tables[0]!;
      const rewrittenBlob = { ...blob, entry: { ...entry, ciCompressor: algo, ciOffset: 0, ciCompressedSize: ci.length, metaDigest: digest, metaSize: rewritten.length } };
      Object.assign(table, { blob: rewrittenBlob });
      const served: Record<string, Uint8Array> = { [digest]: rewritten, [entry.blobId]: original };
      const backend: BlobBackend = { readRange: (id, offset, length) => Promise.resolve(served[id]!.subarray(offset, offset + length)) };
      const cacheDir = path.join(work, `eager-${kind}`);
      let fetched = 0;
      const chunkSource = await createChunkSource(table, { backend, logger: noopLogger, cacheDir, onMetaFetched: (n) => (fetched += n) });
      try {
        // A zstd CI section is probed for a seek table first (its tail), then fetched whole.
        expect(fetched).toBe(rewritten.length + (kind === 'zstd' ? Math.min(ci.length, SEEKABLE_TAIL_PROBE_SIZE) + CCT_HEADER_SIZE : 0));
        await expect(readdir(cacheDir)).rejects.toMatchObject({ code: 'ENOENT' });
        const wanted = [...table.byCompressedOffset];
        const units = chunkSource.plan(wanted, { mergeLimit: 4 << 20, amplifyTo: 0, isSettled: () => false });
        let checked = 0;
        for (const unit of units) {
          for (const c of await chunkSource.decode(unit, original.subarray(unit.offset, unit.offset + unit.length))) {
            expect(c.error).toBeUndefined();
            expect(digestChunk(reader.digester, c.data!), `${kind} chunk ${c.ci}`).toBe(table.digestHex(c.ci));
            checked++;
          }
        }
        expect(checked).toBe(wanted.length);
      } finally {
        await chunkSource.close?.();
      }
    }
  }, 300_000);
});
