import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BootstrapReader, ChunkFlags, MAX_WALK_DEPTH, RafsFileReader, type RafsInode } from '../src/index.js';
import { makeImage, mapBackend, pseudoRandomBytes, type SynthNode } from './reader-helpers.js';

const fixtures = fileURLToPath(new URL('../../../testdata/nydus-upstream/', import.meta.url));

const bigText = pseudoRandomBytes(3 * 4096 + 123, 7, true);
const random = pseudoRandomBytes(2 * 4096 + 5, 11);
const manyNames = Array.from({ length: 400 }, (_, i) => `entry-${String(i).padStart(4, '0')}-${'n'.repeat(i % 40)}`);

function tree(): SynthNode & { kind: 'dir' } {
  return {
    kind: 'dir',
    name: '',
    attrs: { xattrs: { 'user.root': 'yes' } },
    children: [
      { kind: 'file', name: 'empty', data: new Uint8Array(0) },
      { kind: 'file', name: 'big.txt', data: bigText, attrs: { uid: 1000, gid: 100, perm: 0o600, mtime: 1234567890, mtimeNsec: 42 } },
      { kind: 'file', name: 'random.bin', data: random },
      { kind: 'file', name: 'copy.txt', data: bigText, attrs: { compact: true, uid: 7, gid: 8 } },
      { kind: 'symlink', name: 'link', target: '../a/b/ünïcode' },
      { kind: 'symlink', name: 'longlink', target: 'x/'.repeat(2000) + 'end' },
      { kind: 'chr', name: 'null', major: 1, minor: 3 },
      { kind: 'blk', name: 'disk', major: 259, minor: 65537 },
      { kind: 'fifo', name: 'pipe' },
      { kind: 'sock', name: 'sock' },
      {
        kind: 'dir',
        name: 'sub',
        attrs: { xattrs: { 'trusted.overlay.opaque': 'y', 'security.selinux': 'system_u:object_r:x:s0' } },
        children: [
          { kind: 'file', name: 'ünïcode', data: Buffer.from('héllo\n'), attrs: { xattrs: { 'user.a': '1', 'user.b': '' } } },
          { kind: 'dir', name: 'many', children: manyNames.map((name) => ({ kind: 'fifo', name }) as SynthNode) },
        ],
      },
      { kind: 'fifo', name: '-before-dot' },
    ],
  };
}

describe('BootstrapReader on a synthetic image (current flags, HAS_CRC32, all node types)', () => {
  const img = makeImage(tree(), { chunkSize: 4096, prefetch: ['/big.txt', '/sub'] });

  it('opens with ENCRYPTION_NONE flags and HAS_CRC32 chunks', async () => {
    const r = await BootstrapReader.open(img.boot);
    expect(r.flags & 0x0100_0000).toBe(0x0100_0000);
    expect(r.chunkTable.every((c) => (c.flags & ChunkFlags.HAS_CRC32) !== 0)).toBe(true);
    expect(r.prefetchNids).toEqual([img.nids.get('/big.txt'), img.nids.get('/sub')]);
    expect(r.chunkSize).toBe(4096);
  });

  it('walks every node, directories before their children, children in dirent order', async () => {
    const r = await BootstrapReader.open(img.boot);
    const paths = [...r.walk()].map((n) => n.path);
    expect(paths.length).toBe(img.nids.size);
    expect(new Set(paths)).toEqual(new Set(img.nids.keys()));
    expect(paths.slice(0, 4)).toEqual(['/', '/-before-dot', '/big.txt', '/copy.txt']);
    expect(paths.indexOf('/sub')).toBeLessThan(paths.indexOf('/sub/many'));
    expect(paths.indexOf('/sub/many')).toBeLessThan(paths.indexOf('/sub/many/entry-0000-'));
    // The name sorting before "." comes before "." in raw order.
    expect(r.readdir(128, { includeDots: true }).map((d) => d.name).slice(0, 3)).toEqual(['-before-dot', '.', '..']);
  });

  it('stats every node type', async () => {
    const r = await BootstrapReader.open(img.boot);
    const at = (p: string): RafsInode => r.inode(r.lookup(p)!);
    expect(at('/big.txt')).toMatchObject({ type: 'file', mode: 0o100600, uid: 1000, gid: 100, size: bigText.length, mtime: 1234567890, mtimeNsec: 42, nlink: 1 });
    expect(at('/copy.txt')).toMatchObject({ type: 'file', uid: 7, gid: 8, mtime: 0, size: bigText.length });
    expect(at('/copy.txt').raw.extended).toBe(false);
    expect(at('/null')).toMatchObject({ type: 'char-device', rdev: { major: 1, minor: 3 } });
    expect(at('/disk')).toMatchObject({ type: 'block-device', rdev: { major: 259, minor: 65537 } });
    expect(at('/pipe').type).toBe('fifo');
    expect(at('/sock').type).toBe('socket');
    expect(at('/link').type).toBe('symlink');
    expect(at('/sub')).toMatchObject({ type: 'directory', nlink: 3 });
    expect(at('/empty')).toMatchObject({ type: 'file', size: 0 });
    expect(r.chunks(r.lookup('/empty')!)).toEqual([]);
  });

  it('reads symlinks (inline and multi-block) and xattrs', async () => {
    const r = await BootstrapReader.open(img.boot);
    expect(r.readlink(r.lookup('/link')!)).toBe('../a/b/ünïcode');
    expect(r.readlink(r.lookup('/longlink')!)).toBe('x/'.repeat(2000) + 'end');
    const rootX = r.xattrs(128);
    expect([...rootX.keys()]).toEqual(['user.root']);
    expect(Buffer.from(rootX.get('user.root')!).toString()).toBe('yes');
    const subX = r.xattrs(r.lookup('/sub')!);
    expect(Buffer.from(subX.get('trusted.overlay.opaque')!).toString()).toBe('y');
    expect(Buffer.from(subX.get('security.selinux')!).toString()).toBe('system_u:object_r:x:s0');
    const fx = r.xattrs(r.lookup('/sub/ünïcode')!);
    expect(fx.get('user.b')!.length).toBe(0);
    expect(r.xattrs(r.lookup('/big.txt')!).size).toBe(0);
  });

  it('looks up every one of 400 names in a multi-block directory (binary search)', async () => {
    const r = await BootstrapReader.open(img.boot);
    const many = r.lookup('/sub/many')!;
    expect(r.inode(many).size).toBeGreaterThan(4096);
    const entries = r.readdir(many);
    expect(entries.map((d) => d.name)).toEqual([...manyNames].sort());
    for (const name of manyNames) expect(r.lookup(`/sub/many/${name}`)).toBe(img.nids.get(`/sub/many/${name}`));
    expect(r.lookup('/sub/many/entry-')).toBeUndefined();
    expect(r.lookup('/sub/many/zzz')).toBeUndefined();
    expect(r.lookup('/sub/many/../../big.txt')).toBe(img.nids.get('/big.txt'));
    expect(r.lookup('/sub/ünïcode')).toBe(img.nids.get('/sub/ünïcode'));
  });

  it('maps ranges across chunk boundaries and reads files back (digest + crc32c verified)', async () => {
    const r = await BootstrapReader.open(img.boot);
    const nid = r.lookup('/big.txt')!;
    const chunks = r.chunks(nid);
    expect(chunks.map((c) => c.fileOffset)).toEqual([0, 4096, 8192, 12288]);
    expect(chunks.map((c) => c.uncompressedSize)).toEqual([4096, 4096, 4096, 123]);
    expect(chunks.every((c) => c.crc32 !== 0)).toBe(true);
    const slices = r.mapRange(nid, 4000, 5000);
    expect(slices.map((s) => [s.chunk.fileOffset, s.chunkOffset, s.length, s.fileOffset])).toEqual([
      [0, 4000, 96, 4000],
      [4096, 0, 4096, 4096],
      [8192, 0, 808, 8192],
    ]);
    const fr = new RafsFileReader(r, mapBackend({ [img.blobId]: img.blob }));
    expect(Buffer.from(await fr.read(nid, 0, bigText.length)).equals(Buffer.from(bigText))).toBe(true);
    expect(Buffer.from(await fr.read(nid, 4000, 5000)).equals(Buffer.from(bigText.subarray(4000, 9000)))).toBe(true);
    const rnd = r.lookup('/random.bin')!;
    // Incompressible chunks are stored raw.
    expect(r.chunks(rnd).some((c) => !c.compressed)).toBe(true);
    expect(Buffer.from(await fr.read(rnd, 0, 1 << 20)).equals(Buffer.from(random))).toBe(true);
    // Deduplicated chunks: the compact copy shares big.txt's chunks.
    expect(r.chunks(r.lookup('/copy.txt')!).map((c) => c.ciIndex)).toEqual(chunks.map((c) => c.ciIndex));
    const parts: Uint8Array[] = [];
    for await (const p of fr.stream(nid)) parts.push(p);
    expect(parts.map((p) => p.length)).toEqual([4096, 4096, 4096, 123]);
  });

  it('counts chunk addresses with the superblock chunk size even when i_u advertises a bigger one', async () => {
    // nydus writes next_power_of_two(i_size) into i_u when all chunks are contiguous in one blob.
    const b = Buffer.from(img.boot);
    const off = img.inodeOffsets.get('/big.txt')!;
    b.writeUInt32LE(0x20 | (Math.log2(16384) - 12), off + 16);
    const r = await BootstrapReader.open(b);
    const nid = r.lookup('/big.txt')!;
    expect(r.chunks(nid).map((c) => c.fileOffset)).toEqual([0, 4096, 8192, 12288]);
    const fr = new RafsFileReader(r, mapBackend({ [img.blobId]: img.blob }));
    expect(Buffer.from(await fr.read(nid, 0, bigText.length)).equals(Buffer.from(bigText))).toBe(true);
  });

  it('a chunk whose data matches its digest but not its crc32c is refused', async () => {
    const r = await BootstrapReader.open(img.boot);
    const [c] = r.chunks(r.lookup('/big.txt')!);
    const fr = new RafsFileReader(r, mapBackend({ [img.blobId]: img.blob }));
    await expect(fr.readChunk({ ...c!, crc32: (c!.crc32 ^ 1) >>> 0 })).rejects.toMatchObject({ name: 'DigestMismatchError', code: 'DATA_LOSS' });
  });
});

describe('BootstrapReader rejects structural corruption with named FormatErrors', () => {
  const img = makeImage(tree(), { chunkSize: 4096 });
  const patch = (fn: (b: Buffer, v: DataView) => void): Buffer => {
    const b = Buffer.from(img.boot);
    fn(b, new DataView(b.buffer, b.byteOffset, b.byteLength));
    return b;
  };
  const firstDirent = (b: Buffer, path: string): number => {
    // Inline dirents of a small directory start right after its inode (+ xattrs).
    const off = img.inodeOffsets.get(path)!;
    const icount = b.readUInt16LE(off + 2);
    return off + 64 + (icount === 0 ? 0 : 12 + 4 * (icount - 1));
  };

  const fmt = async (bytes: Uint8Array, field?: string | RegExp): Promise<void> => {
    const run = async (): Promise<void> => {
      const r = await BootstrapReader.open(bytes);
      for (const n of r.walk()) {
        if (n.inode.type === 'file') r.chunks(n.nid);
        if (n.inode.type === 'symlink') r.readlink(n.nid);
        r.xattrs(n.nid);
      }
    };
    const err = await run().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'INVALID_FORMAT' });
    if (field !== undefined) expect((err as { field: string }).field).toMatch(field);
  };

  it('a directory entry pointing back to an ancestor (cycle)', async () => {
    // /sub's dirents: '.', '..', 'many', 'ünïcode'. Point 'many' at the root.
    const b = patch((buf) => {
      const base = firstDirent(buf, '/sub');
      buf.writeBigUInt64LE(128n, base + 24);
    });
    await fmt(b, /dir\[nid \d+\]/);
  });

  it('a wrong "..", a wrong ".", a dirent type that disagrees with the inode', async () => {
    await fmt(patch((buf) => buf.writeBigUInt64LE(BigInt(img.nids.get('/big.txt')!), firstDirent(buf, '/sub') + 12 + 0)), /dir\[nid/);
    await fmt(patch((buf) => buf.writeBigUInt64LE(1n, firstDirent(buf, '/sub'))), /dir\[nid/);
    await fmt(patch((buf) => (buf[firstDirent(buf, '/sub') + 24 + 10] = 1)), /dir\[nid/);
  });

  it('unsorted or duplicate names', async () => {
    // "many" -> "\xffany": now sorts after "ünïcode" (0xc3...), which follows it on disk.
    await fmt(
      patch((buf) => {
        const base = firstDirent(buf, '/sub');
        const nameoff = buf.readUInt16LE(base + 24 + 8);
        buf[base + nameoff] = 0xff;
      }),
      /^dir\[nid \d+\]\.dirent\[\d\]$/,
    );
  });

  it('inode fields: unknown type, chunk-based symlink, oversized file, chunk addresses into nowhere', async () => {
    await fmt(patch((buf) => buf.writeUInt16LE(0o170644, img.inodeOffsets.get('/big.txt')! + 4)), /i_mode/);
    await fmt(patch((buf) => buf.writeUInt16LE(0x9, img.inodeOffsets.get('/link')!)), /i_format/);
    await fmt(patch((buf) => buf.writeBigUInt64LE(1n << 40n, img.inodeOffsets.get('/big.txt')! + 8)), /i_size/);
    await fmt(patch((buf) => buf.writeUInt32LE(0x7777, img.inodeOffsets.get('/big.txt')! + 64 + 4)), /chunk\[0\]/);
    await fmt(patch((buf) => (buf[img.inodeOffsets.get('/big.txt')! + 64 + 2] = 9)), /chunk\[0\]\.device_id|chunk_address/);
    await fmt(patch((buf) => buf.writeUInt32LE(0x99, img.inodeOffsets.get('/big.txt')! + 16)), /i_u/);
    await fmt(patch((buf) => buf.writeUInt16LE(0xffff, img.inodeOffsets.get('/')! + 2)), /xattr|inode/);
  });

  it('tables: device/blob table disagreement, duplicate blob, chunk table blob index, prefetch nid', async () => {
    await fmt(patch((buf) => (buf[1408] = 0x41)), /blob_table\[0\]\.blob_id|device_slot/);
    await fmt(patch((buf) => buf.writeUInt32LE(0, 1408 + 64)), /device_slot\[0\]\.blocks/);
    await fmt(patch((buf) => buf.writeUInt16LE(2, 1024 + 86)), /s_blob_table_size|s_extra_devices/);
    const ctOff = Number(Buffer.from(img.boot).readBigUInt64LE(1176));
    await fmt(patch((buf) => buf.writeUInt32LE(5, ctOff + 32)), /chunk_table\[0\]\.blob_index/);
    await fmt(patch((buf) => buf.writeUInt32LE(0x10, 1152)), /s_flags/);
    const withPrefetch = makeImage(tree(), { prefetch: ['/big.txt'] });
    const pf = Buffer.from(withPrefetch.boot);
    pf.writeUInt32LE(0x7fffffff, 4096 + 256);
    await fmt(pf, /inode\[nid/);
  });

  it('directory nesting deeper than MAX_WALK_DEPTH', async () => {
    let node: SynthNode & { kind: 'dir' } = { kind: 'dir', name: 'd', children: [] };
    for (let i = 0; i < MAX_WALK_DEPTH; i++) node = { kind: 'dir', name: 'd', children: [node] };
    const deep = makeImage({ kind: 'dir', name: '', children: [node] });
    const r = await BootstrapReader.open(deep.boot);
    expect(() => {
      for (const _ of r.walk());
    }).toThrow(expect.objectContaining({ code: 'INVALID_FORMAT', field: expect.stringMatching(/^dir\[nid/) }));
    // One level less walks fine.
    const ok = makeImage({ kind: 'dir', name: '', children: [(node as { children: SynthNode[] }).children[0]!] });
    const r2 = await BootstrapReader.open(ok.boot);
    expect([...r2.walk()].length).toBe(MAX_WALK_DEPTH + 1);
  });

  it('a bootstrap without blobs (empty layer) opens', async () => {
    const empty = makeImage({ kind: 'dir', name: '', children: [{ kind: 'dir', name: 'etc', children: [] }] });
    const r = await BootstrapReader.open(empty.boot);
    expect(r.blobs).toEqual([]);
    expect([...r.walk()].map((n) => n.path)).toEqual(['/', '/etc']);
  });

  it('the 2.2 fixture with its flags rewritten to a current builder set still loads', async () => {
    const boot = Buffer.from(readFileSync(fixtures + 'rafs-v6-2.2.boot'));
    boot.writeUInt32LE(0x0100_0194, 1152);
    const r = await BootstrapReader.open(boot);
    expect(r.flags).toBe(0x0100_0194);
    boot.writeUInt32LE(0x0100_0194 | 0x400, 1152);
    await expect(BootstrapReader.open(boot)).rejects.toMatchObject({ code: 'INVALID_FORMAT', field: 'ext_superblock.s_flags' });
  });
});
