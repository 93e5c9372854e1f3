import type { Readable } from 'node:stream';
import { maxErrorBodyBytes } from './errors.js';

/** Reads at most 64 KiB of an error body as text and discards the rest. */
export async function readErrorBody(body: Readable, limit = maxErrorBodyBytes): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (size < limit) {
        const keep = chunk.subarray(0, limit - size);
        parts.push(keep);
        size += keep.length;
      }
    }
  } catch {
    // a broken error body is still an error; keep what arrived
  }
  return Buffer.concat(parts).toString('utf8');
}

/** Reads a whole body up to `limit` bytes (manifests, configs); throws past the limit. */
export async function readBodyLimited(body: Readable, limit: number, onTooLarge: () => Error): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      throw onTooLarge();
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts, size);
}

/** Discards a response body without reading it into memory (undici's `dump()` when available). */
export async function discardBody(body: Readable): Promise<void> {
  const dump = (body as Readable & { dump?: (opts?: { limit?: number }) => Promise<void> }).dump;
  if (typeof dump === 'function') {
    await dump.call(body, { limit: 1 << 20 }).catch(() => undefined);
    return;
  }
  body.resume();
}
