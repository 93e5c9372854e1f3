import { FormatError } from '@nydus-ts/core';
import { LeReader, LeWriter } from './bytes.js';
import { DIRENT_SIZE, EROFS_NAME_LEN } from './constants.js';

/** A directory entry (spec §1.9): `nid u64 @0, nameoff u16 @8, file_type u8 @10`. */
export interface Dirent {
  name: Uint8Array;
  nid: number;
  fileType: number;
}

const DIRENT = { nid: 0, nameoff: 8, fileType: 10 } as const;

export function compareNames(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/**
 * Splits sorted entries (incl. `.` and `..`) into blocks: k dirents then k names per block; an
 * entry that would overflow starts a new block. Returns the entries per block and `i_size`
 * (full blocks plus the bytes used in the last one).
 */
export function planDirentBlocks(entries: readonly Dirent[], blockSize: number): { blocks: Dirent[][]; size: number } {
  const blocks: Dirent[][] = [];
  let current: Dirent[] = [];
  let used = 0;
  for (const e of entries) {
    if (e.name.length === 0 || e.name.length > EROFS_NAME_LEN) {
      throw new FormatError('dirent.name', `name of ${e.name.length} bytes is not 1..255`, { value: Buffer.from(e.name).toString() });
    }
    const need = DIRENT_SIZE + e.name.length;
    if (used + need > blockSize) {
      blocks.push(current);
      current = [];
      used = 0;
    }
    current.push(e);
    used += need;
  }
  if (current.length > 0) blocks.push(current);
  const size = blocks.length === 0 ? 0 : (blocks.length - 1) * blockSize + used;
  return { blocks, size };
}

/** Encodes planned blocks into `size` bytes of directory data. */
export function encodeDirentBlocks(blocks: readonly Dirent[][], size: number, blockSize: number): Uint8Array {
  const out = new Uint8Array(size);
  blocks.forEach((block, i) => {
    const base = i * blockSize;
    const len = Math.min(blockSize, size - base);
    const w = new LeWriter(out.subarray(base, base + len));
    let nameoff = block.length * DIRENT_SIZE;
    block.forEach((e, j) => {
      const off = j * DIRENT_SIZE;
      w.u64(off + DIRENT.nid, e.nid).u16(off + DIRENT.nameoff, nameoff).u8(off + DIRENT.fileType, e.fileType);
      w.set(nameoff, e.name);
      nameoff += e.name.length;
    });
  });
  return out;
}

/**
 * A directory's entries without an object per entry: entry i is name bytes
 * `names[nameStart(i), nameEnd(i))`, `nid(i)` and `fileType(i)`.
 */
export class DirentList {
  /** Four numbers per entry: name start, name end, nid, file type. */
  private readonly fields: number[] = [];

  constructor(readonly names: Uint8Array) {}

  get count(): number {
    return this.fields.length >>> 2;
  }
  push(nameStart: number, nameEnd: number, nid: number, fileType: number): void {
    this.fields.push(nameStart, nameEnd, nid, fileType);
  }
  nameStart(i: number): number {
    return this.fields[4 * i]!;
  }
  nameEnd(i: number): number {
    return this.fields[4 * i + 1]!;
  }
  nid(i: number): number {
    return this.fields[4 * i + 2]!;
  }
  fileType(i: number): number {
    return this.fields[4 * i + 3]!;
  }
  /** Entry i's name (a view into `names`). */
  name(i: number): Uint8Array {
    return this.names.subarray(this.nameStart(i), this.nameEnd(i));
  }
  /** Byte-wise order of the names of entries i and j (as Buffer.compare). */
  compareNames(i: number, j: number): number {
    const names = this.names;
    const a = this.nameStart(i);
    const b = this.nameStart(j);
    const la = this.nameEnd(i) - a;
    const lb = this.nameEnd(j) - b;
    const n = Math.min(la, lb);
    for (let k = 0; k < n; k++) {
      const d = names[a + k]! - names[b + k]!;
      if (d !== 0) return d < 0 ? -1 : 1;
    }
    return la === lb ? 0 : la < lb ? -1 : 1;
  }
  /** True if entry i's name is `.` (1 dot) or `..` (2 dots). */
  isDots(i: number, dots: 1 | 2): boolean {
    const at = this.nameStart(i);
    if (this.nameEnd(i) - at !== dots) return false;
    return this.names[at] === 0x2e && (dots === 1 || this.names[at + 1] === 0x2e);
  }
}

/** Decodes all entries of a directory's data (`i_size` bytes), block by block. */
export function decodeDirentBlocks(data: Uint8Array, blockSize: number, absOffsetOf: (blockIndex: number) => number, nid: number): Dirent[] {
  const list = decodeDirentList(data, blockSize, absOffsetOf, nid);
  return Array.from({ length: list.count }, (_, i) => ({ name: list.name(i), nid: list.nid(i), fileType: list.fileType(i) }));
}

/** An LeReader of the block at `base` (error paths: its messages and offsets). */
function blockReader(data: Uint8Array, base: number, end: number, blockSize: number, absOffsetOf: (blockIndex: number) => number, nid: number): LeReader {
  return new LeReader(data.subarray(base, end), `dir[nid ${nid}].block[${base / blockSize}]`, absOffsetOf(base / blockSize));
}

/** `decodeDirentBlocks` as a DirentList (names point into `data`). */
export function decodeDirentList(data: Uint8Array, blockSize: number, absOffsetOf: (blockIndex: number) => number, nid: number): DirentList {
  const out = new DirentList(data);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let base = 0; base < data.length; base += blockSize) {
    const end = Math.min(base + blockSize, data.length);
    const len = end - base;
    if (len < DIRENT.nameoff + 2) blockReader(data, base, end, blockSize, absOffsetOf, nid).u16(DIRENT.nameoff, 'nameoff');
    const first = view.getUint16(base + DIRENT.nameoff, true);
    if (first < DIRENT_SIZE || first % DIRENT_SIZE !== 0 || first >= len) {
      const r = blockReader(data, base, end, blockSize, absOffsetOf, nid);
      throw new FormatError(`${r.what}.nameoff`, `first nameoff ${first} is invalid for a block of ${len} bytes`, { offset: r.base + DIRENT.nameoff, value: first });
    }
    const count = first / DIRENT_SIZE;
    for (let i = 0; i < count; i++) {
      const off = base + i * DIRENT_SIZE;
      const nameoff = view.getUint16(off + DIRENT.nameoff, true);
      const nameEnd = i + 1 < count ? view.getUint16(off + DIRENT_SIZE + DIRENT.nameoff, true) : len;
      if (nameoff < first || nameEnd > len || nameEnd < nameoff) {
        const r = blockReader(data, base, end, blockSize, absOffsetOf, nid);
        throw new FormatError(`${r.what}.dirent[${i}].nameoff`, `name range [${nameoff}, ${nameEnd}) is invalid`, { offset: r.base + i * DIRENT_SIZE + DIRENT.nameoff, value: nameoff });
      }
      let stop = base + nameoff;
      while (stop < base + nameEnd && data[stop] !== 0) stop++;
      const nameLen = stop - (base + nameoff);
      if (nameLen === 0 || nameLen > EROFS_NAME_LEN) {
        const r = blockReader(data, base, end, blockSize, absOffsetOf, nid);
        throw new FormatError(`${r.what}.dirent[${i}]`, `name length ${nameLen} is not 1..255`, { offset: r.base + nameoff });
      }
      const hi = view.getUint32(off + DIRENT.nid + 4, true);
      if (hi > 0x1fffff) blockReader(data, base, end, blockSize, absOffsetOf, nid).u64(i * DIRENT_SIZE + DIRENT.nid, 'nid');
      const childNid = hi * 0x1_0000_0000 + view.getUint32(off + DIRENT.nid, true);
      out.push(base + nameoff, stop, childNid, data[off + DIRENT.fileType]!);
    }
  }
  return out;
}
