// Shared fixtures of the builder and merge tests: entries from code, an in-memory sink.
import { createHash } from 'node:crypto';
import { BlobFeatures, buildLayer, decompressChunk, type BuildLayerOptions, type LayerBuildResult, type LayerEntry } from '../src/index.js';
import { CompressionAlgo, DEVICE_TABLE_OFFSET, DataLayout, DigestAlgo, decodeBlobEntry, decodeChunkAddress, decodeChunkInfo, decodeDeviceSlot, decodeDirentBlocks, decodeErofsSuperblock, decodeInode, decodeRafsExtSuperblock, decodeXattrs, validateBlobEntry, validateErofsSuperblock, validateRafsExtSuperblock, xattrAreaSize, type BlobEntry, type ChunkAddress, type ChunkInfo, type DeviceSlot, type Dirent, type ErofsInode, type ErofsSuperblock, type RafsExtSuperblock } from '../src/internal.js';
import type { TreeBlob } from '../src/builder/tree.js';

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

/**
 * Lets the event loop run. In-memory sources only ever await settled promises, so a consumer
 * of thousands of entries or megabytes never yields: this worker's messages to vitest would
 * wait until the end (and time out after 60 s on a busy machine). Sources call it every so often.
 */
export const letEventLoopRun = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Content as an async iterable, cut into pieces of `pieceSize` bytes (one piece by default). */
export async function* pieces(data: Uint8Array, pieceSize = data.length || 1): AsyncIterable<Uint8Array> {
  let sinceTurn = 0;
  for (let off = 0; off < data.length; off += pieceSize) {
    if ((sinceTurn += pieceSize) >= 4 << 20) {
      sinceTurn = 0;
      await letEventLoopRun();
    }
    yield data.subarray(off, Math.min(off + pieceSize, data.length));
  }
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
  let n = 0;
  for (const e of entries) {
    if (++n % 256 === 0) await letEventLoopRun();
    yield e;
  }
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

/**
 * A minimal decoder over the layout codecs (independent of BootstrapReader): superblocks,
 * tables, inodes with their placement, directory entries, symlink data and chunk addresses.
 */
export class BootstrapView {
  readonly sb: ErofsSuperblock;
  readonly ext: RafsExtSuperblock;
  readonly slots: DeviceSlot[] = [];
  readonly blobs: BlobEntry[] = [];
  readonly chunks: ChunkInfo[] = [];
  readonly prefetch: number[] = [];
  readonly metaBase: number;

  constructor(readonly bytes: Uint8Array) {
    this.sb = decodeErofsSuperblock(bytes);
    validateErofsSuperblock(this.sb);
    this.ext = decodeRafsExtSuperblock(bytes);
    validateRafsExtSuperblock(this.ext, bytes.length, 4096);
    this.metaBase = this.sb.metaBlkaddr * 4096;
    for (let i = 0; i < this.sb.extraDevices; i++) {
      const off = DEVICE_TABLE_OFFSET + 128 * i;
      this.slots.push(decodeDeviceSlot(bytes.subarray(off, off + 128), off, i));
      const boff = this.ext.blobTableOffset + 256 * i;
      const b = decodeBlobEntry(bytes.subarray(boff, boff + 256), boff, i);
      validateBlobEntry(b, i, this.ext.chunkSize, boff);
      this.blobs.push(b);
    }
    for (let i = 0; i < this.ext.chunkTableSize / 80; i++) {
      const off = this.ext.chunkTableOffset + 80 * i;
      this.chunks.push(decodeChunkInfo(bytes.subarray(off, off + 80), off, i));
    }
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < this.ext.prefetchTableSize / 4; i++) this.prefetch.push(dv.getUint32(this.ext.prefetchTableOffset + 4 * i, true));
  }

  offsetOf(nid: number): number {
    return this.metaBase + nid * 32;
  }

  inode(nid: number): ErofsInode & { offset: number; isz: number; xattrs: Map<string, Uint8Array> } {
    const offset = this.offsetOf(nid);
    const inode = decodeInode(this.bytes.subarray(offset, offset + 64), offset, nid);
    const xsize = xattrAreaSize(inode.xattrCount);
    const isz = (inode.extended ? 64 : 32) + xsize;
    const xattrs = xsize > 0 ? decodeXattrs(this.bytes.subarray(offset + isz - xsize, offset + isz), offset, nid) : new Map<string, Uint8Array>();
    return { ...inode, offset, isz, xattrs };
  }

  /** FLAT_PLAIN / FLAT_INLINE data of an inode. */
  data(nid: number): Uint8Array {
    const ino = this.inode(nid);
    const size = ino.size;
    const out = new Uint8Array(size);
    const tail = ino.dataLayout === DataLayout.FLAT_INLINE ? size % 4096 : 0;
    const full = size - tail;
    if (full > 0) out.set(this.bytes.subarray(ino.u * 4096, ino.u * 4096 + full), 0);
    if (tail > 0) out.set(this.bytes.subarray(ino.offset + ino.isz, ino.offset + ino.isz + tail), full);
    return out;
  }

  dirents(nid: number): Dirent[] {
    return decodeDirentBlocks(this.data(nid), 4096, () => 0, nid);
  }

  /** Children by name (without `.`/`..`). */
  children(nid: number): Map<string, Dirent> {
    const m = new Map<string, Dirent>();
    for (const d of this.dirents(nid)) {
      const name = Buffer.from(d.name).toString('utf8');
      if (name !== '.' && name !== '..') m.set(name, d);
    }
    return m;
  }

  lookup(path: string): number {
    let nid = this.sb.rootNid;
    for (const c of path.split('/').filter((x) => x !== '')) {
      const d = this.children(nid).get(c);
      if (d === undefined) throw new Error(`no ${c} in ${path}`);
      nid = d.nid;
    }
    return nid;
  }

  chunkAddresses(nid: number): ChunkAddress[] {
    const ino = this.inode(nid);
    const n = Math.ceil(ino.size / this.ext.chunkSize);
    const at = Math.ceil((ino.offset + ino.isz) / 8) * 8;
    return Array.from({ length: n }, (_, i) => decodeChunkAddress(this.bytes.subarray(at + 8 * i, at + 8 * i + 8), at + 8 * i));
  }

  /** The chunk-table entry of a chunk address. */
  chunkOf(a: ChunkAddress): ChunkInfo {
    const c = this.chunks.find((x) => x.blobIndex === a.blobIndex && x.index === a.ciIndex && x.uncompressedOffset === a.blkaddr * 4096);
    if (c === undefined) throw new Error(`no chunk table entry for ${JSON.stringify(a)}`);
    return c;
  }

  /** Every (nid, path) reachable from the root, depth first. */
  walk(): Array<{ path: string; nid: number }> {
    const out: Array<{ path: string; nid: number }> = [{ path: '/', nid: this.sb.rootNid }];
    const visit = (nid: number, prefix: string): void => {
      for (const [name, d] of this.children(nid)) {
        const path = prefix + name;
        out.push({ path, nid: d.nid });
        if (d.fileType === 2) visit(d.nid, path + '/');
      }
    };
    visit(this.sb.rootNid, '/');
    return out;
  }
}

/** Reads a file's content from blob bytes through the chunk table (decompressing chunks). */
export function readFileFromBlob(view: BootstrapView, nid: number, blobs: Record<string, Uint8Array>): Buffer {
  const parts: Uint8Array[] = [];
  for (const a of view.chunkAddresses(nid)) {
    const c = view.chunkOf(a);
    const blob = view.blobs[c.blobIndex]!;
    const bytes = blobs[blob.blobId];
    if (bytes === undefined) throw new Error(`blob ${blob.blobId} not given`);
    const raw = bytes.subarray(c.compressedOffset, c.compressedOffset + c.compressedSize);
    const algo = (c.flags & 1) !== 0 ? (['none', 'lz4_block', 'gzip', 'zstd'] as const)[blob.compressionAlgo]! : 'none';
    parts.push(decompressChunk(algo, raw, c.uncompressedSize));
  }
  return Buffer.concat(parts);
}

/** A blob-table entry for trees built by hand: lz4_block + blake3, `chunkCount` chunks of 64 KiB. */
export function treeBlob(id: string, chunkCount = 4): TreeBlob {
  const chunkSize = 0x10000;
  return {
    blobId: id,
    chunkSize,
    chunkCount,
    compressionAlgo: CompressionAlgo.lz4_block,
    digestAlgo: DigestAlgo.blake3,
    features: BlobFeatures.ALIGNED,
    compressedSize: chunkCount * chunkSize,
    uncompressedSize: chunkCount * chunkSize,
    tocSize: 0,
    ciCompressor: 0,
    ciOffset: 0,
    ciCompressedSize: 0,
    ciUncompressedSize: 0,
    tocDigest: '0'.repeat(64),
    metaDigest: '0'.repeat(64),
    metaSize: 0,
    cipherIv: new Uint8Array(8),
    cipherAlgo: 0,
  };
}
