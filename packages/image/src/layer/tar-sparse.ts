import { FormatError } from '@nydus-ts/core';
import { readNumeric } from './tar-header.js';

/**
 * GNU sparse files, read as Go's archive/tar reads them: the archive stores only the data
 * fragments of a file, back to back, plus a map of where each lies in the file; everything
 * else is a hole, read as zeros. The map comes in four forms: the old GNU 'S' header (four
 * entries in the header, 21 per extension block after it), and the PAX formats 0.0 and 0.1
 * (records in the extended header) and 1.0 (decimal lines at the start of the data, in whole
 * blocks). The logical size comes from the 'S' header's realsize or `GNU.sparse.size` /
 * `GNU.sparse.realsize`.
 */

/** A data fragment: `length` bytes of the file at `offset`, stored in the archive in map order. */
export interface SparseFragment {
  offset: number;
  length: number;
}

/** How an entry's sparse map is stored (see above). */
export interface SparseSpec {
  format: 'old-gnu' | 'pax-0' | 'pax-1.0';
  /** Fragments known from the header or the PAX records (1.0: none yet; old GNU: the header's). */
  fragments: SparseFragment[];
  /** Old GNU: more fragments follow in extension blocks. */
  extended: boolean;
  /** The file's logical size. */
  realSize: number;
}

const OLD_GNU_MAP = 386;
const OLD_GNU_ENTRIES = 4;
const OLD_GNU_IS_EXTENDED = 482;
const OLD_GNU_REAL_SIZE = 483;
const EXTENSION_ENTRIES = 21;
const EXTENSION_IS_EXTENDED = 504;
const SPARSE_ENTRY_SIZE = 24;
/** A sparse map entry: offset and length, 12-byte numeric fields each. */
const SPARSE_FIELD = 12;

/** The map of an old GNU 'S' header (its first four fragments); `where` names the entry. */
export function oldGnuSparse(block: Buffer, where: string, headerOffset: number): SparseSpec {
  // GNU magic "ustar  \0": the STAR format uses the same type flag with another layout.
  if (block.toString('latin1', 257, 265) !== 'ustar  \0') {
    throw new FormatError('tar.header.magic', `${where}: a sparse ('S') entry outside the GNU format`, { offset: headerOffset + 257 });
  }
  const realSize = numeric(block, OLD_GNU_REAL_SIZE, where, headerOffset, 'realsize');
  return { format: 'old-gnu', fragments: mapEntries(block, OLD_GNU_MAP, OLD_GNU_ENTRIES, where, headerOffset), extended: block[OLD_GNU_IS_EXTENDED] !== 0, realSize };
}

/** The fragments of one old GNU extension block, and whether another block follows. */
export function oldGnuExtension(block: Buffer, where: string, blockOffset: number): { fragments: SparseFragment[]; extended: boolean } {
  return { fragments: mapEntries(block, 0, EXTENSION_ENTRIES, where, blockOffset), extended: block[EXTENSION_IS_EXTENDED] !== 0 };
}

/** Map entries from `at`, up to the first whose offset field starts with NUL (as GNU and BSD tar stop). */
function mapEntries(block: Buffer, at: number, count: number, where: string, blockOffset: number): SparseFragment[] {
  const out: SparseFragment[] = [];
  for (let i = 0; i < count; i++) {
    const off = at + i * SPARSE_ENTRY_SIZE;
    if (block[off] === 0) break;
    out.push({ offset: numeric(block, off, where, blockOffset, 'offset'), length: numeric(block, off + SPARSE_FIELD, where, blockOffset, 'numbytes') });
  }
  return out;
}

function numeric(block: Buffer, at: number, where: string, blockOffset: number, what: string): number {
  return readNumeric(block, at, SPARSE_FIELD, `tar.sparse.${what}`, where, blockOffset + at);
}

/**
 * The sparse spec of PAX records, or null when they do not describe a sparse file (or one of
 * a version Go's reader does not know either, which is then read as a regular file).
 */
export function paxSparse(records: ReadonlyMap<string, Buffer>, where: string, offset: number): SparseSpec | null {
  const major = records.get('GNU.sparse.major')?.toString('latin1');
  const minor = records.get('GNU.sparse.minor')?.toString('latin1');
  const map = records.get('GNU.sparse.map');
  let format: SparseSpec['format'];
  if (major === '0' && (minor === '0' || minor === '1')) format = 'pax-0';
  else if (major === '1' && minor === '0') format = 'pax-1.0';
  else if (major !== undefined || minor !== undefined) return null;
  else if (map !== undefined && map.length > 0) format = 'pax-0';
  else return null;
  const sizeRecord = records.get('GNU.sparse.size') ?? records.get('GNU.sparse.realsize');
  const realSize = sizeRecord === undefined ? -1 : decimal(sizeRecord.toString('latin1'), where, offset, 'GNU.sparse.size');
  if (format === 'pax-1.0') return { format, fragments: [], extended: false, realSize };
  const count = decimal(records.get('GNU.sparse.numblocks')?.toString('latin1') ?? '', where, offset, 'GNU.sparse.numblocks');
  const numbers = map === undefined || map.length === 0 ? [] : map.toString('latin1').split(',');
  if (numbers.length !== 2 * count) throw new FormatError('tar.sparse', `${where}: GNU.sparse.map holds ${numbers.length} numbers for ${count} blocks`, { offset });
  return { format, fragments: pairs(numbers, where, offset, 'GNU.sparse.map'), extended: false, realSize };
}

/**
 * PAX 1.0: the map at the start of the data, as decimal lines (count, then offset and length
 * per fragment). `text` is what was read so far, in whole blocks: returns the fragments, or
 * the number of lines still missing.
 */
export function pax1Map(text: string, where: string, offset: number): SparseFragment[] | number {
  const lines = text.split('\n');
  lines.pop(); // the part after the last newline is not a line yet
  if (lines.length === 0) return 1;
  const count = decimal(lines[0]!, where, offset, 'sparse map count');
  if (lines.length < 1 + 2 * count) return 1 + 2 * count - lines.length;
  return pairs(lines.slice(1, 1 + 2 * count), where, offset, 'sparse map');
}

function pairs(numbers: string[], where: string, offset: number, what: string): SparseFragment[] {
  const out: SparseFragment[] = [];
  for (let i = 0; i + 1 < numbers.length; i += 2) {
    out.push({ offset: decimal(numbers[i]!, where, offset, what), length: decimal(numbers[i + 1]!, where, offset, what) });
  }
  return out;
}

function decimal(text: string, where: string, offset: number, what: string): number {
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new FormatError('tar.sparse', `${where}: invalid ${what} ${JSON.stringify(text.slice(0, 40))}`, { offset, value: text });
  }
  return Number(text);
}

/**
 * Checks a map as Go's archive/tar does (no negative values, fragments in order, not
 * overlapping, inside the logical size) and that the stored data holds exactly its fragments.
 */
export function checkSparseMap(fragments: readonly SparseFragment[], realSize: number, stored: number, where: string, offset: number): void {
  if (realSize < 0) throw new FormatError('tar.sparse', `${where}: sparse file without its real size`, { offset });
  let end = 0;
  let total = 0;
  for (const [i, f] of fragments.entries()) {
    if (f.offset < end || f.offset + f.length > realSize) {
      throw new FormatError('tar.sparse', `${where}: sparse fragment ${i} [${f.offset}, +${f.length}) overlaps the one before it or lies beyond the ${realSize}-byte file`, { offset, value: f.offset });
    }
    end = f.offset + f.length;
    total += f.length;
  }
  if (total !== stored) throw new FormatError('tar.sparse', `${where}: the sparse map names ${total} data bytes, the archive stores ${stored}`, { offset, value: stored });
}

/** Shared zeros for holes (never written to). */
const ZEROS = Buffer.alloc(1 << 20);

/**
 * The logical content of a sparse file: its fragments read in turn from `stored` (the data
 * as stored in the archive), holes as zeros, `realSize` bytes in all.
 */
export async function* sparseContent(stored: AsyncIterable<Uint8Array>, fragments: readonly SparseFragment[], realSize: number): AsyncGenerator<Uint8Array, void, undefined> {
  const source = stored[Symbol.asyncIterator]();
  let pending: Uint8Array | null = null;
  let pos = 0;
  const zeros = function* (n: number): Generator<Uint8Array> {
    for (let left = n; left > 0; left -= ZEROS.length) yield ZEROS.subarray(0, Math.min(left, ZEROS.length));
  };
  for (const f of fragments) {
    yield* zeros(f.offset - pos);
    let need = f.length;
    while (need > 0) {
      let piece: Uint8Array | null = pending;
      if (piece === null) {
        const r = await source.next();
        // The stored data was checked to hold every fragment; the reader throws on truncation.
        if (r.done) throw new FormatError('tar.sparse', `sparse data ended ${need} bytes short of fragment at ${f.offset}`);
        piece = r.value;
      }
      pending = piece.length > need ? piece.subarray(need) : null;
      if (piece.length > need) piece = piece.subarray(0, need);
      need -= piece.length;
      yield piece;
    }
    pos = f.offset + f.length;
  }
  yield* zeros(realSize - pos);
}
