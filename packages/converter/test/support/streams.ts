/** Stream helpers for tests. */
import { createHash } from 'node:crypto';

/** Yields `data` in chunks of `chunkSize` bytes (the last may be shorter). */
export async function* chunked(data: Uint8Array, chunkSize = 65_536): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.length; off += chunkSize) yield data.subarray(off, Math.min(off + chunkSize, data.length));
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
  for (const item of items) yield item;
}
