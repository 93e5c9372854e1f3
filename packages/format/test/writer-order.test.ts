// The writer's orderings on their own: directory entries byte-wise by name (with `.` and `..`
// sorted in) and the chunk table by digest then blob index, first placement winning among
// equal keys, including names and digests that agree on their first bytes.
import { describe, expect, it } from 'vitest';
import { BootstrapReader } from '../src/index.js';
import { S_IFDIR, S_IFREG, writeBootstrap } from '../src/internal.js';
import { treeBlob } from './builder-helpers.js';
import { ChunkStore, FsTree, K_DIR, K_FILE, type TreeBlob } from '../src/builder/tree.js';

const CHUNK = 0x10000;

const settings = (blobs: TreeBlob[]) => ({ chunkSize: CHUNK, compressor: 'lz4_block' as const, digester: 'blake3' as const, explicitUidGid: true, blobs });
const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'));

/** Names that share 1 to 40 leading bytes, are prefixes of each other, sort around `.`/`..` or use bytes ≥ 0x80. */
function trickyNames(): string[] {
  const names = new Set<string>(['!', '-', '.!', '.-', '.a', '..a', '...', '.\xff', 'a', '\x7f', '\x80', '\xff\xfe', 'x'.repeat(255)]);
  const stems = ['libfoo', 'libfoo-bar-baz-', 'python3.11-', 'abcd', 'abcdefgh', 'abcdefghijkl'];
  for (const stem of stems) {
    for (let i = 0; i < 12; i++) {
      names.add(stem + i.toString(36));
      names.add(stem + String.fromCharCode(0x20 + i * 19));
    }
    names.add(stem);
  }
  for (let len = 1; len <= 40; len++) names.add('s'.repeat(len));
  for (let i = 0; i < 100; i++) names.add(`${'common-prefix-'.repeat(1 + (i % 3))}${(i * 7919) % 1000}`);
  return [...names];
}

describe('writer order', () => {
  it('sorts children byte-wise by name, also when many share their first bytes', () => {
    const t = new FsTree();
    const names = trickyNames();
    const ns = t.nodeNs[t.root]!;
    // Insertion order other than sorted order.
    for (const name of [...names].reverse()) t.put(ns, name, t.addInode(K_FILE, S_IFREG | 0o644, 0, 0, 0, 0, 0, 0, null, null));
    const listed = t.sortedChildren(t.childLists(), t.root).map((c) => c.key);
    expect(listed).toEqual([...names].sort(byBytes));
  });

  it('writes directory entries in byte order with `.` and `..` sorted in', async () => {
    const t = new FsTree();
    const dir = t.put(t.nodeNs[t.root]!, 'd', t.addInode(K_DIR, S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, null, null));
    const names = trickyNames();
    for (const name of names) t.put(t.nodeNs[dir]!, name, t.addInode(K_FILE, S_IFREG | 0o644, 0, 0, 0, 0, 0, 0, null, null));
    // Directories whose names all sort before, between and after the dots.
    for (const [d, kids] of [['before', ['!', '-']], ['between', ['.!', '.-']], ['after', ['.a', 'z']], ['empty', []]] as const) {
      const sub = t.put(t.nodeNs[t.root]!, d, t.addInode(K_DIR, S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, null, null));
      for (const name of kids) t.put(t.nodeNs[sub]!, name, t.addInode(K_FILE, S_IFREG | 0o644, 0, 0, 0, 0, 0, 0, null, null));
    }
    const reader = await BootstrapReader.open(writeBootstrap(t, settings([])));
    const onDisk = (path: string): string[] => reader.readdir(reader.lookup(path)!, { includeDots: true }).map((e) => Buffer.from(e.nameBytes).toString('latin1'));
    expect(onDisk('/d')).toEqual([...names, '.', '..'].sort(byBytes));
    expect(onDisk('/before')).toEqual(['!', '-', '.', '..']);
    expect(onDisk('/between')).toEqual(['.', '.!', '.-', '..']);
    expect(onDisk('/after')).toEqual(['.', '..', '.a', 'z']);
    expect(onDisk('/empty')).toEqual(['.', '..']);
    expect(onDisk('/')).toEqual(['.', '..', 'after', 'before', 'between', 'd', 'empty']);
  });

  it('orders the chunk table by digest then blob index, the first placement winning among equal keys', async () => {
    const blobs = [treeBlob('a'.repeat(64), 64), treeBlob('b'.repeat(64), 64)];
    const store = new ChunkStore(blobs, true);
    // Digests agreeing on their first 4 bytes (and some on all 32), in both blobs, stored repeatedly.
    const digests = ['aabbccdd' + '00'.repeat(28), 'aabbccdd' + 'ff' + '00'.repeat(27), 'aabbccdd' + '00'.repeat(27) + '01', '00000001' + '11'.repeat(28), 'aabbccde' + '00'.repeat(28)];
    const chunks: Array<{ digest: string; blob: number; id: number }> = [];
    for (let id = 0; id < 40; id++) {
      const d = (id * 3) % digests.length;
      const digest = digests[d]!;
      const blob = (id >> 2) % 2;
      // Copies of one chunk agree on all but the compressed offset, which tells them apart here.
      const ci = d * 2 + blob;
      store.addForeign({ digest, flags: 0, compressedSize: CHUNK, uncompressedSize: CHUNK, compressedOffset: id * CHUNK, uncompressedOffset: ci * CHUNK, fileOffset: 0, crc32: 0 }, blob, ci);
      chunks.push({ digest, blob, id });
    }
    const t = new FsTree([store]);
    const files: number[][] = [];
    for (let f = 0; f < 10; f++) {
      const refs = Array.from({ length: 1 + (f % 4) }, (_, k) => (f * 17 + k * 7) % 40);
      files.push(refs);
      const inode = t.addInode(K_FILE, S_IFREG | 0o644, 0, 0, 0, 0, refs.length * CHUNK, 0, null, null);
      t.beginChunks(inode);
      for (const r of refs) t.pushChunkRef(inode, r);
      t.put(t.nodeNs[t.root]!, `f${f}`, inode); // one digit: placement order is file order
    }

    const reader = await BootstrapReader.open(writeBootstrap(t, settings(blobs)));
    const first = new Map<string, number>();
    for (const r of files.flat()) {
      const key = `${chunks[r]!.digest}/${chunks[r]!.blob}`;
      if (!first.has(key)) first.set(key, chunks[r]!.id);
    }
    const expected = [...first].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, id]) => ({ key, compressedOffset: id * CHUNK }));
    expect(reader.chunkTable.map((c) => ({ key: `${c.digest}/${c.blobIndex}`, compressedOffset: c.compressedOffset }))).toEqual(expected);
    for (let f = 0; f < 10; f++) {
      const got = reader.chunks(reader.lookup(`/f${f}`)!).map((c) => `${c.digest}/${c.blobIndex}`);
      expect(got).toEqual(files[f]!.map((r) => `${chunks[r]!.digest}/${chunks[r]!.blob}`));
    }
  });
});
