import { FormatError } from '@nydus-ts/core';
import { LeReader, LeWriter, hexOf } from './bytes.js';

/** ToC entry (128 bytes, spec §3.6). */
export interface TocEntry {
  /** flags @0 (low nibble: 0x1 none, 0x2 zstd, 0x4 lz4_block) */ flags: number;
  /** name @8 (16 bytes, NUL padded) */ name: string;
  /** uncompressed_digest @24: sha256 of the uncompressed content (hex) */ digest: string;
  /** compressed_offset @56: absolute offset in the blob */ compressedOffset: number;
  /** compressed_size @64 */ compressedSize: number;
  /** uncompressed_size @72 */ uncompressedSize: number;
}

export const TOC_ENTRY_SIZE = 128;
export const TocFlags = { NONE: 0x1, ZSTD: 0x2, LZ4_BLOCK: 0x4 } as const;
export const TocNames = {
  BLOB: 'image.blob',
  META: 'blob.meta',
  META_HEADER: 'blob.meta.header',
  DIGEST: 'blob.digest',
  BOOTSTRAP: 'image.boot',
  TOC: 'rafs.blob.toc',
} as const;
const TOC = { flags: 0, name: 8, digest: 24, compressedOffset: 56, compressedSize: 64, uncompressedSize: 72 } as const;

export function encodeTocEntry(e: TocEntry, out: Uint8Array, off: number): void {
  new LeWriter(out.subarray(off, off + TOC_ENTRY_SIZE))
    .u32(TOC.flags, e.flags)
    .cstring(TOC.name, 16, e.name)
    .set(TOC.digest, Buffer.from(e.digest, 'hex'))
    .u64(TOC.compressedOffset, e.compressedOffset)
    .u64(TOC.compressedSize, e.compressedSize)
    .u64(TOC.uncompressedSize, e.uncompressedSize);
}

export function decodeTocEntry(bytes: Uint8Array, off: number, absOffset: number, index: number): TocEntry {
  const r = new LeReader(bytes.subarray(off, off + TOC_ENTRY_SIZE), `toc[${index}]`, absOffset);
  const flags = r.u32(TOC.flags, 'flags');
  if ((flags & 0xf) !== TocFlags.NONE && (flags & 0xf) !== TocFlags.ZSTD && (flags & 0xf) !== TocFlags.LZ4_BLOCK) {
    throw new FormatError(`toc[${index}].flags`, `unknown compression flags 0x${flags.toString(16)}`, { offset: absOffset, value: flags });
  }
  return {
    flags,
    name: r.cstring(TOC.name, 16, 'name'),
    digest: hexOf(r.slice(TOC.digest, 32, 'uncompressed_digest')),
    compressedOffset: r.u64(TOC.compressedOffset, 'compressed_offset'),
    compressedSize: r.u64(TOC.compressedSize, 'compressed_size'),
    uncompressedSize: r.u64(TOC.uncompressedSize, 'uncompressed_size'),
  };
}

/**
 * The 512-byte GNU tar header that follows each section of a blob and describes the bytes
 * before it (spec §3.1): name, size (11 octal digits + NUL), mtime zeros, checksum, type '0',
 * GNU magic. Mode/uid/gid are left NUL as the reference writer leaves them.
 */
export const TAR_HEADER_SIZE = 512;
const TAR = { name: 0, size: 124, mtime: 136, checksum: 148, typeflag: 156, magic: 257, version: 263 } as const;

export function encodeTailTarHeader(name: string, size: number): Uint8Array {
  const h = new Uint8Array(TAR_HEADER_SIZE);
  const w = new LeWriter(h);
  w.cstring(TAR.name, 100, name);
  w.set(TAR.size, Buffer.from(size.toString(8).padStart(11, '0') + '\0', 'latin1'));
  w.set(TAR.mtime, Buffer.from('00000000000\0', 'latin1'));
  h[TAR.typeflag] = 0x30;
  w.set(TAR.magic, Buffer.from('ustar ', 'latin1'));
  w.set(TAR.version, Buffer.from(' \0', 'latin1'));
  h.fill(0x20, TAR.checksum, TAR.checksum + 8);
  let sum = 0;
  for (let i = 0; i < TAR_HEADER_SIZE; i++) sum += h[i]!;
  // Rust tar (the reference writer): 7 octal digits + NUL, e.g. "0006255\0".
  w.set(TAR.checksum, Buffer.from(sum.toString(8).padStart(7, '0') + '\0', 'latin1'));
  return h;
}

/** Parses a tail tar header; returns undefined when the bytes are not a valid tar header. */
export function decodeTailTarHeader(h: Uint8Array): { name: string; size: number } | undefined {
  if (h.length !== TAR_HEADER_SIZE) return undefined;
  const stored = parseOctal(h.subarray(TAR.checksum, TAR.checksum + 8));
  if (stored === undefined) return undefined;
  let sum = 0;
  for (let i = 0; i < TAR_HEADER_SIZE; i++) sum += i >= TAR.checksum && i < TAR.checksum + 8 ? 0x20 : h[i]!;
  if (sum !== stored) return undefined;
  const size = parseOctal(h.subarray(TAR.size, TAR.size + 12));
  if (size === undefined) return undefined;
  const nameRaw = h.subarray(TAR.name, TAR.name + 100);
  const end = nameRaw.indexOf(0);
  return { name: Buffer.from(nameRaw.subarray(0, end === -1 ? 100 : end)).toString('utf8'), size };
}

function parseOctal(field: Uint8Array): number | undefined {
  const text = Buffer.from(field).toString('latin1').replace(/[\0 ]+$/g, '').replace(/^[\0 ]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return undefined;
  return parseInt(text, 8);
}
