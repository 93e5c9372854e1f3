import { describe, expect, it } from 'vitest';
import {
  BlobFeatures,
  BootstrapReader,
  ChunkInfoV2Flags,
  RafsFileReader,
  TarRefLocator,
  attachRefBlobMetas,
  buildRefLayer,
  parseBlobMetaFile,
} from '../src/index.js';
import { mapBackend, pseudoRandomBytes } from './reader-helpers.js';
import { makeZranImage } from './zran-helpers.js';

describe('targz-ref layer builder', () => {
  it('indexes chunks into inflate contexts spaced as spec §4.1 says, and reads every file back', async () => {
    const img = await makeZranImage({ fileSizes: [0, 100, 5000, 1_600_000, 300_000, 4096, 900_000], chunkSize: 0x10000, duplicate: true });
    const { layer } = img;
    const meta = parseBlobMetaFile(layer.blobMeta!);
    // 1.6 MB of random data: several contexts, each starting at a checkpoint.
    expect(meta.zranContexts.length).toBeGreaterThan(2);
    expect(meta.header.zranCount).toBe(meta.zranContexts.length);
    expect(meta.header.zranOffset).toBe(meta.chunks.length * 24);
    for (const [i, z] of meta.zranContexts.entries()) {
      expect(z.dictSize).toBeLessThanOrEqual(32768);
      if (i > 0) {
        const prev = meta.zranContexts[i - 1]!;
        expect(z.outOffset).toBeGreaterThan(prev.outOffset);
        // A context spans no more than 2 MiB of inflated data (plus the chunk that closes it).
        expect(prev.outLen).toBeLessThanOrEqual((2 << 20) + 0x10000);
      }
    }
    for (const c of meta.chunks) {
      expect(c.flags & ChunkInfoV2Flags.ZRAN).not.toBe(0);
      expect(c.compressed).toBe(true);
    }
    // In-layer dedup: the duplicate file adds no chunk.
    expect(layer.stats.dedupChunks).toBeGreaterThan(0);
    expect(layer.chunkCount).toBe(layer.stats.chunks - layer.stats.dedupChunks);

    const reader = await BootstrapReader.open(img.merged);
    expect(reader.blobs[0]!.features & BlobFeatures.ZRAN).not.toBe(0);
    const backend = mapBackend({ [img.digest]: img.original, [layer.metaBlob.id]: img.meta });
    expect(await attachRefBlobMetas(reader, backend)).toBe(1);
    const files = new RafsFileReader(reader, backend);
    for (const [name, data] of img.files) {
      const nid = reader.lookup(`/${name}`)!;
      expect(Buffer.from(await files.read(nid, 0, data.length)).equals(data), name).toBe(true);
      if (data.length > 10) expect(Buffer.from(await files.read(nid, 7, 3)).equals(data.subarray(7, 10))).toBe(true);
    }
  });

  it('a tar-ref layer places chunks at their source offsets, without contexts', async () => {
    const data = pseudoRandomBytes(10_000, 9);
    const original = Buffer.concat([Buffer.alloc(512), data]);
    const written: Uint8Array[] = [];
    const layer = await buildRefLayer(
      (async function* () {
        yield { path: 'x', type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime: 0, size: data.length, dataOffset: 512, content: (async function* () { yield data; })() };
      })(),
      { write: async (b) => void written.push(b) },
      { blobId: 'ab'.repeat(32), sourceSize: original.length, locator: new TarRefLocator(), chunkSize: 4096 },
    );
    const meta = parseBlobMetaFile(layer.blobMeta!);
    expect(meta.zranContexts).toEqual([]);
    expect(meta.chunks.map((c) => [c.compressedOffset, c.compressedSize, c.compressed])).toEqual([
      [512, 4096, false],
      [512 + 4096, 4096, false],
      [512 + 8192, 10_000 - 8192, false],
    ]);
    const reader = await BootstrapReader.open(layer.bootstrap);
    expect(reader.blobs[0]!.compressor).toBe('none');
    expect(reader.blobs[0]!.features & BlobFeatures.SEPARATE).not.toBe(0);
  });

  it('refuses entries without a source offset and bad options', async () => {
    const entries = (async function* () {
      yield { path: 'x', type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 3, content: (async function* () { yield new Uint8Array(3); })() };
    })();
    await expect(buildRefLayer(entries, { write: async () => undefined }, { blobId: 'ab'.repeat(32), sourceSize: 1, locator: new TarRefLocator() })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(buildRefLayer((async function* () {})(), { write: async () => undefined }, { blobId: 'nope', sourceSize: 1, locator: new TarRefLocator() })).rejects.toThrow(/blobId/);
  });
});
