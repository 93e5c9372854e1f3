import { open } from 'node:fs/promises';

export interface ReadFileChunksOptions {
  /** Bytes per read (and per yielded chunk, except the last). Default 4 MiB. */
  chunkSize?: number;
  /** Where to start reading. Default 0. */
  position?: number;
}

/**
 * A file's bytes as an async iterable of chunks read into two buffers that take turns: while
 * the consumer works on one chunk, the next is read into the other. So a yielded chunk is
 * valid only until the next one is requested: for consumers that never keep source bytes
 * across `next()` (the tar reader's contract, where bodies are handed on before the next read
 * and header/PAX bytes that span reads are copied). No per-read allocation: the source makes
 * no garbage however large the file. The file is opened when iteration starts and closed when
 * it ends (also early, or on failure).
 */
export function readFileChunks(path: string, options: ReadFileChunksOptions = {}): AsyncIterable<Buffer> {
  const chunkSize = options.chunkSize ?? 4 << 20;
  const start = options.position ?? 0;
  return {
    async *[Symbol.asyncIterator]() {
      const handle = await open(path, 'r');
      const buffers = [Buffer.allocUnsafe(chunkSize), Buffer.allocUnsafe(chunkSize)];
      let position = start;
      let turn = 0;
      let pending: Promise<{ bytesRead: number }> | undefined = handle.read(buffers[0]!, 0, chunkSize, position);
      try {
        for (;;) {
          const { bytesRead } = await pending;
          pending = undefined;
          if (bytesRead === 0) return;
          position += bytesRead;
          const current = buffers[turn]!;
          turn ^= 1;
          // The consumer is done with the other buffer (it asked for this chunk): read ahead into it.
          pending = handle.read(buffers[turn]!, 0, chunkSize, position);
          yield current.subarray(0, bytesRead);
        }
      } finally {
        // A read still in flight must land before the handle closes.
        if (pending !== undefined) await pending.catch(() => undefined);
        await handle.close();
      }
    },
  };
}
