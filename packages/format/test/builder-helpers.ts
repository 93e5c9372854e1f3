// Shared fixtures of the builder and merge tests: entries from code, an in-memory sink.
import { createHash } from 'node:crypto';
import { buildLayer, type BuildLayerOptions, type LayerBuildResult, type LayerEntry } from '../src/index.js';

export interface EntryAttrs {
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  mtimeNsec?: number;
  xattrs?: Record<string, string | Uint8Array>;
}

function base(path: string, type: LayerEntry['type'], a: EntryAttrs, defMode: number): LayerEntry {
  const e: LayerEntry = { path, type, mode: a.mode ?? defMode, uid: a.uid ?? 0, gid: a.gid ?? 0, mtime: a.mtime ?? 1_700_000_000, size: 0 };
  if (a.mtimeNsec !== undefined) e.mtimeNsec = a.mtimeNsec;
  if (a.xattrs) e.xattrs = new Map(Object.entries(a.xattrs).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v) : v]));
  return e;
}

/** Content as an async iterable, cut into pieces of `pieceSize` bytes (one piece by default). */
export async function* pieces(data: Uint8Array, pieceSize = data.length || 1): AsyncIterable<Uint8Array> {
  for (let off = 0; off < data.length; off += pieceSize) yield data.subarray(off, Math.min(off + pieceSize, data.length));
}

export const E = {
  dir: (path: string, a: EntryAttrs = {}): LayerEntry => base(path, 'directory', a, 0o755),
  file: (path: string, content: Uint8Array | string = '', a: EntryAttrs & { pieceSize?: number } = {}): LayerEntry => {
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    return { ...base(path, 'file', a, 0o644), size: data.length, content: pieces(data, a.pieceSize) };
  },
  symlink: (path: string, target: string, a: EntryAttrs = {}): LayerEntry => ({ ...base(path, 'symlink', a, 0o777), linkTarget: target }),
  hardlink: (path: string, target: string): LayerEntry => ({ ...base(path, 'hardlink', {}, 0o644), linkTarget: target }),
  chr: (path: string, major: number, minor: number, a: EntryAttrs = {}): LayerEntry => ({ ...base(path, 'char-device', a, 0o666), devMajor: major, devMinor: minor }),
  blk: (path: string, major: number, minor: number, a: EntryAttrs = {}): LayerEntry => ({ ...base(path, 'block-device', a, 0o660), devMajor: major, devMinor: minor }),
  fifo: (path: string, a: EntryAttrs = {}): LayerEntry => base(path, 'fifo', a, 0o644),
  socket: (path: string, a: EntryAttrs = {}): LayerEntry => base(path, 'socket', a, 0o755),
};

export async function* fromArray(entries: Iterable<LayerEntry>): AsyncIterable<LayerEntry> {
  for (const e of entries) yield e;
}

/** A sink that keeps what it is given (the builder never reuses memory it handed over). */
export class MemorySink {
  readonly parts: Uint8Array[] = [];
  size = 0;
  async write(bytes: Uint8Array): Promise<void> {
    this.parts.push(bytes);
    this.size += bytes.length;
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export interface BuiltLayer extends LayerBuildResult {
  blobBytes: Buffer;
}

/** Builds entries given as an array (a fresh iteration each call: content iterables are single use). */
export async function build(make: () => LayerEntry[], options?: BuildLayerOptions): Promise<BuiltLayer> {
  const sink = new MemorySink();
  const result = await buildLayer(fromArray(make()), sink, options);
  return { ...result, blobBytes: sink.bytes() };
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Deterministic pseudo-random bytes (xorshift), optionally made compressible. */
export function prng(size: number, seed = 1, compressible = false): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const v = compressible ? (x >>> 0) % 16 + 0x61 : x >>> 0;
    if (compressible) out.fill(v, i, Math.min(i + 4, size));
    else for (let j = 0; j < 4 && i + j < size; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
  }
  return out;
}
