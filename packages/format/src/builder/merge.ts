import { FormatError, InvalidArgumentError, NydusError, UnsupportedError, throwIfAborted } from '@nydus-ts/core';
import { BlobFeatures, RafsSuperFlags } from '../layout/index.js';
import { BootstrapReader } from '../reader/index.js';
import { writeBootstrap } from './bootstrap-writer.js';
import { validatePrefetchPatterns } from './build-layer.js';
import { INLINED_BLOB_ID } from './blob-writer.js';
import { ChunkDict } from './chunk-dict.js';
import { NO_XATTRS, newDirNode, sortedChildren, type TreeBlob, type TreeChunk, type TreeInode, type TreeNode } from './tree.js';

export interface MergeLayer {
  /** The layer's bootstrap (e.g. `buildLayer`'s result, or `image.boot` from its blob). */
  bootstrap: Uint8Array;
  /**
   * New id for the layer's own blob (e.g. the registry layer digest, hex or `sha256:`-prefixed),
   * replacing the one in the bootstrap — typically the `"x"×64` placeholder of an inlined one.
   */
  blobId?: string;
}

export interface MergeOptions {
  /** Absolute paths for the prefetch table of the merged bootstrap (`['/']` = everything). */
  prefetchPatterns?: string[];
  /**
   * The chunk dict the layers were built with: its blobs are never taken for a layer's own
   * blob when `blobId` replaces one.
   */
  chunkDict?: ChunkDict;
  signal?: AbortSignal;
}

export interface MergeResult {
  bootstrap: Uint8Array;
  /** Blob ids of the merged bootstrap, in blob-table order. */
  blobIds: string[];
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE = '.wh..wh..opq';
const MAX_DEPTH = 2048;

/**
 * Merges layer bootstraps, lowest first, into one (spec §6): OCI whiteouts of upper layers
 * remove lower entries (whiteouts of the lowest layer stay as plain files), same names replace
 * lower ones (directories merge, taking the upper attributes), hardlinks stay grouped per layer,
 * and the blob table is rebuilt in order of first chunk reference (unreferenced blobs vanish).
 */
export async function mergeBootstraps(layers: ReadonlyArray<MergeLayer>, options: MergeOptions = {}): Promise<MergeResult> {
  if (!Array.isArray(layers) || layers.length === 0) throw new InvalidArgumentError('layers: at least one layer bootstrap is required');
  const prefetchPatterns = validatePrefetchPatterns(options.prefetchPatterns);
  if (options.chunkDict !== undefined && !(options.chunkDict instanceof ChunkDict)) throw new InvalidArgumentError('chunkDict: not a ChunkDict');
  const signal = options.signal;
  throwIfAborted(signal);

  const readers: BootstrapReader[] = [];
  for (const [i, layer] of layers.entries()) {
    if (layer === null || typeof layer !== 'object' || !(layer.bootstrap instanceof Uint8Array)) {
      throw new InvalidArgumentError(`layer ${i}: bootstrap is not a Uint8Array`);
    }
    const reader = await inLayer(i, () => BootstrapReader.open(layer.bootstrap, signal ? { signal } : {}));
    if ((reader.flags & RafsSuperFlags.TARTFS_MODE) !== 0) throw new UnsupportedError(`layer ${i}: TARFS bootstraps cannot be merged`);
    readers.push(reader);
  }
  const first = readers[0]!;
  const explicit = (r: BootstrapReader): boolean => (r.flags & RafsSuperFlags.EXPLICIT_UID_GID) !== 0;
  readers.forEach((r, i) => {
    if (r.chunkSize !== first.chunkSize) throw new InvalidArgumentError(`layer ${i}: chunk size ${r.chunkSize} differs from layer 0's ${first.chunkSize}`);
    if (r.digester !== first.digester) throw new InvalidArgumentError(`layer ${i}: digester ${r.digester} differs from layer 0's ${first.digester}`);
    if (explicit(r) !== explicit(first)) throw new InvalidArgumentError(`layer ${i}: explicit uid/gid ${explicit(r)} differs from layer 0's ${explicit(first)}`);
  });

  // Blobs of every layer by final id (one TreeBlob per id, first description wins).
  const byId = new Map<string, TreeBlob>();
  const layerBlobs: TreeBlob[][] = readers.map((reader, i) => {
    const ownIndex = ownBlobIndex(i, reader, layers[i]!.blobId, options.chunkDict);
    return reader.blobs.map((b, j) => {
      let id = b.blobId;
      if (j === ownIndex) id = normaliseBlobId(i, layers[i]!.blobId!);
      else if (id === INLINED_BLOB_ID) throw new InvalidArgumentError(`layer ${i}: blob ${j} has the placeholder id ${INLINED_BLOB_ID.slice(0, 8)}…; pass the layer's blobId`);
      let blob = byId.get(id);
      if (blob === undefined) {
        const { blobIndex: _index, ...entry } = b.entry;
        blob = { ...entry, blobId: id, features: entry.features & ~BlobFeatures.INLINED_FS_META, cipherIv: entry.cipherIv.slice() };
        byId.set(id, blob);
      } else if (blob.chunkSize !== b.entry.chunkSize) {
        throw new InvalidArgumentError(`layer ${i}: blob ${id} has chunk size ${b.entry.chunkSize}, another layer's has ${blob.chunkSize}`);
      }
      return blob;
    });
  });

  const root = newDirNode('');
  for (const [i, reader] of readers.entries()) {
    throwIfAborted(signal);
    await inLayer(i, async () => new LayerMerger(reader, layerBlobs[i]!, i > 0).mergeInto(root));
  }

  const blobs = blobsInTreeOrder(root);
  const last = readers[readers.length - 1]!;
  const bootstrap = writeBootstrap(root, {
    chunkSize: first.chunkSize,
    compressor: last.compressor,
    digester: first.digester,
    explicitUidGid: explicit(first),
    blobs,
    prefetchPatterns,
  });
  return { bootstrap, blobIds: blobs.map((b) => b.blobId) };
}

/** Runs `f`, prefixing the message of any NydusError with the layer index. */
async function inLayer<T>(i: number, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof NydusError && !err.message.startsWith(`layer ${i}:`)) {
      if (err instanceof FormatError) throw new FormatError(`layer ${i}: ${err.field}`, err.message, { offset: err.offset, value: err.value, cause: err });
      throw new NydusError(err.code, `layer ${i}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

function normaliseBlobId(i: number, blobId: string): string {
  const id = blobId.startsWith('sha256:') ? blobId.slice(7) : blobId;
  if (!/^[0-9a-f]{64}$/.test(id)) throw new InvalidArgumentError(`layer ${i}: blobId ${JSON.stringify(blobId)} is not a sha256 hex digest`);
  return id;
}

/** Index of the blob that `blobId` renames: the one blob not from the chunk dict. */
function ownBlobIndex(i: number, reader: BootstrapReader, blobId: string | undefined, dict: ChunkDict | undefined): number {
  if (blobId === undefined) return -1;
  normaliseBlobId(i, blobId);
  const candidates = reader.blobs.map((b, j) => ({ b, j })).filter(({ b }) => !(dict?.hasBlob(b.blobId) ?? false));
  if (candidates.length === 0) return -1;
  if (candidates.length === 1) return candidates[0]!.j;
  const placeholders = candidates.filter(({ b }) => b.blobId === INLINED_BLOB_ID);
  if (placeholders.length === 1) return placeholders[0]!.j;
  throw new InvalidArgumentError(`layer ${i}: ${candidates.length} blobs could be the layer's own blob for blobId ${blobId}; pass the chunk dict the layer was built with`);
}

/** Blob table order: blobs numbered by first chunk reference in the writer's tree order. */
function blobsInTreeOrder(root: TreeNode): TreeBlob[] {
  const out: TreeBlob[] = [];
  const seen = new Set<TreeBlob>();
  const stack: TreeNode[] = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const dirs: TreeNode[] = [];
    for (const child of sortedChildren(dir)) {
      if (child.children !== null) dirs.push(child);
      for (const c of child.inode.chunks) {
        if (!seen.has(c.blob)) {
          seen.add(c.blob);
          out.push(c.blob);
        }
      }
    }
    for (let i = dirs.length - 1; i >= 0; i--) stack.push(dirs[i]!);
  }
  return out;
}

/** Applies one layer's tree onto the merged tree. */
class LayerMerger {
  /** Regular-file inodes of this layer by nid: names sharing a nid stay hardlinked. */
  private readonly files = new Map<number, TreeInode>();

  constructor(
    private readonly reader: BootstrapReader,
    private readonly blobs: readonly TreeBlob[],
    private readonly applyWhiteouts: boolean,
  ) {}

  mergeInto(root: TreeNode): void {
    root.inode = this.inodeOf(this.reader.rootNid);
    this.mergeDir(root, this.reader.rootNid, new Set([this.reader.rootNid]), 0);
  }

  private mergeDir(target: TreeNode, nid: number, visiting: Set<number>, depth: number): void {
    if (depth > MAX_DEPTH) throw new FormatError(`dir[nid ${nid}]`, `directory nesting exceeds ${MAX_DEPTH} levels`);
    const children = target.children!;
    const entries = this.reader.readdir(nid).map((d) => ({ key: Buffer.from(d.nameBytes).toString('latin1'), nid: d.nid }));
    const upper: typeof entries = [];
    for (const e of entries) {
      if (this.applyWhiteouts && e.key === OPAQUE) children.clear();
    }
    for (const e of entries) {
      if (this.applyWhiteouts && e.key.startsWith(WHITEOUT_PREFIX)) {
        if (e.key !== OPAQUE) children.delete(e.key.slice(WHITEOUT_PREFIX.length));
        continue;
      }
      upper.push(e);
    }
    for (const e of upper) {
      const inode = this.inodeOf(e.nid);
      if (inode.kind !== 'directory') {
        children.set(e.key, { name: e.key, inode, children: null });
        continue;
      }
      if (visiting.has(e.nid)) throw new FormatError(`dir[nid ${nid}]`, `directory nid ${e.nid} is reached twice (cycle or hard-linked directory)`, { value: e.nid });
      let node = children.get(e.key);
      if (node === undefined || node.children === null) {
        node = newDirNode(e.key, inode);
        children.set(e.key, node);
      } else {
        node.inode = inode;
      }
      visiting.add(e.nid);
      this.mergeDir(node, e.nid, visiting, depth + 1);
      visiting.delete(e.nid);
    }
  }

  private inodeOf(nid: number): TreeInode {
    const known = this.files.get(nid);
    if (known !== undefined) return known;
    const r = this.reader;
    const ino = r.inode(nid);
    const inode: TreeInode = {
      kind: ino.type,
      mode: ino.mode,
      uid: ino.uid,
      gid: ino.gid,
      mtime: ino.mtime,
      mtimeNsec: ino.mtimeNsec,
      size: ino.type === 'file' ? ino.size : 0,
      rdev: ino.type === 'char-device' || ino.type === 'block-device' ? ino.raw.u : 0,
      linkTarget: ino.type === 'symlink' ? r.readlinkBytes(nid).slice() : null,
      xattrs: ino.raw.xattrCount > 0 ? r.xattrs(nid) : NO_XATTRS,
      chunks: [],
    };
    if (ino.type === 'file') {
      inode.chunks = r.chunks(nid).map(
        (c): TreeChunk => ({
          blob: this.blobs[c.blobIndex]!,
          digest: c.digest,
          flags: c.flags,
          compressedSize: c.compressedSize,
          uncompressedSize: c.uncompressedSize,
          compressedOffset: c.compressedOffset,
          uncompressedOffset: c.uncompressedOffset,
          fileOffset: c.fileOffset,
          index: c.ciIndex,
          crc32: c.crc32,
        }),
      );
      this.files.set(nid, inode);
    }
    return inode;
  }
}
