/**
 * Reusable buffers for fetched and decoded chunk data. A cold read moves hundreds of MB through
 * 1 MiB buffers that live for a few milliseconds; allocated afresh, they wait for the garbage
 * collector and the daemon's RSS grows by tens of MB. Buffers of power-of-two sizes from 64 KiB
 * are kept here (up to `maxBytes` in all) and handed out again; smaller ones are not pooled.
 */
const MIN_POOLED = 64 << 10;

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private pooled = 0;

  constructor(private readonly maxBytes = 8 << 20) {}

  /** A buffer of at least `size` bytes (its length is its size class); `release` it when done. */
  acquire(size: number): Buffer {
    if (size < MIN_POOLED) return Buffer.allocUnsafe(size);
    const cls = 2 ** Math.ceil(Math.log2(size));
    const list = this.free.get(cls);
    const buf = list?.pop();
    if (buf) {
      this.pooled -= cls;
      return buf;
    }
    return Buffer.allocUnsafe(cls);
  }

  /** Takes back a buffer from `acquire` (others, and anything beyond the cap, are left to the GC). */
  release(buf: Uint8Array): void {
    const cls = buf.byteLength;
    if (cls < MIN_POOLED || (cls & (cls - 1)) !== 0 || !Buffer.isBuffer(buf) || buf.byteOffset !== 0 || buf.buffer.byteLength !== cls) return;
    if (this.pooled + cls > this.maxBytes) return;
    let list = this.free.get(cls);
    if (!list) this.free.set(cls, (list = []));
    if (list.includes(buf)) return;
    list.push(buf);
    this.pooled += cls;
  }
}
