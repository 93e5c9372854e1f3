import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { CheckpointingGunzip } from '@nydus-ts/native';
import { describe, expect, it } from 'vitest';
import {
  BlobFeatures,
  BootstrapReader,
  ChunkInfoV2Flags,
  RafsFileReader,
  TarRefLocator,
  ZranIndexBuilder,
  attachRefBlobMetas,
  buildRefLayer,
  SeekTableBeyondTail,
  ciFrameRange,
  ciFramesCovering,
  decodeCiFrame,
  decompressChunk,
  parseBlobMetaFile,
  parseBlobMetaHead,
  parseSeekableCiTail,
  parseBlobMetaSection,
} from '../src/index.js';
import { ZRAN_CONTEXT_SIZE, decodeSeekTable, seekTableSizeFromFooter } from '../src/internal.js';
import { mapBackend, pseudoRandomBytes } from './reader-helpers.js';
import { makeZranImage } from './zran-helpers.js';

const run = promisify(execFile);

describe('targz-ref layer builder', () => {
  it('writes the CI data as seekable zstd frames (entries + contexts, then one dictionary each, then the seek table) that one-shot zstd reads whole', async () => {
    const img = await makeZranImage({ fileSizes: [0, 100, 5000, 1_600_000, 300_000, 4096, 900_000], chunkSize: 0x10000 });
    const ciData = parseBlobMetaFile(img.layer.blobMeta!).ciData;
    const reader = await BootstrapReader.open(img.merged);
    const entry = reader.blobs[0]!.entry;
    const region = img.meta.subarray(entry.ciOffset, entry.ciOffset + entry.ciCompressedSize);
    const tableSize = seekTableSizeFromFooter(region)!;
    const table = decodeSeekTable(region.subarray(region.length - tableSize), region.length, 'ci');
    const meta = parseBlobMetaSection(img.meta.subarray(entry.ciOffset, entry.ciOffset + entry.ciCompressedSize + 4096), { entry });
    const contexts = meta.zranContexts.length;
    expect(contexts).toBeGreaterThan(2);
    const dictionaries = meta.zranContexts.filter((z) => z.dictSize > 0).length;
    expect(table.frames.length).toBe(1 + dictionaries);
    expect(table.frames[0]!.decompressedSize).toBe(meta.header.zranOffset + contexts * ZRAN_CONTEXT_SIZE);
    expect(table.decompressedOffsets[table.frames.length]).toBe(ciData.length);
    let d = 0;
    for (const [i, f] of table.frames.entries()) {
      const frame = region.subarray(table.compressedOffsets[i]!, table.compressedOffsets[i + 1]!);
      // Frame header descriptor: Content_Checksum_flag (bit 2) set.
      expect(frame.readUInt32LE(0)).toBe(0xfd2fb528);
      expect(frame[4]! & 0x04).toBe(0x04);
      const out = decompressChunk('zstd', frame, f.decompressedSize, `frame ${i}`);
      expect(Buffer.from(out).equals(ciData.subarray(d, d + f.decompressedSize)), `frame ${i}`).toBe(true);
      if (i > 0) {
        const z = meta.zranContexts.filter((c) => c.dictSize > 0)[i - 1]!;
        expect(meta.header.zranOffset + contexts * ZRAN_CONTEXT_SIZE + z.dictOffset).toBe(d);
        expect(f.decompressedSize).toBe(z.dictSize);
      }
      d += f.decompressedSize;
    }
    // A flipped byte inside a dictionary frame fails that frame's checksum.
    const bad = Buffer.from(region.subarray(table.compressedOffsets[1]!, table.compressedOffsets[2]!));
    bad[bad.length - 2] ^= 0x01;
    expect(() => decompressChunk('zstd', bad, table.frames[1]!.decompressedSize, 'frame 1')).toThrow(/frame 1/);
    // A reader finds the layout from the section's tail, parses the head alone and finds each dictionary's frame.
    const blob = reader.blobs[0]!;
    const sectionEnd = entry.ciOffset + entry.ciCompressedSize + 4096;
    expect(() => parseSeekableCiTail(blob, img.meta.subarray(sectionEnd - 4096 - 20, sectionEnd))).toThrow(SeekTableBeyondTail);
    const layout = parseSeekableCiTail(blob, img.meta.subarray(sectionEnd - 4096 - tableSize, sectionEnd))!;
    expect(layout.headFrames).toBe(1);
    expect(layout.dictionaryTableOffset).toBe(table.frames[0]!.decompressedSize);
    const r0 = ciFrameRange(layout, 0);
    const head = parseBlobMetaHead(decodeCiFrame(layout, 0, img.meta.subarray(r0.offset, r0.offset + r0.length)), layout.header, { entry });
    expect(head.chunks).toEqual(meta.chunks);
    expect(head.zranContexts).toEqual(meta.zranContexts);
    expect(head.dictionaryTable.length).toBe(0);
    for (const z of meta.zranContexts) {
      if (z.dictSize === 0) continue;
      const [first, last] = ciFramesCovering(layout, layout.dictionaryTableOffset + z.dictOffset, z.dictSize);
      expect(last).toBe(first);
      const r = ciFrameRange(layout, first);
      const dict = decodeCiFrame(layout, first, img.meta.subarray(r.offset, r.offset + r.length));
      expect(Buffer.from(dict).equals(meta.dictionaryTable.subarray(z.dictOffset, z.dictOffset + z.dictSize))).toBe(true);
    }
    const r1 = ciFrameRange(layout, 1);
    const flipped = Buffer.from(img.meta.subarray(r1.offset, r1.offset + r1.length));
    flipped[flipped.length >> 1] ^= 0x10;
    expect(() => decodeCiFrame(layout, 1, flipped)).toThrow(/CI frame 1/);
    // The reference nydusd decompresses the whole region at once with libzstd: the zstd tool does the same.
    const dir = await mkdtemp(path.join(tmpdir(), 'zran-seekable-'));
    try {
      await writeFile(path.join(dir, 'ci.zst'), region);
      const { stdout } = await run('zstd', ['-d', '-c', '-q', path.join(dir, 'ci.zst')], { encoding: 'buffer', maxBuffer: 64 << 20 });
      expect(Buffer.compare(stdout, Buffer.from(ciData))).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

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

  it('cuts the windows of the contexts it opens from the output when checkpoints come without them: same tables', () => {
    // Two members of text and random runs; chunks of odd sizes, some crossing step ends.
    const plain = Buffer.concat([pseudoRandomBytes(900_000, 3, true), pseudoRandomBytes(1_500_000, 4, false), pseudoRandomBytes(700_000, 5, true)]);
    const gz = Buffer.concat([gzipSync(plain.subarray(0, 1_000_000)), gzipSync(plain.subarray(1_000_000))]);
    const chunks: [number, number][] = [];
    for (let at = 0, i = 0; at < plain.length; i++) {
      const end = Math.min(plain.length, at + 1000 + ((i * 7919) % 90_000));
      chunks.push([at, end]);
      at = end + (i % 3 === 0 ? 512 : 0);
    }
    /** Inflates in `step`-byte outputs (a ring of 3 buffers when lazy), placing each chunk once its bytes are out. */
    const build = (lazy: boolean, step: number): ZranIndexBuilder => {
      const index = new ZranIndexBuilder();
      const g = new CheckpointingGunzip({ windows: !lazy, maxCheckpointsPerStep: 16 });
      const ring = [0, 1, 2].map(() => Buffer.alloc(step));
      const ends: number[] = [];
      let input = gz.subarray(0);
      let totalIn = 0;
      let totalOut = 0;
      let next = 0;
      for (let turn = 0; ; turn++) {
        const slot = turn % 3;
        if (lazy && ends[slot] !== undefined) index.retireOutput(ends[slot]!);
        const r = g.step(input, ring[slot]!);
        input = input.subarray(r.consumed);
        totalIn += r.consumed;
        totalOut += r.produced;
        ends[slot] = totalOut;
        if (lazy) index.addOutput(ring[slot]!.subarray(0, r.produced));
        for (const c of r.checkpoints) index.addCheckpoint(c);
        index.addProgress(totalIn, totalOut);
        while (next < chunks.length && chunks[next]![1] <= totalOut) index.place(...chunks[next++]!);
        if (r.status === 'member-end') {
          if (input.length === 0) break;
          g.nextMember();
        }
      }
      expect(next).toBe(chunks.length);
      return index;
    };
    // Steps smaller than a window: windows reach back across several retired buffers.
    for (const step of [50_000, 9000, 1 << 20]) {
      const eager = build(false, step);
      expect(eager.contextCount).toBeGreaterThan(3);
      const lazy = build(true, step);
      expect(lazy.contextCount).toBe(eager.contextCount);
      expect(Buffer.from(lazy.tables()).equals(Buffer.from(eager.tables())), `step ${step}`).toBe(true);
    }
  });

  it('refuses checkpoints without a window size, and output retired past what it was given or still needs', () => {
    const index = new ZranIndexBuilder();
    expect(() => index.addCheckpoint({ inOffset: 10, outOffset: 0, bits: 0, byte: 0, member: 0 })).toThrow(/window size/);
    expect(() => index.addCheckpoint({ inOffset: 10, outOffset: 5, bits: 0, byte: 0, member: 0, windowSize: 6 })).toThrow(/window size/);
    index.addOutput(new Uint8Array(100_000));
    expect(() => index.retireOutput(200_000)).toThrow(/only 100000 bytes/);
    expect(() => index.retireOutput(50_000)).toThrow(/not the end/);
    index.addOutput(new Uint8Array(100_000));
    index.retireOutput(100_000);
    // A boundary whose window reaches back past the kept 32 KiB cannot start a context.
    index.addCheckpoint({ inOffset: 5000, outOffset: 150_000, bits: 0, byte: 0, member: 0, windowSize: 32768 });
    index.addCheckpoint({ inOffset: 6000, outOffset: 60_000 + 100_000, bits: 0, byte: 0, member: 0, windowSize: 32768 });
    index.addProgress(7000, 200_000);
    expect(index.place(150_000, 151_000).contextIndex).toBe(0);
    const late = new ZranIndexBuilder();
    late.addOutput(new Uint8Array(100_000));
    late.addOutput(new Uint8Array(100_000));
    late.retireOutput(100_000);
    late.addCheckpoint({ inOffset: 10, outOffset: 50_000, bits: 0, byte: 0, member: 0, windowSize: 32768 });
    late.addProgress(7000, 200_000);
    expect(() => late.place(60_000, 61_000)).toThrow(/no longer/);
  });
});
