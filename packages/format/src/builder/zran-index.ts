import { NydusError } from '@nydus-ts/core';
import { ZRAN_CONTEXT_SIZE, encodeZranContext, type ZranContext } from '../layout/blob-meta.js';

/**
 * Where a reference (zran or tar-ref) chunk's data lies in the original layer (spec §4.1): the
 * CI v2 fields besides the uncompressed side.
 */
export interface RefChunkPlace {
  /** Compressed position at (or just before) the chunk's start. */
  compressedOffset: number;
  /** Compressed bytes from there to (just past) the chunk's end. */
  compressedSize: number;
  /** zran: the context to inflate from; tar-ref: 0. */
  contextIndex: number;
  /** zran: offset of the chunk in the context's inflated output; tar-ref: 0. */
  contextOffset: number;
}

/**
 * Places chunks of a layer's uncompressed tar stream in the original layer. Chunks are placed
 * in stream order; `start`/`end` are offsets in the uncompressed stream.
 */
export interface RefChunkLocator {
  /** 'zran' for gzip layers (chunks inflated from checkpoints), 'tar' for plain tar layers. */
  readonly kind: 'zran' | 'tar';
  place(start: number, end: number): RefChunkPlace;
}

/** A tar-ref layer: the original is the uncompressed tar, chunks point straight into it. */
export class TarRefLocator implements RefChunkLocator {
  readonly kind = 'tar';
  place(start: number, end: number): RefChunkPlace {
    return { compressedOffset: start, compressedSize: end - start, contextIndex: 0, contextOffset: 0 };
  }
}

/** A deflate block boundary of the gzip stream (the shape of @nydus-ts/native's GzipCheckpoint). */
export interface ZranCheckpoint {
  inOffset: number;
  outOffset: number;
  bits: number;
  byte: number;
  window: Uint8Array;
  member: number;
}

/** Spacing of contexts (spec §4.1; the reference builder's settings). */
const MIN_COMPRESSED_SPAN = 512 << 10;
const MAX_UNCOMPRESSED_SPAN = 2 << 20;
/** Contexts per blob at most (24-bit context index space of the reference). */
const MAX_CONTEXTS = 1 << 24;
/** Pending checkpoints kept at most; beyond, every other one is dropped (any boundary ≤ a chunk start serves). */
const MAX_PENDING = 128;

interface OpenContext extends ZranContext {
  member: number;
}

/**
 * Builds the zran index of one gzip layer while it is inflated: the inflater reports every
 * block boundary (`addCheckpoint`) and where each step ended (`addProgress`); the layer builder
 * asks `place` for each stored chunk, in stream order, after the inflater produced its bytes.
 * A chunk is read back by inflating its context from the checkpoint (spec §4.4), so a new
 * context opens at the latest boundary before the chunk when the current one started too far
 * back (spec §4.1 spacing rule) or in an earlier gzip member.
 */
export class ZranIndexBuilder implements RefChunkLocator {
  readonly kind = 'zran';
  private readonly contexts: OpenContext[] = [];
  private readonly windows: Uint8Array[] = [];
  private dictBytes = 0;
  /** Boundaries not yet passed by a chunk start, plus the latest one before it. */
  private pending: ZranCheckpoint[] = [];
  /** (in, out) pairs where the compressed position is known exactly, ascending. */
  private marksIn: number[] = [];
  private marksOut: number[] = [];
  private marksHead = 0;

  /** A block boundary passed by the inflater (in stream order). */
  addCheckpoint(c: ZranCheckpoint): void {
    const last = this.pending[this.pending.length - 1];
    if (last !== undefined && c.outOffset < last.outOffset) throw new NydusError('INTERNAL', `zran checkpoint at ${c.outOffset} after one at ${last.outOffset}`);
    this.pending.push(c);
    if (this.pending.length > MAX_PENDING) this.pending = this.pending.filter((_, i, all) => i % 2 === 1 || i === all.length - 1);
    this.addProgress(c.inOffset, c.outOffset);
  }

  /** The inflater had consumed `inOffset` compressed bytes when it had produced `outOffset`. */
  addProgress(inOffset: number, outOffset: number): void {
    this.marksIn.push(inOffset);
    this.marksOut.push(outOffset);
  }

  get contextCount(): number {
    return this.contexts.length;
  }

  place(start: number, end: number): RefChunkPlace {
    const pending = this.pending;
    let b = -1;
    for (let i = pending.length - 1; i >= 0; i--) {
      if (pending[i]!.outOffset <= start) {
        b = i;
        break;
      }
    }
    if (b < 0) throw new NydusError('INTERNAL', `zran index: no checkpoint before the chunk at ${start}`);
    const boundary = pending[b]!;
    if (b > 0) this.pending = pending.slice(b);

    let ctx = this.contexts[this.contexts.length - 1];
    if (ctx === undefined || this.opensContext(ctx, boundary, start, end)) ctx = this.openContext(boundary);

    // Compressed span: from the last exact position at or before the start to the first at or after the end.
    const marksOut = this.marksOut;
    let h = this.marksHead;
    while (h + 1 < marksOut.length && marksOut[h + 1]! <= start) h++;
    this.marksHead = h;
    let e = h;
    while (e < marksOut.length && marksOut[e]! < end) e++;
    if (e === marksOut.length) throw new NydusError('INTERNAL', `zran index: chunk [${start}, ${end}) ends past what was inflated`);
    const inStart = Math.min(this.marksIn[h]!, this.marksIn[e]!);
    const inEnd = this.marksIn[e]!;
    if (h > 4096) this.compactMarks();

    const inLen = inEnd - ctx.inOffset;
    const outLen = end - ctx.outOffset;
    if (inLen > 0xffff_ffff || outLen > 0xffff_ffff) throw new NydusError('INTERNAL', `zran context ${this.contexts.length - 1} spans more than 4 GiB`);
    if (inLen > ctx.inLen) ctx.inLen = inLen;
    if (outLen > ctx.outLen) ctx.outLen = outLen;
    return {
      compressedOffset: inStart,
      // (24 bits in CI v2; informational for zran chunks, whose reads go by context.)
      compressedSize: Math.min(inEnd - inStart, 0xff_ffff),
      contextIndex: this.contexts.length - 1,
      contextOffset: start - ctx.outOffset,
    };
  }

  /**
   * The spacing rule of spec §4.1, given the latest boundary before the chunk `[start, end)`:
   * the context would span ≥ 512 KiB of compressed data, or its inflated span with this chunk
   * (its own length, not the configured chunk size) would reach 2 MiB.
   */
  private opensContext(ctx: OpenContext, boundary: ZranCheckpoint, start: number, end: number): boolean {
    if (boundary.member !== ctx.member) return true;
    if (boundary.outOffset <= ctx.outOffset) return false;
    const compressedSince = boundary.inOffset - ctx.inOffset;
    return (
      compressedSince >= MIN_COMPRESSED_SPAN ||
      end - ctx.outOffset >= MAX_UNCOMPRESSED_SPAN ||
      (ctx.inLen > MIN_COMPRESSED_SPAN && compressedSince > 2 * ctx.inLen)
    );
  }

  private openContext(c: ZranCheckpoint): OpenContext {
    if (this.contexts.length >= MAX_CONTEXTS) throw new NydusError('RESOURCE_EXHAUSTED', `a zran blob holds at most ${MAX_CONTEXTS} contexts`);
    const ctx: OpenContext = {
      inOffset: c.inOffset,
      outOffset: c.outOffset,
      dictOffset: this.dictBytes,
      inLen: 0,
      outLen: 0,
      dictSize: c.window.length,
      ctxByte: c.bits === 0 ? 0 : c.byte,
      ctxBits: c.bits,
      member: c.member,
    };
    this.contexts.push(ctx);
    this.windows.push(c.window);
    this.dictBytes += c.window.length;
    return ctx;
  }

  private compactMarks(): void {
    this.marksIn = this.marksIn.slice(this.marksHead);
    this.marksOut = this.marksOut.slice(this.marksHead);
    this.marksHead = 0;
  }

  /** The context table then the dictionary table (spec §3.5), as they follow the CI entries. */
  tables(): Uint8Array {
    const n = this.contexts.length;
    const out = new Uint8Array(n * ZRAN_CONTEXT_SIZE + this.dictBytes);
    let at = n * ZRAN_CONTEXT_SIZE;
    this.contexts.forEach((ctx, i) => {
      encodeZranContext(ctx, out, i * ZRAN_CONTEXT_SIZE);
      out.set(this.windows[i]!, at);
      at += this.windows[i]!.length;
    });
    return out;
  }
}
