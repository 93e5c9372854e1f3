import { throwIfAborted, type Logger } from '@nydus-ts/core';
import { checkOutputFile, makeDirectories, removeCreatedDirectories } from '@nydus-ts/core/files';
import { RafsFileReader, attachRefBlobMetas, decodeRdev, type BootstrapReader, type LayerEntry } from '@nydus-ts/format';
import path from 'node:path';
import { writeTarEntries } from './layer/tar-writer.js';
import { AtomicFileWriter } from './atomic-file.js';
import { openBootstrapFile } from './inspect-image.js';
import { LocalBlobBackend } from '@nydus-ts/backend';

export interface UnpackImageOptions {
  bootstrap: string;
  blobDir: string;
  /** The tar file to write. */
  output: string;
  logger?: Logger;
  signal?: AbortSignal;
}

/** The tree of a bootstrap as layer entries, file contents read (and verified) through `files`. */
export async function* bootstrapEntries(reader: BootstrapReader, files: RafsFileReader): AsyncGenerator<LayerEntry> {
  const firstPathOfNid = new Map<number, string>();
  for (const { path: absolute, nid, inode } of reader.walk()) {
    const p = absolute.slice(1);
    const base = { path: p, mode: inode.mode & 0o7777, uid: inode.uid, gid: inode.gid, mtime: inode.mtime, size: 0 };
    const xattrs = reader.xattrs(nid);
    const withXattrs = xattrs.size > 0 ? { xattrs } : {};
    switch (inode.type) {
      case 'directory':
        yield { ...base, ...withXattrs, type: 'directory' };
        break;
      case 'file': {
        const first = firstPathOfNid.get(nid);
        if (first !== undefined) {
          yield { ...base, type: 'hardlink', linkTarget: first };
          break;
        }
        firstPathOfNid.set(nid, p);
        yield { ...base, ...withXattrs, type: 'file', size: inode.size, content: files.stream(nid) };
        break;
      }
      case 'symlink':
        yield { ...base, ...withXattrs, type: 'symlink', linkTarget: reader.readlink(nid) };
        break;
      case 'char-device':
      case 'block-device': {
        const { major, minor } = decodeRdev(inode.raw.u);
        yield { ...base, ...withXattrs, type: inode.type, devMajor: major, devMinor: minor };
        break;
      }
      case 'fifo':
      case 'socket':
        yield { ...base, ...withXattrs, type: inode.type };
        break;
    }
  }
}

/**
 * `image unpack`: writes the image's tree as a tar, every chunk verified on the way. The output
 * path is checked first; on any failure or abort (`signal`) nothing of the run stays behind.
 */
export async function unpackImage(options: UnpackImageOptions): Promise<{ output: string; bytes: number }> {
  // The output path is checked before anything is read or created.
  await checkOutputFile(options.output, 'output');
  const reader = await openBootstrapFile(options.bootstrap);
  const backend = new LocalBlobBackend(options.blobDir);
  const files = new RafsFileReader(reader, backend);
  const createdDirs: string[] = [];
  let out: AtomicFileWriter | undefined;
  try {
    createdDirs.push(...(await makeDirectories(path.dirname(path.resolve(options.output)))));
    out = await AtomicFileWriter.create(path.dirname(path.resolve(options.output)), { prefix: path.basename(options.output) });
    // Reference (targz-ref / tar-ref) blobs are read through their meta blobs, also in the blob dir.
    await attachRefBlobMetas(reader, backend, options.signal);
    // The root is implied by a tar; skip it so paths stay relative.
    const entries = (async function* () {
      for await (const e of bootstrapEntries(reader, files)) if (e.path !== '') yield e;
    })();
    for await (const bytes of writeTarEntries(entries)) {
      throwIfAborted(options.signal);
      await out.write(bytes);
    }
    await out.commit(options.output);
    return { output: options.output, bytes: out.size };
  } catch (err) {
    // Nothing of this run stays behind: the temporary file, and directories it made.
    await out?.abort();
    await removeCreatedDirectories(createdDirs);
    throw err;
  } finally {
    await backend.close();
  }
}
