import { NydusError, isNydusError } from '@nydus-ts/core';
import type { Descriptor, NydusErrorCode, Platform } from '@nydus-ts/core';
import type { ChunkCompressor, ChunkDigester } from '@nydus-ts/format';
import type { RegistryEndpoint, ResolvedRetryOptions, TimeoutOptions } from '@nydus-ts/registry';
import { makeRegistryClient, openConvertSource } from './convert-source.js';
import { convertLayer } from './layer-converter.js';
import type { ConvertedLayer } from './layer-converter.js';
import { throttled } from './throttle.js';

/**
 * One layer's conversion as plain data, so that it can run in a worker thread: the worker opens
 * the source and a target registry client from these options and runs the same pipeline as the
 * in-process path (fetch, digest-verified → decompress → tar → RAFS builder → blob upload).
 */
export interface LayerJob {
  source: {
    /** The source spec as given (registry reference, oci:, oci-archive:, docker-archive:, dir:). */
    spec: string;
    /** The source registry's endpoint, credentials resolved to plain data (see plainEndpoint). */
    endpoint?: RegistryEndpoint;
    platform?: Platform;
  };
  target: { registry: string; endpoint?: RegistryEndpoint };
  repository: string;
  maxConnections: number;
  /** The layer's retry budget (see convertLayer) and the requests' timeouts. */
  retry: ResolvedRetryOptions;
  timeouts?: TimeoutOptions;
  layer: Descriptor;
  compressor: ChunkCompressor;
  chunkSize: number;
  digester: ChunkDigester;
  prefetchPatterns: string[];
}

/** What a layer job hands back (the ConvertedLayer plus the compressed bytes read). */
export interface LayerJobResult {
  layer: ConvertedLayer;
  /** Compressed source bytes read. */
  bytesIn: number;
}

export interface SerializedError {
  nydus: boolean;
  code?: NydusErrorCode;
  name: string;
  message: string;
}

export type LayerWorkerRequest = { type: 'run'; job: LayerJob } | { type: 'abort' };

export type LayerWorkerReply =
  | { type: 'progress'; bytesIn: number; bytesOut: number }
  /** The layer is converted again from the start after `error` (counts restart at 0). */
  | { type: 'retry'; attempt: number; error: SerializedError }
  | ({ type: 'done'; bytesIn: number } & ConvertedLayer)
  | { type: 'error'; error: SerializedError };

export function serializeError(err: unknown): SerializedError {
  if (isNydusError(err)) return { nydus: true, code: err.code, name: err.name, message: err.message };
  if (err instanceof Error) return { nydus: false, name: err.name, message: err.message };
  return { nydus: false, name: 'Error', message: String(err) };
}

/** The error on this side of the thread boundary: same code and message (hence exit code and text). */
export function deserializeError(e: SerializedError): Error {
  if (e.nydus && e.code) {
    const err = new NydusError(e.code, e.message);
    err.name = e.name;
    return err;
  }
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

/** Runs a layer job (in a worker, or in-process for tests): the same convertLayer as the in-process path. */
export async function runLayerJob(
  job: LayerJob,
  signal: AbortSignal,
  onProgress?: (bytesIn: number, bytesOut: number) => void,
  onRetry?: (err: unknown, attempt: number) => void,
): Promise<LayerJobResult> {
  const net = { retry: job.retry, ...(job.timeouts && { timeouts: job.timeouts }) };
  const source = await openConvertSource(job.source.spec, {
    ...(job.source.endpoint && { registry: job.source.endpoint }),
    maxConnections: job.maxConnections,
    ...net,
    ...(job.source.platform && { platform: job.source.platform }),
  });
  const client = makeRegistryClient(job.target.registry, job.target.endpoint, 'targetRegistry', { maxConnections: job.maxConnections, ...net });
  let bytesIn = 0;
  let bytesOut = 0;
  const progress = throttled(() => onProgress?.(bytesIn, bytesOut));
  try {
    const layer = await convertLayer({
      entries: ({ retryBudget }) => source.layerEntries(job.layer, { signal, retryBudget, onBytes: (n) => { bytesIn += n; progress(); } }),
      retry: job.retry,
      onRetry: (err, attempt) => {
        bytesIn = 0;
        bytesOut = 0;
        onRetry?.(err, attempt);
      },
      client,
      repository: job.repository,
      compressor: job.compressor,
      chunkSize: job.chunkSize,
      digester: job.digester,
      ...(job.prefetchPatterns.length && { prefetchPatterns: job.prefetchPatterns }),
      signal,
      onBlobBytes: (n) => {
        bytesOut += n;
        progress();
      },
    });
    return { layer, bytesIn };
  } finally {
    await Promise.allSettled([source.close(), client.close()]);
  }
}
