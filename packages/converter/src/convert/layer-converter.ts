import { NydusError, isNydusError, throwIfAborted } from '@nydus-ts/core';
import type { Descriptor, Digest } from '@nydus-ts/core';
import { buildLayer } from '@nydus-ts/format';
import type { BlobSink, ChunkDict, ChunkCompressor, ChunkDigester, LayerBuildStats, LayerEntry } from '@nydus-ts/format';
import { RetryBudget, withRetry } from '@nydus-ts/registry';
import type { BlobUpload, RegistryClient, RetryOptions } from '@nydus-ts/registry';
import { Annotation, NYDUS_BLOB_MEDIA_TYPE } from './nydus-conventions.js';

/** What one try at converting a layer gets: the retry budget all its requests share. */
export interface LayerAttempt {
  /** 1 for the first try. */
  attempt: number;
  /** Shared by the source fetch (its GETs and `Range` resumes) and the upload's requests. */
  retryBudget: RetryBudget;
}

export interface ConvertLayerOptions {
  /**
   * The source layer's entries (streamed: fetch → decompress → tar). A function is called for
   * each try: a layer whose upload failed, or whose source body proved corrupted, is then
   * converted again from its first byte (the builder is deterministic: the same blob results).
   * A plain iterable can be read once: such a layer is not retried.
   */
  entries: AsyncIterable<LayerEntry> | ((attempt: LayerAttempt) => AsyncIterable<LayerEntry>);
  /**
   * One budget per layer for everything above (default: the client's retry options): at most
   * `attempts` failures in a row (a source body that broke after new bytes starts a new row).
   */
  retry?: RetryOptions;
  /** Called before the layer is converted again, with the failure and the try that failed. */
  onRetry?: (err: unknown, attempt: number) => void;
  /** Target registry and repository the Nydus blob is uploaded to. */
  client: RegistryClient;
  repository: string;
  compressor: ChunkCompressor;
  chunkSize: number;
  digester: ChunkDigester;
  chunkDict?: ChunkDict;
  prefetchPatterns?: string[];
  signal?: AbortSignal;
  /** Called with the size of every chunk of blob bytes written (progress). */
  onBlobBytes?: (n: number) => void;
}

export interface ConvertedLayer {
  /** The Nydus blob layer descriptor (bootstrap-only for a layer without file data); null if the builder wrote none. */
  blob: Descriptor | null;
  /** The layer's bootstrap (its own blob named by its real id). */
  bootstrap: Uint8Array;
  /** `<blob-id>.blob.meta` content; null without a blob. */
  blobMeta: Uint8Array | null;
  /** Ids of chunk-dict blobs this layer references. */
  referencedDictBlobs: string[];
  stats: LayerBuildStats;
  /** Blob bytes uploaded. */
  bytesOut: number;
  durationMs: number;
}

/** Size of the chunks handed to the registry upload. */
const SINK_CHUNK = 1 << 20;

/**
 * A BlobSink that streams into a registry upload opened on the first write (a layer without file
 * data opens none). Small writes (one per small file) are gathered into 1 MiB chunks, and each
 * chunk waits for `drain` so the builder runs only as fast as the registry takes the bytes.
 */
export class UploadSink implements BlobSink {
  upload: BlobUpload | undefined;
  bytes = 0;
  #opening: Promise<BlobUpload> | undefined;
  #failed: unknown;
  #buf = Buffer.allocUnsafe(SINK_CHUNK);
  #len = 0;

  constructor(
    private readonly client: RegistryClient,
    private readonly repository: string,
    private readonly signal: AbortSignal | undefined,
    private readonly onBytes: ((n: number) => void) | undefined,
    /** Tries the upload's requests share with the rest of the layer's conversion. */
    private readonly retryBudget?: RetryBudget,
  ) {}

  async write(bytes: Uint8Array): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed;
    if (!this.upload) {
      // The builder hashes every byte it writes (the blob id): the upload need not hash them again.
      this.#opening ??= this.client.createUpload(this.repository, { verifyDigest: false, ...(this.signal && { signal: this.signal }), ...(this.retryBudget && { retryBudget: this.retryBudget }) });
      this.upload = await this.#opening;
      this.upload.on('error', (err) => (this.#failed ??= err));
    }
    this.bytes += bytes.length;
    this.onBytes?.(bytes.length);
    // The builder never touches bytes it has written (BlobSink): large writes (its 4 MiB slabs)
    // go to the upload as they are, small ones are gathered (copied) into 1 MiB chunks.
    if (bytes.length >= SINK_CHUNK) {
      await this.flush();
      await this.send(bytes);
      return;
    }
    let off = 0;
    while (off < bytes.length) {
      const n = Math.min(bytes.length - off, SINK_CHUNK - this.#len);
      this.#buf.set(bytes.subarray(off, off + n), this.#len);
      this.#len += n;
      off += n;
      if (this.#len === SINK_CHUNK) await this.flush();
    }
  }

  /** Hands the gathered bytes to the upload, waiting for `drain` when it is full. */
  async flush(): Promise<void> {
    if (this.#len === 0 || !this.upload) return;
    const chunk = this.#buf.subarray(0, this.#len);
    this.#buf = Buffer.allocUnsafe(SINK_CHUNK);
    this.#len = 0;
    await this.send(chunk);
  }

  /** Hands bytes to the upload, waiting for `drain` when it is full. */
  private async send(chunk: Uint8Array): Promise<void> {
    const upload = this.upload!;
    if (!upload.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const done = (err?: unknown): void => {
          upload.off('drain', onDrain);
          upload.off('error', onError);
          upload.off('close', onClose);
          if (err === undefined) resolve();
          else reject(err);
        };
        const onDrain = (): void => done();
        const onError = (err: Error): void => done(err);
        const onClose = (): void => done(this.#failed ?? new NydusError('CANCELLED', 'blob upload closed'));
        upload.on('drain', onDrain);
        upload.on('error', onError);
        upload.on('close', onClose);
      });
    }
    if (this.#failed !== undefined) throw this.#failed;
  }

  /** Destroys the upload (if one was opened) and waits until its session is cancelled on the registry. */
  async abort(err: unknown): Promise<void> {
    await this.upload?.cancel(err instanceof Error ? err : new Error(String(err)));
  }
}

/**
 * Converts one layer: its entries go through the RAFS builder (inline bootstrap, layout (b) of
 * spec §3.1, as nydusify's layers) while the blob streams into a registry upload, committed
 * under the builder's id (sha256 of every byte written) as its digest. Nothing touches disk.
 * On failure the upload is cancelled: nothing is committed. With `entries` a function, a
 * failure worth retrying (a failed or reset upload request, a 5xx or 429 from either side, a
 * corrupted source body) converts the layer again from the start, within one retry budget.
 */
export async function convertLayer(options: ConvertLayerOptions): Promise<ConvertedLayer> {
  throwIfAborted(options.signal);
  const started = performance.now();
  const { entries } = options;
  if (typeof entries !== 'function') {
    return convertLayerOnce(options, entries, undefined, started);
  }
  const budget = new RetryBudget(options.retry ?? options.client.transport.retry);
  return withRetry(
    (attempt) => convertLayerOnce(options, entries({ attempt, retryBudget: budget }), budget, started),
    budget.options,
    { budget, ...(options.signal && { signal: options.signal }), ...(options.onRetry && { onRetry: (err, attempt) => options.onRetry!(err, attempt) }) },
  );
}

async function convertLayerOnce(options: ConvertLayerOptions, entries: AsyncIterable<LayerEntry>, budget: RetryBudget | undefined, started: number): Promise<ConvertedLayer> {
  const sink = new UploadSink(options.client, options.repository, options.signal, options.onBlobBytes, budget);
  try {
    const result = await buildLayer(entries, sink, {
      compressor: options.compressor,
      chunkSize: options.chunkSize,
      digester: options.digester,
      inlineBootstrap: true,
      ...(options.chunkDict && { chunkDict: options.chunkDict }),
      ...(options.prefetchPatterns?.length && { prefetchPatterns: options.prefetchPatterns }),
      ...(options.signal && { signal: options.signal }),
    });
    let blob: Descriptor | null = null;
    if (result.blob) {
      if (!sink.upload) throw new NydusError('INTERNAL', `layer blob ${result.blob.id}: the builder reported a blob but wrote nothing`);
      await sink.flush();
      const digest: Digest = `sha256:${result.blob.id}`;
      const committed = await sink.upload.commit({ digest, size: result.blob.size });
      blob = { mediaType: NYDUS_BLOB_MEDIA_TYPE, digest: committed.digest, size: committed.size, annotations: { [Annotation.NydusBlob]: 'true' } };
    } else if (sink.upload) {
      await sink.abort(new NydusError('INTERNAL', 'layer has no blob'));
    }
    return {
      blob,
      bootstrap: result.bootstrap,
      blobMeta: result.blobMeta,
      referencedDictBlobs: result.referencedDictBlobs,
      stats: result.stats,
      bytesOut: sink.bytes,
      durationMs: performance.now() - started,
    };
  } catch (err) {
    await sink.abort(err);
    if (options.signal?.aborted && !isNydusError(err)) throw new NydusError('CANCELLED', 'conversion cancelled', { cause: err });
    throw err;
  }
}
