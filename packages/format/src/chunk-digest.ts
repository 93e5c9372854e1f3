import { Blake3Hasher } from '@napi-rs/blake-hash';
import { createHash, hash } from 'node:crypto';
import type { DigestName } from './layout/constants.js';

export type ChunkDigester = DigestName;
export const CHUNK_DIGESTERS: readonly ChunkDigester[] = ['blake3', 'sha256'];

// One reused hasher: a new native Blake3Hasher per chunk leaves ~2 KB of memory V8 does not
// see until its finaliser runs, which adds up to hundreds of MB over a large layer.
let blake3: Blake3Hasher | undefined;

/** Hex digest of one chunk's uncompressed bytes. */
export function digestChunk(algo: ChunkDigester, data: Uint8Array): string {
  if (algo === 'sha256') return createHash('sha256').update(data).digest('hex');
  const h = (blake3 ??= new Blake3Hasher());
  h.reset();
  h.update(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  return h.digest('hex');
}

/**
 * Writes the raw 32-byte digest of one chunk's uncompressed bytes into `out` at `at` (no hex
 * string in between; the builder's chunk store keeps raw digests).
 */
export function digestChunkInto(algo: ChunkDigester, data: Uint8Array, out: Buffer, at: number): void {
  const input = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (algo === 'sha256') {
    // One-shot: no Hash object per chunk (most chunks are small files).
    hash('sha256', input, 'buffer').copy(out, at);
    return;
  }
  const h = (blake3 ??= new Blake3Hasher());
  h.reset();
  h.update(input);
  h.digestBuffer().copy(out, at);
}
