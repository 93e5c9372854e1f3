/** Stream helpers for tests. */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Duplex } from 'node:stream';
import { zstdCompressInto } from '@nydus-ts/native';

/**
 * Lets the event loop run. In-memory sources only ever await settled promises, so a consumer of
 * thousands of chunks never yields: this worker's messages to vitest would wait until the end
 * (and time out after 60 s on a busy machine). Sources call it every so often.
 */
export const letEventLoopRun = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Yields `data` in chunks of `chunkSize` bytes (the last may be shorter). */
export async function* chunked(data: Uint8Array, chunkSize = 65_536): AsyncGenerator<Uint8Array> {
  let n = 0;
  for (let off = 0; off < data.length; off += chunkSize) {
    if (++n % 64 === 0) await letEventLoopRun();
    yield data.subarray(off, Math.min(off + chunkSize, data.length));
  }
}

export async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of source) parts.push(chunk);
  return Buffer.concat(parts);
}

export async function sha256Of(source: AsyncIterable<Uint8Array>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of source) hash.update(chunk);
  return hash.digest('hex');
}

export async function* fromArray<T>(items: T[]): AsyncGenerator<T> {
  let n = 0;
  for (const item of items) {
    if (++n % 256 === 0) await letEventLoopRun();
    yield item;
  }
}

/** `data` as one zstd frame (level 3, content size in the header), as our chunks are written. */
export function zstdFrame(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(data.length + (data.length >> 7) + 1024);
  return out.subarray(0, zstdCompressInto(data, out, 3));
}

/**
 * A streaming zstd compressor: the `zstd` tool in a child process (a frame without a content
 * size, as streaming writers make it), so layers compress without blocking this thread.
 */
export function zstdCompressProcess(): Duplex {
  const child = spawn('zstd', ['-q', '-c', '-3'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on('error', (err) => duplex.destroy(err));
  child.on('exit', (code, signal) => {
    if (code !== 0 && !duplex.destroyed) duplex.destroy(new Error(`zstd exited with ${code ?? signal}`));
  });
  duplex.on('close', () => child.kill());
  return duplex;
}
