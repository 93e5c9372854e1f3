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

/** Decodes all entries of a directory's data (`i_size` bytes), block by block. */
export function decodeDirentBlocks(data: Uint8Array, blockSize: number, absOffsetOf: (blockIndex: number) => number, nid: number): Dirent[] {
  const out: Dirent[] = [];
  for (let base = 0; base < data.length; base += blockSize) {
    const block = data.subarray(base, Math.min(base + blockSize, data.length));
    const abs = absOffsetOf(base / blockSize);
    const what = `dir[nid ${nid}].block[${base / blockSize}]`;
    const r = new LeReader(block, what, abs);
    const first = r.u16(DIRENT.nameoff, 'nameoff');
    if (first < DIRENT_SIZE || first % DIRENT_SIZE !== 0 || first >= block.length) {
      throw new FormatError(`${what}.nameoff`, `first nameoff ${first} is invalid for a block of ${block.length} bytes`, { offset: abs + DIRENT.nameoff, value: first });
    }
    const count = first / DIRENT_SIZE;
    for (let i = 0; i < count; i++) {
      const off = i * DIRENT_SIZE;
      const nameoff = r.u16(off + DIRENT.nameoff, 'nameoff');
      const end = i + 1 < count ? r.u16(off + DIRENT_SIZE + DIRENT.nameoff, 'nameoff') : block.length;
      if (nameoff < first || end > block.length || end < nameoff) {
        throw new FormatError(`${what}.dirent[${i}].nameoff`, `name range [${nameoff}, ${end}) is invalid`, { offset: abs + off + DIRENT.nameoff, value: nameoff });
      }
      let name = block.subarray(nameoff, end);
      const nul = name.indexOf(0);
      if (nul !== -1) name = name.subarray(0, nul);
      if (name.length === 0 || name.length > EROFS_NAME_LEN) {
        throw new FormatError(`${what}.dirent[${i}]`, `name length ${name.length} is not 1..255`, { offset: abs + nameoff });
      }
      out.push({ name, nid: r.u64(off + DIRENT.nid, 'nid'), fileType: r.u8(off + DIRENT.fileType, 'file_type') });
    }
  }
  return out;
}
