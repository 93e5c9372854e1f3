import { FormatError, InvalidArgumentError, NydusError, UnsupportedError, throwIfAborted } from '@nydus-ts/core';
import { WHOLE_CONTENT, type LayerEntry, type LayerEntryType, type WholeContentSource } from '@nydus-ts/format';
import { ChunkReader } from './chunk-reader.js';
import {
  BLOCK_SIZE,
  Field,
  TypeFlag,
  headerChecksum,
  headerChecksumSigned,
  isZeroBlock,
  normalizeTarPath,
  readNumber,
  readString,
} from './tar-header.js';

export interface ReadTarEntriesOptions {
  signal?: AbortSignal;
  /**
   * Largest PAX extended header or GNU long name/link payload accepted, in bytes (these are
   * buffered whole). Default 16 MiB.
   */
  maxMetadataSize?: number;
}

const DEFAULT_MAX_METADATA = 16 << 20;
const NO_RECORDS: ReadonlyMap<string, Buffer> = new Map();

/** PAX records of one extended header, by keyword; values are raw bytes. */
type PaxRecords = Map<string, Buffer>;

/** What the consumer may still read of the current entry's body. */
interface BodyState {
  remaining: number;
  current: boolean;
}

/**
 * Parses a tar stream (ustar, GNU, PAX) into layer entries, one at a time and without
 * buffering file data: a regular file's `content` yields subarrays of the source chunks and
 * must be read before asking for the next entry; whatever the consumer leaves unread is
 * skipped when it does. Names are normalised into layer paths (leading `/` and `./` stripped,
 * `//` collapsed, trailing `/` dropped, root → ''); a `..` component is rejected with an
 * InvalidArgumentError naming the entry. The end-of-archive zero blocks are optional (umoci
 * omits them) but a stream that ends inside a header or a body is a FormatError.
 */
export async function* readTarEntries(
  source: AsyncIterable<Uint8Array>,
  options: ReadTarEntriesOptions = {},
): AsyncGenerator<LayerEntry, void, undefined> {
  const maxMetadata = options.maxMetadataSize ?? DEFAULT_MAX_METADATA;
  const reader = new ChunkReader(source);
  const globalPax: PaxRecords = new Map();
  let pax: PaxRecords | null = null;
  let longName: string | null = null;
  let longLink: string | null = null;

  /** Skips `n` bytes that the archive must contain. */
  const skipExactly = async (n: number, what: string, at: number): Promise<void> => {
    if (reader.trySkip(n)) return;
    const got = await reader.skip(n);
    if (got < n) {
      throw new FormatError('tar.entry.data', `${what}: archive truncated: ${got} of ${n} bytes present`, {
        offset: at,
      });
    }
  };

  /** Reads an extended header's payload (PAX or GNU long name) plus its padding. */
  /** readPayload without a promise when the payload and its padding are in the current chunk. */
  const payloadNow = (size: number): Buffer | null => {
    const pad = padding(size);
    if (size > maxMetadata || size === 0 || reader.available < size + pad) return null;
    const data = Buffer.from(reader.tryReadExact(size)!); // copied: kept past later reads
    reader.trySkip(pad);
    return data;
  };

  const readPayload = async (size: number, what: string, at: number): Promise<Buffer> => {
    if (size > maxMetadata) {
      throw new FormatError('tar.header.size', `${what}: ${size}-byte extended header exceeds the ${maxMetadata}-byte limit`, {
        offset: at,
        value: size,
      });
    }
    const data = Buffer.from(reader.tryReadExact(size) ?? (await reader.readExact(size))); // copied: kept past later reads
    if (data.length < size) {
      throw new FormatError('tar.entry.data', `${what}: archive truncated: ${data.length} of ${size} bytes present`, {
        offset: at,
      });
    }
    const pad = padding(size);
    if (!reader.trySkip(pad)) await skipExactly(pad, what, at + size);
    return data;
  };

  try {
    for (;;) {
      throwIfAborted(options.signal);
      const headerOffset = reader.offset;
      const block = reader.tryReadExact(BLOCK_SIZE) ?? (await reader.readExact(BLOCK_SIZE));
      if (block.length === 0 || (block.length === BLOCK_SIZE && isZeroBlock(block))) {
        if (pax !== null || longName !== null || longLink !== null) {
          throw new FormatError('tar.header', 'archive ends after an extended header without the entry it describes', {
            offset: headerOffset,
          });
        }
        // End of archive. What follows the first zero block (the second one, record padding)
        // is read but ignored, so that digests computed on the source stream see it all.
        if (block.length !== 0) await reader.drain();
        return;
      }
      if (block.length < BLOCK_SIZE) {
        throw new FormatError('tar.header', `archive truncated inside a header: ${block.length} of ${BLOCK_SIZE} bytes present`, {
          offset: headerOffset,
        });
      }

      const rawName = readString(block, Field.name);
      const where = `entry "${rawName}" (header at offset ${headerOffset})`;
      verifyChecksum(block, where, headerOffset);

      const typeflag = block[Field.typeflag[0]]!;
      let size = readNumber(block, 'size', where, headerOffset);
      const dataOffset = headerOffset + BLOCK_SIZE;

      switch (typeflag) {
        case TypeFlag.paxExtended: {
          const records = parsePax((payloadNow(size) ?? (await readPayload(size, where, dataOffset))), where, dataOffset);
          pax = pax === null ? records : new Map([...pax, ...records]);
          continue;
        }
        case TypeFlag.paxGlobal: {
          for (const [k, v] of parsePax((payloadNow(size) ?? (await readPayload(size, where, dataOffset))), where, dataOffset)) {
            if (v.length === 0) globalPax.delete(k);
            else globalPax.set(k, v);
          }
          continue;
        }
        case TypeFlag.gnuLongName:
          longName = nulTerminated((payloadNow(size) ?? (await readPayload(size, where, dataOffset))));
          continue;
        case TypeFlag.gnuLongLink:
          longLink = nulTerminated((payloadNow(size) ?? (await readPayload(size, where, dataOffset))));
          continue;
        case TypeFlag.gnuVolumeLabel:
          await skipExactly(size + padding(size), where, dataOffset);
          pax = null;
          longName = null;
          longLink = null;
          continue;
        default:
          break;
      }

      // Effective PAX records: global ones overridden by this entry's; an empty per-entry
      // value cancels the keyword.
      let records: ReadonlyMap<string, Buffer> = globalPax.size === 0 ? NO_RECORDS : globalPax;
      if (pax !== null) {
        const merged: PaxRecords = new Map(globalPax);
        for (const [k, v] of pax) {
          if (v.length === 0 && !k.startsWith('SCHILY.xattr.') && !k.startsWith('LIBARCHIVE.xattr.')) merged.delete(k);
          else merged.set(k, v);
        }
        records = merged;
      }

      const isPosixUstar = block.toString('latin1', 257, 263) === 'ustar\0';
      let name: string;
      const paxPath = records.get('path');
      if (paxPath !== undefined) name = paxPath.toString('utf8');
      else if (longName !== null) name = longName;
      else {
        name = rawName;
        if (isPosixUstar) {
          const prefix = readString(block, Field.prefix);
          if (prefix.length > 0) name = `${prefix}/${name}`;
        }
      }
      const paxLink = records.get('linkpath');
      const linkName = paxLink !== undefined ? paxLink.toString('utf8') : (longLink ?? readString(block, Field.linkname));
      const entryWhere = `entry "${name}" (header at offset ${headerOffset})`;

      if (records.size > 0) for (const key of records.keys()) {
        if (key.startsWith('GNU.sparse.')) {
          throw new UnsupportedError(`tar ${entryWhere}: GNU sparse files (PAX ${key}) are not supported`);
        }
      }

      let type: LayerEntryType;
      switch (typeflag) {
        case TypeFlag.regular:
        case TypeFlag.contiguous:
          type = 'file';
          break;
        case TypeFlag.regularOld:
          // Pre-POSIX archives mark directories by a trailing slash only.
          type = name.endsWith('/') ? 'directory' : 'file';
          break;
        case TypeFlag.hardlink:
          type = 'hardlink';
          break;
        case TypeFlag.symlink:
          type = 'symlink';
          break;
        case TypeFlag.charDevice:
          type = 'char-device';
          break;
        case TypeFlag.blockDevice:
          type = 'block-device';
          break;
        case TypeFlag.directory:
        case TypeFlag.gnuDumpDir:
          type = 'directory';
          break;
        case TypeFlag.fifo:
          type = 'fifo';
          break;
        case TypeFlag.gnuSparse:
          throw new UnsupportedError(`tar ${entryWhere}: GNU old-style sparse files (type 'S') are not supported`);
        default:
          throw new UnsupportedError(
            `tar ${entryWhere}: unsupported entry type ${JSON.stringify(String.fromCharCode(typeflag))} (0x${typeflag.toString(16)})`,
          );
      }

      const paxSize = records.get('size');
      if (paxSize !== undefined) size = paxInteger(paxSize, 'size', entryWhere, dataOffset);
      const paxUid = records.get('uid');
      const paxGid = records.get('gid');
      const paxMtime = records.get('mtime');

      const entry: LayerEntry = {
        path: normalizeTarPath(name, `"${name}" (header at offset ${headerOffset})`),
        type,
        mode: readNumber(block, 'mode', entryWhere, headerOffset) & 0o7777,
        uid: paxUid !== undefined ? paxInteger(paxUid, 'uid', entryWhere, dataOffset) : readNumber(block, 'uid', entryWhere, headerOffset),
        gid: paxGid !== undefined ? paxInteger(paxGid, 'gid', entryWhere, dataOffset) : readNumber(block, 'gid', entryWhere, headerOffset),
        mtime: paxMtime !== undefined ? paxSeconds(paxMtime, entryWhere, dataOffset) : readNumber(block, 'mtime', entryWhere, headerOffset),
        size: type === 'file' ? size : 0,
      };
      if (type === 'symlink') {
        entry.linkTarget = linkName;
      } else if (type === 'hardlink') {
        const target = normalizeTarPath(linkName, `"${name}" (hard link target, header at offset ${headerOffset})`);
        if (target === '') {
          throw new InvalidArgumentError(`tar ${entryWhere}: hard link to the root directory ("${linkName}")`);
        }
        entry.linkTarget = target;
      } else if (type === 'char-device' || type === 'block-device') {
        entry.devMajor = readNumber(block, 'devmajor', entryWhere, headerOffset);
        entry.devMinor = readNumber(block, 'devminor', entryWhere, headerOffset);
      }
      const xattrs = collectXattrs(records, entryWhere);
      if (xattrs !== undefined) entry.xattrs = xattrs;
      pax = null;
      longName = null;
      longLink = null;

      // Types without data records (POSIX; as Go's archive/tar does): their size field is
      // informational. Regular files and GNU dump directories carry `size` bytes.
      const dataSize = type === 'file' || typeflag === TypeFlag.gnuDumpDir ? size : 0;
      if (type !== 'file') {
        const skip = dataSize + padding(dataSize);
        if (!reader.trySkip(skip)) await skipExactly(skip, entryWhere, dataOffset);
        yield entry;
        continue;
      }

      const state: BodyState = { remaining: size, current: true };
      entry.content = new TarBody(reader, state, entryWhere, size, dataOffset);
      try {
        yield entry;
      } finally {
        state.current = false;
      }
      const rest = state.remaining + padding(size);
      if (!reader.trySkip(rest)) await skipExactly(rest, entryWhere, dataOffset + size - state.remaining);
      state.remaining = 0;
    }
  } finally {
    await reader.close();
  }
}

const NO_BYTES = new Uint8Array(0);

/**
 * A regular file's content: async-iterable, plus the builder's synchronous WHOLE_CONTENT
 * side when the body lies inside the current source chunk (a subarray, valid until the next
 * entry is requested, like the iterated pieces).
 */
class TarBody implements AsyncIterable<Uint8Array>, WholeContentSource {
  constructor(
    private readonly reader: ChunkReader,
    private readonly state: BodyState,
    private readonly where: string,
    private readonly size: number,
    private readonly dataOffset: number,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array, undefined> {
    return new BodyIterator(this.reader, this.state, this.where, this.size, this.dataOffset);
  }

  [WHOLE_CONTENT](): Uint8Array | null {
    const state = this.state;
    if (!state.current || state.remaining !== this.size) return null;
    if (this.size === 0) return NO_BYTES;
    const body = this.reader.tryReadExact(this.size);
    if (body !== null) state.remaining = 0;
    return body;
  }
}

/**
 * A file's content as subarrays of the source chunks. Hand-written rather than an async
 * generator: a piece already in the current source chunk costs one resolved promise.
 */
class BodyIterator implements AsyncIterator<Uint8Array, undefined> {
  constructor(
    private readonly reader: ChunkReader,
    private readonly state: BodyState,
    private readonly where: string,
    private readonly size: number,
    private readonly dataOffset: number,
  ) {}

  next(): Promise<IteratorResult<Uint8Array, undefined>> {
    const state = this.state;
    if (!state.current) {
      return Promise.reject(new NydusError('FAILED_PRECONDITION', `tar ${this.where}: content read after the next entry was requested`));
    }
    if (state.remaining === 0) return Promise.resolve({ done: true, value: undefined });
    const piece = this.reader.trySome(state.remaining);
    if (piece !== null) {
      state.remaining -= piece.length;
      return Promise.resolve({ done: false, value: piece });
    }
    return this.nextAsync();
  }

  private async nextAsync(): Promise<IteratorResult<Uint8Array, undefined>> {
    const state = this.state;
    const chunk = await this.reader.readSome(state.remaining);
    if (chunk === null) {
      throw new FormatError('tar.entry.data', `${this.where}: archive truncated: ${this.size - state.remaining} of ${this.size} content bytes present`, {
        offset: this.dataOffset + this.size - state.remaining,
      });
    }
    state.remaining -= chunk.length;
    return { done: false, value: chunk };
  }

  return(): Promise<IteratorResult<Uint8Array, undefined>> {
    return Promise.resolve({ done: true, value: undefined });
  }
}

function padding(size: number): number {
  const r = size % BLOCK_SIZE;
  return r === 0 ? 0 : BLOCK_SIZE - r;
}

function verifyChecksum(block: Buffer, where: string, offset: number): void {
  const stored = readNumber(block, 'chksum', where, offset);
  const unsigned = headerChecksum(block);
  if (stored !== unsigned && stored !== headerChecksumSigned(block)) {
    throw new FormatError(
      'tar.header.chksum',
      `${where}: header checksum mismatch (stored ${stored.toString(8)}, computed ${unsigned.toString(8)}); not a tar archive or corrupt`,
      { offset: offset + Field.chksum[0], value: stored },
    );
  }
}

function nulTerminated(data: Buffer): string {
  const end = data.indexOf(0);
  return data.toString('utf8', 0, end < 0 ? data.length : end);
}

/** Parses PAX records: `"<len> <keyword>=<value>\n"`, where len counts the whole record. */
function parsePax(data: Buffer, where: string, offset: number): PaxRecords {
  const records: PaxRecords = new Map();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // some writers pad the payload with NULs
    const space = data.indexOf(0x20, pos);
    const lenText = space < 0 ? '' : data.toString('latin1', pos, space);
    const len = /^[0-9]{1,12}$/.test(lenText) ? Number(lenText) : NaN;
    if (!(len > 0) || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw new FormatError('tar.pax.record', `${where}: malformed PAX record at byte ${pos} of the extended header`, {
        offset: offset + pos,
      });
    }
    const eq = data.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= pos + len - 1) {
      throw new FormatError('tar.pax.record', `${where}: PAX record at byte ${pos} has no "="`, { offset: offset + pos });
    }
    const key = data.toString('utf8', space + 1, eq);
    records.set(key, data.subarray(eq + 1, pos + len - 1));
    pos += len;
  }
  return records;
}

function paxInteger(value: Buffer, key: string, where: string, offset: number): number {
  const text = value.toString('latin1');
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new FormatError(`tar.pax.${key}`, `${where}: invalid PAX ${key} "${text}"`, { offset, value: text });
  }
  return Number(text);
}

/** PAX mtime: decimal seconds with an optional fraction; whole seconds (floor) are kept. */
function paxSeconds(value: Buffer, where: string, offset: number): number {
  const text = value.toString('latin1');
  const m = /^(-?)([0-9]{1,16})(?:\.([0-9]*))?$/.exec(text);
  if (!m) throw new FormatError('tar.pax.mtime', `${where}: invalid PAX mtime "${text}"`, { offset, value: text });
  const whole = Number(m[2]);
  const hasFraction = m[3] !== undefined && /[1-9]/.test(m[3]);
  return m[1] === '-' ? -whole - (hasFraction ? 1 : 0) : whole;
}

function collectXattrs(records: ReadonlyMap<string, Buffer>, where: string): Map<string, Uint8Array> | undefined {
  let xattrs: Map<string, Uint8Array> | undefined;
  if (records.size === 0) return undefined;
  for (const [key, value] of records) {
    if (key.startsWith('SCHILY.xattr.')) {
      (xattrs ??= new Map()).set(key.slice('SCHILY.xattr.'.length), Buffer.from(value));
    } else if (key.startsWith('LIBARCHIVE.xattr.')) {
      // libarchive: URL-encoded name, base64 value.
      let name: string;
      try {
        name = decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length));
      } catch (cause) {
        throw new FormatError('tar.pax.record', `${where}: malformed ${key}`, { cause });
      }
      (xattrs ??= new Map()).set(name, Buffer.from(value.toString('latin1'), 'base64'));
    }
  }
  return xattrs;
}
