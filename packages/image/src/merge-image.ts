import { InvalidArgumentError, NotFoundError, fileSystemError } from '@nydus-ts/core';
import { checkOutputFile, makeDirectories, removeCreatedDirectories } from '@nydus-ts/core/files';
import { mergeBootstraps } from '@nydus-ts/format';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { loadChunkDict } from './create-image.js';

export interface MergeImageOptions {
  /** Layer bootstraps, lowest layer first. */
  sources: string[];
  /** Where to write the merged bootstrap. */
  bootstrap: string;
  /** Replacement ids for each source's own blob (e.g. registry layer digests), one per source. */
  blobIds?: string[];
  prefetchPatterns?: string[];
  chunkDict?: string;
  signal?: AbortSignal;
}

/** `image merge`: merges layer bootstraps into one, applying OCI whiteouts. */
export async function mergeImage(options: MergeImageOptions): Promise<{ bootstrap: string; blobIds: string[] }> {
  if (options.sources.length === 0) throw new InvalidArgumentError('image merge needs at least one source bootstrap');
  if (options.blobIds && options.blobIds.length !== options.sources.length) {
    throw new InvalidArgumentError(`blobIds has ${options.blobIds.length} ids for ${options.sources.length} sources`, { optionNames: ['blobIds'] });
  }
  await checkOutputFile(options.bootstrap, 'bootstrap');
  const layers = await Promise.all(
    options.sources.map(async (file, i) => {
      const bootstrap = await readFile(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw fileSystemError(err, file, 'bootstrap');
        throw new NotFoundError(`bootstrap ${file}: no such file`, { cause: err });
      });
      const blobId = options.blobIds?.[i];
      return blobId ? { bootstrap, blobId } : { bootstrap };
    }),
  );
  const chunkDict = options.chunkDict ? await loadChunkDict(options.chunkDict) : undefined;
  const merged = await mergeBootstraps(layers, {
    ...(options.prefetchPatterns && { prefetchPatterns: options.prefetchPatterns }),
    ...(chunkDict && { chunkDict }),
    ...(options.signal && { signal: options.signal }),
  });
  const createdDirs = await makeDirectories(path.dirname(path.resolve(options.bootstrap)));
  await writeFileAtomic(options.bootstrap, merged.bootstrap).catch(async (err: unknown) => {
    await removeCreatedDirectories(createdDirs);
    throw err;
  });
  return { bootstrap: options.bootstrap, blobIds: merged.blobIds };
}
