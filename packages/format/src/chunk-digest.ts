import { Blake3Hasher } from '@napi-rs/blake-hash';
import { createHash } from 'node:crypto';
import type { DigestName } from './layout/constants.js';

export type ChunkDigester = DigestName;
export const CHUNK_DIGESTERS: readonly ChunkDigester[] = ['blake3', 'sha256'];

/** Hex digest of one chunk's uncompressed bytes. */
export function digestChunk(algo: ChunkDigester, data: Uint8Array): string {
  if (algo === 'sha256') return createHash('sha256').update(data).digest('hex');
  const h = new Blake3Hasher();
  h.update(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  return h.digest('hex');
}
