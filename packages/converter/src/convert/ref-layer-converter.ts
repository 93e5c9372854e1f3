import type { Readable } from 'node:stream';
import { NydusError, throwIfAborted } from '@nydus-ts/core';
import type { Descriptor, Digest } from '@nydus-ts/core';
import type { ImageReference, ImageSource, RegistryClient, RetryBudget } from '@nydus-ts/registry';
import { throwTransferError } from './convert-source.js';
import { buildRefLayerFromStream } from '@nydus-ts/image';
import type { ConvertedLayer } from './layer-converter.js';
import { UploadSink } from './layer-converter.js';
import { Annotation, NYDUS_BLOB_MEDIA_TYPE } from './nydus-conventions.js';

/** How an original layer came to be in the target repository. */
export type OriginalLayerAction = 'present' | 'mounted' | 'copied';

export interface ConvertRefLayerOptions {
  /** Where the original layer is read from, and its registry reference (registry sources). */
  store: ImageSource;
  sourceReference?: ImageReference;
  layer: Descriptor;
  client: RegistryClient;
  /** Target registry and repository: the original layer must end up there (spec §4.3). */
  target: { registry: string; repository: string };
  chunkSize: number;
  prefetchPatterns?: string[];
  signal?: AbortSignal;
  onBytes?: (n: number) => void;
  /** Tries shared by the layer's requests (source fetch, uploads) and by the caller's fresh starts. */
  retryBudget?: RetryBudget;
}

export interface ConvertedRefLayer extends ConvertedLayer {
  ref: {
    kind: 'zran' | 'tar';
    /** The original layer (the blob the bootstrap names). */
    original: { digest: Digest; size: number; action: OriginalLayerAction };
    /** The RAFS meta blob pushed (the nydus-ref layer). */
    meta: { digest: Digest; size: number };
    contexts: number;
  };
}

/**
 * Converts one layer to a targz-ref (gzip) or tar-ref (plain tar) layer: the original is
 * streamed once; its RAFS meta blob is pushed as the nydus-ref layer. The original must be in
 * the target repository: already there, mounted from the source repository on the same
 * registry, or else uploaded from the same stream (tee). zstd layers throw a
 * RefLayerUnsupportedError before anything is pushed (the caller converts them natively).
 */
export async function convertRefLayer(options: ConvertRefLayerOptions): Promise<ConvertedRefLayer> {
  const started = performance.now();
  const { client, layer, target, signal, retryBudget } = options;
  throwIfAborted(signal);
  const budget = retryBudget ? { retryBudget } : {};
  let action: OriginalLayerAction | undefined;
  if ((await client.headBlob(target.repository, layer.digest, { ...(signal && { signal }), ...budget })) !== undefined) action = 'present';
  else if (options.sourceReference && options.sourceReference.registry === target.registry) {
    const mounted = await client.mountBlob(target.repository, layer.digest, options.sourceReference.repository, signal ? { signal } : {}).catch(() => false);
    if (mounted) action = 'mounted';
  }
  const copy = action === undefined ? new UploadSink(client, target.repository, signal, undefined, retryBudget) : undefined;
  const stream: Readable = options.store.fetchBlob(layer, { ...(signal && { signal }), ...(options.onBytes && { onBytes: options.onBytes }), ...budget });
  /** The original's bytes, uploaded on the way when the target lacks it. */
  async function* original(): AsyncGenerator<Uint8Array, void, undefined> {
    // Not destroyed when the builder gives up: a corrupted transfer is told from a broken layer by reading on.
    for await (const chunk of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      if (copy) await copy.write(chunk);
      yield chunk;
    }
  }
  const held: Uint8Array[] = [];
  try {
    const built = await buildRefLayerFromStream(original(), { write: async (b) => void held.push(Buffer.from(b)) }, {
      blobId: layer.digest,
      sourceSize: layer.size,
      chunkSize: options.chunkSize,
      // (ImageSource blob streams fail on a digest mismatch.)
      sourceVerified: true,
      ...(options.prefetchPatterns?.length && { prefetchPatterns: options.prefetchPatterns }),
      ...(signal && { signal }),
    });
    if (copy) {
      // (A zero-byte original never opened an upload: nothing to commit.)
      if (!copy.upload) throw new NydusError('INTERNAL', `original layer ${layer.digest}: nothing was uploaded`);
      await copy.flush();
      await copy.upload.commit({ digest: layer.digest, size: layer.size });
      action = 'copied';
    }
    const metaBytes = Buffer.concat(held);
    const meta: Descriptor = { mediaType: NYDUS_BLOB_MEDIA_TYPE, digest: `sha256:${built.metaBlob.id}`, size: metaBytes.length };
    if ((await client.headBlob(target.repository, meta.digest, { ...(signal && { signal }), ...budget })) === undefined) {
      await client.pushBlob(target.repository, meta, metaBytes, { ...(signal && { signal }), ...budget });
    }
    const blob: Descriptor = { ...meta, annotations: { [Annotation.NydusBlob]: 'true', [Annotation.NydusRef]: layer.digest } };
    return {
      blob,
      bootstrap: built.bootstrap,
      blobMeta: built.blobMeta,
      referencedDictBlobs: [],
      stats: built.stats,
      bytesOut: metaBytes.length,
      durationMs: performance.now() - started,
      ref: {
        kind: built.kind,
        original: { digest: layer.digest, size: layer.size, action: action! },
        meta: { digest: meta.digest, size: meta.size },
        contexts: built.contexts,
      },
    };
  } catch (err) {
    await copy?.abort(err);
    await throwTransferError(stream, err, signal);
    throw err;
  } finally {
    stream.destroy();
  }
}
