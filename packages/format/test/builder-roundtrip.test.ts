// buildLayer output read back through the reader (BootstrapReader + RafsFileReader, digests and
// CRCs verified), for every compressor × digester, with and without an inlined bootstrap.
import { describe, expect, it } from 'vitest';
import { BootstrapReader, CHUNK_COMPRESSORS, CHUNK_DIGESTERS, RafsFileReader, bufferSource, compressChunk, extractBlobSection, parseBlobMetaFile, readBlobMeta, readBlobToc, type BlobBackend, type LayerEntry } from '../src/index.js';
import { TocNames } from '../src/internal.js';
import { E, build, prng, sha256 } from './builder-helpers.js';

function memoryBackend(blobs: Record<string, Uint8Array>): BlobBackend {
  return {
    async readRange(blobId, offset, length) {
      const b = blobs[blobId];
      if (b === undefined) throw new Error(`unknown blob ${blobId}`);
      return b.subarray(offset, offset + length);
    },
  };
}

const contents = new Map<string, Buffer>([
  ['text/compressible', prng(600_000, 1, true)],
  ['text/small', Buffer.from('hello world\n')],
  ['bin/random', prng(300_001, 2)],
  ['bin/exact-chunk', prng(65536, 3, true)],
  ['bin/dup-of-random', prng(300_001, 2)],
  ['empty', Buffer.alloc(0)],
  ['zeros', Buffer.alloc(200_000)],
]);

const entries = (): LayerEntry[] => [
  ...[...contents].map(([p, c], i) => E.file(p, c, { pieceSize: [1, 4096, 65536, 100_003][i % 4]! * 7 })),
  E.symlink('text/link', 'small'),
  E.hardlink('bin/hard', 'bin/random'),
  E.dir('text', { mode: 0o711, uid: 7 }),
];

describe('buildLayer → BootstrapReader/RafsFileReader round trip', () => {
  for (const compressor of CHUNK_COMPRESSORS) {
    for (const digester of CHUNK_DIGESTERS) {
      for (const inlineBootstrap of [false, true]) {
        it(`${compressor} × ${digester}${inlineBootstrap ? ' (inlined bootstrap)' : ''}`, async () => {
          const r = await build(entries, { compressor, digester, chunkSize: 65536, inlineBootstrap });
          const reader = await BootstrapReader.open(r.bootstrap);
          expect(reader.digester).toBe(digester);
          expect(reader.compressor).toBe(compressor);
          expect(reader.blobs.map((b) => b.blobId)).toEqual([r.blob!.id]);
          const blobs = { [r.blob!.id]: r.blobBytes };

          // The blob's own metadata agrees with the bootstrap.
          const src = bufferSource(r.blobBytes);
          const entry = reader.blobs[0]!.entry;
          const meta = await readBlobMeta(src, entry);
          expect(meta.chunks.length).toBe(r.blob!.chunkCount);
          expect(parseBlobMetaFile(r.blobMeta!, { entry }).chunks).toEqual(meta.chunks);
          reader.attachBlobMeta(0, meta);
          const toc = await readBlobToc(src, { offset: r.blobBytes.length - entry.tocSize, size: entry.tocSize, digest: entry.tocDigest });
          expect(toc.entries.map((e) => e.name)).toEqual(['image.blob', 'blob.meta', 'blob.meta.header', 'blob.digest', ...(inlineBootstrap ? ['image.boot'] : [])]);
          const digests = await extractBlobSection(src, toc, TocNames.DIGEST);
          expect(digests.length).toBe(32 * r.blob!.chunkCount);
          const data = await extractBlobSection(src, toc, TocNames.BLOB);
          expect(data.length).toBe(r.blob!.compressedDataSize);
          if (inlineBootstrap) {
            const inner = await BootstrapReader.open(await extractBlobSection(src, toc, TocNames.BOOTSTRAP));
            expect(inner.blobs[0]!.blobId).toBe('x'.repeat(64));
            expect([...inner.walk()].map((w) => w.path)).toEqual([...reader.walk()].map((w) => w.path));
          }

          const files = new RafsFileReader(reader, memoryBackend(blobs), { verify: true });
          const seen = new Map<string, string>();
          for (const w of reader.walk()) {
            if (w.inode.type !== 'file') continue;
            const parts: Uint8Array[] = [];
            for await (const p of files.stream(w.nid)) parts.push(p);
            seen.set(w.path.slice(1), sha256(Buffer.concat(parts)));
          }
          for (const [p, c] of contents) expect(seen.get(p), p).toBe(sha256(c));
          expect(seen.get('bin/hard')).toBe(sha256(contents.get('bin/random')!));
          expect(reader.readlink(reader.lookup('/text/link')!)).toBe('small');
          expect(reader.inode(reader.lookup('/text')!)).toMatchObject({ mode: 0o40711, uid: 7 });
          expect(reader.inode(reader.lookup('/bin/hard')!).nlink).toBe(2);
          // A random slice through the middle of a multi-chunk file.
          const mid = await files.read(reader.lookup('/text/compressible')!, 65_000, 140_000);
          expect(Buffer.from(mid).equals(contents.get('text/compressible')!.subarray(65_000, 205_000))).toBe(true);
        });
      }
    }
  }
});

describe('zstd chunks compressed off-thread', () => {
  it('land in the blob in the order they were cut, with the bytes of inline compression', async () => {
    // Big chunks (off-thread) interleaved with small files (inline, but queued behind them) and
    // a chunk that does not shrink (stored raw); chunk size 64 KiB so that many jobs overlap.
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 24; i++) {
      files.set(`big/${i}`, prng(150_000 + i * 4099, 100 + i, i % 3 !== 0));
      files.set(`small/${i}`, prng(100 + i * 37, 200 + i, true));
    }
    const built = await build(() => [...files].map(([p, c]) => E.file(p, c)), { compressor: 'zstd', chunkSize: 64 << 10 });
    const reader = await BootstrapReader.open(built.bootstrap);
    let expectedOffset = 0;
    const seen = new Set<number>();
    for (const [path, content] of files) {
      const nid = reader.lookup(`/${path}`)!;
      for (const ref of reader.chunks(nid)) {
        const data = content.subarray(ref.fileOffset, ref.fileOffset + ref.uncompressedSize);
        const inline = compressChunk('zstd', data);
        const stored = built.blobBytes.subarray(ref.compressedOffset, ref.compressedOffset + ref.compressedSize);
        expect(ref.compressed).toBe(inline !== data);
        expect(Buffer.compare(stored, inline === data ? data : inline), `${path} @${ref.fileOffset}`).toBe(0);
        if (!seen.has(ref.compressedOffset)) {
          // Each new chunk follows the previous one directly: placement in add order.
          expect(ref.compressedOffset).toBe(expectedOffset);
          expectedOffset += ref.compressedSize;
          seen.add(ref.compressedOffset);
        }
      }
    }
    expect(built.stats.compressedBytes).toBe(expectedOffset);
  });
});
