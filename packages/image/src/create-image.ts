import { InvalidArgumentError, NotFoundError, fileSystemError, isSystemCallError, noopLogger, throwIfAborted, type Logger } from '@nydus-ts/core';
import { checkOutputDirectory, checkOutputFile, makeDirectories, removeCreatedDirectories } from '@nydus-ts/core/files';
import {
  BootstrapReader,
  CHUNK_COMPRESSORS,
  CHUNK_DIGESTERS,
  ChunkDict,
  buildLayer,
  resolveBuildLayerOptions,
  BUILD_LAYER_DEFAULTS,
  type ChunkCompressor,
  type ChunkDigester,
  type LayerBuildResult,
  type LayerEntry,
} from '@nydus-ts/format';
import { createReadStream, type BigIntStats } from 'node:fs';
import { open, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { readFileChunks } from './layer/file-chunks.js';
import { BLOCK_SIZE, headerChecksum, readNumber } from './layer/tar-header.js';
import { readTarEntries } from './layer/tar-reader.js';
import { AtomicFileWriter } from './atomic-file.js';

/** Source types of `image create`, named as the reference `nydus-image create` names them. */
export const SOURCE_TYPES = ['dir-rafs', 'tar-rafs', 'targz-rafs'] as const;
export type SourceType = (typeof SOURCE_TYPES)[number];

/** The defaults of `image create`, as `nydus-image create` has them (also the CLI's, shown in its help). */
export const CREATE_IMAGE_DEFAULTS = {
  type: 'dir-rafs',
  ...BUILD_LAYER_DEFAULTS,
} as const satisfies { type: SourceType; compressor: ChunkCompressor; digester: ChunkDigester; chunkSize: number };

export interface CreateImageOptions {
  /** What `source` is (default dir-rafs). */
  type?: SourceType;
  /** A directory (dir-rafs), a tar file (tar-rafs) or a gzip/zstd tar file (targz-rafs). */
  source: string;
  /** Where to write the layer bootstrap. */
  bootstrap: string;
  /** Where to write the data blob, named by its id (sha256 of the file). */
  blobDir: string;
  compressor?: ChunkCompressor;
  chunkSize?: number;
  digester?: ChunkDigester;
  /** Path of a bootstrap whose chunks are reused instead of written again. */
  chunkDict?: string;
  prefetchPatterns?: string[];
  logger?: Logger;
  signal?: AbortSignal;
}

export interface CreateImageResult {
  bootstrap: string;
  /** Null when the source has no file data (nothing is written to the blob dir). */
  blob: { id: string; path: string; size: number; chunkCount: number } | null;
  referencedDictBlobs: string[];
  stats: LayerBuildResult['stats'];
  durationMs: number;
}

/** `CreateImageOptions` with every default filled in (from CREATE_IMAGE_DEFAULTS) and checked. */
export type ResolvedCreateImageOptions = Required<Pick<CreateImageOptions, 'type' | 'compressor' | 'digester' | 'chunkSize'>> & CreateImageOptions;

export function resolveCreateImageOptions(options: CreateImageOptions): ResolvedCreateImageOptions {
  const type = options.type ?? CREATE_IMAGE_DEFAULTS.type;
  if (!(SOURCE_TYPES as readonly string[]).includes(type)) {
    throw new InvalidArgumentError(`type: "${type}" is not one of ${SOURCE_TYPES.join(', ')}`, { optionNames: ['type'] });
  }
  const compressor = options.compressor ?? CREATE_IMAGE_DEFAULTS.compressor;
  if (!CHUNK_COMPRESSORS.includes(compressor)) {
    throw new InvalidArgumentError(`compressor: "${compressor}" is not one of ${CHUNK_COMPRESSORS.join(', ')}`, { optionNames: ['compressor'] });
  }
  const digester = options.digester ?? CREATE_IMAGE_DEFAULTS.digester;
  if (!CHUNK_DIGESTERS.includes(digester)) {
    throw new InvalidArgumentError(`digester: "${digester}" is not one of ${CHUNK_DIGESTERS.join(', ')}`, { optionNames: ['digester'] });
  }
  if (options.chunkSize !== undefined || options.prefetchPatterns !== undefined) {
    // Validate the builder's options up front, before anything is created on disk.
    resolveBuildLayerOptions({
      ...(options.chunkSize !== undefined && { chunkSize: options.chunkSize }),
      ...(options.prefetchPatterns !== undefined && { prefetchPatterns: options.prefetchPatterns }),
    });
  }
  if (!options.bootstrap) throw new InvalidArgumentError('bootstrap is required', { optionNames: ['bootstrap'] });
  if (!options.blobDir) throw new InvalidArgumentError('blobDir is required', { optionNames: ['blobDir'] });
  return { ...options, type, compressor, digester, chunkSize: options.chunkSize ?? CREATE_IMAGE_DEFAULTS.chunkSize };
}

/**
 * Opens the entries of a local source, checking that it is of the declared type. File content
 * pieces (and WHOLE_CONTENT bodies) are valid only until the next piece or entry is requested:
 * a plain tar is read into two buffers that take turns, so a consumer copies what it keeps (as
 * the builder does). `exclude` leaves entries of a directory source out (see
 * ReadDirectoryEntriesOptions).
 */
export async function openLayerSource(type: SourceType, source: string, options: { exclude?: (stat: BigIntStats) => boolean } = {}): Promise<AsyncIterable<LayerEntry>> {
  const st = await stat(source).catch((err: unknown) => {
    if (isSystemCallError(err) && err.code === 'ENOENT') throw new NotFoundError(`source ${source}: no such file or directory`, { cause: err });
    throw fileSystemError(err, source, 'source');
  });
  if (type === 'dir-rafs') {
    if (!st.isDirectory()) throw new InvalidArgumentError(`source ${source} is not a directory (type dir-rafs)`, { optionNames: ['type'] });
    // Loaded on demand (like the decompressor below): a tar build needs neither.
    const { readDirectoryEntries } = await import('./layer/dir-reader.js');
    return readDirectoryEntries(source, options.exclude ? { exclude: options.exclude } : {});
  }
  if (!st.isFile()) throw new InvalidArgumentError(`source ${source} is not a file (type ${type})`, { optionNames: ['type'] });
  // tar-rafs takes a plain tar; compressed tars are detected either way, as users mix them up.
  // A plain tar (a first header with a valid checksum) is read straight into two reused buffers
  // (the tar reader and the builder keep no source bytes across reads); anything else streams
  // through the decompressor, which tells gzip, zstd and plain apart.
  if (await startsWithTarHeader(source)) return readTarEntries(readFileChunks(source));
  const { decompressStream } = await import('./layer/decompress.js');
  return readTarEntries(decompressStream(createReadStream(source, { highWaterMark: 1 << 20 })));
}

async function startsWithTarHeader(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(BLOCK_SIZE);
    const { bytesRead } = await handle.read(head, 0, BLOCK_SIZE, 0);
    if (bytesRead < BLOCK_SIZE) return false;
    try {
      return readNumber(head, 'chksum', 'first header', 0) === headerChecksum(head);
    } catch {
      return false; // not an octal checksum field: not a tar header
    }
  } finally {
    await handle.close();
  }
}

export async function loadChunkDict(bootstrapPath: string): Promise<ChunkDict> {
  const bytes = await readFile(bootstrapPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw fileSystemError(err, bootstrapPath, 'chunkDict');
    throw new NotFoundError(`chunkDict ${bootstrapPath}: no such file`, { cause: err, optionNames: ['chunkDict'] });
  });
  return ChunkDict.fromBootstrap(await BootstrapReader.open(bytes));
}

/**
 * `image create`: builds one layer's bootstrap and data blob from a directory or tar. The output
 * paths are checked before anything is read or created. The blob is streamed to a temporary file
 * in the blob dir and renamed to its id when complete; the bootstrap is written last, also
 * through a temporary name. On any failure or abort (`signal`) the run removes everything it
 * created (temporary files, a blob it had renamed into place, directories it made) before the
 * error is thrown. Temporary files inside a directory source are not part of the image.
 */
export async function createImage(input: CreateImageOptions): Promise<CreateImageResult> {
  const options = resolveCreateImageOptions(input);
  const logger = options.logger ?? noopLogger;
  const started = performance.now();
  await checkOutputFile(options.bootstrap, 'bootstrap');
  await checkOutputDirectory(options.blobDir, 'blob dir');
  const ownFiles = new Set<string>();
  const entries = await openLayerSource(options.type, options.source, { exclude: (st) => ownFiles.has(`${st.dev}:${st.ino}`) });
  const chunkDict = options.chunkDict ? await loadChunkDict(options.chunkDict) : undefined;
  throwIfAborted(options.signal);

  const createdDirs: string[] = [];
  let blobFile: AtomicFileWriter | undefined;
  let bootFile: AtomicFileWriter | undefined;
  let committedBlob: string | undefined;
  let result: LayerBuildResult;
  try {
    createdDirs.push(...(await makeDirectories(options.blobDir)));
    createdDirs.push(...(await makeDirectories(path.dirname(path.resolve(options.bootstrap)))));
    blobFile = await AtomicFileWriter.create(options.blobDir, { prefix: 'blob' });
    // The bootstrap streams to its own temporary file and is renamed into place after the blob.
    bootFile = await AtomicFileWriter.create(path.dirname(path.resolve(options.bootstrap)), { prefix: path.basename(options.bootstrap) });
    for (const temp of [blobFile.tempPath, bootFile.tempPath]) {
      const st = await stat(temp, { bigint: true });
      ownFiles.add(`${st.dev}:${st.ino}`);
    }
    result = await buildLayer(entries, blobFile, {
      compressor: options.compressor,
      digester: options.digester,
      ...(options.chunkSize !== undefined && { chunkSize: options.chunkSize }),
      ...(chunkDict && { chunkDict }),
      ...(options.prefetchPatterns && { prefetchPatterns: options.prefetchPatterns }),
      ...(options.signal && { signal: options.signal }),
      bootstrapSink: bootFile,
    });
    if (result.blob) {
      const blobPath = path.join(options.blobDir, result.blob.id);
      // A blob of that id may be there already (same content): then it is not this run's to remove.
      const existed = await stat(blobPath).then(() => true, () => false);
      await blobFile.commit(blobPath);
      if (!existed) committedBlob = blobPath;
    } else {
      await blobFile.abort();
    }
    throwIfAborted(options.signal);
    await bootFile.commit(options.bootstrap);
  } catch (err) {
    await blobFile?.abort();
    await bootFile?.abort();
    if (committedBlob) await rm(committedBlob, { force: true });
    await removeCreatedDirectories(createdDirs);
    throw err;
  }
  const durationMs = performance.now() - started;
  logger.info('image created', { bootstrap: options.bootstrap, blob: result.blob?.id, bytesIn: result.stats.bytesIn, ms: Math.round(durationMs) });
  return {
    bootstrap: options.bootstrap,
    blob: result.blob
      ? { id: result.blob.id, path: path.join(options.blobDir, result.blob.id), size: result.blob.size, chunkCount: result.blob.chunkCount }
      : null,
    referencedDictBlobs: result.referencedDictBlobs,
    stats: result.stats,
    durationMs,
  };
}
