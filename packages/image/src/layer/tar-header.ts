import { FormatError, InvalidArgumentError } from '@nydus-ts/core';
import { decodeFsName, printableFsName } from '@nydus-ts/format';

/**
 * The 512-byte tar header shared by ustar (POSIX.1-1988), GNU and PAX (POSIX.1-2001) archives.
 * Field offsets and sizes, as in POSIX `ustar` and GNU tar's `tar.h`.
 */
export const BLOCK_SIZE = 512;

export const Field = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

export type FieldName = keyof typeof Field;

/** Type flags (header byte 156). */
export const TypeFlag = {
  regular: 0x30, // '0'
  regularOld: 0x00, // '\0' (pre-POSIX)
  hardlink: 0x31, // '1'
  symlink: 0x32, // '2'
  charDevice: 0x33, // '3'
  blockDevice: 0x34, // '4'
  directory: 0x35, // '5'
  fifo: 0x36, // '6'
  contiguous: 0x37, // '7' (treated as regular)
  paxExtended: 0x78, // 'x'
  paxGlobal: 0x67, // 'g'
  gnuLongName: 0x4c, // 'L'
  gnuLongLink: 0x4b, // 'K'
  gnuDumpDir: 0x44, // 'D'
  gnuSparse: 0x53, // 'S'
  gnuVolumeLabel: 0x56, // 'V'
  gnuMultiVolume: 0x4d, // 'M'
} as const;

/** Largest value of an octal field of `width` bytes (width − 1 digits plus a terminator). */
export function maxOctal(width: number): number {
  return 8 ** (width - 1) - 1;
}

/** Unsigned checksum of a header: byte sum with the chksum field counted as 8 spaces (`views`: a reader's word views). */
export function headerChecksum(block: Buffer, views?: WordViews): number {
  if ((block.byteOffset & 3) === 0 && block.length >= BLOCK_SIZE) {
    // Four bytes per step: each 32-bit word adds its bytes into two 16-bit lanes (at most
    // 126 × 510 per lane, so no carries between them).
    const words = views !== undefined ? views.of(block.buffer) : new Uint32Array(block.buffer, block.byteOffset, BLOCK_SIZE / 4);
    const base = views !== undefined ? block.byteOffset >>> 2 : 0;
    let lanes = 0;
    for (let i = base; i < base + 148 / 4; i++) {
      const v = words[i]!;
      lanes += (v & 0x00ff00ff) + ((v >>> 8) & 0x00ff00ff);
    }
    for (let i = base + 156 / 4; i < base + BLOCK_SIZE / 4; i++) {
      const v = words[i]!;
      lanes += (v & 0x00ff00ff) + ((v >>> 8) & 0x00ff00ff);
    }
    return 8 * 0x20 + (lanes & 0xffff) + (lanes >>> 16);
  }
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += block[i]!;
  for (let i = 156; i < BLOCK_SIZE; i++) sum += block[i]!;
  return sum;
}

/**
 * Word views of the last two buffers seen (sources alternate between a few), so that a header
 * costs no view of its own. One per reader: it keeps those buffers alive.
 */
export class WordViews {
  private lastBuffer: ArrayBufferLike | undefined;
  private lastWords: Uint32Array = new Uint32Array(0);
  private prevBuffer: ArrayBufferLike | undefined;
  private prevWords: Uint32Array = new Uint32Array(0);

  of(buffer: ArrayBufferLike): Uint32Array {
    if (buffer === this.lastBuffer) return this.lastWords;
    if (buffer === this.prevBuffer) {
      [this.prevBuffer, this.lastBuffer] = [this.lastBuffer, this.prevBuffer];
      [this.prevWords, this.lastWords] = [this.lastWords, this.prevWords];
      return this.lastWords;
    }
    this.prevBuffer = this.lastBuffer;
    this.prevWords = this.lastWords;
    this.lastBuffer = buffer;
    this.lastWords = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
    return this.lastWords;
  }
}

/** The historic signed variant (bytes as int8), which some old writers produced. */
export function headerChecksumSigned(block: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    if (i >= 148 && i < 156) continue;
    const b = block[i]!;
    sum += b >= 0x80 ? b - 0x100 : b;
  }
  return sum;
}

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);

/** True if the block is all zeros (an end-of-archive marker). */
export function isZeroBlock(block: Buffer): boolean {
  // A real header answers at its checksum field or name without the native compare.
  if (block[148] !== 0 || block[0] !== 0) return false;
  return block.equals(ZERO_BLOCK);
}

/** A NUL-terminated name field, decoded losslessly (bytes that are not UTF-8 escaped: `decodeFsName`). */
export function readString(block: Buffer, [off, len]: readonly [number, number]): string {
  let end = block.indexOf(0, off);
  if (end < 0 || end > off + len) end = off + len;
  return decodeFsName(block, off, end);
}

/**
 * A numeric field: octal digits (leading spaces/NULs allowed, ended by space or NUL), or the GNU
 * base-256 form (first byte 0x80 for positive, 0xff for negative two's complement).
 * `where` names the entry for error messages; `offset` is the header's absolute offset.
 */
export function readNumber(block: Buffer, name: FieldName, where: string, offset: number): number {
  const [off, len] = Field[name];
  return readNumeric(block, off, len, `tar.header.${name}`, where, offset + off);
}

/**
 * A numeric field of `len` bytes at `off` (octal or GNU base-256, as readNumber); `field` names it
 * in errors, `absOffset` is its offset in the archive.
 */
export function readNumeric(block: Buffer, off: number, len: number, field: string, where: string, absOffset: number): number {
  const first = block[off]!;
  if (first & 0x80) {
    const negative = first === 0xff;
    let value = 0n;
    for (let i = 0; i < len; i++) {
      let b = block[off + i]!;
      if (i === 0) b &= negative ? 0xff : 0x7f;
      value = (value << 8n) | BigInt(b);
    }
    if (negative) value -= 1n << BigInt(8 * len);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new FormatError(field, `${where}: base-256 value ${value} is out of range`, {
        offset: absOffset,
        value,
      });
    }
    return Number(value);
  }
  let i = off;
  const end = off + len;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  let value = 0;
  for (; i < end; i++) {
    const b = block[i]!;
    if (b === 0x20 || b === 0) break;
    if (b < 0x30 || b > 0x37) {
      throw new FormatError(
        field,
        `${where}: invalid octal digit 0x${b.toString(16).padStart(2, '0')} in "${printableFsName(decodeFsName(block.subarray(off, end))).replace(/\\x00/g, '\\0')}"`,
        { offset: absOffset },
      );
    }
    value = value * 8 + (b - 0x30);
  }
  // Anything after the terminator must be a terminator too (spaces/NULs).
  for (; i < end; i++) {
    const b = block[i]!;
    if (b !== 0x20 && b !== 0) {
      throw new FormatError(field, `${where}: garbage after octal number`, { offset: absOffset });
    }
  }
  return value;
}

/**
 * Normalises a tar member name into a layer path: strips leading `/`, drops empty and `.`
 * components (so `//`, `./` and trailing `/` disappear), and rejects `..` components. The root
 * (`.`, `./`, `/`) becomes ''. `what` names the member for the error message.
 */
export function normalizeTarPath(name: string, what: string): string {
  // Fast path: already clean (the common case in real layers, apart from a leading "./").
  let s = name;
  if (s.startsWith('./')) s = s.slice(2);
  if (
    s.length > 0 &&
    s.charCodeAt(0) !== 0x2f &&
    s.charCodeAt(s.length - 1) !== 0x2f &&
    !s.includes('//') &&
    !s.includes('/./') &&
    !s.startsWith('./') &&
    !s.endsWith('/.') &&
    !s.includes('..') &&
    s !== '.'
  ) {
    return s;
  }
  const parts: string[] = [];
  for (const part of s.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      throw new InvalidArgumentError(`tar entry ${what}: path "${name}" contains a ".." component`);
    }
    parts.push(part);
  }
  return parts.join('/');
}
