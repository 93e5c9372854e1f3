import { Worker } from 'node:worker_threads';
import { NydusError } from '@nydus-ts/core';
import { deserializeError } from './layer-job.js';
import type { LayerJob, LayerJobResult, LayerWorkerReply, LayerWorkerRequest } from './layer-job.js';

/** How long an aborted job may take to cancel its upload before its worker is terminated. */
const ABORT_GRACE_MS = 5000;

/**
 * Where the worker module is: next to this module. Built, that is dist/convert/layer-worker.js;
 * from TypeScript source (vitest), layer-worker.ts run through ts-worker-hooks.mjs.
 */
function workerSpec(): { url: URL; execArgv: string[] } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    return { url: new URL('./layer-worker.ts', here), execArgv: ['--import', new URL('./ts-worker-register.mjs', here).href] };
  }
  return { url: new URL('./layer-worker.js', here), execArgv: [] };
}

/**
 * Worker threads that convert layers, so that several layers build on several cores (the RAFS
 * builder's compression, digests and GC otherwise share the main thread). Workers are started on
 * demand (at most as many as jobs run at once, which the caller bounds), reused after a
 * successful job, and terminated after a failed or aborted one and by close().
 */
export class LayerWorkerPool {
  readonly #idle: Worker[] = [];
  readonly #all = new Set<Worker>();
  #closed = false;

  /** Number of worker threads started so far (tests). */
  started = 0;

  /**
   * Starts up to `n` workers now (module loading, ~0.1–0.2 s each, then overlaps with resolving
   * the source manifest and config) so that the first layers do not wait for it.
   */
  prestart(n: number): void {
    while (!this.#closed && this.#all.size < n) this.#idle.push(this.#spawn());
  }

  run(
    job: LayerJob,
    options: { signal?: AbortSignal; onProgress?: (bytesIn: number, bytesOut: number) => void; onRetry?: (err: unknown, attempt: number) => void } = {},
  ): Promise<LayerJobResult> {
    const { signal, onProgress, onRetry } = options;
    if (this.#closed) return Promise.reject(new NydusError('INTERNAL', 'layer worker pool is closed'));
    if (signal?.aborted) return Promise.reject(new NydusError('CANCELLED', 'conversion cancelled'));
    const worker = this.#idle.pop() ?? this.#spawn();
    return new Promise<LayerJobResult>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (err: unknown, value: LayerJobResult | undefined, reuse: boolean): void => {
        if (settled) return;
        settled = true;
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        signal?.removeEventListener('abort', onAbort);
        if (timer) clearTimeout(timer);
        if (reuse && !this.#closed) this.#idle.push(worker);
        else void this.#discard(worker);
        if (err !== undefined) reject(err);
        else resolve(value!);
      };
      const onMessage = (m: LayerWorkerReply): void => {
        if (m.type === 'progress') onProgress?.(m.bytesIn, m.bytesOut);
        else if (m.type === 'retry') onRetry?.(deserializeError(m.error), m.attempt);
        else if (m.type === 'error') finish(deserializeError(m.error), undefined, false);
        else if (m.type === 'done') {
          finish(
            undefined,
            {
              bytesIn: m.bytesIn,
              layer: { blob: m.blob, bootstrap: m.bootstrap, blobMeta: m.blobMeta, referencedDictBlobs: m.referencedDictBlobs, stats: m.stats, bytesOut: m.bytesOut, durationMs: m.durationMs },
            },
            true,
          );
        }
      };
      const onError = (err: Error): void => finish(new NydusError('INTERNAL', `layer worker failed: ${err.message}`, { cause: err }), undefined, false);
      const onExit = (code: number): void => finish(new NydusError('INTERNAL', `layer worker exited unexpectedly (code ${code})`), undefined, false);
      const onAbort = (): void => {
        // The worker aborts its pipeline (the upload is cancelled, nothing committed) and reports
        // its error; if it does not within the grace period, it is terminated.
        worker.postMessage({ type: 'abort' } satisfies LayerWorkerRequest);
        timer = setTimeout(() => finish(new NydusError('CANCELLED', 'conversion cancelled'), undefined, false), ABORT_GRACE_MS);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.postMessage({ type: 'run', job } satisfies LayerWorkerRequest);
    });
  }

  #spawn(): Worker {
    const { url, execArgv } = workerSpec();
    const worker = new Worker(url, { execArgv });
    // An idle worker has no job listeners: its failures must not become uncaught 'error's here.
    worker.on('error', () => undefined);
    worker.on('exit', () => {
      this.#all.delete(worker);
      const i = this.#idle.indexOf(worker);
      if (i >= 0) this.#idle.splice(i, 1);
    });
    this.#all.add(worker);
    this.started++;
    return worker;
  }

  async #discard(worker: Worker): Promise<void> {
    this.#all.delete(worker);
    await worker.terminate().catch(() => undefined);
  }

  /** Terminates every worker. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#idle.length = 0;
    await Promise.all([...this.#all].map((w) => this.#discard(w)));
  }
}
