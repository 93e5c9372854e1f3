import { CHUNK_INFO_FIELD as F, decodeChunkInfo, type ChunkInfo } from '../layout/chunk.js';
import { CHUNK_INFO_SIZE } from '../layout/constants.js';
import { hexOf } from '../layout/bytes.js';

const TWO_32 = 0x1_0000_0000;

/**
 * A bootstrap's chunk table (spec §1.8) read in place: fields come straight from the bytes, and
 * a hash over (blob index, CI index, uncompressed offset) finds the entry a chunk address refers
 * to, with no object or string per entry. The caller validates the entries (`BootstrapReader`).
 */
export class ChunkTableView {
  readonly count: number;
  private readonly view: DataView;
  /** Entry index + 1 per slot (0 = empty); the first entry of a key wins. */
  private slots: Int32Array = new Int32Array(0);

  constructor(
    private readonly bytes: Uint8Array,
    private readonly offset: number,
    count: number,
  ) {
    this.count = count;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Throws decodeChunkInfo's FormatError if a u64 field of entry `k` exceeds 2^53. */
  checkU64s(k: number): void {
    const at = this.offsetOf(k);
    if (this.u32(at + F.compressedOffset + 4) > 0x1fffff || this.u32(at + F.uncompressedOffset + 4) > 0x1fffff || this.u32(at + F.fileOffset + 4) > 0x1fffff) this.decode(k);
  }

  /** Byte offset of entry `k` in the bootstrap. */
  offsetOf(k: number): number {
    return this.offset + CHUNK_INFO_SIZE * k;
  }

  private u32(at: number): number {
    return this.view.getUint32(at, true);
  }
  private u64(at: number): number {
    return this.view.getUint32(at + 4, true) * TWO_32 + this.view.getUint32(at, true);
  }

  /** Copies entry `k`'s 32-byte digest into `target` at `offset`. */
  copyDigest(k: number, target: Uint8Array, offset: number): void {
    const at = this.offsetOf(k) + F.digest;
    target.set(this.bytes.subarray(at, at + 32), offset);
  }
  /** True if entry `k`'s digest equals the 32 bytes of `other` at `offset`. */
  digestEquals(k: number, other: Uint8Array, offset: number): boolean {
    const at = this.offsetOf(k) + F.digest;
    for (let i = 0; i < 32; i++) if (this.bytes[at + i] !== other[offset + i]) return false;
    return true;
  }
  digestHex(k: number): string {
    const at = this.offsetOf(k);
    return hexOf(this.bytes.subarray(at + F.digest, at + F.digest + 32));
  }
  blobIndex(k: number): number {
    return this.u32(this.offsetOf(k) + F.blobIndex);
  }
  flags(k: number): number {
    return this.u32(this.offsetOf(k) + F.flags);
  }
  compressedSize(k: number): number {
    return this.u32(this.offsetOf(k) + F.compressedSize);
  }
  uncompressedSize(k: number): number {
    return this.u32(this.offsetOf(k) + F.uncompressedSize);
  }
  compressedOffset(k: number): number {
    return this.u64(this.offsetOf(k) + F.compressedOffset);
  }
  uncompressedOffset(k: number): number {
    return this.u64(this.offsetOf(k) + F.uncompressedOffset);
  }
  /** CI index of the chunk in its blob. */
  ciIndex(k: number): number {
    return this.u32(this.offsetOf(k) + F.index);
  }
  crc32(k: number): number {
    return this.u32(this.offsetOf(k) + F.crc32);
  }

  /** Entry `k` as an object. */
  decode(k: number): ChunkInfo {
    const at = this.offsetOf(k);
    return decodeChunkInfo(this.bytes.subarray(at, at + CHUNK_INFO_SIZE), at, k);
  }

  /** Makes every entry findable by `find` (the first of equal keys wins). */
  buildIndex(): void {
    let size = 16;
    while (size < this.count * 2) size *= 2;
    this.slots = new Int32Array(size);
    for (let k = 0; k < this.count; k++) {
      const s = this.slotOf(this.blobIndex(k), this.ciIndex(k), this.uncompressedOffset(k));
      if (this.slots[s] === 0) this.slots[s] = k + 1;
    }
  }

  /** The entry with this key, or -1. */
  find(blobIndex: number, ciIndex: number, uncompressedOffset: number): number {
    if (this.slots.length === 0) return -1;
    return this.slots[this.slotOf(blobIndex, ciIndex, uncompressedOffset)]! - 1;
  }

  /** The slot holding the key, or the empty slot where it would go. */
  private slotOf(blobIndex: number, ciIndex: number, uncompressedOffset: number): number {
    const lo = uncompressedOffset >>> 0;
    const hi = (uncompressedOffset / TWO_32) >>> 0;
    let h = Math.imul(blobIndex + 0x3c6ef372, 0x9e3779b1);
    h = Math.imul(h ^ ciIndex, 0x01000193);
    h = Math.imul(h ^ lo, 0x01000193);
    h = Math.imul(h ^ hi, 0x01000193);
    const mask = this.slots.length - 1;
    let s = (h ^ (h >>> 16)) & mask;
    for (;;) {
      const v = this.slots[s]!;
      if (v === 0) return s;
      const k = v - 1;
      if (this.ciIndex(k) === ciIndex && this.blobIndex(k) === blobIndex && this.uncompressedOffset(k) === uncompressedOffset) return s;
      s = (s + 1) & mask;
    }
  }
}
