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
  /**
   * The window: the last ≤ 32 KiB of the member's output before the boundary. Without it,
   * `windowSize` says how many bytes, and the index cuts them from the output given to
   * `addOutput` if the boundary starts a context.
   */
  window?: Uint8Array;
  windowSize?: number;
  member: number;
}

/** Spacing of contexts (spec §4.1; the reference builder's settings). */
const MIN_COMPRESSED_SPAN = 512 << 10;
const MAX_UNCOMPRESSED_SPAN = 2 << 20;
/** Contexts per blob at most (24-bit context index space of the reference). */
const MAX_CONTEXTS = 1 << 24;
/** Pending checkpoints kept at most; beyond, every other one is dropped (any boundary ≤ a chunk start serves). */
const MAX_PENDING = 128;
/** Largest deflate window. */
const WINDOW_SIZE = 32768;

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
 *
 * Windows: checkpoints may come without them (a 32 KiB copy at every block boundary costs more
 * than the rest of the index). Then the inflater also hands over its output (`addOutput`, views
 * kept by reference) and says before it reuses that memory (`retireOutput`); the index copies a
 * window only for a boundary that opens a context, or that is still a candidate when its bytes
 * are retired.
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
  /** Output handed over and not retired: views in stream order, `spans[0]` starting at `spansStart`. */
  private spans: Uint8Array[] = [];
  private spansStart = 0;
  private spansEnd = 0;
  /** The last ≤ 32 KiB of retired output, ending at `spansStart` (windows of later boundaries reach into it). */
  private tail = new Uint8Array(WINDOW_SIZE);
  private spareTail = new Uint8Array(WINDOW_SIZE);
  private tailLength = 0;

  /** A block boundary passed by the inflater (in stream order). */
  addCheckpoint(c: ZranCheckpoint): void {
    const last = this.pending[this.pending.length - 1];
    if (last !== undefined && c.outOffset < last.outOffset) throw new NydusError('INTERNAL', `zran checkpoint at ${c.outOffset} after one at ${last.outOffset}`);
    if (c.window === undefined && !(Number.isInteger(c.windowSize) && c.windowSize! >= 0 && c.windowSize! <= WINDOW_SIZE && c.windowSize! <= c.outOffset)) {
      throw new NydusError('INTERNAL', `zran checkpoint at ${c.outOffset}: neither a window nor a valid window size`);
    }
    this.pending.push(c);
    if (this.pending.length > MAX_PENDING) this.pending = this.pending.filter((_, i, all) => i % 2 === 1 || i === all.length - 1);
    this.addProgress(c.inOffset, c.outOffset);
  }

  /** The inflater had consumed `inOffset` compressed bytes when it had produced `outOffset`. */
  addProgress(inOffset: number, outOffset: number): void {
    this.marksIn.push(inOffset);
    this.marksOut.push(outOffset);
  }

  /**
   * The next bytes of the inflated stream (contiguous with what came before, from offset 0):
   * kept by reference, unchanged, until `retireOutput` passes them. Needed only for checkpoints
   * without windows.
   */
  addOutput(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.spans.push(bytes);
    this.spansEnd += bytes.length;
  }

  /**
   * The memory of the output before `end` (a span boundary) is about to be reused: windows that
   * candidates still need from it are copied now, and the last 32 KiB before it kept.
   */
  retireOutput(end: number): void {
    if (end <= this.spansStart) return;
    if (end > this.spansEnd) throw new NydusError('INTERNAL', `zran index: output retired up to ${end}, only ${this.spansEnd} bytes were given`);
    for (const c of this.pending) {
      if (c.window === undefined && c.outOffset - c.windowSize! < end) c.window = this.cut(c.outOffset - c.windowSize!, c.outOffset);
    }
    // The new tail may come partly from the old one: built in the spare buffer, then swapped.
    const keep = Math.min(WINDOW_SIZE, end);
    this.copyOut(end - keep, end, this.spareTail.subarray(0, keep));
    [this.tail, this.spareTail] = [this.spareTail, this.tail];
    this.tailLength = keep;
    let at = this.spansStart;
    let n = 0;
    while (n < this.spans.length && at + this.spans[n]!.length <= end) at += this.spans[n++]!.length;
    if (at !== end) throw new NydusError('INTERNAL', `zran index: output retired up to ${end}, not the end of what was given`);
    this.spans = this.spans.slice(n);
    this.spansStart = end;
  }

  /** A copy of output bytes [start, end) from the kept tail and spans. */
  private cut(start: number, end: number): Uint8Array {
    return this.copyOut(start, end, Buffer.allocUnsafe(end - start));
  }

  /** Copies output bytes [start, end) from the kept tail and spans into `out` (of that length). */
  private copyOut(start: number, end: number, out: Uint8Array): Uint8Array {
    const tailStart = this.spansStart - this.tailLength;
    if (start < tailStart || end > this.spansEnd) throw new NydusError('INTERNAL', `zran index: output ${start}..${end} is no longer (or not yet) available`);
    let at = 0;
    if (start < this.spansStart) {
      const piece = this.tail.subarray(start - tailStart, Math.min(end, this.spansStart) - tailStart);
      out.set(piece);
      at = piece.length;
    }
    let spanStart = this.spansStart;
    for (const span of this.spans) {
      if (at === out.length) break;
      const spanEnd = spanStart + span.length;
      const from = start + at;
      if (from < spanEnd) {
        const piece = span.subarray(from - spanStart, Math.min(end, spanEnd) - spanStart);
        out.set(piece, at);
        at += piece.length;
      }
      spanStart = spanEnd;
    }
    return out;
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
    const window = (c.window ??= this.cut(c.outOffset - c.windowSize!, c.outOffset));
    const ctx: OpenContext = {
      inOffset: c.inOffset,
      outOffset: c.outOffset,
      dictOffset: this.dictBytes,
      inLen: 0,
      outLen: 0,
      dictSize: window.length,
      ctxByte: c.bits === 0 ? 0 : c.byte,
      ctxBits: c.bits,
      member: c.member,
    };
    this.contexts.push(ctx);
    this.windows.push(window);
    this.dictBytes += window.length;
    return ctx;
  }

  private compactMarks(): void {
    this.marksIn = this.marksIn.slice(this.marksHead);
    this.marksOut = this.marksOut.slice(this.marksHead);
    this.marksHead = 0;
  }

  /** Size of each context's dictionary, in context (and dictionary table) order. */
  get dictionarySizes(): number[] {
    return this.windows.map((w) => w.length);
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
