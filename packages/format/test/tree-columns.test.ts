import { describe, expect, it } from 'vitest';
import { ChunkStore, FsTree, K_DIR, K_FILE, K_SYMLINK, SECOND_STORE, type TreeBlob } from '../src/builder/tree.js';
import { S_IFDIR, S_IFLNK, S_IFREG } from '../src/layout/index.js';

const dirInode = (t: FsTree, mtime = 0): number => t.addInode(K_DIR, S_IFDIR | 0o755, 0, 0, mtime, 0, 0, 0, null, null);
const fileInode = (t: FsTree, size = 0): number => t.addInode(K_FILE, S_IFREG | 0o644, 1, 2, 3, 4, size, 0, null, null);

/** Path → inode of every name reachable from the root, through the writer's child lists. */
function listing(t: FsTree): Map<string, number> {
  const out = new Map<string, number>();
  const lists = t.childLists();
  const walk = (node: number, prefix: string): void => {
    for (const { key, node: child } of t.sortedChildren(lists, node)) {
      const path = `${prefix}/${key}`;
      out.set(path, t.nodeInode[child]!);
      if (t.isDir(child)) walk(child, path);
    }
  };
  walk(t.root, '');
  return out;
}

function blob(id: string): TreeBlob {
  return { blobId: id } as TreeBlob;
}

describe('FsTree (typed columns)', () => {
  it('adds, looks up and lists names per directory, sorted byte-wise', () => {
    const t = new FsTree();
    const etc = t.put(t.nodeNs[t.root]!, 'etc', dirInode(t));
    const names = ['passwd', 'hosts', 'Zeta', '.hidden', '-dash', '\xff\xfe', 'a'.repeat(255)];
    const inodes = names.map((n) => t.put(t.nodeNs[etc]!, n, fileInode(t)));
    names.forEach((n, i) => expect(t.lookup(t.nodeNs[etc]!, n)).toBe(inodes[i]));
    expect(t.lookup(t.nodeNs[etc]!, 'missing')).toBe(-1);
    expect(t.lookup(t.nodeNs[t.root]!, 'passwd')).toBe(-1); // other namespace
    const paths = [...listing(t).keys()];
    const expected = ['/etc', ...[...names].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'))).map((n) => `/etc/${n}`)];
    expect(paths).toEqual(expected);
    expect(t.nameOf(inodes[5]!)).toBe('\xff\xfe');
    expect([...t.nameBytesOf(inodes[5]!)]).toEqual([0xff, 0xfe]);
  });

  it('keeps 50,000 names across rehashes and finds every one', () => {
    const t = new FsTree();
    const dirs = Array.from({ length: 50 }, (_, d) => t.put(t.nodeNs[t.root]!, `d${d}`, dirInode(t)));
    const nodes: number[] = [];
    for (let i = 0; i < 50_000; i++) nodes.push(t.put(t.nodeNs[dirs[i % 50]!]!, `f${i}`, fileInode(t, i)));
    for (let i = 0; i < 50_000; i += 7) {
      const node = t.lookup(t.nodeNs[dirs[i % 50]!]!, `f${i}`);
      expect(node).toBe(nodes[i]);
      expect(t.size[t.nodeInode[node]!]).toBe(i);
    }
    expect(listing(t).size).toBe(50_050);
  });

  it('replaces names: a directory over a directory keeps its children, anything else drops them', () => {
    const t = new FsTree();
    const rootNs = t.nodeNs[t.root]!;
    const d = t.put(rootNs, 'd', dirInode(t, 1));
    t.put(t.nodeNs[d]!, 'child', fileInode(t));
    const newer = dirInode(t, 2);
    expect(t.put(rootNs, 'd', newer)).toBe(d);
    expect(listing(t).get('/d/child')).toBeDefined();
    expect(listing(t).get('/d')).toBe(newer);

    const file = fileInode(t);
    t.put(rootNs, 'd', file);
    expect([...listing(t).keys()]).toEqual(['/d']);
    t.put(rootNs, 'd', dirInode(t));
    expect([...listing(t).keys()]).toEqual(['/d']); // the old child does not come back
  });

  it('removes names and clears directories (whiteouts, opaque dirs)', () => {
    const t = new FsTree();
    const rootNs = t.nodeNs[t.root]!;
    const d = t.put(rootNs, 'd', dirInode(t));
    for (const n of ['a', 'b', 'c']) t.put(t.nodeNs[d]!, n, fileInode(t));
    expect(t.remove(t.nodeNs[d]!, 'b')).toBe(true);
    expect(t.remove(t.nodeNs[d]!, 'b')).toBe(false);
    expect(t.lookup(t.nodeNs[d]!, 'b')).toBe(-1);
    expect([...listing(t).keys()]).toEqual(['/d', '/d/a', '/d/c']);
    t.put(t.nodeNs[d]!, 'b', fileInode(t)); // re-added after removal
    expect([...listing(t).keys()]).toEqual(['/d', '/d/a', '/d/b', '/d/c']);
    t.clearChildren(d);
    expect([...listing(t).keys()]).toEqual(['/d']);
    expect(t.lookup(t.nodeNs[d]!, 'a')).toBe(-1);
    t.put(t.nodeNs[d]!, 'x', fileInode(t));
    expect([...listing(t).keys()]).toEqual(['/d', '/d/x']);
    // Removing a directory takes its subtree along.
    t.remove(rootNs, 'd');
    expect(listing(t).size).toBe(0);
  });

  it('stores symlink targets, xattrs and chunk refs per inode', () => {
    const t = new FsTree();
    const target = Buffer.from('../usr/lib/x', 'utf8');
    const link = t.addInode(K_SYMLINK, S_IFLNK | 0o777, 0, 0, 0, 0, 0, 0, target, null);
    const x = new Map([['user.k', Uint8Array.of(1, 2)]]);
    const f1 = t.addInode(K_FILE, S_IFREG | 0o600, 0, 0, 0, 0, 10, 0, null, x);
    t.beginChunks(f1);
    t.pushChunkRef(f1, 7);
    t.pushChunkRef(f1, SECOND_STORE + 1);
    const f2 = fileInode(t, 5);
    t.beginChunks(f2);
    t.pushChunkRef(f2, 3);
    expect(Buffer.from(t.linkTarget(link)).toString()).toBe('../usr/lib/x');
    expect(t.size[link]).toBe(target.length);
    expect(t.xattrs.get(f1)).toBe(x);
    expect(t.xattrs.has(f2)).toBe(false);
    const refs = (i: number): number[] => [...t.chunkRefs.subarray(t.data[i]!, t.data[i]! + t.chunkCount[i]!)];
    expect(refs(f1)).toEqual([7, SECOND_STORE + 1]);
    expect(refs(f2)).toEqual([3]);
  });
});

describe('ChunkStore (typed columns)', () => {
  it('dedups own chunks by digest and keeps CI order', () => {
    const s = new ChunkStore([blob('own')]);
    const digest = (n: number): string => n.toString(16).padStart(64, '0');
    for (let i = 0; i < 1000; i++) {
      s.stageDigest(digest(i));
      expect(s.findStaged()).toBe(-1);
      s.add(1, 100 + i, 200 + i, i * 100, i * 4096, 0, i, true);
    }
    s.stageDigest(digest(500));
    expect(s.findStaged()).toBe(500);
    expect(s.count).toBe(1000);
    expect(s.chunk(500)).toMatchObject({ digest: digest(500), compressedSize: 600, uncompressedSize: 700, uncompressedOffset: 500 * 4096, index: 500, crc32: 500 });
    expect(s.chunk(500).blob.blobId).toBe('own');
  });

  it('keeps the blob and CI index of foreign chunks', () => {
    const blobs = [blob('a'), blob('b')];
    const s = new ChunkStore(blobs, true);
    const c = { digest: 'ab'.repeat(32), flags: 0, compressedSize: 1, uncompressedSize: 2, compressedOffset: 3, uncompressedOffset: 4096, fileOffset: 5, crc32: 6 };
    expect(s.addForeign(c, 1, 77)).toBe(0);
    expect(s.addForeign({ ...c, digest: 'cd'.repeat(32) }, 0, 78)).toBe(1);
    expect(s.chunk(0)).toMatchObject({ ...c, index: 77 });
    expect(s.chunk(0).blob.blobId).toBe('b');
    expect(s.ciIndexOf(1)).toBe(78);
    expect(s.blobIndexOf(1)).toBe(0);
    expect(() => new ChunkStore([blob('own')]).addForeign(c, 0, 0)).toThrow(/blob-own/);
  });
});
