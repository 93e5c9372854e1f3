/**
 * Pull-based byte reader over an async iterable of chunks. It never reads ahead of what the
 * caller asks for (backpressure is the source's), hands out subarrays of the source chunks
 * whenever a request lies inside one chunk, and copies only when a fixed-size read (a tar
 * header, a PAX record block) spans chunks.
 */
export class ChunkReader {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private chunk: Buffer = EMPTY;
  private pos = 0;
  private ended = false;
  /** Absolute number of bytes consumed so far. */
  offset = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** Makes sure the current chunk has unread bytes; false at end of input. */
  private async fill(): Promise<boolean> {
    while (this.pos >= this.chunk.length) {
      if (this.ended) return false;
      const r = await this.iterator.next();
      if (r.done) {
        this.ended = true;
        this.chunk = EMPTY;
        this.pos = 0;
        return false;
      }
      const c = r.value;
      this.chunk = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      this.pos = 0;
    }
    return true;
  }

  /**
   * Synchronous fast paths: they succeed only when the current source chunk already holds
   * the bytes (no await, no promise), and otherwise change nothing so the caller falls back
   * to the async form.
   */
  tryReadExact(n: number): Buffer | null {
    if (this.chunk.length - this.pos < n || n === 0) return null;
    const out = this.chunk.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  /** Unread bytes of the current source chunk. */
  get available(): number {
    return this.chunk.length - this.pos;
  }

  /** Skips `n` bytes if the current chunk holds them (true), else nothing (false). */
  trySkip(n: number): boolean {
    if (this.chunk.length - this.pos < n) return false;
    this.pos += n;
    this.offset += n;
    return true;
  }

  /** Up to `max` bytes (max ≥ 1) from the current chunk, or null when it is used up. */
  trySome(max: number): Buffer | null {
    const avail = this.chunk.length - this.pos;
    if (avail <= 0) return null;
    const n = Math.min(max, avail);
    const out = this.chunk.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  /** Up to `max` bytes (at least 1) without copying; null at end of input. */
  async readSome(max: number): Promise<Buffer | null> {
    if (!(await this.fill())) return null;
    const n = Math.min(max, this.chunk.length - this.pos);
    const out = this.chunk.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  /**
   * Exactly `n` bytes, or fewer only at end of input. The result may share memory with the
   * source chunk; callers must not keep it across later reads if the source reuses buffers
   * (Node streams never do).
   */
  async readExact(n: number): Promise<Buffer> {
    if (!(await this.fill())) return EMPTY;
    if (this.chunk.length - this.pos >= n) {
      const out = this.chunk.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.offset += n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (!(await this.fill())) return out.subarray(0, got);
      const take = Math.min(n - got, this.chunk.length - this.pos);
      this.chunk.copy(out, got, this.pos, this.pos + take);
      this.pos += take;
      this.offset += take;
      got += take;
    }
    return out;
  }

  /** Discards up to `n` bytes; returns how many were discarded (fewer only at end of input). */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill())) break;
      const take = Math.min(left, this.chunk.length - this.pos);
      this.pos += take;
      this.offset += take;
      left -= take;
    }
    return n - left;
  }

  /** Reads and discards everything up to the end of input. */
  async drain(): Promise<void> {
    while (await this.fill()) {
      this.offset += this.chunk.length - this.pos;
      this.pos = this.chunk.length;
    }
  }

  /** Stops the source early (runs its `finally` blocks, destroys streams). */
  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.chunk = EMPTY;
    this.pos = 0;
    await this.iterator.return?.();
  }
}

const EMPTY = Buffer.alloc(0);
