import { createHash } from 'node:crypto';
import { DigestMismatchError, FormatError, InvalidArgumentError, NydusError, UnsupportedError, throwIfAborted } from '@nydus-ts/core';
import { TarRefLocator, ZranIndexBuilder, buildRefLayer, type BlobSink, type RefLayerBuildResult } from '@nydus-ts/format';
import { CheckpointingGunzip, type CheckpointStep } from '@nydus-ts/native';
import { SNIFF_LENGTH, detectCompression, whatFollowsGzipMember } from './decompress.js';
import { readTarEntries } from './tar-reader.js';

export interface BuildRefLayerFromStreamOptions {
  /** Digest of the original layer (`sha256:…` or hex); the bytes streamed must have it. */
  blobId: string;
  /** Size of the original layer in bytes; the bytes streamed must have it. */
  sourceSize: number;
  /** Default 1 MiB. */
  chunkSize?: number;
  prefetchPatterns?: string[];
  /**
   * The source stream already verifies the digest (a registry or OCI-layout blob stream fails
   * on a mismatch): only the size is checked here, the bytes are not hashed a second time.
   */
  sourceVerified?: boolean;
  signal?: AbortSignal;
}

export interface RefLayerResult extends RefLayerBuildResult {
  /** 'zran' for a gzip layer (targz-ref), 'tar' for a plain tar layer (tar-ref). */
  kind: 'zran' | 'tar';
  /** zran inflate contexts (checkpoints) recorded in the meta blob. */
  contexts: number;
}

/** Thrown for layers a reference image cannot point into (zstd): convert them natively. */
export class RefLayerUnsupportedError extends UnsupportedError {
  constructor(readonly compression: string) {
    super(`a ${compression} layer cannot be referenced in place (only gzip and plain tar layers can)`);
    this.name = 'RefLayerUnsupportedError';
  }
}

/**
 * Builds the targz-ref (gzip) or tar-ref (plain tar) layer of an original OCI layer streamed
 * once (spec §4): the gzip stream is inflated with checkpoints at its deflate block boundaries,
 * parsed as tar, and its file data indexed in place. The RAFS meta blob goes to `sink`. The
 * stream's digest and size are checked against `blobId` and `sourceSize` (a mismatch is a
 * DigestMismatchError and nothing of the result is returned). zstd layers are a
 * RefLayerUnsupportedError before anything is written.
 */
export async function buildRefLayerFromStream(source: AsyncIterable<Uint8Array>, sink: BlobSink, options: BuildRefLayerFromStreamOptions): Promise<RefLayerResult> {
  if (typeof options.blobId !== 'string') throw new InvalidArgumentError('blobId: not a digest string');
  const expected = options.blobId.startsWith('sha256:') ? options.blobId.slice(7) : options.blobId;
  const chunkSize = options.chunkSize ?? 1 << 20;
  const signal = options.signal;
  const hash = createHash('sha256');
  const verified = options.sourceVerified ?? false;
  let size = 0;
  const iterator = source[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let headLength = 0;
  let ended = false;
  try {
    while (headLength < SNIFF_LENGTH) {
      const r = await iterator.next();
      if (r.done) {
        ended = true;
        break;
      }
      head.push(r.value);
      headLength += r.value.length;
    }
  } catch (err) {
    await iterator.return?.();
    throw err;
  }
  const compression = detectCompression(Buffer.concat(head).subarray(0, SNIFF_LENGTH));
  if (compression === 'zstd') {
    await iterator.return?.();
    throw new RefLayerUnsupportedError(compression);
  }
  /** The original bytes once, hashed and counted on the way. */
  async function* original(): AsyncGenerator<Uint8Array, void, undefined> {
    try {
      const take = (c: Uint8Array): Uint8Array => {
        if (!verified) hash.update(c);
        size += c.length;
        return c;
      };
      for (const c of head) yield take(c);
      if (ended) return;
      for (;;) {
        const r = await iterator.next();
        if (r.done) return;
        yield take(r.value);
      }
    } finally {
      await iterator.return?.();
    }
  }

  const locator = compression === 'gzip' ? new ZranIndexBuilder() : new TarRefLocator();
  const tar = locator instanceof ZranIndexBuilder ? inflateWithCheckpoints(original(), locator, signal) : original();
  // The meta blob is held back until the original's digest is known to match.
  const held: Uint8Array[] = [];
  const result = await buildRefLayer(readTarEntries(tar, signal ? { signal } : {}), { write: async (b) => void held.push(b) }, {
    blobId: options.blobId,
    sourceSize: options.sourceSize,
    locator,
    chunkSize,
    ...(options.prefetchPatterns ? { prefetchPatterns: options.prefetchPatterns } : {}),
    ...(signal ? { signal } : {}),
  });
  if (!verified) {
    const actual = hash.digest('hex');
    if (actual !== expected) throw new DigestMismatchError('original layer', expected, actual);
  }
  if (size !== options.sourceSize) throw new NydusError('DATA_LOSS', `original layer sha256:${expected}: ${size} bytes, its descriptor says ${options.sourceSize}`);
  for (const b of held) await sink.write(b);
  await sink.end?.();
  return { ...result, kind: locator.kind, contexts: locator instanceof ZranIndexBuilder ? locator.contextCount : 0 };
}

/** Output buffer of one inflate step. */
const INFLATE_OUTPUT = 1 << 20;
const OUTPUT_RING = 4;
/** Inputs shorter than this are inflated inline (a thread-pool round trip costs more). */
const SMALL_INPUT = 16 << 10;

/**
 * Gunzips a stream with the checkpointing inflater, one step on the thread pool ahead of the
 * consumer, feeding every block boundary and step end to `index` before the bytes they cover
 * are yielded. Boundaries come without windows: the index gets the output too, and cuts the
 * windows of the few boundaries it keeps from it. Several members are one stream; zero bytes after the last member are ignored,
 * anything else is an error, as is a stream that ends inside a member.
 */
export async function* inflateWithCheckpoints(source: AsyncIterable<Uint8Array>, index: ZranIndexBuilder, signal?: AbortSignal): AsyncGenerator<Uint8Array, void, undefined> {
  const what = 'layer.gzip';
  const inflater = new CheckpointingGunzip({ what, windows: false, maxCheckpointsPerStep: 1024 });
  const it = source[Symbol.asyncIterator]();
  let input: Uint8Array = new Uint8Array(0);
  let sourceEnded = false;
  let atMemberEnd = false;
  let inPadding = false;
  let members = 0;
  let totalIn = 0;
  let totalOut = 0;
  let pending: { step: Promise<CheckpointStep>; output: Buffer; slot: number } | undefined;

  const pull = async (): Promise<boolean> => {
    if (sourceEnded) return false;
    const r = await it.next();
    if (r.done) {
      sourceEnded = true;
      return false;
    }
    input = input.length === 0 ? r.value : Buffer.concat([input, r.value]);
    return true;
  };
  // Output buffers used in turn: the tar reader and the builder are done with a buffer by the
  // time they have asked for two more (they copy what they keep), as with decompressStream;
  // the index is told before a buffer is reused (it may still need windows from it).
  const ring: Buffer[] = [];
  const ringEnds: number[] = [];
  let turn = 0;
  const start = (): void => {
    const slot = turn++ % OUTPUT_RING;
    const output = (ring[slot] ??= Buffer.allocUnsafe(INFLATE_OUTPUT));
    if (ringEnds[slot] !== undefined) index.retireOutput(ringEnds[slot]!);
    const step = input.length < SMALL_INPUT ? Promise.resolve().then(() => inflater.step(input, output)) : inflater.stepAsync(input, output);
    pending = { step, output, slot };
  };

  try {
    for (;;) {
      throwIfAborted(signal);
      if (!pending) {
        if (atMemberEnd) {
          const follows = await whatFollowsGzipMember(() => input, pull, inPadding, members, what);
          if (follows === 'end') return;
          if (follows === 'padding') {
            inPadding = true;
            input = new Uint8Array(0);
            continue;
          }
          inflater.nextMember();
          atMemberEnd = false;
        }
        if (input.length === 0 && !(await pull())) throw new FormatError(what, 'truncated gzip stream: unexpected end of data');
        start();
      }
      const { step, output, slot } = pending!;
      const r = await step;
      pending = undefined;
      input = input.subarray(r.consumed);
      totalIn += r.consumed;
      totalOut += r.produced;
      ringEnds[slot] = totalOut;
      index.addOutput(output.subarray(0, r.produced));
      for (const c of r.checkpoints) index.addCheckpoint(c);
      index.addProgress(totalIn, totalOut);
      if (r.status === 'member-end') {
        atMemberEnd = true;
        members++;
      } else if (r.status === 'output-full' || r.status === 'checkpoints-full') {
        start();
      } else if (input.length > 0) {
        if (r.consumed === 0 && r.produced === 0 && !(await pull())) throw new FormatError(what, 'truncated gzip stream: unexpected end of data');
        start();
      }
      if (r.produced > 0) yield output.subarray(0, r.produced);
    }
  } finally {
    if (pending) await pending.step.catch(() => undefined);
    await it.return?.();
  }
}
