import { createHash } from 'node:crypto';
import { crc32c } from '@nydus-ts/native';
import { BlobFeatures, ChunkFlags, compressChunk, digestChunk, encodeRdev, type BlobBackend } from '../src/index.js';
import { DataLayout, FEATURE_COMPAT_RAFS_V6, RafsSuperFlags, encodeBlobEntry, encodeChunkAddress, encodeChunkInfo, encodeDeviceSlot, encodeDirentBlocks, encodeErofsSuperblock, encodeInode, encodeRafsExtSuperblock, encodeXattrs, fileTypeOfMode, planDirentBlocks, ZERO_DIGEST_HEX, type ChunkInfo, type Dirent, type ErofsInode } from '../src/internal.js';

/** A BlobBackend over in-memory blobs keyed by blob id; counts the reads it serves. */
export function mapBackend(blobs: Record<string, Uint8Array>): BlobBackend & { reads: number } {
  const backend = {
    reads: 0,
    async readRange(blobId: string, offset: number, length: number): Promise<Uint8Array> {
      backend.reads++;
      const data = blobs[blobId];
      if (!data) throw new Error(`unknown blob ${blobId}`);
      return data.subarray(offset, offset + length);
    },
  };
  return backend;
}

// ---------------------------------------------------------------------------------------------
// A minimal, independent RAFS v6 image maker for reader tests. It uses only the layout codecs
// (not the builder), places each inode at the start of its own block and keeps the layout
// simple, so tests can exercise node types, xattrs, compact inodes, multi-block directories and
// multi-chunk files, and patch single structures to provoke specific format errors.


export type SynthNode =
  | { kind: 'dir'; name: string; children: SynthNode[]; attrs?: SynthAttrs }
  | { kind: 'file'; name: string; data: Uint8Array; attrs?: SynthAttrs }
  | { kind: 'symlink'; name: string; target: string; attrs?: SynthAttrs }
  | { kind: 'chr' | 'blk'; name: string; major: number; minor: number; attrs?: SynthAttrs }
  | { kind: 'fifo' | 'sock'; name: string; attrs?: SynthAttrs };

export interface SynthAttrs {
  perm?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  mtimeNsec?: number;
  xattrs?: Record<string, string>;
  compact?: boolean;
}

export interface SynthImage {
  boot: Uint8Array;
  blob: Uint8Array;
  blobId: string;
  /** nid of every path ('/' for the root). */
  nids: Map<string, number>;
  /** Absolute offset of every inode by path. */
  inodeOffsets: Map<string, number>;
}

const TYPE_MODE = { dir: 0o040000, file: 0o100000, symlink: 0o120000, chr: 0o020000, blk: 0o060000, fifo: 0o010000, sock: 0o140000 } as const;
const BS = 4096;
const META_BLK = 2;

export function makeImage(root: SynthNode & { kind: 'dir' }, options: { chunkSize?: number; crc?: boolean; prefetch?: string[] } = {}): SynthImage {
  const chunkSize = options.chunkSize ?? 4096;
  const withCrc = options.crc ?? true;
  // Pass 1: one inode block per node, depth first.
  type Placed = { node: SynthNode; path: string; block: number; nid: number; parent?: Placed };
  const placed: Placed[] = [];
  const visit = (node: SynthNode, path: string, parent?: Placed): void => {
    const block = META_BLK + 1 + placed.length;
    const p: Placed = { node, path, block, nid: (block - META_BLK) * 128, parent };
    placed.push(p);
    if (node.kind === 'dir') {
      for (const c of [...node.children].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)))) {
        visit(c, path === '/' ? `/${c.name}` : `${path}/${c.name}`, p);
      }
    }
  };
  visit(root, '/');
  let nextBlock = META_BLK + 1 + placed.length;
  const blocks = new Map<number, Uint8Array>();
  const nids = new Map(placed.map((p) => [p.path, p.nid]));
  const inodeOffsets = new Map(placed.map((p) => [p.path, p.block * BS]));

  // Blob data and chunk table.
  const blobParts: Uint8Array[] = [];
  let compressedCursor = 0;
  let uncompressedCursor = 0;
  const chunkByDigest = new Map<string, ChunkInfo>();
  const addChunk = (data: Uint8Array, fileOffset: number): ChunkInfo => {
    const digest = digestChunk('blake3', data);
    const known = chunkByDigest.get(digest);
    if (known) return known;
    const z = compressChunk('zstd', data);
    const compressed = z.length < data.length;
    const stored = compressed ? z : data;
    const crc = crc32c(data) >>> 0;
    const info: ChunkInfo = {
      digest,
      blobIndex: 0,
      flags: (compressed ? ChunkFlags.COMPRESSED : 0) | (withCrc ? ChunkFlags.HAS_CRC32 : 0),
      compressedSize: stored.length,
      uncompressedSize: data.length,
      compressedOffset: compressedCursor,
      uncompressedOffset: uncompressedCursor,
      fileOffset,
      index: chunkByDigest.size,
      crc32: withCrc ? crc : 0,
    };
    blobParts.push(stored);
    compressedCursor += stored.length;
    uncompressedCursor += Math.ceil(data.length / 4096) * 4096;
    chunkByDigest.set(digest, info);
    return info;
  };

  const childDirs = (n: SynthNode): number => (n.kind === 'dir' ? n.children.filter((c) => c.kind === 'dir').length : 0);
  for (const p of placed) {
    const { node } = p;
    const a = node.attrs ?? {};
    const compact = a.compact === true;
    const xattrs = encodeXattrs(new Map(Object.entries(a.xattrs ?? {}).map(([k, v]) => [k, Buffer.from(v)])));
    const inode: ErofsInode = {
      extended: !compact,
      dataLayout: DataLayout.FLAT_PLAIN,
      xattrCount: xattrs.icount,
      mode: TYPE_MODE[node.kind] | (a.perm ?? (node.kind === 'dir' ? 0o755 : node.kind === 'symlink' ? 0o777 : 0o644)),
      nlink: node.kind === 'dir' ? 2 + childDirs(node) : 1,
      size: 0,
      u: 0,
      ino: placed.indexOf(p) + 1,
      uid: a.uid ?? 0,
      gid: a.gid ?? 0,
      mtime: compact ? 0 : (a.mtime ?? 1_700_000_000),
      mtimeNsec: compact ? 0 : (a.mtimeNsec ?? 0),
    };
    const isz = (compact ? 32 : 64) + xattrs.bytes.length;
    let payload: Uint8Array = new Uint8Array(0);
    let flat: Uint8Array | undefined;
    if (node.kind === 'dir') {
      const entries: Dirent[] = [
        { name: Buffer.from('.'), nid: p.nid, fileType: 2 },
        { name: Buffer.from('..'), nid: (p.parent ?? p).nid, fileType: 2 },
        ...placed.filter((q) => q.parent === p).map((q) => ({ name: Buffer.from(q.node.name), nid: q.nid, fileType: fileTypeOfMode(TYPE_MODE[q.node.kind]) })),
      ].sort((x, y) => Buffer.compare(x.name, y.name));
      const plan = planDirentBlocks(entries, BS);
      flat = encodeDirentBlocks(plan.blocks, plan.size, BS);
    } else if (node.kind === 'symlink') {
      flat = Buffer.from(node.target);
    } else if (node.kind === 'file') {
      inode.dataLayout = DataLayout.CHUNK_BASED;
      inode.size = node.data.length;
      inode.u = 0x20 | (Math.log2(chunkSize) - 12);
      const count = Math.ceil(node.data.length / chunkSize);
      payload = new Uint8Array(Math.ceil(isz / 8) * 8 - isz + count * 8);
      const base = payload.length - count * 8;
      for (let i = 0; i < count; i++) {
        const c = addChunk(node.data.subarray(i * chunkSize, Math.min((i + 1) * chunkSize, node.data.length)), i * chunkSize);
        encodeChunkAddress({ ciIndex: c.index, blobIndex: 0, blkaddr: c.uncompressedOffset / 4096 }, payload, base + i * 8);
      }
    } else if (node.kind === 'chr' || node.kind === 'blk') {
      inode.u = encodeRdev(node.major, node.minor);
    }
    if (flat !== undefined) {
      inode.size = flat.length;
      const tail = flat.length % BS;
      const full = flat.length - tail;
      if (tail !== 0 && isz + tail <= BS) {
        inode.dataLayout = DataLayout.FLAT_INLINE;
        payload = flat.subarray(full);
      }
      const plainLen = inode.dataLayout === DataLayout.FLAT_INLINE ? full : flat.length;
      if (plainLen > 0) {
        inode.u = nextBlock;
        for (let off = 0; off < plainLen; off += BS) blocks.set(nextBlock++, flat.subarray(off, Math.min(off + BS, plainLen)));
      }
    }
    const block = new Uint8Array(BS);
    block.set(encodeInode(inode), 0);
    block.set(xattrs.bytes, compact ? 32 : 64);
    if (isz + payload.length > BS) throw new Error(`synthetic node ${p.path} does not fit one block`);
    block.set(payload, isz);
    blocks.set(p.block, block);
  }

  const chunks = [...chunkByDigest.values()];
  const blob = Buffer.concat(blobParts);
  const blobId = createHash('sha256').update(blob).digest('hex');
  const haveBlob = chunks.length > 0;
  const chunkTableBlock = nextBlock;
  const sortedChunks = [...chunks].sort((x, y) => Buffer.compare(Buffer.from(x.digest, 'hex'), Buffer.from(y.digest, 'hex')));
  const ct = new Uint8Array(Math.ceil((sortedChunks.length * 80) / BS) * BS);
  sortedChunks.forEach((c, i) => encodeChunkInfo(c, ct, i * 80));
  const total = (chunkTableBlock + ct.length / BS) * BS;
  const boot = new Uint8Array(Math.max(total, (chunkTableBlock + 1) * BS));
  for (const [b, bytes] of blocks) boot.set(bytes, b * BS);
  boot.set(ct, chunkTableBlock * BS);

  const n = haveBlob ? 1 : 0;
  const devBlocks = Math.ceil(uncompressedCursor / BS);
  const prefetch = (options.prefetch ?? []).map((path) => nids.get(path)!);
  boot.set(
    encodeErofsSuperblock({
      magic: 0xe0f5e1e2,
      checksum: 0,
      featureCompat: FEATURE_COMPAT_RAFS_V6,
      blkszbits: 12,
      extslots: 0,
      rootNid: 128,
      inodeCount: placed.length,
      buildTime: 0,
      buildTimeNsec: 0,
      blocks: devBlocks,
      metaBlkaddr: META_BLK,
      xattrBlkaddr: 0,
      uuid: new Uint8Array(16),
      volumeName: new Uint8Array(16),
      featureIncompat: 0xc,
      u: 0,
      extraDevices: n,
      devtSlotOff: 11,
    }),
    1024,
  );
  const hasXattr = placed.some((p) => Object.keys(p.node.attrs?.xattrs ?? {}).length > 0);
  boot.set(
    encodeRafsExtSuperblock({
      flags: RafsSuperFlags.COMPRESSION_ZSTD | RafsSuperFlags.HASH_BLAKE3 | RafsSuperFlags.EXPLICIT_UID_GID | RafsSuperFlags.ENCRYPTION_NONE | (hasXattr ? RafsSuperFlags.HAS_XATTR : 0),
      blobTableOffset: BS,
      blobTableSize: 256 * n,
      chunkSize,
      chunkTableOffset: chunkTableBlock * BS,
      chunkTableSize: 80 * sortedChunks.length,
      prefetchTableOffset: prefetch.length > 0 ? BS + 256 * n : 0,
      prefetchTableSize: 4 * prefetch.length,
    }),
    1152,
  );
  if (haveBlob) {
    boot.set(encodeDeviceSlot({ blobId, blocks: devBlocks, mappedBlkaddr: 0 }), 1408);
    boot.set(
      encodeBlobEntry({
        blobId,
        blobIndex: 0,
        chunkSize,
        chunkCount: chunks.length,
        compressionAlgo: 3,
        digestAlgo: 0,
        features: BlobFeatures.ALIGNED | BlobFeatures.CAP_TAR_TOC,
        compressedSize: blob.length,
        uncompressedSize: uncompressedCursor,
        tocSize: 0,
        ciCompressor: 0,
        ciOffset: blob.length,
        ciCompressedSize: 0,
        ciUncompressedSize: 0,
        tocDigest: ZERO_DIGEST_HEX,
        metaDigest: ZERO_DIGEST_HEX,
        metaSize: 0,
        cipherIv: new Uint8Array(8),
        cipherAlgo: 0,
      }),
      BS,
    );
  }
  const pt = new DataView(boot.buffer, boot.byteOffset + BS + 256 * n);
  prefetch.forEach((nid, i) => pt.setUint32(4 * i, nid, true));
  return { boot, blob, blobId, nids, inodeOffsets };
}

/** Deterministic pseudo-random bytes (xorshift32), compressible when `text` is set. */
export function pseudoRandomBytes(length: number, seed: number, text = false): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = text ? 0x61 + (x % 8) : x & 0xff;
  }
  return out;
}
