import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isNydusError } from '@nydus-ts/core';
import { describe, expect, it } from 'vitest';
import { BootstrapReader, RafsFileReader, bufferSource, digestChunk, type ByteSource } from '../src/index.js';
import { mapBackend } from './reader-helpers.js';

const fixtures = fileURLToPath(new URL('../../../testdata/nydus-upstream/', import.meta.url));
const BOOT_PATH = fixtures + 'rafs-v6-2.2.boot';
const BLOB_ID = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';
const BLOB_PATH = fixtures + BLOB_ID;
const boot = readFileSync(BOOT_PATH);
const blob = readFileSync(BLOB_PATH);

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of it) parts.push(p);
  return Buffer.concat(parts);
}

/** dump.erofs's output (run asynchronously: a loop of sync runs would block this worker). */
async function dumpErofs(...args: string[]): Promise<string> {
  return (await promisify(execFile)('dump.erofs', [`--device=${BLOB_PATH}`, ...args, BOOT_PATH], { encoding: 'utf8' })).stdout;
}

/** `Label:   value` lines of dump.erofs output. */
function dumpFields(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z][A-Za-z ]*?):\s+(.*?)\s*$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

describe('BootstrapReader on rafs-v6-2.2.boot (nydus-image 2.2)', () => {
  it('opens and exposes superblock, blob table and device slot', async () => {
    const r = await BootstrapReader.open(bufferSource(boot));
    expect(r.rootNid).toBe(128);
    expect(r.superblock.inodeCount).toBe(3);
    expect(r.superblock.blocks).toBe(9);
    expect(r.superblock.metaBlkaddr).toBe(2);
    expect(r.flags).toBe(0x194);
    expect(r.chunkSize).toBe(0x100000);
    expect(r.compressor).toBe('zstd');
    expect(r.digester).toBe('blake3');
    expect(r.blobs).toHaveLength(1);
    const b = r.blobs[0]!;
    expect(b.blobId).toBe(BLOB_ID);
    expect(b.slot.blobId).toBe(BLOB_ID);
    expect(b.slot.blocks).toBe(9);
    expect(b.slot.mappedBlkaddr).toBe(512);
    expect(b.features).toBe(0x70000021);
    expect(b.compressor).toBe('zstd');
    expect(b.digester).toBe('blake3');
    expect(b.entry.chunkCount).toBe(2);
    expect(r.chunkTable).toHaveLength(2);
    expect(r.chunkTable.every((c) => c.flags === 0x1 && c.crc32 === 0)).toBe(true);
  });

  it('accepts a Uint8Array directly and enforces maxSize and the minimum size', async () => {
    await expect(BootstrapReader.open(boot)).resolves.toBeInstanceOf(BootstrapReader);
    await expect(BootstrapReader.open(boot, { maxSize: 4096 })).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    await expect(BootstrapReader.open(boot.subarray(0, 2048))).rejects.toMatchObject({ code: 'INVALID_FORMAT', field: 'bootstrap' });
    await expect(BootstrapReader.open(boot.subarray(0, 4096 + 512))).rejects.toMatchObject({ code: 'INVALID_FORMAT', field: 'bootstrap' });
  });

  it('lists the root directory with sizes from spec §9', async () => {
    const r = await BootstrapReader.open(boot);
    const root = r.readdir(r.rootNid);
    expect(root.map((d) => d.name)).toEqual(['lib.rs', 'sync_io.rs']);
    expect(root.every((d) => d.fileType === 1)).toBe(true);
    expect(Buffer.from(root[0]!.nameBytes).toString()).toBe('lib.rs');
    expect(root.map((d) => r.inode(d.nid).size)).toEqual([16931, 13400]);
    const withDots = r.readdir(r.rootNid, { includeDots: true });
    expect(withDots.map((d) => d.name)).toEqual(['.', '..', 'lib.rs', 'sync_io.rs']);
    expect(withDots[0]!.nid).toBe(128);
    expect(withDots[1]!.nid).toBe(128);
    const rootInode = r.inode(128);
    expect(rootInode).toMatchObject({ type: 'directory', mode: 0o40755, nlink: 2, size: 67 });
  });

  it('looks paths up', async () => {
    const r = await BootstrapReader.open(boot);
    const lib = r.lookup('/lib.rs');
    expect(lib).toBe(r.readdir(128)[0]!.nid);
    expect(r.lookup('lib.rs')).toBe(lib);
    expect(r.lookup('/')).toBe(128);
    expect(r.lookup('/./sync_io.rs')).toBe(r.readdir(128)[1]!.nid);
    expect(r.lookup('/../lib.rs')).toBe(lib);
    expect(r.lookup('/missing')).toBeUndefined();
    expect(r.lookup('/lib.rs/x')).toBeUndefined();
    expect(r.lookup('/a')).toBeUndefined();
    expect(r.lookup('/z')).toBeUndefined();
  });

  it('walks the tree: root first, then children in dirent order', async () => {
    const r = await BootstrapReader.open(boot);
    const nodes = [...r.walk()];
    expect(nodes.map((n) => n.path)).toEqual(['/', '/lib.rs', '/sync_io.rs']);
    expect(nodes.map((n) => n.inode.type)).toEqual(['directory', 'file', 'file']);
    expect(nodes[1]!.parentNid).toBe(128);
    for (const n of nodes) {
      expect(r.xattrs(n.nid).size).toBe(0);
    }
  });

  it('resolves chunks through the chunk table and maps ranges', async () => {
    const r = await BootstrapReader.open(boot);
    const lib = r.lookup('/lib.rs')!;
    const chunks = r.chunks(lib);
    expect(chunks).toHaveLength(1);
    expect(chunks[0]).toMatchObject({
      fileOffset: 0,
      blobIndex: 0,
      blobId: BLOB_ID,
      uncompressedSize: 16931,
      compressed: true,
      flags: 1,
      crc32: 0,
    });
    expect(chunks[0]!.digest).toMatch(/^[0-9a-f]{64}$/);
    const sync = r.chunks(r.lookup('/sync_io.rs')!);
    expect(sync).toHaveLength(1);
    expect(sync[0]!.uncompressedSize).toBe(13400);
    // Each chunk sits at a 4 KiB-aligned uncompressed offset; the two chunks don't overlap.
    const all = [chunks[0]!, sync[0]!].sort((a, b) => a.uncompressedOffset - b.uncompressedOffset);
    expect(all[0]!.uncompressedOffset % 4096).toBe(0);
    expect(all[1]!.uncompressedOffset).toBeGreaterThanOrEqual(all[0]!.uncompressedOffset + all[0]!.uncompressedSize);
    expect(all[1]!.compressedOffset).toBe(all[0]!.compressedOffset + all[0]!.compressedSize);

    expect(r.mapRange(lib, 100, 50)).toEqual([{ chunk: chunks[0], chunkOffset: 100, length: 50, fileOffset: 100 }]);
    expect(r.mapRange(lib, 16900, 1000)).toEqual([{ chunk: chunks[0], chunkOffset: 16900, length: 31, fileOffset: 16900 }]);
    expect(r.mapRange(lib, 16931, 10)).toEqual([]);
    expect(() => r.mapRange(lib, -1, 10)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => r.chunks(128)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => r.readlink(lib)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => r.readdir(lib)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('rejects out-of-range nids with a FormatError', async () => {
    const r = await BootstrapReader.open(boot);
    expect(() => r.inode(1_000_000)).toThrow(expect.objectContaining({ code: 'INVALID_FORMAT' }));
    // nid 0 lands in the zero block before the root: mode 0 is no file type.
    expect(() => r.inode(0)).toThrow(expect.objectContaining({ code: 'INVALID_FORMAT', field: 'inode[nid 0].i_mode' }));
  });
});

describe('dump.erofs (erofs-utils) agrees with the reader', () => {
  it('on the superblock figures', async () => {
    const r = await BootstrapReader.open(boot);
    const sb = dumpFields(await dumpErofs('-s'));
    expect(Number(sb.get('Filesystem magic number'))).toBe(r.superblock.magic);
    // dump.erofs adds the device blocks to s_blocks.
    expect(Number(sb.get('Filesystem blocks'))).toBe(r.superblock.blocks + r.blobs.reduce((n, b) => n + b.slot.blocks, 0));
    expect(Number(sb.get('Filesystem blocks'))).toBe(18);
    expect(Number(sb.get('Filesystem inode metadata start block'))).toBe(r.superblock.metaBlkaddr);
    expect(Number(sb.get('Filesystem shared xattr metadata start block'))).toBe(r.superblock.xattrBlkaddr);
    expect(Number(sb.get('Filesystem root nid'))).toBe(r.rootNid);
    expect(Number(sb.get('Filesystem inode count'))).toBe(r.superblock.inodeCount);
    expect(sb.get('Filesystem features')!.split(/\s+/).sort()).toEqual(['chunked_file', 'device_table']);
  });

  it('on every inode of the walk', async () => {
    const r = await BootstrapReader.open(boot);
    const stats = dumpFields(await dumpErofs('-S'));
    let files = 0;
    let total = 0;
    for (const node of r.walk()) {
      const text = await dumpErofs(`--path=${node.path}`);
      const nidLine = /NID: (\d+)\s+Links: (\d+)\s+Layout: (\d+)/.exec(text)!;
      expect(Number(nidLine[1])).toBe(node.nid);
      expect(Number(nidLine[2])).toBe(node.inode.nlink);
      expect(Number(nidLine[3])).toBe(node.inode.raw.dataLayout);
      expect(Number(/Size: (\d+)/.exec(text)![1])).toBe(node.inode.size);
      const ids = /Uid: (\d+)\s+Gid: (\d+)\s+Access: (\d+)/.exec(text)!;
      expect([Number(ids[1]), Number(ids[2]), parseInt(ids[3]!, 8)]).toEqual([node.inode.uid, node.inode.gid, node.inode.mode & 0o7777]);
      const ts = /Timestamp: (\S+ \S+)\.(\d+)/.exec(text)!;
      expect(Date.parse(ts[1]!.replace(' ', 'T') + 'Z') / 1000).toBe(node.inode.mtime);
      expect(Number(ts[2])).toBe(node.inode.mtimeNsec);
      if (node.inode.type === 'file') {
        files++;
        total += node.inode.size;
      }
    }
    expect(Number(stats.get('Filesystem regular file count'))).toBe(files);
    expect(Number(stats.get('Filesystem directory count'))).toBe(1);
    expect(Number(stats.get('Filesystem total original file size')!.split(' ')[0])).toBe(total);
    expect(total).toBe(16931 + 13400);
  });
});

describe('RafsFileReader on rafs-v6-2.2.boot + its blob', () => {
  it('reads every file back with every chunk digest verified', async () => {
    const r = await BootstrapReader.open(boot);
    const backend = mapBackend({ [BLOB_ID]: blob });
    const fr = new RafsFileReader(r, backend);
    for (const node of r.walk()) {
      if (node.inode.type !== 'file') continue;
      const whole = await fr.read(node.nid, 0, node.inode.size);
      expect(whole.length).toBe(node.inode.size);
      // The digests the bootstrap records are those of what we read (readChunk verified them too).
      const chunks = r.chunks(node.nid);
      for (const c of chunks) {
        expect(digestChunk('blake3', whole.subarray(c.fileOffset, c.fileOffset + c.uncompressedSize))).toBe(c.digest);
      }
      expect(Buffer.from(whole).toString('utf8')).toMatch(/^\/\/ Copyright|^\/\/|use |^\/\*/m);
      const streamed = await collect(fr.stream(node.nid));
      expect(streamed.equals(Buffer.from(whole))).toBe(true);
      const part = await fr.read(node.nid, 1000, 3000);
      expect(Buffer.from(part).equals(Buffer.from(whole.subarray(1000, 4000)))).toBe(true);
      expect((await fr.read(node.nid, node.inode.size - 5, 100)).length).toBe(5);
    }
  });

  it('never returns wrong bytes: a flipped byte in chunk data fails with a typed error', async () => {
    const r = await BootstrapReader.open(boot);
    const lib = r.lookup('/lib.rs')!;
    const [chunk] = r.chunks(lib);
    for (const at of [chunk!.compressedOffset + 7, chunk!.compressedOffset + Math.floor(chunk!.compressedSize / 2), chunk!.compressedOffset + chunk!.compressedSize - 3]) {
      const bad = Buffer.from(blob);
      bad[at]! ^= 0x40;
      const fr = new RafsFileReader(r, mapBackend({ [BLOB_ID]: bad }));
      const err = await fr.read(lib, 0, 100).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isNydusError(err)).toBe(true);
      expect(['DATA_LOSS', 'INVALID_FORMAT']).toContain((err as { code: string }).code);
    }
  });

  it('reports a digest mismatch naming blob and chunk when the data decompresses but differs', async () => {
    const r = await BootstrapReader.open(boot);
    const lib = r.lookup('/lib.rs')!;
    const [chunk] = r.chunks(lib);
    // Forge a chunk ref whose digest is wrong: the reader must refuse the bytes.
    const fr = new RafsFileReader(r, mapBackend({ [BLOB_ID]: blob }));
    const forged = { ...chunk!, digest: '00'.repeat(32) };
    await expect(fr.readChunk(forged)).rejects.toMatchObject({
      name: 'DigestMismatchError',
      code: 'DATA_LOSS',
      subject: `chunk ${chunk!.ciIndex} of blob ${BLOB_ID}`,
      actual: chunk!.digest,
    });
    // With verification off the same bytes come back.
    const unverified = new RafsFileReader(r, mapBackend({ [BLOB_ID]: blob }), { verify: false });
    expect((await unverified.readChunk(forged)).length).toBe(16931);
  });

  it('rejects short reads from the backend', async () => {
    const r = await BootstrapReader.open(boot);
    const lib = r.lookup('/lib.rs')!;
    const fr = new RafsFileReader(r, mapBackend({ [BLOB_ID]: blob.subarray(0, 100) }));
    await expect(fr.read(lib, 0, 10)).rejects.toMatchObject({ code: 'DATA_LOSS' });
  });

  it('opens through a ByteSource that reads in pieces', async () => {
    let calls = 0;
    const src: ByteSource = {
      size: boot.length,
      async read(offset, length) {
        calls++;
        return boot.subarray(offset, offset + length);
      },
    };
    const r = await BootstrapReader.open(src);
    expect(calls).toBe(1);
    expect(r.readdir(r.rootNid)).toHaveLength(2);
    const short: ByteSource = { size: boot.length, read: async (o, l) => boot.subarray(o, o + l - 1) };
    await expect(BootstrapReader.open(short)).rejects.toMatchObject({ code: 'DATA_LOSS' });
  });
});
