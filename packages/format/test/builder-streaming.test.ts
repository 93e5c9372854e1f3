// The builder's memory-saving paths give the same bytes as the plain ones: the bootstrap
// streamed in pieces (bootstrapSink / writeBootstrapTo) and output slabs reused for sinks that
// release what they were given.
import { describe, expect, it } from 'vitest';
import { BootstrapReader, buildLayer, type LayerEntry } from '../src/index.js';
import { S_IFDIR, S_IFLNK, S_IFREG, writeBootstrap, writeBootstrapTo } from '../src/internal.js';
import { ChunkStore, FsTree, K_DIR, K_FILE, K_SYMLINK, SECOND_STORE, type TreeBlob } from '../src/builder/tree.js';
import { E, MemorySink, build, fromArray, prng, treeBlob } from './builder-helpers.js';

/** A sink that copies what it is given and says so (the builder may then reuse its buffers). */
class CopyingSink {
  readonly releasesOnResolve = true;
  readonly parts: Buffer[] = [];
  readonly seen = new Set<ArrayBufferLike>();
  reusedBuffers = 0;
  async write(bytes: Uint8Array): Promise<void> {
    if (this.seen.has(bytes.buffer)) this.reusedBuffers++;
    this.seen.add(bytes.buffer);
    this.parts.push(Buffer.from(bytes));
    await new Promise((r) => setImmediate(r));
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A tree with every placement kind, big directories and 3,000 chunks in two stores. */
function sampleTree(): { tree: FsTree; blobs: TreeBlob[] } {
  const own = treeBlob('a'.repeat(64), 2000);
  const other = treeBlob('b'.repeat(64), 1000);
  const store = new ChunkStore([own]);
  const foreign = new ChunkStore([other], true);
  for (let i = 0; i < 2000; i++) {
    store.stageDigest((i * 7919).toString(16).padStart(64, 'c'));
    store.add(1, 1000, 0x10000, i * 1000, i * 0x10000, 0, i, true);
  }
  const hex = (i: number): string => (i * 104729).toString(16).padStart(64, 'd');
  for (let i = 0; i < 1000; i++) foreign.addForeign({ digest: hex(i), flags: 0, compressedSize: 0x10000, uncompressedSize: 0x10000, compressedOffset: i * 0x10000, uncompressedOffset: i * 0x10000, fileOffset: 0, crc32: 0 }, 0, i);
  const tree = new FsTree([store, foreign]);
  const dir = (ns: number, name: string): number => tree.put(ns, name, tree.addInode(K_DIR, S_IFDIR | 0o755, 0, 0, 1, 0, 0, 0, null, null));
  let chunk = 0;
  for (let d = 0; d < 6; d++) {
    const dn = dir(tree.nodeNs[tree.root]!, `dir${d}`);
    const ns = tree.nodeNs[dn]!;
    for (let f = 0; f < 500; f++) {
      const name = `${'n'.repeat((f * 37) % 200)}file-${f}`;
      const xattrs = f % 5 === 0 ? new Map([[`user.k${f}`, prng(f % 300, f)]]) : null;
      const chunks = f % 3;
      const inode = tree.addInode(K_FILE, S_IFREG | 0o644, f, d, 1_700_000_000 + f, f, chunks * 0x10000, 0, null, xattrs);
      tree.beginChunks(inode);
      for (let c = 0; c < chunks; c++, chunk++) tree.pushChunkRef(inode, chunk % 3 === 0 ? SECOND_STORE + (chunk % 1000) : chunk % 2000);
      tree.put(ns, name, inode);
      if (f % 50 === 0) tree.put(ns, `${name}.link`, inode); // hardlink
      if (f % 7 === 0) tree.put(ns, `sym${f}`, tree.addInode(K_SYMLINK, S_IFLNK | 0o777, 0, 0, 0, 0, 0, 0, Buffer.from('t'.repeat(f * 9 + 1)), null));
    }
  }
  return { tree, blobs: [own, other] };
}

const settings = (blobs: TreeBlob[]) => ({ chunkSize: 0x10000, compressor: 'lz4_block' as const, digester: 'blake3' as const, explicitUidGid: true, blobs, prefetchPatterns: ['/dir1'] });

describe('bootstrap streaming', () => {
  it('writeBootstrapTo gives writeBootstrap\'s bytes for any piece size', async () => {
    const { tree, blobs } = sampleTree();
    const whole = writeBootstrap(tree, settings(blobs));
    expect(whole.length).toBeGreaterThan(20 * 4096);
    const reader = await BootstrapReader.open(whole);
    expect(reader.readdir(reader.lookup('/dir3')!).length).toBeGreaterThan(500);
    for (const pieceSize of [4096, 8192, 20480, 1 << 20]) {
      const sink = new CopyingSink();
      const size = await writeBootstrapTo(tree, settings(blobs), sink, pieceSize);
      expect(size).toBe(whole.length);
      expect(sink.bytes().equals(Buffer.from(whole))).toBe(true);
      if (pieceSize < whole.length / 2) expect(sink.reusedBuffers).toBeGreaterThan(0);
    }
    // A sink that keeps its pieces gets fresh ones.
    const keeping = new MemorySink();
    await writeBootstrapTo(tree, settings(blobs), keeping, 8192);
    expect(new Set(keeping.parts.map((p) => p.buffer)).size).toBe(keeping.parts.length);
    expect(keeping.bytes().equals(Buffer.from(whole))).toBe(true);
  });

  it('buildLayer with bootstrapSink streams the bootstrap it would return', async () => {
    const entries = (): LayerEntry[] => [
      E.dir('etc'),
      ...Array.from({ length: 3000 }, (_, i) => E.file(`etc/f${i}`, prng(100 + (i % 50) * 40, i), i % 9 === 0 ? { xattrs: { 'user.a': 'b' } } : {})),
      E.symlink('etc/link', 'f1'),
      E.file('big', prng(300_000, 5), { pieceSize: 70_000 }),
    ];
    const plain = await build(entries, { compressor: 'lz4_block', chunkSize: 0x10000 });
    const sink = new CopyingSink();
    const blob = new MemorySink();
    const streamed = await buildLayer(fromArray(entries()), blob, { compressor: 'lz4_block', chunkSize: 0x10000, bootstrapSink: sink });
    expect(streamed.bootstrap.length).toBe(0);
    expect(sink.bytes().equals(Buffer.from(plain.bootstrap))).toBe(true);
    expect(blob.bytes().equals(plain.blobBytes)).toBe(true);
    expect(streamed.blob).toEqual(plain.blob);
  });
});

describe('output slabs', () => {
  it('are reused for a sink that releases its bytes, with the same blob', async () => {
    // ~13 MiB of barely compressible data: several 4 MiB slabs.
    const entries = (): LayerEntry[] => Array.from({ length: 13 }, (_, i) => E.file(`f${i}`, prng(1 << 20, i + 1), { pieceSize: 300_000 }));
    const plain = await build(entries, { compressor: 'lz4_block' });
    const sink = new CopyingSink();
    const reused = await buildLayer(fromArray(entries()), sink, { compressor: 'lz4_block' });
    expect(sink.bytes().equals(plain.blobBytes)).toBe(true);
    expect(Buffer.from(reused.bootstrap).equals(Buffer.from(plain.bootstrap))).toBe(true);
    expect(sink.reusedBuffers).toBeGreaterThan(0);
    // The plain sink keeps what it got: never handed the same memory twice.
    const keeping = new MemorySink();
    await buildLayer(fromArray(entries()), keeping, { compressor: 'lz4_block' });
    const slabs = keeping.parts.filter((p) => p.length > 1 << 20);
    expect(new Set(slabs.map((p) => p.buffer)).size).toBe(slabs.length);
  });
});

describe('chunks assembled from pieces', () => {
  it('give the same blob as whole pieces, deduplicated ones included (zstd: assembled in the compression job)', async () => {
    const chunkSize = 0x10000;
    const block = prng(chunkSize, 7, true);
    const repeated = Buffer.concat([block, prng(chunkSize, 8), block, block, prng(5000, 9)]);
    const entries = (pieceSize?: number) => (): LayerEntry[] => [
      E.file('a', prng(3 * chunkSize + 123, 1, true), { pieceSize }),
      E.file('small', 'tiny', { pieceSize }),
      E.file('b', prng(3 * chunkSize + 123, 1, true), { pieceSize }),
      E.file('c', repeated, { pieceSize }),
      E.file('d', prng(2 * chunkSize, 2), { pieceSize }),
    ];
    for (const compressor of ['zstd', 'lz4_block'] as const) {
      const whole = await build(entries(), { compressor, chunkSize });
      const assembled = await build(entries(7_001), { compressor, chunkSize });
      expect(assembled.blobBytes.equals(whole.blobBytes)).toBe(true);
      expect(Buffer.from(assembled.bootstrap).equals(Buffer.from(whole.bootstrap))).toBe(true);
      expect(assembled.stats.dedupChunks).toBe(6);
    }
  });
});
