import { FormatError } from '@nydus-ts/core';
import { ChunkInfoV2Flags, type BlobMeta, type ZranContext } from '@nydus-ts/format';
import { inflateFromCheckpointAsync } from '@nydus-ts/native';
import type { ZranDictionaries } from '../cache/zran-meta-cache.js';
import type { BlobChunkTable } from './blob-chunk-table.js';
import type { ChunkPlanOptions, ChunkSource, DecodedChunk, FetchUnit } from './chunk-source.js';

/** Largest inflated span of one context (spec §4.4: out_len ≤ 16 MiB, plus a chunk). */
const MAX_CONTEXT_OUT = 32 << 20;

/**
 * ZRAN blobs (targz-ref images, spec §4.4): the blob is the original gzip layer, and a chunk is
 * read by inflating its context (a deflate block boundary with its pending bits and 32 KiB
 * window, from the meta blob) up to the chunk's end. A fetch unit is the compressed span of one
 * context, or of neighbouring contexts whose spans touch (merged up to the limit); every wanted
 * chunk of those contexts comes from one inflate per context, and with amplification the other
 * chunks of the contexts come along for the cost of inflating a little further.
 */
export class ZranChunkSource implements ChunkSource {
  /** Context index of each CI index (-1 for chunks the meta does not flag ZRAN). */
  private readonly contextOf: Int32Array;
  /** CI indexes of each context, by offset in the context's output. */
  private readonly chunksOf: number[][];

  constructor(
    private readonly table: BlobChunkTable,
    private readonly meta: BlobMeta,
    private readonly dictionaries: ZranDictionaries,
  ) {
    const blobId = table.blob.blobId;
    this.contextOf = new Int32Array(table.count).fill(-1);
    this.chunksOf = meta.zranContexts.map(() => []);
    meta.zranContexts.forEach((z, i) => {
      if (z.outLen > MAX_CONTEXT_OUT) throw new FormatError(`blob ${blobId} zran_context[${i}].out_len`, `${z.outLen} bytes exceed ${MAX_CONTEXT_OUT}`, { value: z.outLen });
    });
    for (let ci = 0; ci < table.count; ci++) {
      if (table.known[ci] !== 1) continue;
      const c = meta.chunks[ci];
      if (c === undefined || (c.flags & ChunkInfoV2Flags.ZRAN) === 0) throw new FormatError(`blob ${blobId} chunk ${ci}`, 'the bootstrap names a chunk that its ZRAN meta does not describe as a ZRAN chunk', { value: ci });
      if (c.uncompressedSize !== table.uncompressedSize[ci] || c.uncompressedOffset !== table.uncompressedOffset[ci]) {
        throw new FormatError(`blob ${blobId} chunk ${ci}`, 'the bootstrap and the ZRAN meta disagree on the chunk', { value: ci });
      }
      this.contextOf[ci] = c.contextIndex;
      this.chunksOf[c.contextIndex]!.push(ci);
    }
    for (const list of this.chunksOf) list.sort((a, b) => meta.chunks[a]!.contextOffset - meta.chunks[b]!.contextOffset);
  }

  plan(wanted: readonly number[], options: ChunkPlanOptions): FetchUnit[] {
    const contexts = this.meta.zranContexts;
    const wantedByContext = new Map<number, number[]>();
    for (const ci of wanted) {
      const z = this.contextOf[ci]!;
      if (z < 0) throw new FormatError(`blob ${this.table.blob.blobId} chunk ${ci}`, 'not a chunk of this blob');
      let list = wantedByContext.get(z);
      if (list === undefined) wantedByContext.set(z, (list = []));
      list.push(ci);
    }
    const order = [...wantedByContext.keys()].sort((a, b) => contexts[a]!.inOffset - contexts[b]!.inOffset || a - b);
    const units: FetchUnit[] = [];
    let current: FetchUnit | undefined;
    for (const z of order) {
      const ctx = contexts[z]!;
      this.dictionaries.want(z);
      const chunks = [...wantedByContext.get(z)!];
      if (options.amplifyTo > 0) {
        // The rest of the context costs no more input, only inflating a little further.
        const taken = new Set(chunks);
        for (const ci of this.chunksOf[z]!) if (!taken.has(ci) && !options.isSettled(ci)) chunks.push(ci);
      }
      const start = ctx.inOffset;
      const end = ctx.inOffset + ctx.inLen;
      if (current !== undefined && start <= current.offset + current.length && Math.max(end, current.offset + current.length) - current.offset <= options.mergeLimit) {
        current.length = Math.max(end, current.offset + current.length) - current.offset;
        current.chunks.push(...chunks);
      } else {
        current = { offset: start, length: end - start, chunks };
        units.push(current);
      }
    }
    return units;
  }

  async decode(unit: FetchUnit, raw: Uint8Array): Promise<DecodedChunk[]> {
    const byContext = new Map<number, number[]>();
    for (const ci of unit.chunks) {
      const z = this.contextOf[ci]!;
      let list = byContext.get(z);
      if (list === undefined) byContext.set(z, (list = []));
      list.push(ci);
    }
    const parts = await Promise.all([...byContext].map(([z, cis]) => this.decodeContext(z, cis, unit, raw)));
    return parts.flat();
  }

  /** The chunks `cis` of context `z`: one inflate up to the furthest chunk end. */
  private async decodeContext(z: number, cis: number[], unit: FetchUnit, raw: Uint8Array): Promise<DecodedChunk[]> {
    const ctx = this.meta.zranContexts[z]!;
    const blobId = this.table.blob.blobId;
    const what = `zran context ${z} of blob ${blobId}`;
    const at = ctx.inOffset - unit.offset;
    if (at < 0 || at + ctx.inLen > raw.byteLength) {
      const err = new FormatError(what, `compressed span [${ctx.inOffset}, +${ctx.inLen}) lies outside the fetched range`);
      return cis.map((ci) => ({ ci, error: err }));
    }
    const input = raw.subarray(at, at + ctx.inLen);
    const endOf = (ci: number): number => this.meta.chunks[ci]!.contextOffset + this.meta.chunks[ci]!.uncompressedSize;
    const furthest = Math.max(...cis.map(endOf));
    let window: Uint8Array;
    try {
      window = await this.dictionaries.get(z);
      if (window.byteLength !== ctx.dictSize) throw new FormatError(what, `dictionary of ${window.byteLength} bytes, the context says ${ctx.dictSize}`);
    } catch (err) {
      return cis.map((ci) => ({ ci, error: err as Error }));
    }
    try {
      const out = await this.inflate(window, ctx, input, furthest, what);
      return cis.map((ci) => ({ ci, data: out.subarray(this.meta.chunks[ci]!.contextOffset, endOf(ci)) }));
    } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      // Damaged input past some chunk's end must not fail that chunk: each one up to its own end.
      return Promise.all(
        cis.map(async (ci): Promise<DecodedChunk> => {
          try {
            const own = await this.inflate(window, ctx, input, endOf(ci), `chunk ${ci} of blob ${blobId}`);
            return { ci, data: own.subarray(this.meta.chunks[ci]!.contextOffset) };
          } catch (e) {
            return { ci, error: e as Error };
          }
        }),
      );
    }
  }

  close(): Promise<void> {
    return this.dictionaries.close();
  }

  private async inflate(window: Uint8Array, ctx: ZranContext, input: Uint8Array, length: number, what: string): Promise<Uint8Array> {
    const out = Buffer.allocUnsafe(length);
    await inflateFromCheckpointAsync(input, { bits: ctx.ctxBits, byte: ctx.ctxByte, window }, out, what);
    return out;
  }
}
