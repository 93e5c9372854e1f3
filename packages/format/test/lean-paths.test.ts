// The object-free paths that merge uses agree with the object-returning ones: the reader's
// direntList / chunkEntryIndexes and inode decoding, the tree's byte-keyed names, the chunk
// store's copy of a chunk-table entry and the writer's blob table by first reference.
import { describe, expect, it } from 'vitest';
import { BootstrapReader } from '../src/index.js';
import { S_IFDIR, S_IFREG, decodeChunkInfo, decodeInode, decodeInodeAt, writeBootstrap } from '../src/internal.js';
import { writeBootstrapOfReferencedBlobs } from '../src/builder/bootstrap-writer.js';
import { ChunkStore, FsTree, K_DIR, K_FILE, type TreeBlob } from '../src/builder/tree.js';
import { makeImage, pseudoRandomBytes, type SynthNode } from './reader-helpers.js';
import { treeBlob } from './builder-helpers.js';

const image = makeImage(
  {
    kind: 'dir',
    name: '',
    children: [
      { kind: 'file', name: 'big', data: pseudoRandomBytes(3 * 4096 + 77, 3) },
      { kind: 'file', name: 'empty', data: new Uint8Array(0) },
      { kind: 'symlink', name: 'link', target: 'big' },
      {
        kind: 'dir',
        name: 'sub',
        children: [
          { kind: 'file', name: 'ünï', data: Buffer.from('héllo\n') },
          { kind: 'dir', name: 'many', children: Array.from({ length: 300 }, (_, i) => ({ kind: 'fifo', name: `e${i}-${'x'.repeat(i % 50)}` }) as SynthNode) },
        ],
      },
    ],
  } as SynthNode & { kind: 'dir' },
  { chunkSize: 4096 },
);

describe('BootstrapReader lean accessors', () => {
  it('direntList gives readdir\'s entries, dots included', async () => {
    const r = await BootstrapReader.open(image.boot);
    let dirs = 0;
    for (const e of r.walk()) {
      if (e.inode.type !== 'directory') continue;
      dirs++;
      const list = r.direntList(e.nid);
      const entries = r.readdir(e.nid, { includeDots: true });
      expect(list.count).toBe(entries.length);
      entries.forEach((d, i) => {
        expect(Buffer.from(list.name(i)).equals(Buffer.from(d.nameBytes))).toBe(true);
        expect(list.nid(i)).toBe(d.nid);
        expect(list.fileType(i)).toBe(d.fileType);
        expect(list.isDots(i, 1)).toBe(d.name === '.');
        expect(list.isDots(i, 2)).toBe(d.name === '..');
      });
    }
    expect(dirs).toBe(3);
  });

  it('chunkEntryIndexes point at the chunk-table entries chunks() resolves', async () => {
    const r = await BootstrapReader.open(image.boot);
    let chunks = 0;
    for (const e of r.walk()) {
      if (e.inode.type !== 'file') continue;
      const refs = r.chunks(e.nid);
      const entries = r.chunkEntryIndexes(e.nid);
      expect(entries.length).toBe(refs.length);
      refs.forEach((c, i) => {
        const at = r.chunkEntryOffset(entries[i]!);
        const info = decodeChunkInfo(r.bytes.subarray(at, at + 80), at, entries[i]!);
        expect(info).toEqual(r.chunkTable[entries[i]!]);
        expect([info.digest, info.blobIndex, info.index, info.uncompressedOffset, info.compressedOffset, info.flags]).toEqual([
          c.digest,
          c.blobIndex,
          c.ciIndex,
          c.uncompressedOffset,
          c.compressedOffset,
          c.flags,
        ]);
        chunks++;
      });
    }
    expect(chunks).toBeGreaterThan(4);
  });

  it('decodeInodeAt decodes as decodeInode', async () => {
    const r = await BootstrapReader.open(image.boot);
    const view = new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength);
    for (const e of r.walk()) {
      const at = r.superblock.metaBlkaddr * r.blockSize + e.nid * 32;
      expect(decodeInodeAt(view, at, e.nid)).toEqual(decodeInode(r.bytes.subarray(at, at + 64), at, e.nid));
    }
  });
});

describe('ChunkStore.addForeignEntry', () => {
  it('stores a chunk-table entry as addForeign stores the resolved chunk', async () => {
    const r = await BootstrapReader.open(image.boot);
    const blobs = [{ blobId: 'x' } as TreeBlob];
    const viaObjects = new ChunkStore(blobs, true);
    const viaEntries = new ChunkStore(blobs, true);
    for (const e of r.walk()) {
      if (e.inode.type !== 'file') continue;
      r.chunks(e.nid).forEach((c) => viaObjects.addForeign(c, 0, c.ciIndex));
      r.chunkEntryIndexes(e.nid).forEach((k, i) => viaEntries.addForeignEntry(r.bytes, r.chunkEntryOffset(k), i * r.chunkSize, [0]));
    }
    expect(viaEntries.count).toBe(viaObjects.count);
    for (let i = 0; i < viaObjects.count; i++) expect(viaEntries.chunk(i)).toEqual(viaObjects.chunk(i));
  });
});

describe('FsTree byte-keyed names', () => {
  it('putBytes and removeBytes act on the names put and removed by string key', () => {
    const t = new FsTree();
    const ns = t.nodeNs[t.root]!;
    const file = t.addInode(K_FILE, S_IFREG | 0o644, 0, 0, 0, 0, 0, 0, null, null);
    const names = Buffer.from('..alpha\xffbeta', 'latin1');
    const a = t.putBytes(ns, names, 2, 7, file);
    expect(t.nameOf(a)).toBe('alpha');
    expect(t.lookup(ns, 'alpha')).toBe(a);
    expect(t.put(ns, '\xffbeta', file)).toBe(t.putBytes(ns, names, 7, names.length, file));
    const dir = t.addInode(K_DIR, S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, null, null);
    expect(t.putBytes(ns, names, 2, 7, dir)).toBe(a); // replaced in place
    expect(t.isDir(a)).toBe(true);
    expect(t.removeBytes(ns, names, 2, 7)).toBe(true);
    expect(t.lookup(ns, 'alpha')).toBe(-1);
    expect(t.removeBytes(ns, names, 2, 7)).toBe(false);
  });
});

describe('writeBootstrapOfReferencedBlobs', () => {
  it('numbers the referenced blobs by first reference and writes writeBootstrap\'s bytes for that table', () => {
    const [a, b, c] = ['a', 'b', 'c'].map((x) => treeBlob(x.repeat(64))) as [TreeBlob, TreeBlob, TreeBlob];
    const store = new ChunkStore([a, b, c], true);
    const chunkOf = (blob: number, ci: number): number =>
      store.addForeign(
        { digest: (blob * 16 + ci + 1).toString(16).padStart(64, '0'), flags: 0, compressedSize: 0x10000, uncompressedSize: 0x10000, compressedOffset: ci * 0x10000, uncompressedOffset: ci * 0x10000, fileOffset: 0, crc32: 0 },
        blob,
        ci,
      );
    const tree = new FsTree([store]);
    const ns = tree.nodeNs[tree.root]!;
    // By name order: "f1" references c then a; "f2" references a; b is never referenced.
    for (const [name, chunks] of [['f2', [[0, 1]]], ['f1', [[2, 0], [0, 0]]]] as const) {
      const inode = tree.addInode(K_FILE, S_IFREG | 0o644, 0, 0, 0, 0, chunks.length * 0x10000, 0, null, null);
      tree.beginChunks(inode);
      for (const [blob, ci] of chunks) tree.pushChunkRef(inode, chunkOf(blob, ci));
      tree.put(ns, name, inode);
    }
    const settings = { chunkSize: 0x10000, compressor: 'lz4_block' as const, digester: 'blake3' as const, explicitUidGid: false };
    const { bootstrap, blobs } = writeBootstrapOfReferencedBlobs(tree, settings);
    expect(blobs).toEqual([c, a]);
    expect(Buffer.from(bootstrap).equals(Buffer.from(writeBootstrap(tree, { ...settings, blobs: [c, a] })))).toBe(true);
  });
});
