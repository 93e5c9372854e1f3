import { markAsUntransferable } from 'node:worker_threads';

/**
 * Buffers that a thread-pool task reads or writes are kept referenced by the task (in C), and
 * their ArrayBuffers are marked untransferable here: a `postMessage` transfer would otherwise
 * detach them and let the receiver free memory that the task is still using.
 */
export function pinForThreadPool(...arrays: Uint8Array[]): void {
  for (const a of arrays) markAsUntransferable(a.buffer);
}
