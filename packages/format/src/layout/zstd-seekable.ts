import { FormatError } from '@nydus-ts/core';

/**
 * The seek table of the zstd seekable format (zstd contrib/seekable_format): a skippable frame
 * after the data frames that lists each frame's compressed and decompressed size, so that a
 * reader can fetch and decompress single frames. The whole input (data frames + skippable frame)
 * stays one valid zstd input: a one-shot decompressor skips the table.
 *
 *   | Skippable_Magic u32 | Frame_Size u32 | entries | Number_Of_Frames u32 | Descriptor u8 | Seekable_Magic u32 |
 *   entry: | Compressed_Size u32 | Decompressed_Size u32 | [Checksum u32, when Descriptor bit 7] |
 */
export const ZSTD_SEEK_TABLE_MAGIC = 0x184d2a5e;
export const ZSTD_SEEKABLE_MAGIC = 0x8f92eab1;
/** Skippable frame header: magic and frame size. */
export const ZSTD_SKIPPABLE_HEADER_SIZE = 8;
export const ZSTD_SEEK_TABLE_FOOTER_SIZE = 9;
const FOOTER = { frames: 0, descriptor: 4, magic: 5 } as const;
const DESCRIPTOR_CHECKSUM = 0x80;
const DESCRIPTOR_RESERVED = 0x7c;
/** Frames at most (the reference implementation's ZSTD_SEEKABLE_MAXFRAMES). */
export const ZSTD_SEEKABLE_MAX_FRAMES = 0x8000000;

export interface SeekTableFrame {
  compressedSize: number;
  decompressedSize: number;
}

/** A decoded seek table with each frame's place in the compressed and decompressed data. */
export interface SeekTable {
  frames: SeekTableFrame[];
  /** Offset of frame i in the compressed data (frames.length + 1 entries: the last is the table's offset). */
  compressedOffsets: number[];
  /** Offset of frame i's output in the decompressed data (frames.length + 1 entries: the last is the total). */
  decompressedOffsets: number[];
  /** Size of the skippable frame holding the table. */
  tableSize: number;
}

/** Size of the skippable frame holding a seek table of `frameCount` entries without checksums. */
export function seekTableSize(frameCount: number): number {
  return ZSTD_SKIPPABLE_HEADER_SIZE + frameCount * 8 + ZSTD_SEEK_TABLE_FOOTER_SIZE;
}

/** The skippable frame of a seek table listing `frames` (no per-frame checksums). */
export function encodeSeekTable(frames: readonly SeekTableFrame[]): Uint8Array {
  const out = new Uint8Array(seekTableSize(frames.length));
  const view = new DataView(out.buffer);
  view.setUint32(0, ZSTD_SEEK_TABLE_MAGIC, true);
  view.setUint32(4, out.length - ZSTD_SKIPPABLE_HEADER_SIZE, true);
  frames.forEach((f, i) => {
    view.setUint32(ZSTD_SKIPPABLE_HEADER_SIZE + i * 8, f.compressedSize, true);
    view.setUint32(ZSTD_SKIPPABLE_HEADER_SIZE + i * 8 + 4, f.decompressedSize, true);
  });
  const footer = out.length - ZSTD_SEEK_TABLE_FOOTER_SIZE;
  view.setUint32(footer + FOOTER.frames, frames.length, true);
  view.setUint8(footer + FOOTER.descriptor, 0);
  view.setUint32(footer + FOOTER.magic, ZSTD_SEEKABLE_MAGIC, true);
  return out;
}

/**
 * Size of the seek table that ends `tail` (the last bytes of the compressed data), from its
 * footer; undefined when the data does not end with a seek table footer.
 */
export function seekTableSizeFromFooter(tail: Uint8Array): number | undefined {
  if (tail.byteLength < ZSTD_SEEK_TABLE_FOOTER_SIZE) return undefined;
  const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  const footer = tail.byteLength - ZSTD_SEEK_TABLE_FOOTER_SIZE;
  if (view.getUint32(footer + FOOTER.magic, true) !== ZSTD_SEEKABLE_MAGIC) return undefined;
  const frames = view.getUint32(footer + FOOTER.frames, true);
  const descriptor = view.getUint8(footer + FOOTER.descriptor);
  if (frames > ZSTD_SEEKABLE_MAX_FRAMES || (descriptor & DESCRIPTOR_RESERVED) !== 0) return undefined;
  return ZSTD_SKIPPABLE_HEADER_SIZE + frames * ((descriptor & DESCRIPTOR_CHECKSUM) !== 0 ? 12 : 8) + ZSTD_SEEK_TABLE_FOOTER_SIZE;
}

/**
 * Decodes the seek table at the end of `compressedSize` bytes of compressed data; `table` is
 * exactly the table's skippable frame (its last `seekTableSizeFromFooter` bytes). The frames must
 * fill the data before the table exactly. Errors are FormatErrors naming `what`.
 */
export function decodeSeekTable(table: Uint8Array, compressedSize: number, what: string): SeekTable {
  const size = seekTableSizeFromFooter(table);
  if (size === undefined || size !== table.byteLength) throw new FormatError(what, `no zstd seek table of ${table.byteLength} bytes`, { value: table.byteLength });
  const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
  if (view.getUint32(0, true) !== ZSTD_SEEK_TABLE_MAGIC) throw new FormatError(what, 'seek table does not start with the skippable frame magic 0x184D2A5E', { value: view.getUint32(0, true) });
  if (view.getUint32(4, true) !== size - ZSTD_SKIPPABLE_HEADER_SIZE) throw new FormatError(what, `seek table frame size ${view.getUint32(4, true)} != ${size - ZSTD_SKIPPABLE_HEADER_SIZE}`, { value: view.getUint32(4, true) });
  const footer = size - ZSTD_SEEK_TABLE_FOOTER_SIZE;
  const count = view.getUint32(footer + FOOTER.frames, true);
  const entrySize = (view.getUint8(footer + FOOTER.descriptor) & DESCRIPTOR_CHECKSUM) !== 0 ? 12 : 8;
  const frames: SeekTableFrame[] = new Array(count);
  const compressedOffsets = new Array<number>(count + 1);
  const decompressedOffsets = new Array<number>(count + 1);
  let c = 0;
  let d = 0;
  for (let i = 0; i < count; i++) {
    const at = ZSTD_SKIPPABLE_HEADER_SIZE + i * entrySize;
    const f = { compressedSize: view.getUint32(at, true), decompressedSize: view.getUint32(at + 4, true) };
    frames[i] = f;
    compressedOffsets[i] = c;
    decompressedOffsets[i] = d;
    c += f.compressedSize;
    d += f.decompressedSize;
  }
  compressedOffsets[count] = c;
  decompressedOffsets[count] = d;
  if (c + size !== compressedSize) throw new FormatError(what, `seek table frames hold ${c} bytes, the data before the table ${compressedSize - size}`, { value: c });
  return { frames, compressedOffsets, decompressedOffsets, tableSize: size };
}
