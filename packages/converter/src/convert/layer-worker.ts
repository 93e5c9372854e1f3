// Worker-thread entry: runs layer jobs posted by LayerWorkerPool, one at a time.
import { parentPort } from 'node:worker_threads';
import { NydusError } from '@nydus-ts/core';
import { runLayerJob, serializeError } from './layer-job.js';
import type { LayerJob, LayerWorkerReply, LayerWorkerRequest } from './layer-job.js';

const port = parentPort;
if (!port) throw new Error('layer-worker: not running in a worker thread');

let controller: AbortController | undefined;

/** A copy unless `u` owns its whole ArrayBuffer (then the buffer itself is transferred). */
function owned(u: Uint8Array): Uint8Array {
  return u.byteOffset === 0 && u.byteLength === u.buffer.byteLength && u.buffer instanceof ArrayBuffer ? u : new Uint8Array(u);
}

async function run(job: LayerJob): Promise<void> {
  const c = new AbortController();
  controller = c;
  try {
    const r = await runLayerJob(
      job,
      c.signal,
      (bytesIn, bytesOut) => post({ type: 'progress', bytesIn, bytesOut }),
      (err, attempt) => post({ type: 'retry', attempt, error: serializeError(err) }),
    );
    const bootstrap = owned(r.layer.bootstrap);
    const blobMeta = r.layer.blobMeta ? owned(r.layer.blobMeta) : null;
    const transfer: ArrayBuffer[] = [bootstrap.buffer as ArrayBuffer];
    if (blobMeta && blobMeta.buffer !== bootstrap.buffer) transfer.push(blobMeta.buffer as ArrayBuffer);
    port!.postMessage(
      {
        type: 'done',
        bytesIn: r.bytesIn,
        blob: r.layer.blob,
        bootstrap,
        blobMeta,
        referencedDictBlobs: r.layer.referencedDictBlobs,
        stats: r.layer.stats,
        bytesOut: r.layer.bytesOut,
        durationMs: r.layer.durationMs,
      } satisfies LayerWorkerReply,
      transfer,
    );
  } catch (err) {
    post({ type: 'error', error: serializeError(err) });
  } finally {
    if (controller === c) controller = undefined;
  }
}

function post(m: LayerWorkerReply): void {
  port!.postMessage(m);
}

port.on('message', (m: LayerWorkerRequest) => {
  if (m.type === 'abort') controller?.abort(new NydusError('CANCELLED', 'conversion cancelled'));
  else if (m.type === 'run') void run(m.job);
});
