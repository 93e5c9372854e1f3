import { FormatError, InvalidArgumentError, throwIfAborted } from '@nydus-ts/core';
import type { LayerEntry } from '../entry.js';
import { CHUNK_COMPRESSORS, type ChunkCompressor } from '../compression.js';
import { CHUNK_DIGESTERS, type ChunkDigester } from '../chunk-digest.js';
import {
  DEFAULT_CHUNK_SIZE,
  EROFS_NAME_LEN,
  MAX_CHUNK_SIZE,
  MAX_DIRECTORY_DEPTH,
  MAX_XATTR_NAME_SUFFIX,
  MAX_XATTR_VALUE_SIZE,
  MIN_CHUNK_SIZE,
  S_IFDIR,
  encodeRdev,
  isPowerOfTwo,
  splitXattrName,
} from '../layout/index.js';
import { writeBootstrap, writeBootstrapTo } from './bootstrap-writer.js';
import { BlobWriter, type BlobSink, type LayerBuildStats } from './blob-writer.js';
import { ChunkDict } from './chunk-dict.js';
import type { ChunkStore} from './tree.js';
import { FsTree, KINDS, KIND_CODE, K_DIR, K_FILE, TYPE_BITS, displayName, nameKey, type NodeKind, type TreeBlob } from './tree.js';
import { encodeFsName } from '../names.js';

export interface BuildLayerOptions {
  /** Chunk size: a power of two from 4 KiB to 16 MiB. Default 1 MiB. */
  chunkSize?: number;
  /** Chunk compressor. Default 'zstd'. */
  compressor?: ChunkCompressor;
  /** Chunk digest algorithm. Default 'blake3'. */
  digester?: ChunkDigester;
  /** Chunks of an existing image to reference instead of storing again. */
  chunkDict?: ChunkDict;
  /** Append the bootstrap to the blob (spec §3.1 layout (b)). Default false (layout (c)). */
  inlineBootstrap?: boolean;
  /** Absolute paths for the prefetch table (`['/']` = everything). Default none. */
  prefetchPatterns?: string[];
  /**
   * Stream the layer's bootstrap to this sink (in pieces of a few MiB) instead of returning it,
   * so that a large layer's bootstrap is never in memory whole; `bootstrap` of the result is
   * then empty. Default: returned.
   */
  bootstrapSink?: BlobSink;
  signal?: AbortSignal;
}

export interface ResolvedBuildLayerOptions {
  chunkSize: number;
  compressor: ChunkCompressor;
  digester: ChunkDigester;
  chunkDict: ChunkDict | undefined;
  inlineBootstrap: boolean;
  prefetchPatterns: string[];
  bootstrapSink: BlobSink | undefined;
  signal: AbortSignal | undefined;
}

export interface LayerBlobInfo {
  /** Hex sha256 of every byte written to the sink. */
  id: string;
  /** Bytes written to the sink. */
  size: number;
  /** Chunks stored in this blob. */
  chunkCount: number;
  /** Sum of the 4 KiB-aligned chunk sizes (size of the blob's data when uncompressed). */
  uncompressedSize: number;
  /** Bytes of the chunk-data section (before the first tail header). */
  compressedDataSize: number;
}

export interface LayerBuildResult {
  /**
   * The layer's bootstrap, naming the own blob by its real id with its ToC digest and size
   * (with `inlineBootstrap` the copy inside the blob names it `"x"×64` instead, spec §2).
   * Empty when it was streamed to `bootstrapSink`.
   */
  bootstrap: Uint8Array;
  /**
   * Null when the layer stored no file data and the bootstrap is not inlined: nothing was written
   * to the sink. With `inlineBootstrap` such a layer gets a blob holding only the bootstrap and
   * ToC (`chunkCount` 0), which its bootstrap does not list.
   */
  blob: LayerBlobInfo | null;
  /** Content of the `<id>.blob.meta` file (spec §3.7); null when the blob holds no chunks. */
  blobMeta: Uint8Array | null;
  /** Ids of chunk-dict blobs this layer references (blob table after the own blob). */
  referencedDictBlobs: string[];
  stats: LayerBuildStats;
}

/** The defaults of a layer build, as the reference builder has them (also the CLI's, shown in its help). */
export const BUILD_LAYER_DEFAULTS = {
  chunkSize: DEFAULT_CHUNK_SIZE,
  compressor: 'zstd',
  digester: 'blake3',
} as const satisfies { chunkSize: number; compressor: ChunkCompressor; digester: ChunkDigester };

/** Validates and defaults `BuildLayerOptions` (InvalidArgumentError naming the option). */
export function resolveBuildLayerOptions(options: BuildLayerOptions = {}): ResolvedBuildLayerOptions {
  const chunkSize = options.chunkSize ?? BUILD_LAYER_DEFAULTS.chunkSize;
  if (!isPowerOfTwo(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new InvalidArgumentError(`chunkSize: ${String(chunkSize)} is not a power of two between ${MIN_CHUNK_SIZE} and ${MAX_CHUNK_SIZE}`);
  }
  const compressor = options.compressor ?? BUILD_LAYER_DEFAULTS.compressor;
  if (!CHUNK_COMPRESSORS.includes(compressor)) {
    throw new InvalidArgumentError(`compressor: ${String(compressor)} is not one of ${CHUNK_COMPRESSORS.join(', ')}`);
  }
  const digester = options.digester ?? BUILD_LAYER_DEFAULTS.digester;
  if (!CHUNK_DIGESTERS.includes(digester)) {
    throw new InvalidArgumentError(`digester: ${String(digester)} is not one of ${CHUNK_DIGESTERS.join(', ')}`);
  }
  const chunkDict = options.chunkDict;
  if (chunkDict !== undefined) {
    if (!(chunkDict instanceof ChunkDict)) throw new InvalidArgumentError('chunkDict: not a ChunkDict');
    if (chunkDict.digester !== digester) throw new InvalidArgumentError(`chunkDict: dict digests are ${chunkDict.digester}, the build uses ${digester}`);
    if (chunkDict.chunkSize !== chunkSize) throw new InvalidArgumentError(`chunkDict: dict chunk size ${chunkDict.chunkSize} differs from chunkSize ${chunkSize}`);
  }
  const inlineBootstrap = options.inlineBootstrap ?? false;
  if (typeof inlineBootstrap !== 'boolean') throw new InvalidArgumentError(`inlineBootstrap: ${String(inlineBootstrap)} is not a boolean`);
  const prefetchPatterns = validatePrefetchPatterns(options.prefetchPatterns);
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new InvalidArgumentError('signal: not an AbortSignal');
  const bootstrapSink = options.bootstrapSink;
  if (bootstrapSink !== undefined && (bootstrapSink === null || typeof bootstrapSink !== 'object' || typeof bootstrapSink.write !== 'function')) {
    throw new InvalidArgumentError('bootstrapSink: needs a write(bytes) method');
  }
  return { chunkSize, compressor, digester, chunkDict, inlineBootstrap, prefetchPatterns, bootstrapSink, signal: options.signal };
}

export function validatePrefetchPatterns(patterns: unknown): string[] {
  if (patterns === undefined) return [];
  if (!Array.isArray(patterns)) throw new InvalidArgumentError('prefetchPatterns: not an array of absolute paths');
  for (const p of patterns) {
    if (typeof p !== 'string' || !p.startsWith('/') || p.includes('\0')) {
      throw new InvalidArgumentError(`prefetchPatterns: ${JSON.stringify(p)} is not an absolute path`);
    }
  }
  return [...(patterns as string[])];
}

/**
 * Builds one RAFS v6 layer from filesystem entries: file content is cut into chunks,
 * deduplicated, compressed and streamed to `sink`; the bootstrap is returned. Memory grows
 * with the number of entries and chunks, never with file size.
 */
export async function buildLayer(entries: AsyncIterable<LayerEntry>, sink: BlobSink, options?: BuildLayerOptions): Promise<LayerBuildResult> {
  const opts = resolveBuildLayerOptions(options);
  if (sink === null || typeof sink !== 'object' || typeof sink.write !== 'function') throw new InvalidArgumentError('sink: needs a write(bytes) method');
  throwIfAborted(opts.signal);
  const writer = new BlobWriter(sink, opts.chunkSize, opts.compressor, opts.digester, opts.chunkDict, opts.inlineBootstrap);
  const tree = new FsTree(writer.stores);
  const layer = new LayerEntries(writer, tree, opts.chunkSize, opts.signal);
  for await (const entry of entries) {
    // Most entries need no await of their own (no content, or a body the source already holds).
    const wait = layer.add(entry);
    if (wait !== undefined) await wait;
  }
  await writer.drain();
  throwIfAborted(opts.signal);

  const settings = (blobs: TreeBlob[]) => ({
    chunkSize: opts.chunkSize,
    compressor: opts.compressor,
    digester: opts.digester,
    explicitUidGid: true,
    blobs,
    prefetchPatterns: opts.prefetchPatterns,
  });
  const dictBlobs = writer.usedDictBlobs;
  if (!writer.hasData) {
    let bootstrap = writeBootstrap(tree, settings([...dictBlobs]));
    // With an inlined bootstrap the layer still gets a blob (bootstrap and ToC only), so that
    // an image lists one Nydus blob per source layer as the reference converter does.
    const blob = opts.inlineBootstrap ? await writer.finishBootstrapOnly(bootstrap) : null;
    if (opts.bootstrapSink !== undefined) {
      await opts.bootstrapSink.write(bootstrap);
      bootstrap = new Uint8Array(0);
    }
    return {
      bootstrap,
      blob: blob && { id: blob.id, size: blob.size, chunkCount: 0, uncompressedSize: 0, compressedDataSize: 0 },
      blobMeta: null,
      referencedDictBlobs: dictBlobs.map((b) => b.blobId),
      stats: writer.stats,
    };
  }
  const dataSize = writer.dataSize;
  const tail = await writer.finish(() => writeBootstrap(tree, settings([writer.blob, ...dictBlobs])));
  // The blob is complete: its sink may finish it (e.g. fsync) while the bootstrap is laid out.
  await sink.end?.();
  let bootstrap: Uint8Array;
  if (opts.bootstrapSink !== undefined) {
    await writeBootstrapTo(tree, settings([tail.blob, ...dictBlobs]), opts.bootstrapSink);
    bootstrap = new Uint8Array(0);
  } else {
    bootstrap = writeBootstrap(tree, settings([tail.blob, ...dictBlobs]));
  }
  return {
    bootstrap,
    blob: { id: tail.blob.blobId, size: tail.size, chunkCount: tail.blob.chunkCount, uncompressedSize: tail.blob.uncompressedSize, compressedDataSize: dataSize },
    blobMeta: tail.blobMeta,
    referencedDictBlobs: dictBlobs.map((b) => b.blobId),
    stats: writer.stats,
  };
}

/**
 * Optional synchronous side of `LayerEntry.content`: a method under this key returns the
 * whole content at once when the source already holds it in memory (consuming it, as
 * iterating would), or null, after which the content is iterated as usual. The tar reader
 * offers it for bodies inside its current read buffer, saving the per-entry async iteration.
 */
export const WHOLE_CONTENT: unique symbol = Symbol.for('nydus-ts.wholeContent') as never;

export interface WholeContentSource {
  [WHOLE_CONTENT](): Uint8Array | null;
}

function takeWholeContent(entry: LayerEntry): Uint8Array | null {
  const content = entry.content as Partial<WholeContentSource> | undefined;
  if (content === undefined || typeof content[WHOLE_CONTENT] !== 'function') return null;
  return content[WHOLE_CONTENT]();
}

/**
 * Marks a directory that a layer implies without listing it (a parent of listed paths, or the
 * root when the layer has no `./` entry): an extended attribute `trusted.nydus-ts.implied` = "y"
 * on the layer bootstrap's directory. Such a directory has the builder's defaults (040755,
 * root, mtime 0); `mergeBootstraps` keeps the lower layer's directory in its place, as
 * containerd does when it applies the layer, and never writes the marker into a merged
 * bootstrap. The name is reserved: an entry carrying it is taken as implied.
 */
export const IMPLIED_DIRECTORY_XATTR = 'trusted.nydus-ts.implied';

/** The xattrs of an implied directory (shared; never modified). */
export const IMPLIED_DIRECTORY_XATTRS: ReadonlyMap<string, Uint8Array> = new Map([[IMPLIED_DIRECTORY_XATTR, Uint8Array.of(0x79)]]);

/** What `LayerEntries` stores chunks through: a data blob's writer or a reference layer's index. */
export interface LayerChunkWriter {
  readonly stats: LayerBuildStats;
  readonly stores: readonly [ChunkStore, ChunkStore];
  readonly mustFlush: boolean;
  flush(): Promise<void>;
  chunkSpace(size: number): Buffer | undefined;
  /** `sourceOffset`: where the chunk starts in the layer's source stream (-1 when unknown). */
  addChunk(data: Uint8Array, fileOffset: number, sourceOffset: number): number;
}

/** Where byte `fileOffset` of an entry's content lies in its source stream, or -1. */
function sourceOffsetOf(entry: LayerEntry, fileOffset: number): number {
  const base = entry.dataOffset;
  return base === undefined ? -1 : base + fileOffset;
}

/**
 * Adds entries to the tree one at a time, synchronously where it can: the per-entry work lives
 * here rather than in `buildLayer`'s loop, which stays small (an async function's body is
 * recompiled whole whenever any part of it deoptimises).
 */
export class LayerEntries {
  private readonly paths: LayerPaths;
  private readonly reader: ContentReader;

  constructor(
    private readonly writer: LayerChunkWriter,
    private readonly tree: FsTree,
    private readonly chunkSize: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.paths = new LayerPaths(tree);
    this.reader = new ContentReader(writer, tree, chunkSize, signal);
    // Implied until the layer lists the root itself.
    tree.setRootInode(tree.addInode(K_DIR, S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, null, IMPLIED_DIRECTORY_XATTRS));
  }

  /** Adds one entry; returns a promise when its content or the writer must be waited for. */
  add(entry: LayerEntry): Promise<void> | undefined {
    throwIfAborted(this.signal);
    this.writer.stats.entries++;
    const parts = splitEntryPath(entry);
    // A directory at its path's depth, anything else below a directory one level up.
    if (parts.length - (entry.type === 'directory' ? 0 : 1) > MAX_DIRECTORY_DEPTH) {
      const shown = entry.path.length > 80 ? `${entry.path.slice(0, 40)}…${entry.path.slice(-40)}` : entry.path;
      throw new InvalidArgumentError(`entry '${shown}': ${parts.length} path components nest directories deeper than the ${MAX_DIRECTORY_DEPTH} levels readers accept`);
    }
    if (entry.type === 'hardlink') {
      validateEntry(entry);
      this.paths.link(parts, entry);
      return undefined;
    }
    const tree = this.tree;
    const inode = addEntryInode(tree, entry);
    if (parts.length === 0) {
      if (tree.kind[inode] !== K_DIR) throw new InvalidArgumentError(`entry '': the root must be a directory, not a ${entry.type}`);
      tree.setRootInode(inode);
      return undefined;
    }
    // Naming the inode before its content is read changes nothing: content only adds chunk refs.
    this.paths.put(this.paths.parentNs(parts, entry.path), parts[parts.length - 1]!, inode);
    return tree.kind[inode] === K_FILE ? this.addContent(entry, inode) : undefined;
  }

  private addContent(entry: LayerEntry, inode: number): Promise<void> | undefined {
    const writer = this.writer;
    writer.stats.files++;
    const whole = entry.size <= this.chunkSize ? takeWholeContent(entry) : null;
    if (whole === null) return this.reader.read(entry, inode);
    // A one-chunk body the source already holds: no async iteration at all.
    this.reader.readWhole(entry, inode, whole);
    return writer.mustFlush ? writer.flush() : undefined;
  }
}

/** Cuts file content into chunk-size pieces without holding more than one chunk. */
class ContentReader {
  /** Assembly buffer for chunks that span pieces (the writer never keeps chunk memory). */
  private buffer: Buffer | undefined;

  constructor(
    private readonly writer: LayerChunkWriter,
    private readonly tree: FsTree,
    private readonly chunkSize: number,
    private readonly signal: AbortSignal | undefined,
  ) {}

  /** A body of at most one chunk, handed over whole: stored synchronously (flush after). */
  readWhole(entry: LayerEntry, inode: number, data: Uint8Array): void {
    const size = entry.size;
    if (!(data instanceof Uint8Array)) throw new InvalidArgumentError(`entry '${entry.path}': content yielded a ${typeof data}, not a Uint8Array`);
    if (data.length > size) throw new InvalidArgumentError(`entry '${entry.path}': content is longer than its size ${size}`);
    if (data.length !== size) throw new InvalidArgumentError(`entry '${entry.path}': content has ${data.length} bytes, its size says ${size}`);
    this.tree.beginChunks(inode);
    if (size === 0) return;
    throwIfAborted(this.signal);
    this.tree.pushChunkRef(inode, this.writer.addChunk(data, 0, sourceOffsetOf(entry, 0)));
    this.writer.stats.bytesIn += size;
  }

  /** Reads a file's content into chunks: the chunk refs of `inode`. */
  async read(entry: LayerEntry, inode: number): Promise<void> {
    const size = entry.size;
    if (size > 0 && entry.content === undefined) throw new InvalidArgumentError(`entry '${entry.path}': ${size} bytes of content announced but no content given`);
    const tree = this.tree;
    tree.beginChunks(inode);
    if (entry.content === undefined) return;
    const writer = this.writer;
    let fileOffset = 0;
    let fill = 0;
    let received = 0;
    let assembly: Buffer | undefined;
    for await (const piece of entry.content) {
      if (!(piece instanceof Uint8Array)) throw new InvalidArgumentError(`entry '${entry.path}': content yielded a ${typeof piece}, not a Uint8Array`);
      received += piece.length;
      if (received > size) throw new InvalidArgumentError(`entry '${entry.path}': content is longer than its size ${size}`);
      let pos = 0;
      while (pos < piece.length) {
        const want = Math.min(this.chunkSize, size - fileOffset);
        let data: Uint8Array;
        if (fill === 0 && piece.length - pos >= want) {
          // A whole chunk inside one piece: no copy.
          data = pos === 0 && want === piece.length ? piece : piece.subarray(pos, pos + want);
          pos += want;
        } else {
          // Assembled where the writer will compress it from, if it can say (saves a copy).
          if (fill === 0) assembly = writer.chunkSpace(want) ?? (this.buffer ??= Buffer.allocUnsafe(this.chunkSize));
          const buffer = assembly!;
          const take = Math.min(want - fill, piece.length - pos);
          buffer.set(piece.subarray(pos, pos + take), fill);
          fill += take;
          pos += take;
          if (fill < want) continue;
          data = buffer.subarray(0, want);
          fill = 0;
        }
        throwIfAborted(this.signal);
        // The chunk list of `inode` is the last one begun: nothing else adds refs meanwhile.
        tree.pushChunkRef(inode, writer.addChunk(data, fileOffset, sourceOffsetOf(entry, fileOffset)));
        fileOffset += want;
        if (writer.mustFlush) await writer.flush();
      }
    }
    if (received !== size) throw new InvalidArgumentError(`entry '${entry.path}': content has ${received} bytes, its size says ${size}`);
    writer.stats.bytesIn += size;
  }
}

/** The layer's names while entries arrive (any order; later entries replace earlier ones). */
class LayerPaths {
  /** Namespaces of directories by path (entries come grouped by directory, in any order of them). */
  private readonly dirs = new Map<string, number>();

  constructor(private readonly tree: FsTree) {}

  /** The namespace of the parent directory of `parts`, creating missing ones (040755, root, mtime 0, implied). */
  parentNs(parts: readonly string[], path: string): number {
    const tree = this.tree;
    if (parts.length === 1) return tree.nodeNs[tree.root]!;
    const parent = path.slice(0, path.lastIndexOf('/'));
    const known = this.dirs.get(parent);
    if (known !== undefined) return known;
    let dir = tree.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const key = parts[i]!;
      const ns = tree.nodeNs[dir]!;
      let next = tree.lookup(ns, key);
      if (next < 0) {
        next = tree.put(ns, key, tree.addInode(K_DIR, S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, null, IMPLIED_DIRECTORY_XATTRS));
      } else if (!tree.isDir(next)) {
        throw new InvalidArgumentError(`entry '${path}': parent '${parts.slice(0, i + 1).map(displayName).join('/')}' is a ${KINDS[tree.kind[tree.nodeInode[next]!]!]}, not a directory`);
      }
      dir = next;
    }
    const ns = tree.nodeNs[dir]!;
    this.dirs.set(parent, ns);
    return ns;
  }

  /** Adds or replaces a name; a directory over a directory keeps the children. */
  put(ns: number, key: string, inode: number): void {
    const tree = this.tree;
    const existing = tree.lookup(ns, key);
    // A directory name replaced by anything but a directory loses its namespace (and those below).
    if (existing >= 0 && tree.isDir(existing) && tree.kind[inode] !== K_DIR) this.dirs.clear();
    tree.put(ns, key, inode);
  }

  /** A hardlink entry: a new name for the inode of an earlier regular file. */
  link(parts: readonly string[], entry: LayerEntry): void {
    const target = entry.linkTarget;
    if (typeof target !== 'string' || target === '') throw new InvalidArgumentError(`entry '${entry.path}': hardlink without a target`);
    const tree = this.tree;
    const targetParts = target.split('/').filter((c) => c !== '');
    let node = tree.root;
    for (const c of targetParts) {
      if (c === '.' || c === '..' || !tree.isDir(node)) {
        node = -1;
        break;
      }
      node = tree.lookup(tree.nodeNs[node]!, nameKey(c));
      if (node < 0) break;
    }
    const inode = node < 0 ? -1 : tree.nodeInode[node]!;
    if (inode < 0 || tree.kind[inode] !== K_FILE) {
      const what = inode < 0 ? 'does not exist (yet)' : `is a ${KINDS[tree.kind[inode]!]}`;
      throw new InvalidArgumentError(`entry '${entry.path}': hardlink target '${target}' ${what}; it must be an earlier regular file of the layer`);
    }
    if (parts.length === 0) throw new InvalidArgumentError(`entry '': the root cannot be a hardlink (to '${target}')`);
    this.put(this.parentNs(parts, entry.path), parts[parts.length - 1]!, inode);
  }
}



/** Path components of an entry as latin1 name keys; '' (the root) gives []. */
function splitEntryPath(entry: LayerEntry): string[] {
  const path = entry.path;
  if (typeof path !== 'string') throw new InvalidArgumentError(`entry path ${String(path)} is not a string`);
  if (path === '') return [];
  const parts = path.split('/');
  // Whole-path checks first: most paths are ASCII (each name its own key) without NULs.
  const ascii = ASCII_PATH.test(path);
  const nul = path.includes('\0');
  for (let i = 0; i < parts.length; i++) {
    const c = parts[i]!;
    if (c === '' || c === '.' || c === '..') throw new InvalidArgumentError(`entry '${path}': path has an empty, '.' or '..' component`);
    if (nul && c.includes('\0')) throw new InvalidArgumentError(`entry '${path}': path contains a NUL byte`);
    const key = ascii ? c : nameKey(c);
    if (key.length > EROFS_NAME_LEN) throw new InvalidArgumentError(`entry '${path}': name '${c.slice(0, 32)}…' is ${key.length} bytes, longer than ${EROFS_NAME_LEN}`);
    parts[i] = key;
  }
  return parts;
}

const ASCII_PATH = /^[\x00-\x7f]*$/;

const ENTRY_TYPES: ReadonlySet<string> = new Set(['file', 'directory', 'symlink', 'hardlink', 'char-device', 'block-device', 'fifo', 'socket']);

function checkU32(entry: LayerEntry, field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new InvalidArgumentError(`entry '${entry.path}': ${field} ${String(v)} is not an integer in 0..2^32-1`);
  }
  return v;
}

/** Validated inode attributes of an entry (content is read separately). */
interface EntryAttrs {
  kind: NodeKind;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  size: number;
  rdev: number;
  linkTarget: Uint8Array | null;
  xattrs: Map<string, Uint8Array> | null;
}

/** Adds the validated inode of a non-hardlink entry to the tree. */
function addEntryInode(tree: FsTree, entry: LayerEntry): number {
  const a = validateEntry(entry);
  return tree.addInode(KIND_CODE[a.kind], a.mode, a.uid, a.gid, a.mtime, a.mtimeNsec, a.size, a.rdev, a.linkTarget, a.xattrs);
}

function validateEntry(entry: LayerEntry): EntryAttrs {
  const type = entry.type;
  if (!ENTRY_TYPES.has(type)) throw new InvalidArgumentError(`entry '${entry.path}': unknown type ${String(type)}`);
  const kind: NodeKind = type === 'hardlink' ? 'file' : (type as NodeKind);
  if (typeof entry.mode !== 'number' || !Number.isInteger(entry.mode) || entry.mode < 0) {
    throw new InvalidArgumentError(`entry '${entry.path}': mode ${String(entry.mode)} is not a non-negative integer`);
  }
  const uid = checkU32(entry, 'uid', entry.uid);
  const gid = checkU32(entry, 'gid', entry.gid);
  if (typeof entry.mtime !== 'number' || !Number.isSafeInteger(entry.mtime)) {
    throw new InvalidArgumentError(`entry '${entry.path}': mtime ${String(entry.mtime)} is not a whole number of seconds`);
  }
  const mtimeNsec = entry.mtimeNsec ?? 0;
  if (!Number.isInteger(mtimeNsec) || mtimeNsec < 0 || mtimeNsec > 999_999_999) {
    throw new InvalidArgumentError(`entry '${entry.path}': mtimeNsec ${String(mtimeNsec)} is not in 0..999999999`);
  }
  let xattrs: Map<string, Uint8Array> | undefined;
  if (entry.xattrs !== undefined) {
    xattrs = new Map();
    for (const [name, value] of entry.xattrs) {
      let suffixLen: number;
      try {
        suffixLen = splitXattrName(name).suffix.length;
      } catch (err) {
        if (err instanceof FormatError) {
          throw new InvalidArgumentError(`entry '${entry.path}': xattr '${name}' has an unsupported namespace (only user., trusted., security. and POSIX ACLs)`, { cause: err });
        }
        throw err;
      }
      if (suffixLen > MAX_XATTR_NAME_SUFFIX) throw new InvalidArgumentError(`entry '${entry.path}': xattr name '${name}' is too long`);
      if (!(value instanceof Uint8Array)) throw new InvalidArgumentError(`entry '${entry.path}': xattr '${name}' value is not a Uint8Array`);
      if (value.length > MAX_XATTR_VALUE_SIZE) throw new InvalidArgumentError(`entry '${entry.path}': xattr '${name}' value of ${value.length} bytes exceeds ${MAX_XATTR_VALUE_SIZE}`);
      xattrs.set(name, value.slice());
    }
  }
  let size = 0;
  let rdev = 0;
  let linkTarget: Uint8Array | null = null;
  switch (type) {
    case 'file':
      if (typeof entry.size !== 'number' || !Number.isSafeInteger(entry.size) || entry.size < 0) {
        throw new InvalidArgumentError(`entry '${entry.path}': size ${String(entry.size)} is not a non-negative integer`);
      }
      size = entry.size;
      break;
    case 'symlink': {
      if (typeof entry.linkTarget !== 'string' || entry.linkTarget === '') throw new InvalidArgumentError(`entry '${entry.path}': symlink without a target`);
      linkTarget = encodeFsName(entry.linkTarget);
      if (linkTarget.length > 4095) throw new InvalidArgumentError(`entry '${entry.path}': symlink target of ${linkTarget.length} bytes exceeds 4095`);
      break;
    }
    case 'char-device':
    case 'block-device': {
      const major = entry.devMajor ?? 0;
      const minor = entry.devMinor ?? 0;
      if (!Number.isInteger(major) || major < 0 || major > 0xfff || !Number.isInteger(minor) || minor < 0 || minor > 0xfffff) {
        throw new InvalidArgumentError(`entry '${entry.path}': device ${String(major)}:${String(minor)} does not fit a 32-bit rdev (major ≤ 4095, minor ≤ 1048575)`);
      }
      rdev = encodeRdev(major, minor);
      break;
    }
    default:
      break;
  }
  return { kind, mode: TYPE_BITS[kind] | (entry.mode & 0o7777), uid, gid, mtime: entry.mtime, mtimeNsec, size, rdev, linkTarget, xattrs: xattrs !== undefined && xattrs.size > 0 ? xattrs : null };
}
