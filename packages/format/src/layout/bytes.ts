import { FormatError } from '@nydus-ts/core';

/**
 * Little-endian field access over a byte range, with bounds checks that raise FormatError
 * naming the structure (never a RangeError from DataView).
 */
export class LeReader {
  readonly view: DataView;
  readonly bytes: Uint8Array;
  /** Absolute offset of `bytes[0]` in the containing file, for error messages. */
  readonly base: number;
  readonly what: string;

  constructor(bytes: Uint8Array, what: string, base = 0) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.base = base;
    this.what = what;
  }

  private check(off: number, len: number, field: string): void {
    if (off < 0 || off + len > this.bytes.byteLength) {
      throw new FormatError(`${this.what}.${field}`, `truncated (need ${len} bytes, ${this.bytes.byteLength - off} available)`, {
        offset: this.base + off,
      });
    }
  }

  u8(off: number, field: string): number {
    this.check(off, 1, field);
    return this.view.getUint8(off);
  }
  u16(off: number, field: string): number {
    this.check(off, 2, field);
    return this.view.getUint16(off, true);
  }
  u32(off: number, field: string): number {
    this.check(off, 4, field);
    return this.view.getUint32(off, true);
  }
  /** A u64 that must fit a JS safe integer (every offset and size in RAFS does). */
  u64(off: number, field: string): number {
    this.check(off, 8, field);
    const lo = this.view.getUint32(off, true);
    const hi = this.view.getUint32(off + 4, true);
    if (hi > 0x1fffff) {
      throw new FormatError(`${this.what}.${field}`, `value 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')} exceeds 2^53`, {
        offset: this.base + off,
      });
    }
    return hi * 0x1_0000_0000 + lo;
  }
  /** A two's-complement i64 that must fit a JS safe integer (times before 1970 are negative). */
  i64(off: number, field: string): number {
    this.check(off, 8, field);
    const lo = this.view.getUint32(off, true);
    const hi = this.view.getInt32(off + 4, true);
    const v = hi * 0x1_0000_0000 + lo;
    if (!Number.isSafeInteger(v)) {
      throw new FormatError(`${this.what}.${field}`, `value ${hi < 0 ? '-' : ''}0x${(hi >>> 0).toString(16)}${lo.toString(16).padStart(8, '0')} lies beyond ±2^53`, {
        offset: this.base + off,
      });
    }
    return v;
  }
  /** The raw two 32-bit halves of a u64 (for packed words). */
  u64Parts(off: number, field: string): { lo: number; hi: number } {
    this.check(off, 8, field);
    return { lo: this.view.getUint32(off, true), hi: this.view.getUint32(off + 4, true) };
  }
  slice(off: number, len: number, field: string): Uint8Array {
    this.check(off, len, field);
    return this.bytes.subarray(off, off + len);
  }
  /** A NUL-padded string field (bytes up to the first NUL). */
  cstring(off: number, len: number, field: string): string {
    const raw = this.slice(off, len, field);
    const end = raw.indexOf(0);
    return Buffer.from(raw.subarray(0, end === -1 ? len : end)).toString('utf8');
  }
}

/** Little-endian field writes into a fixed, zero-initialised buffer. */
export class LeWriter {
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(sizeOrBytes: number | Uint8Array) {
    this.bytes = typeof sizeOrBytes === 'number' ? new Uint8Array(sizeOrBytes) : sizeOrBytes;
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }
  u8(off: number, v: number): this {
    this.view.setUint8(off, v);
    return this;
  }
  u16(off: number, v: number): this {
    this.view.setUint16(off, v, true);
    return this;
  }
  u32(off: number, v: number): this {
    this.view.setUint32(off, v >>> 0, true);
    return this;
  }
  u64(off: number, v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 field value ${v} is not a non-negative safe integer`);
    this.view.setUint32(off, v % 0x1_0000_0000, true);
    this.view.setUint32(off + 4, Math.floor(v / 0x1_0000_0000), true);
    return this;
  }
  /** A two's-complement i64 (times before 1970 are negative). */
  i64(off: number, v: number): this {
    if (!Number.isSafeInteger(v)) throw new RangeError(`i64 field value ${v} is not a safe integer`);
    this.view.setUint32(off, v - Math.floor(v / 0x1_0000_0000) * 0x1_0000_0000, true);
    this.view.setInt32(off + 4, Math.floor(v / 0x1_0000_0000), true);
    return this;
  }
  u64Parts(off: number, lo: number, hi: number): this {
    this.view.setUint32(off, lo >>> 0, true);
    this.view.setUint32(off + 4, hi >>> 0, true);
    return this;
  }
  set(off: number, src: Uint8Array): this {
    this.bytes.set(src, off);
    return this;
  }
  /** Writes `s` as UTF-8 into a fixed-size, zero-padded field; throws if it does not fit. */
  cstring(off: number, len: number, s: string): this {
    const b = Buffer.from(s, 'utf8');
    if (b.length > len) throw new RangeError(`string "${s}" is longer than its ${len}-byte field`);
    this.bytes.set(b, off);
    return this;
  }
}

export function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function isAllZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}
