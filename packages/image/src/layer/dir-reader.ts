import { closeSync, constants, createReadStream, openSync, readSync, type BigIntStats } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import {
  InvalidArgumentError,
  NotFoundError,
  NydusError,
  noopLogger,
  throwIfAborted,
  type Logger,
} from '@nydus-ts/core';
import { WHOLE_CONTENT, decodeFsName, hasEscapedBytes, printableFsName, type LayerEntry, type WholeContentSource } from '@nydus-ts/format';
import { getAttribute, listAttributes } from 'fs-xattr';

export interface ReadDirectoryEntriesOptions {
  signal?: AbortSignal;
  /** Read extended attributes (default true). */
  xattrs?: boolean;
  /** Read size of file content streams (default 1 MiB). */
  readChunkSize?: number;
  /** How many entries of a directory have their metadata fetched ahead (default 32). */
  lookahead?: number;
  /**
   * Entries to leave out, told by their lstat (e.g. the build's own temporary output files when
   * they lie inside the source): asked once per entry, when the walk reaches it.
   */
  exclude?: (stat: BigIntStats) => boolean;
  logger?: Logger;
}

/** Metadata of one directory child, fetched ahead of its turn. */
interface Meta {
  /** The name's bytes, as readdir gave them. */
  name: Buffer;
  stat: BigIntStats;
  linkTarget?: string;
  xattrs?: Map<string, Uint8Array>;
}

/**
 * A directory being walked. Paths on the host are bytes (`Buffer`s) from the root down, so that
 * names that are not UTF-8 reach the filesystem calls unchanged; layer paths are strings
 * (decodeFsName).
 */
interface Frame {
  abs: Buffer;
  rel: string;
  names: Buffer[];
  next: number;
  pending: Map<number, Promise<Meta | null>>;
}

const SLASH = Buffer.from('/');

function childPath(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, SLASH, name]);
}

const NS_PER_S = 1_000_000_000n;

/**
 * Walks a directory tree depth-first in a deterministic order (children sorted by the bytes of
 * their names, each directory before its contents) and describes every entry as a layer
 * entry: the root itself is path ''. Metadata comes from lstat (symlinks are never followed):
 * permission bits, uid/gid, mtime with nanoseconds, device numbers (Linux dev_t split), symlink
 * targets, and extended attributes. Regular files with several names (same st_dev and st_ino)
 * are one 'file' (the first name in walk order) and 'hardlink' entries pointing to it. File
 * content is opened only when the consumer iterates it and streamed in `readChunkSize` reads.
 * Names and symlink targets are taken as bytes: those that are not UTF-8 reach the layer
 * losslessly (see decodeFsName) and are read through byte paths.
 * Sockets cannot be stored in a layer and are skipped. Memory grows with the number of entries
 * in open directories and of multiply-linked files, never with file sizes.
 *
 * Symlink xattrs are not read: fs-xattr calls getxattr/listxattr, which follow symlinks (it has
 * no l*xattr variants), so reading them would report the target's attributes. On Linux only
 * trusted.* and security.* can be set on symlinks anyway.
 */
export async function* readDirectoryEntries(
  root: string,
  options: ReadDirectoryEntriesOptions = {},
): AsyncGenerator<LayerEntry, void, undefined> {
  const withXattrs = options.xattrs ?? true;
  const chunkSize = options.readChunkSize ?? 1 << 20;
  const lookahead = Math.max(1, options.lookahead ?? 32);
  const logger = options.logger ?? noopLogger;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new InvalidArgumentError(`readDirectoryEntries: readChunkSize must be a positive integer, got ${chunkSize}`);
  }

  let rootStat: BigIntStats;
  try {
    rootStat = await lstat(root, { bigint: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new NotFoundError(`directory ${root} does not exist`, { cause: err });
    throw err;
  }
  if (!rootStat.isDirectory()) {
    throw new InvalidArgumentError(`readDirectoryEntries: ${root} is not a directory`);
  }

  const fetchMeta = async (abs: Buffer, name: Buffer): Promise<Meta | null> => {
    let stat: BigIntStats;
    try {
      stat = await lstat(abs, { bigint: true });
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null; // removed since readdir
      throw err;
    }
    const meta: Meta = { name, stat };
    if (stat.isSymbolicLink()) {
      meta.linkTarget = decodeFsName(await readlink(abs, { encoding: 'buffer' }));
    } else if (withXattrs && !stat.isSocket()) {
      const xattrs = await readXattrs(abs);
      if (xattrs !== undefined) meta.xattrs = xattrs;
    }
    return meta;
  };

  const rootPath = Buffer.from(root);
  const rootMeta: Meta = { name: Buffer.alloc(0), stat: rootStat };
  if (withXattrs) {
    const xattrs = await readXattrs(rootPath);
    if (xattrs !== undefined) rootMeta.xattrs = xattrs;
  }
  yield toEntry('', rootPath, rootMeta, chunkSize);

  /** First path of each multiply-linked regular file, by `dev:ino`. */
  const firstNames = new Map<string, string>();
  const stack: Frame[] = [await openFrame(rootPath, '')];

  while (stack.length > 0) {
    throwIfAborted(options.signal);
    const frame = stack[stack.length - 1]!;
    if (frame.next >= frame.names.length) {
      stack.pop();
      continue;
    }
    // Keep `lookahead` metadata fetches in flight ahead of the cursor.
    for (let i = frame.next; i < Math.min(frame.names.length, frame.next + lookahead); i++) {
      if (!frame.pending.has(i)) {
        const name = frame.names[i]!;
        const p = fetchMeta(childPath(frame.abs, name), name);
        p.catch(() => undefined); // awaited in turn below; avoid an unhandled rejection meanwhile
        frame.pending.set(i, p);
      }
    }
    const index = frame.next++;
    const meta = await frame.pending.get(index)!;
    frame.pending.delete(index);
    if (meta === null) continue;

    const abs = childPath(frame.abs, meta.name);
    const name = decodeFsName(meta.name);
    const rel = frame.rel === '' ? name : `${frame.rel}/${name}`;
    const { stat } = meta;
    if (stat.isSocket()) {
      logger.debug('directory walk: socket skipped', { path: rel });
      continue;
    }
    if (options.exclude?.(stat)) {
      logger.debug('directory walk: excluded', { path: rel });
      continue;
    }
    if (stat.isFile() && stat.nlink > 1n) {
      const key = `${stat.dev}:${stat.ino}`;
      const first = firstNames.get(key);
      if (first !== undefined) {
        const entry = toEntry(rel, abs, meta, chunkSize);
        entry.type = 'hardlink';
        entry.size = 0;
        entry.linkTarget = first;
        delete entry.content;
        yield entry;
        continue;
      }
      firstNames.set(key, rel);
    }
    yield toEntry(rel, abs, meta, chunkSize);
    if (stat.isDirectory()) stack.push(await openFrame(abs, rel));
  }
}

async function openFrame(abs: Buffer, rel: string): Promise<Frame> {
  const names = await readdir(abs, { encoding: 'buffer' });
  names.sort(Buffer.compare);
  return { abs, rel, names, next: 0, pending: new Map() };
}

function toEntry(rel: string, abs: Buffer, meta: Meta, chunkSize: number): LayerEntry {
  const { stat } = meta;
  let sec = stat.mtimeNs / NS_PER_S;
  let nsec = stat.mtimeNs % NS_PER_S;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += NS_PER_S;
  }
  const entry: LayerEntry = {
    path: rel,
    type: 'file',
    mode: Number(stat.mode) & 0o7777,
    uid: Number(stat.uid),
    gid: Number(stat.gid),
    mtime: Number(sec),
    mtimeNsec: Number(nsec),
    size: 0,
  };
  if (stat.isFile()) {
    entry.size = Number(stat.size);
    entry.content = fileContent(abs, entry.size, chunkSize);
  } else if (stat.isDirectory()) {
    entry.type = 'directory';
  } else if (stat.isSymbolicLink()) {
    entry.type = 'symlink';
    entry.linkTarget = meta.linkTarget!;
  } else if (stat.isCharacterDevice() || stat.isBlockDevice()) {
    entry.type = stat.isCharacterDevice() ? 'char-device' : 'block-device';
    const { major, minor } = splitDev(stat.rdev);
    entry.devMajor = major;
    entry.devMinor = minor;
  } else if (stat.isFIFO()) {
    entry.type = 'fifo';
  } else {
    throw new InvalidArgumentError(`readDirectoryEntries: ${shown(abs)} has an unknown file type (mode 0o${stat.mode.toString(8)})`);
  }
  if (meta.xattrs !== undefined) entry.xattrs = meta.xattrs;
  return entry;
}

/** glibc's Linux dev_t layout: major = bits 8..19 and 32..43, minor = bits 0..7 and 20..31 (and 44..63). */
export function splitDev(dev: bigint): { major: number; minor: number } {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return { major: Number(major & 0xffffffffn), minor: Number(minor & 0xffffffffn) };
}

/** Files up to this size are read whole (and synchronously) when the consumer asks for that. */
const WHOLE_MAX = 1 << 20;

/**
 * Content of a regular file, opened when iterated; exactly `size` bytes or an error. A file of
 * at most 1 MiB can also be taken whole through WHOLE_CONTENT (the builder does, for bodies of
 * one chunk): one open/read/close on the calling thread instead of a read stream's round trips
 * through the thread pool, which for many small files cost more than their reading.
 */
/** A host path for messages. */
function shown(path: Buffer): string {
  return printableFsName(decodeFsName(path));
}

function fileContent(path: Buffer, size: number, chunkSize: number): AsyncIterable<Uint8Array> & WholeContentSource {
  return {
    async *[Symbol.asyncIterator]() {
      if (size === 0) return;
      const stream = createReadStream(path, { highWaterMark: chunkSize, start: 0, end: size - 1 });
      let read = 0;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        read += chunk.length;
        yield chunk;
      }
      if (read !== size) {
        throw new NydusError('DATA_LOSS', `file ${shown(path)} shrank while being read: ${read} of ${size} bytes`);
      }
    },
    [WHOLE_CONTENT](): Uint8Array | null {
      if (size > WHOLE_MAX) return null;
      if (size === 0) return new Uint8Array(0);
      const data = Buffer.allocUnsafe(size);
      const fd = openSync(path, 'r');
      let read = 0;
      try {
        for (let n = 1; read < size && n > 0; read += n) n = readSync(fd, data, read, size - read, read);
      } finally {
        closeSync(fd);
      }
      if (read !== size) throw new NydusError('DATA_LOSS', `file ${shown(path)} shrank while being read: ${read} of ${size} bytes`);
      return data;
    },
  };
}

/** Linux O_PATH (not in Node's fs.constants): a descriptor that only names the file, opening nothing. */
const O_PATH = 0o10000000;

/**
 * Extended attributes sorted by name; undefined if none or unsupported by the filesystem.
 * fs-xattr takes paths as (UTF-8) strings: a path that is not UTF-8 is reached through
 * /proc/self/fd of an O_PATH descriptor opened by its bytes.
 */
async function readXattrs(path: Buffer): Promise<Map<string, Uint8Array> | undefined> {
  const text = decodeFsName(path);
  if (!hasEscapedBytes(text)) return readXattrsAt(text);
  const handle = await open(path, O_PATH | constants.O_NOFOLLOW).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return undefined; // removed since readdir
    throw err;
  });
  if (handle === undefined) return undefined;
  try {
    return await readXattrsAt(`/proc/self/fd/${handle.fd}`);
  } finally {
    await handle.close();
  }
}

async function readXattrsAt(path: string): Promise<Map<string, Uint8Array> | undefined> {
  let names: string[];
  try {
    names = await listAttributes(path);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOENT') return undefined;
    throw err;
  }
  if (names.length === 0) return undefined;
  names.sort();
  const xattrs = new Map<string, Uint8Array>();
  for (const name of names) {
    try {
      xattrs.set(name, await getAttribute(path, name));
    } catch (err) {
      if (errnoCode(err) === 'ENODATA') continue; // removed since listxattr
      throw err;
    }
  }
  return xattrs.size > 0 ? xattrs : undefined;
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}
