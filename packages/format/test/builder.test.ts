import { isNydusError } from '@nydus-ts/core';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BlobFeatures, ChunkDict, ChunkFlags, BootstrapReader, INLINED_BLOB_ID, mergeBootstraps, buildLayer, decompressChunk, digestChunk, encodeRdev, WHOLE_CONTENT, type LayerEntry } from '../src/index.js';
import { CCT_MAGIC, DataLayout, MAX_DIRECTORY_DEPTH, RafsSuperFlags, decodeChunkInfoV1, decodeCompressionContextHeader, decodeTailTarHeader, decodeTocEntry, encodeTailTarHeader } from '../src/internal.js';
import { BootstrapView, E, MemorySink, build, fromArray, prng, readFileFromBlob, sha256 } from './builder-helpers.js';

const fixtures = fileURLToPath(new URL('../../../testdata/nydus-upstream/', import.meta.url));

/** Tail sections of a blob, walked from the end as the snapshotter does (spec §3.1). */
function tailSections(blob: Uint8Array): Array<{ name: string; offset: number; size: number }> {
  const out: Array<{ name: string; offset: number; size: number }> = [];
  let cur = blob.length - 512;
  while (cur >= 0) {
    const h = decodeTailTarHeader(blob.subarray(cur, cur + 512));
    if (h === undefined) break;
    out.unshift({ name: h.name, offset: cur - h.size, size: h.size });
    cur -= h.size + 512;
  }
  return out;
}

function tocOf(blob: Uint8Array) {
  const secs = tailSections(blob);
  const toc = secs[secs.length - 1]!;
  expect(toc.name).toBe('rafs.blob.toc');
  return Array.from({ length: toc.size / 128 }, (_, i) => decodeTocEntry(blob, toc.offset + 128 * i, toc.offset + 128 * i, i));
}

async function expectInvalid(p: Promise<unknown>, ...fragments: string[]): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isNydusError(err, 'INVALID_ARGUMENT'), `expected INVALID_ARGUMENT, got ${String(err)}`).toBe(true);
  for (const f of fragments) expect((err as Error).message).toContain(f);
}

const smallLayer = (): LayerEntry[] => [
  E.dir('', { mode: 0o755, mtime: 1_600_000_000 }),
  E.dir('etc', { mode: 0o750, uid: 1, gid: 2, mtime: 1_600_000_001, mtimeNsec: 5 }),
  E.file('etc/hosts', '127.0.0.1 localhost\n', { uid: 1000, gid: 1001, xattrs: { 'user.note': 'hi', 'security.capability': new Uint8Array([1, 2, 3]) } }),
  E.symlink('etc/localhost', 'hosts'),
  E.chr('dev/null', 1, 3),
];

describe('buildLayer: a small layer, field by field', () => {
  it('writes the superblocks, device slot, blob entry, CCT header and ToC', async () => {
    const r = await build(smallLayer);
    const blob = r.blobBytes;
    expect(r.blob).not.toBeNull();
    expect(r.blob!.id).toBe(sha256(blob));
    expect(r.blob!.size).toBe(blob.length);
    expect(r.blob!.chunkCount).toBe(1);
    expect(r.blob!.uncompressedSize).toBe(4096);
    expect(r.referencedDictBlobs).toEqual([]);
    expect(r.stats).toEqual({ entries: 5, files: 1, bytesIn: 20, chunks: 1, dedupChunks: 0, dedupBytes: 0, dictChunks: 0, dictBytes: 0, compressedBytes: r.blob!.compressedDataSize });

    const v = new BootstrapView(r.bootstrap);
    expect(r.bootstrap.length % 4096).toBe(0);
    expect(v.sb).toMatchObject({
      magic: 0xe0f5e1e2,
      checksum: 0,
      featureCompat: 0x4000_0000,
      blkszbits: 12,
      extslots: 0,
      rootNid: 128,
      inodeCount: 6,
      buildTime: 0,
      buildTimeNsec: 0,
      blocks: 1,
      metaBlkaddr: 2,
      xattrBlkaddr: 0,
      featureIncompat: 0xc,
      u: 0,
      extraDevices: 1,
      devtSlotOff: 11,
    });
    expect(Buffer.from(v.sb.uuid).equals(Buffer.alloc(16))).toBe(true);
    const flags = RafsSuperFlags.COMPRESSION_ZSTD | RafsSuperFlags.HASH_BLAKE3 | RafsSuperFlags.EXPLICIT_UID_GID | RafsSuperFlags.HAS_XATTR | RafsSuperFlags.INLINED_CHUNK_DIGEST | RafsSuperFlags.ENCRYPTION_NONE;
    expect(flags).toBe(0x0100_01b4);
    expect(v.ext).toEqual({
      flags,
      blobTableOffset: 4096,
      blobTableSize: 256,
      chunkSize: 0x100000,
      chunkTableOffset: v.ext.chunkTableOffset,
      chunkTableSize: 80,
      prefetchTableOffset: 0,
      prefetchTableSize: 0,
    });
    expect(v.ext.chunkTableOffset % 4096).toBe(0);
    expect(r.bootstrap.length).toBe(v.ext.chunkTableOffset + 4096);
    expect(v.slots).toEqual([{ blobId: r.blob!.id, blocks: 1, mappedBlkaddr: 128 }]);

    const secs = tailSections(blob);
    expect(secs.map((s) => s.name)).toEqual(['image.blob', 'blob.meta', 'blob.digest', 'rafs.blob.toc']);
    const dataSize = r.blob!.compressedDataSize;
    expect(secs[0]).toEqual({ name: 'image.blob', offset: 0, size: dataSize });
    const ciOffset = dataSize + 512;
    const b = v.blobs[0]!;
    const toc = tocOf(blob);
    const tocBytes = blob.subarray(blob.length - 512 - 128 * toc.length);
    expect(b).toEqual({
      blobId: r.blob!.id,
      blobIndex: 0,
      chunkSize: 0x100000,
      chunkCount: 1,
      compressionAlgo: 3,
      digestAlgo: 0,
      features: BlobFeatures.ALIGNED | BlobFeatures.INLINED_CHUNK_DIGEST | BlobFeatures.HAS_TAR_HEADER | BlobFeatures.HAS_TOC | BlobFeatures.CAP_TAR_TOC,
      compressedSize: blob.length,
      uncompressedSize: 4096,
      tocSize: 128 * 4 + 512,
      ciCompressor: 0,
      ciOffset,
      ciCompressedSize: 16,
      ciUncompressedSize: 16,
      tocDigest: sha256(tocBytes),
      metaDigest: '0'.repeat(64),
      metaSize: 0,
      cipherIv: new Uint8Array(8),
      cipherAlgo: 0,
    });
    expect(b.features).toBe(0x7000_0021);

    // CCT header right after the (raw, 16-byte) CI; blob.meta covers both.
    const hdr = decodeCompressionContextHeader(blob.subarray(ciOffset + 16, ciOffset + 16 + 4096), ciOffset + 16);
    expect(hdr).toEqual({ magic: CCT_MAGIC, features: b.features, ciCompressor: 0, ciEntries: 1, ciOffset, ciCompressedSize: 16, ciUncompressedSize: 16, zranOffset: 0, zranSize: 0, zranCount: 0, magic2: CCT_MAGIC });
    expect(secs[1]).toEqual({ name: 'blob.meta', offset: ciOffset, size: 16 + 4096 });
    const ci = decodeChunkInfoV1(blob, ciOffset, ciOffset);
    const hostsData = Buffer.from('127.0.0.1 localhost\n');
    expect(ci).toMatchObject({ uncompressedOffset: 0, uncompressedSize: 20, compressedOffset: 0 });
    // blob.meta file (spec §3.7): CI, zero padding, header.
    expect(r.blobMeta!.length).toBe(8192);
    expect(Buffer.from(r.blobMeta!.subarray(0, 16)).equals(blob.subarray(ciOffset, ciOffset + 16))).toBe(true);
    expect(Buffer.from(r.blobMeta!.subarray(4096)).equals(blob.subarray(ciOffset + 16, ciOffset + 16 + 4096))).toBe(true);

    const digestHex = digestChunk('blake3', hostsData);
    expect(secs[2]!.size).toBe(32);
    expect(Buffer.from(blob.subarray(secs[2]!.offset, secs[2]!.offset + 32)).toString('hex')).toBe(digestHex);

    expect(toc).toEqual([
      { flags: 1, name: 'image.blob', digest: sha256(blob.subarray(0, dataSize + 512)), compressedOffset: 0, compressedSize: dataSize, uncompressedSize: 4096 },
      { flags: 1, name: 'blob.meta', digest: sha256(blob.subarray(ciOffset, ciOffset + 16)), compressedOffset: ciOffset, compressedSize: 16, uncompressedSize: 16 },
      { flags: 1, name: 'blob.meta.header', digest: sha256(blob.subarray(ciOffset + 16, ciOffset + 16 + 4096)), compressedOffset: ciOffset + 16, compressedSize: 4096, uncompressedSize: 4096 },
      { flags: 1, name: 'blob.digest', digest: sha256(blob.subarray(secs[2]!.offset, secs[2]!.offset + 32)), compressedOffset: secs[2]!.offset, compressedSize: 32, uncompressedSize: 32 },
    ]);

    // Chunk table entry: zstd output of 20 bytes is not smaller, so the chunk is stored raw.
    expect(v.chunks).toEqual([
      { digest: digestHex, blobIndex: 0, flags: ChunkFlags.HAS_CRC32, compressedSize: 20, uncompressedSize: 20, compressedOffset: 0, uncompressedOffset: 0, fileOffset: 0, index: 0, crc32: v.chunks[0]!.crc32 },
    ]);
    expect(v.chunks[0]!.crc32).not.toBe(0);
  });

  it('writes inodes: root attributes, implicit parents, xattrs, symlink, device', async () => {
    const r = await build(smallLayer);
    const v = new BootstrapView(r.bootstrap);
    const root = v.inode(128);
    expect(root).toMatchObject({ extended: true, mode: 0o40755, mtime: 1_600_000_000, nlink: 4, ino: 1, uid: 0, gid: 0 });
    expect([...v.dirents(128)].map((d) => [Buffer.from(d.name).toString(), d.nid, d.fileType])).toEqual([
      ['.', 128, 2],
      ['..', 128, 2],
      ['dev', v.lookup('dev'), 2],
      ['etc', v.lookup('etc'), 2],
    ]);
    expect(v.inode(v.lookup('etc'))).toMatchObject({ mode: 0o40750, uid: 1, gid: 2, mtime: 1_600_000_001, mtimeNsec: 5, nlink: 2 });
    expect(v.inode(v.lookup('dev'))).toMatchObject({ mode: 0o40755, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, nlink: 2 });
    const hosts = v.inode(v.lookup('etc/hosts'));
    expect(hosts).toMatchObject({ dataLayout: DataLayout.CHUNK_BASED, mode: 0o100644, size: 20, uid: 1000, gid: 1001, nlink: 1, u: 0x28 });
    expect(hosts.xattrs).toEqual(new Map([['security.capability', new Uint8Array([1, 2, 3])], ['user.note', new Uint8Array(Buffer.from('hi'))]]));
    const link = v.lookup('etc/localhost');
    expect(v.inode(link)).toMatchObject({ dataLayout: DataLayout.FLAT_INLINE, mode: 0o120777, size: 5 });
    expect(Buffer.from(v.data(link)).toString()).toBe('hosts');
    expect(v.children(v.lookup('etc')).get('localhost')!.fileType).toBe(7);
    const dev = v.inode(v.lookup('dev/null'));
    expect(dev).toMatchObject({ dataLayout: DataLayout.FLAT_PLAIN, mode: 0o20666, u: encodeRdev(1, 3), size: 0 });
    // i_ino follows the traversal: root 1, then its children (dev 2, etc 3), then dev's, then etc's.
    expect(v.inode(v.lookup('dev')).ino).toBe(2);
    expect(v.inode(v.lookup('etc')).ino).toBe(3);
    expect(v.inode(v.lookup('dev/null')).ino).toBe(4);
    expect([v.inode(v.lookup('etc/hosts')).ino, v.inode(link).ino]).toEqual([5, 6]);
    expect(readFileFromBlob(v, v.lookup('etc/hosts'), { [r.blob!.id]: r.blobBytes }).toString()).toBe('127.0.0.1 localhost\n');
  });

  it('writes tail tar headers byte-identical to the reference builder', () => {
    const blob = readFileSync(fixtures + 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef');
    expect(Buffer.from(encodeTailTarHeader('image.blob', 7802)).equals(blob.subarray(7802, 8314))).toBe(true);
    expect(Buffer.from(encodeTailTarHeader('rafs.blob.toc', 512)).equals(blob.subarray(blob.length - 512))).toBe(true);
  });

  it('fills the prefetch table with nids of matching paths', async () => {
    const all = new BootstrapView((await build(smallLayer, { prefetchPatterns: ['/'] })).bootstrap);
    expect(all.ext.prefetchTableOffset).toBe(4096 + 256);
    expect(all.ext.prefetchTableSize).toBe(4);
    expect(all.prefetch).toEqual([128]);
    const some = new BootstrapView((await build(smallLayer, { prefetchPatterns: ['/etc/hosts', '/missing', '/dev/', '/etc', '/etc/localhost'] })).bootstrap);
    // '/etc/localhost' is covered by '/etc', '/missing' matches nothing.
    expect(some.prefetch).toEqual([some.lookup('etc/hosts'), some.lookup('dev'), some.lookup('etc')]);
  });
});

describe('buildLayer: tree shapes', () => {
  it('sorts and splits the dirents of a 10,000-entry directory across blocks', async () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `file-${(i * 7919) % 10_000}-${'x'.repeat(i % 40)}`);
    names.push('+plus', '-dash', '\u00e9t\u00e9', 'Zed', 'a'.repeat(255));
    const r = await build(() => names.map((n) => E.file(`big/${n}`)));
    const v = new BootstrapView(r.bootstrap);
    const dirNid = v.lookup('big');
    const ino = v.inode(dirNid);
    const data = v.data(dirNid);
    const blocks = Math.ceil(ino.size / 4096);
    expect(blocks).toBeGreaterThan(30);
    const ents = v.dirents(dirNid);
    expect(ents.length).toBe(names.length + 2);
    const sorted = [...ents].sort((a, b) => Buffer.compare(a.name, b.name));
    expect(ents.map((e) => Buffer.from(e.name).toString('latin1'))).toEqual(sorted.map((e) => Buffer.from(e.name).toString('latin1')));
    // '+' and '-' sort before '.', so the dot entries are not first.
    expect(Buffer.from(ents[0]!.name).toString()).toBe('+plus');
    expect(Buffer.from(ents[2]!.name).toString()).toBe('.');
    // Every block: k dirents then k names; the first nameoff gives k; names fill ≤ 4096 bytes;
    // an entry never fits in the previous block's leftover.
    let count = 0;
    for (let blk = 0; blk < blocks; blk++) {
      const block = data.subarray(blk * 4096, Math.min((blk + 1) * 4096, data.length));
      const k = new DataView(block.buffer, block.byteOffset).getUint16(8, true) / 12;
      let end = 12 * k;
      for (let j = 0; j < k; j++) end += ents[count + j]!.name.length;
      expect(end).toBeLessThanOrEqual(4096);
      if (blk < blocks - 1) expect(end + 12 + ents[count + k]!.name.length).toBeGreaterThan(4096);
      else expect(blk * 4096 + end).toBe(ino.size);
      count += k;
    }
    expect(count).toBe(ents.length);
    expect(ino.nlink).toBe(2);
    expect(v.sb.inodeCount).toBe(names.length + 2);
    for (const e of ents.slice(0, 50)) {
      const n = Buffer.from(e.name).toString();
      if (n === '.' || n === '..') continue;
      expect(v.inode(e.nid)).toMatchObject({ mode: 0o100644, size: 0 });
    }
  });

  it('never lets an inode, its xattrs and inline tail cross a block boundary', async () => {
    const entries = (): LayerEntry[] => {
      const out: LayerEntry[] = [];
      for (let i = 0; i < 400; i++) {
        const xattrs = i % 3 === 0 ? { 'user.k': 'v'.repeat((i * 37) % 300) } : undefined;
        out.push(E.symlink(`d${i % 7}/s${i}`, 't'.repeat(1 + ((i * 131) % 3000)), xattrs ? { xattrs } : {}));
        out.push(E.file(`d${i % 7}/f${i}`, prng((i * 997) % 9000, i), xattrs ? { xattrs } : {}));
        if (i % 10 === 0) out.push(E.dir(`d${i % 7}/sub${i}`, xattrs ? { xattrs } : {}));
      }
      return out;
    };
    const r = await build(entries, { chunkSize: 4096, compressor: 'lz4_block' });
    const v = new BootstrapView(r.bootstrap);
    let inline = 0;
    for (const { nid } of v.walk()) {
      const ino = v.inode(nid);
      const tail = ino.dataLayout === DataLayout.FLAT_INLINE ? ino.size % 4096 : 0;
      if (ino.dataLayout === DataLayout.FLAT_INLINE) inline++;
      expect((ino.offset % 4096) + ino.isz + tail, `nid ${nid}`).toBeLessThanOrEqual(4096);
      expect(ino.offset % 32).toBe(0);
    }
    expect(inline).toBeGreaterThan(100);
    const blobs = { [r.blob!.id]: r.blobBytes };
    for (let i = 0; i < 400; i += 37) {
      expect(readFileFromBlob(v, v.lookup(`d${i % 7}/f${i}`), blobs).equals(prng((i * 997) % 9000, i))).toBe(true);
      expect(Buffer.from(v.data(v.lookup(`d${i % 7}/s${i}`))).toString()).toBe('t'.repeat(1 + ((i * 131) % 3000)));
    }
  });

  it('gives hardlinks one nid with nlink = number of names', async () => {
    const r = await build(() => [
      E.file('a/orig', 'shared data', { uid: 5 }),
      E.hardlink('b/link1', 'a/orig'),
      E.hardlink('link2', '/a/orig'),
      E.hardlink('b/link3', 'b/link1'),
      E.file('other', 'shared data'),
    ]);
    const v = new BootstrapView(r.bootstrap);
    const nid = v.lookup('a/orig');
    expect([v.lookup('b/link1'), v.lookup('link2'), v.lookup('b/link3')]).toEqual([nid, nid, nid]);
    expect(v.inode(nid)).toMatchObject({ nlink: 4, uid: 5, size: 11 });
    expect(v.lookup('other')).not.toBe(nid);
    expect(v.inode(v.lookup('other')).nlink).toBe(1);
    // s_inos counts every name: root, a, b, orig, link1, link3, link2, other.
    expect(v.sb.inodeCount).toBe(8);
    expect(r.stats.files).toBe(2);
    expect(r.stats.dedupChunks).toBe(1);
  });

  it('stores empty files without chunks and multi-chunk files chunk by chunk', async () => {
    const content = prng(50 * 1024 + 17, 3, true);
    const r = await build(() => [E.file('empty'), E.file('multi', content, { pieceSize: 1000 })], { chunkSize: 16384 });
    const v = new BootstrapView(r.bootstrap);
    const empty = v.inode(v.lookup('empty'));
    expect(empty).toMatchObject({ dataLayout: DataLayout.CHUNK_BASED, size: 0, u: 0x22 });
    expect(v.chunkAddresses(v.lookup('empty'))).toEqual([]);
    const addrs = v.chunkAddresses(v.lookup('multi'));
    expect(addrs.length).toBe(4);
    expect(addrs.map((a) => a.blobIndex)).toEqual([0, 0, 0, 0]);
    expect(addrs.map((a) => a.ciIndex)).toEqual([0, 1, 2, 3]);
    expect(addrs.map((a) => a.blkaddr)).toEqual([0, 4, 8, 12]);
    const infos = addrs.map((a) => v.chunkOf(a));
    expect(infos.map((c) => c.fileOffset)).toEqual([0, 16384, 32768, 49152]);
    expect(infos.map((c) => c.uncompressedSize)).toEqual([16384, 16384, 16384, 2065]);
    expect(infos.every((c) => (c.flags & ChunkFlags.COMPRESSED) !== 0)).toBe(true);
    // Compressed chunks are back to back.
    for (let i = 1; i < 4; i++) expect(infos[i]!.compressedOffset).toBe(infos[i - 1]!.compressedOffset + infos[i - 1]!.compressedSize);
    // Chunk table sorted by digest.
    const digests = v.chunks.map((c) => c.digest);
    expect(digests).toEqual([...digests].sort());
    expect(readFileFromBlob(v, v.lookup('multi'), { [r.blob!.id]: r.blobBytes }).equals(content)).toBe(true);
    expect(r.blob!.uncompressedSize).toBe(3 * 16384 + 4096);
  });

  it('keeps every raw chunk at its aligned uncompressed offset with compressor none', async () => {
    const a = prng(5000, 1);
    const b = prng(20000, 2);
    const r = await build(() => [E.file('a', a), E.file('b', b), E.file('c', a)], { compressor: 'none', chunkSize: 8192 });
    const v = new BootstrapView(r.bootstrap);
    expect(v.chunks.length).toBe(4);
    for (const c of v.chunks) {
      expect(c.compressedOffset).toBe(c.uncompressedOffset);
      expect(c.compressedSize).toBe(c.uncompressedSize);
      expect(c.flags & ChunkFlags.COMPRESSED).toBe(0);
    }
    const blob = r.blobBytes;
    expect(r.blob!.compressedDataSize).toBe(r.blob!.uncompressedSize);
    expect(r.blob!.uncompressedSize).toBe(4096 * (2 + 2 + 2 + 1));
    expect(blob.subarray(0, 5000).equals(a)).toBe(true);
    expect(blob.subarray(5000, 8192).equals(Buffer.alloc(3192))).toBe(true);
    expect(blob.subarray(8192, 8192 + 8192).equals(b.subarray(0, 8192))).toBe(true);
    expect(blob.subarray(24576, 24576 + 3616).equals(b.subarray(16384))).toBe(true);
    expect(blob.subarray(24576 + 3616, 28672).equals(Buffer.alloc(4096 - 3616))).toBe(true);
    expect(v.lookup('c')).not.toBe(v.lookup('a'));
    expect(v.chunkAddresses(v.lookup('c'))).toEqual(v.chunkAddresses(v.lookup('a')));
    expect(r.stats).toMatchObject({ chunks: 5, dedupChunks: 1, dedupBytes: 5000, compressedBytes: 25000 });
  });

  it('deduplicates identical files inside the layer: one copy of the data', async () => {
    const data = prng(3 * 65536 + 100, 9, true);
    const one = await build(() => [E.file('x', data)], { chunkSize: 65536 });
    const three = await build(() => [E.file('x', data), E.file('y', data), E.file('sub/z', data, { pieceSize: 777 })], { chunkSize: 65536 });
    expect(three.blob!.chunkCount).toBe(4);
    expect(three.blob!.compressedDataSize).toBe(one.blob!.compressedDataSize);
    expect(three.stats).toMatchObject({ chunks: 12, dedupChunks: 8, dedupBytes: 2 * data.length, bytesIn: 3 * data.length });
    const v = new BootstrapView(three.bootstrap);
    expect(v.chunks.length).toBe(4);
    expect(v.chunkAddresses(v.lookup('sub/z'))).toEqual(v.chunkAddresses(v.lookup('x')));
    expect(readFileFromBlob(v, v.lookup('sub/z'), { [three.blob!.id]: three.blobBytes }).equals(data)).toBe(true);
  });

  it('applies tar semantics: any order, later entries replace earlier ones, root attributes from ""', async () => {
    const r = await build(() => [
      E.file('d/f', 'old'),
      E.file('d/f', 'new content'),
      E.dir('d', { mode: 0o700, mtime: 42 }),
      E.file('d/g', 'g'),
      E.dir('d', { mode: 0o711, mtime: 43 }),
      E.file('n', 'was a file'),
      E.dir('n'),
      E.file('n/inside', 'i'),
      E.dir('m/sub'),
      E.symlink('m', 'elsewhere'),
      E.dir('', { mode: 0o700, uid: 3, mtime: 9 }),
      E.file('.wh.gone', ''),
      E.file('d/.wh..wh..opq', ''),
    ]);
    const v = new BootstrapView(r.bootstrap);
    expect(v.inode(128)).toMatchObject({ mode: 0o40700, uid: 3, mtime: 9 });
    expect(v.inode(v.lookup('d'))).toMatchObject({ mode: 0o40711, mtime: 43 });
    expect([...v.children(v.lookup('d')).keys()]).toEqual(['.wh..wh..opq', 'f', 'g']);
    expect(readFileFromBlob(v, v.lookup('d/f'), { [r.blob!.id]: r.blobBytes }).toString()).toBe('new content');
    expect([...v.children(v.lookup('n')).keys()]).toEqual(['inside']);
    expect(v.inode(v.lookup('m')).mode).toBe(0o120777);
    expect(v.inode(v.lookup('.wh.gone'))).toMatchObject({ mode: 0o100644, size: 0 });
    // Replaced files' chunks ('old', 'was a file') stay in the blob but not in the chunk table.
    expect(r.blob!.chunkCount).toBe(5);
    expect(v.chunks.length).toBe(3);
  });

  it('writes special files with their rdev and every name type', async () => {
    const r = await build(() => [E.chr('c', 4095, 0xfffff), E.blk('b', 259, 65537), E.fifo('p'), E.socket('s')]);
    expect(r.blob).toBeNull();
    const v = new BootstrapView(r.bootstrap);
    expect(v.inode(v.lookup('c')).u).toBe(encodeRdev(4095, 0xfffff));
    expect(v.inode(v.lookup('b'))).toMatchObject({ u: encodeRdev(259, 65537), mode: 0o60660 });
    expect(v.inode(v.lookup('p')).mode).toBe(0o10644);
    expect(v.inode(v.lookup('s')).mode).toBe(0o140755);
    expect([...v.children(128).values()].map((d) => d.fileType)).toEqual([4, 3, 5, 6]);
  });
});

describe('buildLayer: layers without data', () => {
  it('writes nothing to the sink and a bootstrap without blobs', async () => {
    const sink = new MemorySink();
    const r = await buildLayer(fromArray([E.dir('a'), E.file('a/empty'), E.symlink('l', 'a')]), sink, { prefetchPatterns: ['/'] });
    expect(sink.size).toBe(0);
    expect(r.blob).toBeNull();
    expect(r.blobMeta).toBeNull();
    const v = new BootstrapView(r.bootstrap);
    expect(v.sb).toMatchObject({ extraDevices: 0, blocks: 0, metaBlkaddr: 0, rootNid: 128, inodeCount: 4 });
    expect(v.ext).toMatchObject({ blobTableOffset: 4096, blobTableSize: 0, chunkTableSize: 0, prefetchTableSize: 0 });
    expect(v.ext.flags & RafsSuperFlags.INLINED_CHUNK_DIGEST).toBe(0);
    expect([...v.children(128).keys()]).toEqual(['a', 'l']);
  });

  it('builds an empty layer', async () => {
    const r = await build(() => []);
    const v = new BootstrapView(r.bootstrap);
    expect(v.sb.inodeCount).toBe(1);
    expect(v.dirents(128).length).toBe(2);
    expect(v.inode(128)).toMatchObject({ mode: 0o40755, nlink: 2, mtime: 0 });
  });
});

describe('buildLayer: chunk dict', () => {
  it('references dict chunks instead of storing them, appending the dict blob', async () => {
    const shared = prng(100_000, 11, true);
    const base = await build(() => [E.file('lib/shared.so', shared), E.file('only-base', 'base')], { chunkSize: 16384 });
    const dict = ChunkDict.fromBootstrap(base.bootstrap);
    expect(dict.size).toBe(base.blob!.chunkCount);
    const r = await build(() => [E.file('app/copy.so', shared), E.file('app/own', prng(40_000, 12, true))], { chunkSize: 16384, chunkDict: dict });
    expect(r.referencedDictBlobs).toEqual([base.blob!.id]);
    expect(r.stats).toMatchObject({ dictChunks: 7, dictBytes: 100_000, chunks: 10 });
    expect(r.blob!.chunkCount).toBe(3);
    const v = new BootstrapView(r.bootstrap);
    expect(v.blobs.map((b) => b.blobId)).toEqual([r.blob!.id, base.blob!.id]);
    expect(v.blobs[1]).toEqual({ ...new BootstrapView(base.bootstrap).blobs[0]!, blobIndex: 1 });
    expect(v.slots[1]!.mappedBlkaddr).toBe(128 + 128);
    const copyAddrs = v.chunkAddresses(v.lookup('app/copy.so'));
    expect(copyAddrs.every((a) => a.blobIndex === 1)).toBe(true);
    const baseView = new BootstrapView(base.bootstrap);
    expect(copyAddrs.map((a) => [a.ciIndex, a.blkaddr])).toEqual(baseView.chunkAddresses(baseView.lookup('lib/shared.so')).map((a) => [a.ciIndex, a.blkaddr]));
    const blobs = { [r.blob!.id]: r.blobBytes, [base.blob!.id]: base.blobBytes };
    expect(readFileFromBlob(v, v.lookup('app/copy.so'), blobs).equals(shared)).toBe(true);
    expect(v.chunks.filter((c) => c.blobIndex === 1).length).toBe(7);
  });

  it('writes no blob when every chunk is in the dict', async () => {
    const shared = prng(30_000, 13);
    const base = await build(() => [E.file('a', shared)], { chunkSize: 8192, digester: 'sha256' });
    const sink = new MemorySink();
    const r = await buildLayer(fromArray([E.file('b', shared)]), sink, { chunkSize: 8192, digester: 'sha256', chunkDict: ChunkDict.fromBootstrap(base.bootstrap) });
    expect(sink.size).toBe(0);
    expect(r.blob).toBeNull();
    const v = new BootstrapView(r.bootstrap);
    expect(v.blobs.map((b) => b.blobId)).toEqual([base.blob!.id]);
    expect(v.ext.flags & RafsSuperFlags.HASH_SHA256).not.toBe(0);
    expect(readFileFromBlob(v, v.lookup('b'), { [base.blob!.id]: base.blobBytes }).equals(shared)).toBe(true);
  });

  it('rejects a dict with another digester or chunk size', async () => {
    const base = await build(() => [E.file('a', 'x')], { chunkSize: 8192 });
    const dict = ChunkDict.fromBootstrap(base.bootstrap);
    await expectInvalid(build(() => [], { chunkSize: 8192, digester: 'sha256', chunkDict: dict }), 'chunkDict', 'sha256');
    await expectInvalid(build(() => [], { chunkSize: 16384, chunkDict: dict }), 'chunkDict', '8192');
  });
});

describe('buildLayer: inlined bootstrap (layout (b))', () => {
  it('appends the zstd bootstrap with the placeholder blob id before the ToC', async () => {
    const r = await build(smallLayer, { inlineBootstrap: true, compressor: 'lz4_block' });
    const blob = r.blobBytes;
    expect(tailSections(blob).map((s) => s.name)).toEqual(['image.blob', 'blob.meta', 'blob.digest', 'image.boot', 'rafs.blob.toc']);
    const toc = tocOf(blob);
    const boot = toc[4]!;
    expect(boot).toMatchObject({ name: 'image.boot', flags: 2 });
    const inlined = decompressChunk('zstd', blob.subarray(boot.compressedOffset, boot.compressedOffset + boot.compressedSize), boot.uncompressedSize);
    expect(sha256(inlined)).toBe(boot.digest);
    const iv = new BootstrapView(inlined);
    const own = new BootstrapView(r.bootstrap);
    expect(iv.blobs[0]!.blobId).toBe(INLINED_BLOB_ID);
    expect(iv.slots[0]!.blobId).toBe(INLINED_BLOB_ID);
    expect(iv.blobs[0]!.features).toBe(0x7000_0023);
    expect(iv.blobs[0]).toMatchObject({ tocSize: 0, tocDigest: '0'.repeat(64), compressedSize: boot.compressedOffset });
    expect(own.blobs[0]).toMatchObject({ blobId: r.blob!.id, features: 0x7000_0023, tocSize: 5 * 128 + 512, compressedSize: blob.length });
    expect(r.blob!.id).toBe(sha256(blob));
    // Apart from the blob identity, both describe the same filesystem.
    expect(Buffer.from(inlined.subarray(4096 + 256)).equals(Buffer.from(r.bootstrap.subarray(4096 + 256)))).toBe(true);
  });
});

describe('buildLayer: repeatable output', () => {
  it('gives byte-identical bootstraps and blobs for the same input', async () => {
    const make = (): LayerEntry[] => [
      ...smallLayer(),
      E.file('data/1', prng(300_000, 21, true), { pieceSize: 4097 }),
      E.file('data/2', prng(70_000, 22)),
      E.hardlink('data/3', 'data/1'),
      ...Array.from({ length: 300 }, (_, i) => E.file(`many/${(i * 13) % 300}`, `n${i % 17}`, { xattrs: { [`user.k${i % 5}`]: `${i}`, 'user.a': 'b' } })),
    ];
    for (const options of [{}, { inlineBootstrap: true, compressor: 'none' as const, digester: 'sha256' as const, chunkSize: 4096 }]) {
      const a = await build(make, options);
      const b = await build(make, options);
      expect(Buffer.from(a.bootstrap).equals(Buffer.from(b.bootstrap))).toBe(true);
      expect(a.blobBytes.equals(b.blobBytes)).toBe(true);
      expect(a.blob!.id).toBe(b.blob!.id);
    }
  });
});

describe('buildLayer: validation', () => {
  it('rejects bad options, naming the option', async () => {
    await expectInvalid(build(() => [], { chunkSize: 1000 }), 'chunkSize');
    await expectInvalid(build(() => [], { chunkSize: 2048 }), 'chunkSize');
    await expectInvalid(build(() => [], { chunkSize: 32 << 20 }), 'chunkSize');
    await expectInvalid(build(() => [], { compressor: 'gzip' as never }), 'compressor');
    await expectInvalid(build(() => [], { digester: 'md5' as never }), 'digester');
    await expectInvalid(build(() => [], { prefetchPatterns: ['relative/path'] }), 'prefetchPatterns');
    await expectInvalid(build(() => [], { inlineBootstrap: 'yes' as never }), 'inlineBootstrap');
    await expectInvalid(build(() => [], { chunkDict: {} as never }), 'chunkDict');
    await expectInvalid(buildLayer(fromArray([]), {} as never), 'sink');
  });

  it('rejects bad entries, naming the entry', async () => {
    await expectInvalid(build(() => [E.file(`d/${'n'.repeat(256)}`)]), 'd/nnn', '256 bytes');
    await expectInvalid(build(() => [E.file(`${'\u00e9'.repeat(128)}`)]), '256 bytes');
    await expectInvalid(build(() => [E.file('x', 'a', { xattrs: { 'foo.bar': 'v' } })]), "entry 'x'", 'foo.bar');
    await expectInvalid(build(() => [E.file('x', 'a', { xattrs: { 'system.other': 'v' } })]), 'system.other');
    await expectInvalid(build(() => [E.file('x', 'a', { xattrs: { 'user.big': new Uint8Array(70_000) } })]), 'user.big');
    await expectInvalid(build(() => [E.hardlink('l', 'missing/target')]), "'l'", 'missing/target');
    await expectInvalid(build(() => [E.hardlink('l', 'later'), E.file('later', 'x')]), "'l'", 'later');
    await expectInvalid(build(() => [E.dir('d'), E.hardlink('l', 'd')]), "'l'", "'d'", 'directory');
    await expectInvalid(build(() => [E.symlink('s', 't'), E.hardlink('l', 's')]), "'l'", 'symlink');
    await expectInvalid(build(() => [E.file('a/../b', 'x')]), 'a/../b');
    await expectInvalid(build(() => [E.file('a//b', 'x')]), 'a//b');
    await expectInvalid(build(() => [E.file('', 'x')]), 'root');
    await expectInvalid(build(() => [E.file('f', 'x'), E.file('f/g', 'y')]), "'f/g'", 'not a directory');
    await expectInvalid(build(() => [{ ...E.file('short', 'abc'), size: 5 }]), "'short'", '3 bytes');
    await expectInvalid(build(() => [{ ...E.file('long', 'abcdef'), size: 2 }]), "'long'", 'longer');
    await expectInvalid(build(() => [{ ...E.file('nocontent', ''), size: 10, content: undefined } as LayerEntry]), "'nocontent'");
    await expectInvalid(build(() => [{ ...E.file('t', 'x'), mtime: 1.5 }]), "'t'", 'mtime');
    await expectInvalid(build(() => [{ ...E.file('t', 'x'), mtime: 2 ** 53 }]), "'t'", 'mtime');
    await expectInvalid(build(() => [{ ...E.file('t', 'x'), uid: 2 ** 32 }]), "'t'", 'uid');
    await expectInvalid(build(() => [{ ...E.file('t', 'x'), type: 'weird' as never }]), "'t'", 'weird');
    await expectInvalid(build(() => [E.symlink('s', '')]), "'s'", 'target');
    await expectInvalid(build(() => [E.chr('c', 5000, 1)]), "'c'", 'device');
  });

  it('builds no deeper nesting than readers accept: one limit, MAX_DIRECTORY_DEPTH, checked when building', async () => {
    const deepest = Array.from({ length: MAX_DIRECTORY_DEPTH }, () => 'd').join('/');
    // A directory at the limit, a file one level below it: built, and walked by the reader.
    const r = await build(() => [E.dir(deepest), E.file(`${deepest}/leaf`, 'x')]);
    const reader = await BootstrapReader.open(r.bootstrap);
    const walked = [...reader.walk()];
    expect(walked).toHaveLength(MAX_DIRECTORY_DEPTH + 2);
    expect(walked[walked.length - 1]!.path).toBe(`/${deepest}/leaf`);
    expect((await mergeBootstraps([{ bootstrap: r.bootstrap }])).bootstrap.length).toBeGreaterThan(0);
    // One level deeper is refused as bad input, whether listed or implied by a deeper entry.
    await expectInvalid(build(() => [E.dir(`${deepest}/too-deep`)]), 'deeper than the 2048 levels');
    await expectInvalid(build(() => [E.file(`${deepest}/too-deep/f`, 'x')]), 'deeper than the 2048 levels');
    await expectInvalid(build(() => [E.symlink(`${deepest}/too-deep/s`, 'x')]), 'deeper than the 2048 levels');
  });

  it('stops with CANCELLED when the signal aborts', async () => {
    const ac = new AbortController();
    async function* entries(): AsyncIterable<LayerEntry> {
      yield E.file('a', prng(100_000, 1));
      ac.abort(new Error('stop'));
      yield E.file('b', prng(100_000, 2));
    }
    const err = await buildLayer(entries(), new MemorySink(), { signal: ac.signal, chunkSize: 4096 }).catch((e: unknown) => e);
    expect(isNydusError(err, 'CANCELLED')).toBe(true);
  });

  it('propagates sink errors', async () => {
    const sink = { write: async () => Promise.reject(new Error('disk full')) };
    await expect(buildLayer(fromArray([E.file('a', 'x')]), sink)).rejects.toThrow('disk full');
  });

  it('propagates a sink error in the middle of pipelined lz4 chunks and stops writing', async () => {
    let writes = 0;
    let after = 0;
    let failed = false;
    const sink = {
      write: async () => {
        if (failed) after++;
        if (++writes === 5) {
          failed = true;
          throw new Error('disk full at write 5');
        }
      },
    };
    const files = () => Array.from({ length: 30 }, (_, i) => E.file(`f${i}`, prng(20_000, i + 1, true), { pieceSize: 3000 }));
    await expect(buildLayer(fromArray(files()), sink, { compressor: 'lz4_block', chunkSize: 4096 })).rejects.toThrow('disk full at write 5');
    expect(after).toBe(0);
  });
});

describe('buildLayer WHOLE_CONTENT fast path', () => {
  /** The same entries, with a WHOLE_CONTENT side that never has the body at hand. */
  const declining = (entries: LayerEntry[]): LayerEntry[] =>
    entries.map((e) => {
      const inner = e.content;
      if (inner === undefined) return e;
      return { ...e, content: { [Symbol.asyncIterator]: () => inner[Symbol.asyncIterator](), [WHOLE_CONTENT]: () => null } };
    });

  it('builds byte-identical layers from whole one-chunk bodies and from iterated content', async () => {
    const data = (i: number): Buffer => prng(i % 3 === 0 ? 0 : 1000 + i * 517, i + 1, i % 2 === 0);
    const plain = (): LayerEntry[] => [E.dir('d'), ...Array.from({ length: 40 }, (_, i) => E.file(`d/f${i}`, data(i), { pieceSize: 700 })), E.file('big', prng(9000, 99), { pieceSize: 1000 })];
    const taken = { n: 0 };
    const fast = (): LayerEntry[] =>
      plain().map((e, i) => {
        if (e.content === undefined) return e;
        const inner = e.content;
        const whole = e.path === 'big' ? prng(9000, 99) : data(i - 1);
        return { ...e, content: { [Symbol.asyncIterator]: () => inner[Symbol.asyncIterator](), [WHOLE_CONTENT]: () => (taken.n++, whole) } };
      });
    for (const chunkSize of [4096, 1 << 20]) {
      const a = await build(plain, { compressor: 'lz4_block', chunkSize });
      taken.n = 0;
      const b = await build(fast, { compressor: 'lz4_block', chunkSize });
      expect(sha256(b.bootstrap)).toBe(sha256(a.bootstrap));
      expect(sha256(b.blobBytes)).toBe(sha256(a.blobBytes));
      expect(b.stats).toEqual(a.stats);
      // Bodies larger than one chunk are always iterated.
      expect(taken.n).toBe(Array.from({ length: 40 }, (_, i) => data(i).length).filter((n) => n <= chunkSize).length + (9000 <= chunkSize ? 1 : 0));
    }
    const c = await build(() => declining(plain()), { compressor: 'lz4_block' });
    expect(sha256(c.bootstrap)).toBe(sha256((await build(plain, { compressor: 'lz4_block' })).bootstrap));
  });

  it('rejects a whole body whose length differs from the entry size', async () => {
    const entry = (): LayerEntry[] => [{ ...E.file('f', 'abc'), content: { [Symbol.asyncIterator]: async function* () { yield Buffer.from('abc'); }, [WHOLE_CONTENT]: () => Buffer.from('ab') } as LayerEntry['content'] }];
    await expectInvalid(build(entry), "entry 'f'", 'content has 2 bytes, its size says 3');
  });
});

describe('buildLayer chunk digests', () => {
  it('records every chunk digest correctly across chunk-store growth (300 distinct chunks, both digesters)', async () => {
    const data = (i: number): Buffer => prng(100 + i, i + 7);
    for (const digester of ['blake3', 'sha256'] as const) {
      const built = await build(() => Array.from({ length: 300 }, (_, i) => E.file(`f${i}`, data(i))), { compressor: 'lz4_block', digester });
      const view = new BootstrapView(built.bootstrap);
      expect(view.chunks.length).toBe(300);
      const want = new Set(Array.from({ length: 300 }, (_, i) => digestChunk(digester, data(i))));
      expect(new Set(view.chunks.map((c) => c.digest))).toEqual(want);
      const sorted = view.chunks.map((c) => c.digest);
      expect(sorted).toEqual([...sorted].sort());
    }
  });
});
