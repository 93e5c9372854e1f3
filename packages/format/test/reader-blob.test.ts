import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { zstdDecompressInto } from '@nydus-ts/native';
import { describe, expect, it } from 'vitest';
import { BootstrapReader, RafsFileReader, bufferSource, extractBlobSection, parseBlobMetaFile, parseBlobMetaSection, parseBlobToc, readBlobMeta, readBlobToc, walkBlobTail, type ByteSource } from '../src/index.js';
import { ZERO_DIGEST_HEX } from '../src/internal.js';
import { zranEntry, zranMeta } from './fixtures.js';
import { mapBackend } from './reader-helpers.js';

const fixtures = fileURLToPath(new URL('../../../testdata/nydus-upstream/', import.meta.url));
const TOC_BLOB_NAME = '2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca';
const tocBlob = readFileSync(fixtures + TOC_BLOB_NAME);
const tocBlobZst = readFileSync(fixtures + TOC_BLOB_NAME + '.zst');
const BE7_ID = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';
const be7Blob = readFileSync(fixtures + BE7_ID);
const be7Boot = readFileSync(fixtures + 'rafs-v6-2.2.boot');
const TOC_DIGEST = '4fdfbb36ef74a3c63a28e2abafa54044c7594155beb6ddad9f36825cfe58286c';


describe('zran blob.meta fixture', () => {
  it('yields 163 CI v2 entries, 21 contexts and the dictionary table', () => {
    const meta = parseBlobMetaFile(zranMeta, { entry: zranEntry });
    expect(meta.features & 0xf).toBe(0xf);
    expect(meta.chunks).toHaveLength(163);
    expect(meta.zranContexts).toHaveLength(21);
    expect(meta.header.zranOffset).toBe(163 * 24);
    expect(meta.header.zranSize).toBe(0xa0348);
    expect(meta.dictionaryTable.length).toBe(0xa0348 - 21 * 40);
    expect(meta.dictionaryTable.length).toBe(655_360);
    expect(meta.zranContexts[0]).toMatchObject({ inOffset: 10, dictSize: 0 });
    expect(meta.zranContexts.slice(1).every((z) => z.dictSize === 32768)).toBe(true);
    expect(meta.batchContexts).toEqual([]);
    for (const c of meta.chunks) {
      expect(c.flags & 0x03).toBe(0x03); // COMPRESSED | ZRAN
      expect(c.contextIndex).toBeLessThan(21);
      expect(c.uncompressedOffset % 4096).toBe(0);
    }
    // Contexts are in stream order.
    for (let i = 1; i < meta.zranContexts.length; i++) {
      expect(meta.zranContexts[i]!.inOffset).toBeGreaterThan(meta.zranContexts[i - 1]!.inOffset);
    }
  });

  it('rejects a blob entry that disagrees with the header', () => {
    for (const bad of [{ chunkCount: 0xa2 }, { ciCompressor: 3 }, { ciOffset: 4096 }, { ciUncompressedSize: 0xa1298 }, { compressedSize: 1000 }, { features: 0x1 | 0x4 }]) {
      expect(() => parseBlobMetaFile(zranMeta, { entry: { ...zranEntry, ...bad } })).toThrow(expect.objectContaining({ code: 'INVALID_FORMAT' }));
    }
  });

  it('rejects wrong file sizes and bad magic', () => {
    expect(() => parseBlobMetaFile(zranMeta.subarray(4096))).toThrow(expect.objectContaining({ code: 'INVALID_FORMAT' }));
    expect(() => parseBlobMetaFile(zranMeta.subarray(0, zranMeta.length - 100))).toThrow(expect.objectContaining({ code: 'INVALID_FORMAT' }));
    const bad = Buffer.from(zranMeta);
    bad[bad.length - 1]! ^= 1;
    expect(() => parseBlobMetaFile(bad)).toThrow(expect.objectContaining({ code: 'INVALID_FORMAT', field: 'blob_meta_header.s_magic2' }));
  });
});

describe('ToC fixture 2fa78cad…', () => {
  it('reads the ToC at its known location and verifies its digest', async () => {
    const toc = await readBlobToc(bufferSource(tocBlob), { offset: 9010, size: 1024, digest: TOC_DIGEST });
    expect(toc.offset).toBe(9010);
    expect(toc.size).toBe(1024);
    expect(toc.digest).toBe(TOC_DIGEST);
    expect(toc.entries.map((e) => e.name)).toEqual(['image.blob', 'blob.meta', 'blob.meta.header', 'image.boot']);
    expect(toc.entries[1]!.uncompressedSize).toBe(0x30);
    expect(toc.entries[2]!.uncompressedSize).toBe(0x1000);
    expect(toc.entries[3]!.flags & 0xf).toBe(0x2); // zstd
    expect(createHash('sha256').update(tocBlob.subarray(9010, 10034)).digest('hex')).toBe(TOC_DIGEST);
  });

  it('rejects a wrong expected digest', async () => {
    const wrong = TOC_DIGEST.replace(/^4/, '5');
    await expect(readBlobToc(bufferSource(tocBlob), { offset: 9010, size: 1024, digest: wrong })).rejects.toMatchObject({
      name: 'DigestMismatchError',
      code: 'DATA_LOSS',
      expected: wrong,
      actual: TOC_DIGEST,
    });
    expect(() => parseBlobToc(tocBlob.subarray(9010), { expectedDigest: 'sha256:' + wrong })).toThrow(expect.objectContaining({ code: 'DATA_LOSS' }));
    // A zero digest means "unknown" (inlined bootstraps carry one).
    expect(parseBlobToc(tocBlob.subarray(9010), { expectedDigest: ZERO_DIGEST_HEX }).entries).toHaveLength(4);
  });

  it('finds the ToC from the tail without a location', async () => {
    const toc = await readBlobToc(bufferSource(tocBlob));
    expect(toc.entries).toHaveLength(4);
    expect(toc.offset).toBe(9010);
    expect(toc.digest).toBe(TOC_DIGEST);
    // Sections must lie before the ToC: the same ToC at the start of a blob is rejected.
    await expect(readBlobToc(bufferSource(tocBlob.subarray(9010)))).rejects.toMatchObject({ code: 'INVALID_FORMAT', field: 'toc[0].compressed_offset' });
    // No ToC at the end.
    await expect(readBlobToc(bufferSource(tocBlob.subarray(0, 9010)))).rejects.toMatchObject({ code: 'INVALID_FORMAT' });
  });

  it('walks the tail tar headers', async () => {
    const sections = await walkBlobTail(bufferSource(tocBlob));
    expect(sections).toEqual([
      { name: 'image.blob', offset: 0, size: 2829, headerOffset: 2829 },
      { name: 'blob.meta', offset: 3341, size: 4144, headerOffset: 7485 },
      { name: 'image.boot', offset: 7997, size: 501, headerOffset: 8498 },
      { name: 'rafs.blob.toc', offset: 9010, size: 512, headerOffset: 9522 },
    ]);
    const be7 = await walkBlobTail(bufferSource(be7Blob));
    expect(be7.map((s) => s.name)).toEqual(['image.blob', 'blob.meta', 'blob.digest', 'rafs.blob.toc']);
    expect(be7[0]).toMatchObject({ offset: 0, size: 7802 });
    // A blob without tail headers lists nothing; a broken header in the middle is an error.
    expect(await walkBlobTail(bufferSource(be7Blob.subarray(0, 7802)))).toEqual([]);
    const broken = Buffer.from(tocBlob);
    broken[8498 + 148]! ^= 1;
    await expect(walkBlobTail(bufferSource(broken))).rejects.toMatchObject({ code: 'INVALID_FORMAT' });
  });

  it('extracts image.boot: a bootstrap whose files read back from the same blob', async () => {
    const src = bufferSource(tocBlob);
    const toc = await readBlobToc(src);
    const bootBytes = await extractBlobSection(src, toc, 'image.boot');
    expect(bootBytes.length).toBe(20480);
    const r = await BootstrapReader.open(bootBytes);
    expect(r.blobs).toHaveLength(1);
    const blobId = r.blobs[0]!.blobId;
    expect(blobId.startsWith('d788a0ea')).toBe(true);
    expect(r.blobs[0]!.features).toBe(0x1);
    const nodes = [...r.walk()];
    const files = nodes.filter((n) => n.inode.type === 'file');
    expect(files).toHaveLength(3);
    // image.blob's chunk data starts at offset 0 of the blob file, whatever its name.
    const fr = new RafsFileReader(r, mapBackend({ [blobId]: tocBlob }));
    let total = 0;
    for (const f of files) {
      const data = await fr.read(f.nid, 0, f.inode.size);
      expect(data.length).toBe(f.inode.size);
      total += data.length;
    }
    expect(total).toBeGreaterThan(0);
    // The blob's CI section (blob.meta + header) parses and agrees with the blob table.
    const meta = await readBlobMeta(src, r.blobs[0]!.entry);
    expect(meta.chunks).toHaveLength(r.blobs[0]!.entry.chunkCount);
    r.attachBlobMeta(0, meta);
    for (const f of files) {
      for (const c of r.chunks(f.nid)) expect(c.ci).toEqual(meta.chunks[c.ciIndex]);
    }
  });

  it('extracts the other sections with their digests verified', async () => {
    const src = bufferSource(tocBlob);
    const toc = await readBlobToc(src);
    expect((await extractBlobSection(src, toc, 'blob.meta')).length).toBe(0x30);
    const header = await extractBlobSection(src, toc, 'blob.meta.header');
    expect(header.length).toBe(4096);
    expect(Buffer.from(header.subarray(0, 4)).readUInt32LE(0)).toBe(0xb10bb10b);
    // image.blob: the 2.2-era ToC records the end of the data; the digest covers data + tar header.
    expect((await extractBlobSection(src, toc, 'image.blob')).length).toBe(2829);
    await expect(extractBlobSection(src, toc, 'blob.digest')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const corrupt = Buffer.from(tocBlob);
    corrupt[8000]! ^= 0x10;
    await expect(extractBlobSection(bufferSource(corrupt), toc, 'image.boot')).rejects.toSatisfy((e: unknown) => ['DATA_LOSS', 'INVALID_FORMAT'].includes((e as { code: string }).code));
    const corruptMeta = Buffer.from(tocBlob);
    corruptMeta[3341]! ^= 0x10;
    await expect(extractBlobSection(bufferSource(corruptMeta), toc, 'blob.meta')).rejects.toMatchObject({ name: 'DigestMismatchError' });
  });

  it('the .zst fixture decompresses to the ToC blob', () => {
    const out = Buffer.alloc(tocBlob.length);
    expect(zstdDecompressInto(tocBlobZst, out)).toBe(tocBlob.length);
    expect(out.equals(tocBlob)).toBe(true);
  });
});

describe('be7d77… blob (layout §3.1(c))', () => {
  it('has a CI section that matches the bootstrap and attaches to it', async () => {
    const r = await BootstrapReader.open(be7Boot);
    const entry = r.blobs[0]!.entry;
    expect(entry.tocSize).toBe(1024);
    const toc = await readBlobToc(bufferSource(be7Blob), { offset: be7Blob.length - entry.tocSize, size: entry.tocSize, digest: entry.tocDigest });
    expect(toc.entries.map((e) => e.name)).toEqual(['image.blob', 'blob.meta', 'blob.meta.header', 'blob.digest']);
    const meta = await readBlobMeta(bufferSource(be7Blob), entry);
    expect(meta.chunks).toHaveLength(2);
    expect(meta.chunks[0]).toMatchObject({ uncompressedOffset: 0, uncompressedSize: 16931, compressedOffset: 0, compressedSize: 4828, compressed: true });
    r.attachBlobMeta(0, meta);
    const lib = r.chunks(r.lookup('/lib.rs')!)[0]!;
    expect(lib.ci).toEqual(meta.chunks[lib.ciIndex]);
    expect(lib.zranContextIndex).toBeUndefined();
    // The blob.digest section holds the chunk digests in CI order.
    const digests = await extractBlobSection(bufferSource(be7Blob), toc, 'blob.digest');
    expect(Buffer.from(digests.subarray(32 * lib.ciIndex, 32 * lib.ciIndex + 32)).toString('hex')).toBe(lib.digest);
    // The section parser on its own, and a meta that belongs to another blob.
    const section = be7Blob.subarray(entry.ciOffset, entry.ciOffset + entry.ciCompressedSize + 4096);
    expect(parseBlobMetaSection(section).chunks).toHaveLength(2);
    expect(() => r.attachBlobMeta(0, parseBlobMetaFile(zranMeta))).toThrow(expect.objectContaining({ code: 'INVALID_FORMAT' }));
    expect(() => r.attachBlobMeta(1, meta)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('reads the CI section through a ranged ByteSource', async () => {
    const r = await BootstrapReader.open(be7Boot);
    const reads: Array<[number, number]> = [];
    const src: ByteSource = {
      size: be7Blob.length,
      async read(offset, length) {
        reads.push([offset, length]);
        return be7Blob.subarray(offset, offset + length);
      },
    };
    await readBlobMeta(src, r.blobs[0]!.entry);
    expect(reads).toEqual([[8314, 32 + 4096]]);
    const truncated = { ...src, size: 9000 };
    await expect(readBlobMeta(truncated, r.blobs[0]!.entry)).rejects.toMatchObject({ code: 'INVALID_FORMAT' });
  });

  it('zran chunks need their blob meta (contexts, windows) attached', async () => {
    const r = await BootstrapReader.open(be7Boot);
    const lib = r.chunks(r.lookup('/lib.rs')!)[0]!;
    const fr = new RafsFileReader(r, mapBackend({ [BE7_ID]: be7Blob }));
    await expect(fr.readChunk({ ...lib, zranContextIndex: 0, zranOffset: 0 })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
  });
});
