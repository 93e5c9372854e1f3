import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { encodeRdev, decodeRdev } from '../src/index.js';
import { BLOB_ENTRY_SIZE, DEVICE_TABLE_OFFSET, ROOT_NID, decodeBlobEntry, decodeChunkInfoV1, decodeDeviceSlot, decodeErofsSuperblock, decodeRafsExtSuperblock, encodeBlobEntry, encodeChunkInfoV1, encodeChunkInfoV2, decodeChunkInfoV2, encodeErofsSuperblock, encodeRafsExtSuperblock, encodeTailTarHeader, decodeTailTarHeader, validateErofsSuperblock, validateRafsExtSuperblock, validateBlobEntry } from '../src/internal.js';

const fixtures = fileURLToPath(new URL('../../../testdata/nydus-upstream/', import.meta.url));
const boot = readFileSync(fixtures + 'rafs-v6-2.2.boot');

describe('layout codecs on the nydus 2.2 bootstrap', () => {
  it('decodes and re-encodes the superblocks byte for byte', () => {
    const sb = decodeErofsSuperblock(boot);
    validateErofsSuperblock(sb);
    expect(sb.rootNid).toBe(ROOT_NID);
    expect(sb.inodeCount).toBe(3);
    expect(sb.blocks).toBe(9);
    expect(sb.extraDevices).toBe(1);
    expect(Buffer.from(encodeErofsSuperblock(sb))).toEqual(boot.subarray(1024, 1152));
    const ext = decodeRafsExtSuperblock(boot);
    validateRafsExtSuperblock(ext, boot.length, 4096);
    expect(ext.flags).toBe(0x194);
    expect(Buffer.from(encodeRafsExtSuperblock(ext))).toEqual(boot.subarray(1152, 1408));
  });

  it('decodes the device slot and blob entry', () => {
    const slot = decodeDeviceSlot(boot.subarray(DEVICE_TABLE_OFFSET, DEVICE_TABLE_OFFSET + 128), DEVICE_TABLE_OFFSET, 0);
    expect(slot.blobId).toBe('be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef');
    expect(slot.mappedBlkaddr).toBe(512);
    const ext = decodeRafsExtSuperblock(boot);
    const raw = boot.subarray(ext.blobTableOffset, ext.blobTableOffset + BLOB_ENTRY_SIZE);
    const blob = decodeBlobEntry(raw, ext.blobTableOffset, 0);
    validateBlobEntry(blob, 0, ext.chunkSize, ext.blobTableOffset);
    expect(blob.blobId).toBe(slot.blobId);
    expect(blob.features).toBe(0x70000021);
    expect(blob.chunkCount).toBe(2);
    expect(Buffer.from(encodeBlobEntry(blob))).toEqual(raw);
  });

  it('packs CI v1 as the spec example and round-trips v1/v2', () => {
    const w = Buffer.alloc(16);
    w.writeBigUInt64LE(0x0422_2000_0000_0000n, 0);
    w.writeBigUInt64LE(0x012d_b000_0000_0000n, 8);
    const c = decodeChunkInfoV1(w, 0, 0);
    expect(c).toMatchObject({ uncompressedOffset: 0, uncompressedSize: 16931, compressedOffset: 0, compressedSize: 4828, compressed: true });
    const out = new Uint8Array(16);
    encodeChunkInfoV1(c, out, 0);
    expect(Buffer.from(out)).toEqual(w);
    const big = { uncompressedOffset: 0x3_4567_8000, uncompressedSize: 0x1000000, compressedOffset: 0xab_cdef_0123, compressedSize: 0xfffff1, compressed: true, flags: 1, contextIndex: 7, contextOffset: 99 };
    const b1 = new Uint8Array(16);
    encodeChunkInfoV1(big, b1, 0);
    expect(decodeChunkInfoV1(b1, 0, 0)).toMatchObject({ uncompressedOffset: big.uncompressedOffset, uncompressedSize: big.uncompressedSize, compressedOffset: big.compressedOffset, compressedSize: big.compressedSize });
    const b2 = new Uint8Array(24);
    encodeChunkInfoV2(big, b2, 0);
    expect(decodeChunkInfoV2(b2, 0, 0)).toEqual(big);
  });

  it('writes tail tar headers that parse back', () => {
    const h = encodeTailTarHeader('rafs.blob.toc', 640);
    expect(decodeTailTarHeader(h)).toEqual({ name: 'rafs.blob.toc', size: 640 });
    h[0] = 0x41;
    expect(decodeTailTarHeader(h)).toBeUndefined();
  });

  it('packs rdev like glibc makedev truncated to 32 bits', () => {
    expect(encodeRdev(8, 1)).toBe(0x801);
    expect(decodeRdev(encodeRdev(259, 65537))).toEqual({ major: 259, minor: 65537 });
  });
});
