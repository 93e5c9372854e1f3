import { FormatError, InvalidArgumentError, NydusError, UnsupportedError, throwIfAborted } from '@nydus-ts/core';
import { BlobFeatures, MAX_DIRECTORY_DEPTH, RafsSuperFlags, type DirentList } from '../layout/index.js';
import { BootstrapReader } from '../reader/bootstrap-reader.js';
import { writeBootstrapOfReferencedBlobs } from './bootstrap-writer.js';
import { IMPLIED_DIRECTORY_XATTR, validatePrefetchPatterns } from './build-layer.js';
import { INLINED_BLOB_ID } from './blob-writer.js';
import { ChunkDict } from './chunk-dict.js';
import { ChunkStore, FsTree, KIND_CODE, type TreeBlob } from './tree.js';

export interface MergeLayer {
  /** The layer's bootstrap (e.g. `buildLayer`'s result, or `image.boot` from its blob). */
  bootstrap: Uint8Array;
  /**
   * New id for the layer's own blob (e.g. the registry layer digest, hex or `sha256:`-prefixed),
   * replacing the one in the bootstrap — typically the `"x"×64` placeholder of an inlined one.
   */
  blobId?: string;
  /**
   * Reference layers (targz-ref / tar-ref, their blob marked SEPARATE): digest (hex or
   * `sha256:`) and size of the layer's RAFS meta blob (the nydus-ref layer), recorded as the own
   * blob's blob_meta_digest / blob_meta_size (spec §4.3). Needs `blobId`.
   */
  blobMeta?: { digest: string; size: number };
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

const WHITEOUT_PREFIX = Buffer.from('.wh.');
const OPAQUE = Buffer.from('.wh..wh..opq');

/**
 * Merges layer bootstraps, lowest first, into one (spec §6): OCI whiteouts remove lower
 * entries and never appear as files themselves, whichever layer holds them (as the OCI layer
 * spec and containerd have it; nydus-image merge keeps the lowest layer's whiteouts as plain
 * files, spec §6 step 3), same names replace lower ones (directories merge, taking the upper
 * attributes unless the upper layer only implies the directory: see IMPLIED_DIRECTORY_XATTR),
 * hardlinks stay grouped per layer, and the blob table is rebuilt in order of first chunk
 * reference (unreferenced blobs vanish).
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
        if (j === ownIndex && layers[i]!.blobMeta !== undefined) Object.assign(blob, separateMeta(i, blob, layers[i]!.blobMeta!));
        byId.set(id, blob);
      } else if (blob.chunkSize !== b.entry.chunkSize) {
        throw new InvalidArgumentError(`layer ${i}: blob ${id} has chunk size ${b.entry.chunkSize}, another layer's has ${blob.chunkSize}`);
      }
      return blob;
    });
  });

  // Every chunk of every layer in one store (its blobs: all blobs by id), refs by the tree.
  const store = new ChunkStore([...byId.values()], true);
  const storeIndex = new Map(store.blobs.map((b, i) => [b, i]));
  const tree = new FsTree([store]);
  for (const [i, reader] of readers.entries()) {
    throwIfAborted(signal);
    const blobIndexes = layerBlobs[i]!.map((b) => storeIndex.get(b)!);
    await inLayer(i, async () => new LayerMerger(reader, tree, blobIndexes).mergeInto());
  }

  // The blob table: blobs numbered by first chunk reference (unreferenced ones vanish).
  const last = readers[readers.length - 1]!;
  const { bootstrap, blobs } = writeBootstrapOfReferencedBlobs(tree, {
    chunkSize: first.chunkSize,
    compressor: last.compressor,
    digester: first.digester,
    explicitUidGid: explicit(first),
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

/** blob_meta_digest/size of a SEPARATE blob from its meta blob's digest and size. */
function separateMeta(i: number, blob: TreeBlob, meta: { digest: string; size: number }): Pick<TreeBlob, 'metaDigest' | 'metaSize'> {
  if ((blob.features & BlobFeatures.SEPARATE) === 0) throw new InvalidArgumentError(`layer ${i}: blobMeta given but blob ${blob.blobId} is not SEPARATE (not a reference layer)`);
  if (!Number.isSafeInteger(meta.size) || meta.size <= 0) throw new InvalidArgumentError(`layer ${i}: blobMeta.size ${String(meta.size)} is not a positive byte count`);
  return { metaDigest: normaliseBlobId(i, meta.digest), metaSize: meta.size };
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

/** True if entry i's name starts with `prefix`. */
function startsWith(list: DirentList, i: number, prefix: Uint8Array): boolean {
  const at = list.nameStart(i);
  if (list.nameEnd(i) - at < prefix.length) return false;
  for (let k = 0; k < prefix.length; k++) if (list.names[at + k] !== prefix[k]) return false;
  return true;
}

/** True if entry i's name is `name`. */
function isName(list: DirentList, i: number, name: Uint8Array): boolean {
  return list.nameEnd(i) - list.nameStart(i) === name.length && startsWith(list, i, name);
}

/** Applies one layer's tree onto the merged tree. */
class LayerMerger {
  /** Regular-file inodes of this layer by nid: names sharing a nid stay hardlinked. */
  private readonly files = new Map<number, number>();

  /** `blobIndexes`: store blob index of each of the layer's blob-table entries. */
  constructor(
    private readonly reader: BootstrapReader,
    private readonly tree: FsTree,
    private readonly blobIndexes: readonly number[],
  ) {}

  mergeInto(): void {
    const tree = this.tree;
    const root = this.reader.rootNid;
    // An implied root keeps the lower one (below the lowest layer: the defaults it has too).
    if (!this.isImpliedDir(root)) tree.setRootInode(this.inodeOf(root));
    this.mergeDir(tree.root, root, new Set([root]), 0);
  }

  /** True for a directory the layer implies without listing it (see IMPLIED_DIRECTORY_XATTR). */
  private isImpliedDir(nid: number): boolean {
    const ino = this.reader.inode(nid);
    return ino.type === 'directory' && ino.raw.xattrCount > 0 && this.reader.xattrs(nid).has(IMPLIED_DIRECTORY_XATTR);
  }

  private mergeDir(target: number, nid: number, visiting: Set<number>, depth: number): void {
    if (depth > MAX_DIRECTORY_DEPTH) throw new FormatError(`dir[nid ${nid}]`, `directory nesting exceeds ${MAX_DIRECTORY_DEPTH} levels`);
    const tree = this.tree;
    const list = this.reader.direntList(nid);
    const names = list.names;
    // In the lowest layer there is nothing below to remove: its whiteouts only vanish.
    this.applyWhiteoutsOf(list, target);
    const ns = tree.nodeNs[target]!;
    for (let i = 0; i < list.count; i++) {
      if (list.isDots(i, 1) || list.isDots(i, 2) || startsWith(list, i, WHITEOUT_PREFIX)) continue;
      const child = list.nid(i);
      if (this.reader.inode(child).type !== 'directory') {
        tree.putBytes(ns, names, list.nameStart(i), list.nameEnd(i), this.inodeOf(child));
        continue;
      }
      if (visiting.has(child)) throw new FormatError(`dir[nid ${nid}]`, `directory nid ${child} is reached twice (cycle or hard-linked directory)`, { value: child });
      // A directory over a directory keeps (merges) the lower children; one the layer only
      // implies also keeps the lower directory's attributes, as containerd applies layers.
      const lower = this.isImpliedDir(child) ? tree.lookupBytes(ns, names, list.nameStart(i), list.nameEnd(i)) : -1;
      const node = lower >= 0 && tree.isDir(lower) ? lower : tree.putBytes(ns, names, list.nameStart(i), list.nameEnd(i), this.inodeOf(child));
      visiting.add(child);
      this.mergeDir(node, child, visiting, depth + 1);
      visiting.delete(child);
    }
  }

  /** An opaque marker drops the lower children of `target`; other whiteouts remove one name each. */
  private applyWhiteoutsOf(list: DirentList, target: number): void {
    const tree = this.tree;
    for (let i = 0; i < list.count; i++) {
      if (isName(list, i, OPAQUE)) {
        tree.clearChildren(target);
        break;
      }
    }
    const ns = tree.nodeNs[target]!;
    for (let i = 0; i < list.count; i++) {
      if (!startsWith(list, i, WHITEOUT_PREFIX) || isName(list, i, OPAQUE)) continue;
      tree.removeBytes(ns, list.names, list.nameStart(i) + WHITEOUT_PREFIX.length, list.nameEnd(i));
    }
  }

  private inodeOf(nid: number): number {
    const known = this.files.get(nid);
    if (known !== undefined) return known;
    const r = this.reader;
    const tree = this.tree;
    const ino = r.inode(nid);
    const xattrs = ino.raw.xattrCount > 0 ? r.xattrs(nid) : null;
    // The layer's implied-directory marker never reaches a merged bootstrap.
    xattrs?.delete(IMPLIED_DIRECTORY_XATTR);
    const inode = tree.addInode(
      KIND_CODE[ino.type],
      ino.mode,
      ino.uid,
      ino.gid,
      ino.mtime,
      ino.mtimeNsec,
      ino.type === 'file' ? ino.size : 0,
      ino.type === 'char-device' || ino.type === 'block-device' ? ino.raw.u : 0,
      ino.type === 'symlink' ? r.readlinkBytes(nid) : null,
      xattrs,
    );
    if (ino.type === 'file') {
      const store = tree.stores[0]!;
      tree.beginChunks(inode);
      const entries = r.chunkEntryIndexes(nid);
      for (let i = 0; i < entries.length; i++) {
        tree.pushChunkRef(inode, store.addForeignEntry(r.bytes, r.chunkEntryOffset(entries[i]!), i * r.chunkSize, this.blobIndexes));
      }
      this.files.set(nid, inode);
    }
    return inode;
  }
}
