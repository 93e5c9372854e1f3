import { FormatError, InvalidArgumentError, NydusError, UnsupportedError, throwIfAborted } from '@nydus-ts/core';
import { WHOLE_CONTENT, type LayerEntry, type LayerEntryType, type WholeContentSource } from '@nydus-ts/format';
import { ChunkReader } from './chunk-reader.js';
import {
  BLOCK_SIZE,
  Field,
  TypeFlag,
  WordViews,
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
  // The per-header work is synchronous, in HeaderParser: this generator only reads, skips and
  // yields (a small generator compiles and optimises far faster than one holding it all).
  const maxMetadata = options.maxMetadataSize ?? DEFAULT_MAX_METADATA;
  const reader = new ChunkReader(source);
  const parser = new HeaderParser();
  try {
    for (;;) {
      throwIfAborted(options.signal);
      const headerOffset = reader.offset;
      const block = reader.tryReadExact(BLOCK_SIZE) ?? (await reader.readExact(BLOCK_SIZE));
      if (block.length === 0 || (block.length === BLOCK_SIZE && isZeroBlock(block))) {
        parser.checkNothingPending(headerOffset);
        // End of archive. What follows the first zero block (the second one, record padding)
        // is read but ignored, so that digests computed on the source stream see it all.
        if (block.length !== 0) await reader.drain();
        return;
      }
      parser.header(block, headerOffset);
      const dataOffset = headerOffset + BLOCK_SIZE;
      if (parser.extended) {
        const size = parser.size;
        if (parser.typeflag === TypeFlag.gnuVolumeLabel) {
          await skipExactly(reader, size + padding(size), parser.where, dataOffset);
          parser.reset();
        } else {
          parser.absorb(payloadNow(reader, size, maxMetadata) ?? (await readPayload(reader, size, maxMetadata, parser.where, dataOffset)), dataOffset);
        }
        continue;
      }
      const entry = parser.entry(block, headerOffset);
      const where = parser.where;
      const size = parser.size;

      // Types without data records (POSIX; as Go's archive/tar does): their size field is
      // informational. Regular files and GNU dump directories carry `size` bytes.
      if (entry.type !== 'file') {
        const dataSize = parser.typeflag === TypeFlag.gnuDumpDir ? size : 0;
        const skip = dataSize + padding(dataSize);
        if (!reader.trySkip(skip)) await skipExactly(reader, skip, where, dataOffset);
        yield entry;
        continue;
      }

      const fileSize = size;
      const state: BodyState = { remaining: fileSize, current: true };
      entry.content = new TarBody(reader, state, where, fileSize, dataOffset);
      try {
        yield entry;
      } finally {
        state.current = false;
      }
      const rest = state.remaining + padding(fileSize);
      if (!reader.trySkip(rest)) await skipExactly(reader, rest, where, dataOffset + fileSize - state.remaining);
      state.remaining = 0;
    }
  } finally {
    await reader.close();
  }
}

/** Skips `n` bytes that the archive must contain. */
async function skipExactly(reader: ChunkReader, n: number, what: string, at: number): Promise<void> {
  if (reader.trySkip(n)) return;
  const got = await reader.skip(n);
  if (got < n) {
    throw new FormatError('tar.entry.data', `${what}: archive truncated: ${got} of ${n} bytes present`, {
      offset: at,
    });
  }
}

/** readPayload without a promise when the payload and its padding are in the current chunk. */
function payloadNow(reader: ChunkReader, size: number, maxMetadata: number): Buffer | null {
  const pad = padding(size);
  if (size > maxMetadata || size === 0 || reader.available < size + pad) return null;
  const data = Buffer.from(reader.tryReadExact(size)!); // copied: kept past later reads
  reader.trySkip(pad);
  return data;
}

/** Reads an extended header's payload (PAX or GNU long name) plus its padding. */
async function readPayload(reader: ChunkReader, size: number, maxMetadata: number, what: string, at: number): Promise<Buffer> {
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
  if (!reader.trySkip(pad)) await skipExactly(reader, pad, what, at + size);
  return data;
}

/**
 * The synchronous side of the tar reader: one header at a time, the extended headers (PAX
 * records, GNU long names) that apply to the next entry, and the entry they describe.
 */
class HeaderParser {
  private readonly globalPax: PaxRecords = new Map();
  private pax: PaxRecords | null = null;
  private longName: string | null = null;
  private longLink: string | null = null;
  /** Fields of the last header read. */
  typeflag = 0;
  size = 0;
  /** The header describes the next entry (PAX, GNU long name/link, volume label). */
  extended = false;
  where = '';
  private rawName = '';
  private readonly views = new WordViews();

  /** Reads and checks a (non-zero, complete or truncated) header block. */
  header(block: Buffer, headerOffset: number): void {
    if (block.length < BLOCK_SIZE) {
      throw new FormatError('tar.header', `archive truncated inside a header: ${block.length} of ${BLOCK_SIZE} bytes present`, {
        offset: headerOffset,
      });
    }
    const rawName = readString(block, Field.name);
    const where = `entry "${rawName}" (header at offset ${headerOffset})`;
    verifyChecksum(block, where, headerOffset, this.views);
    this.rawName = rawName;
    this.where = where;
    const typeflag = block[Field.typeflag[0]]!;
    this.typeflag = typeflag;
    this.size = readNumber(block, 'size', where, headerOffset);
    this.extended =
      typeflag === TypeFlag.paxExtended || typeflag === TypeFlag.paxGlobal || typeflag === TypeFlag.gnuLongName || typeflag === TypeFlag.gnuLongLink || typeflag === TypeFlag.gnuVolumeLabel;
  }

  /** Takes in the payload of the extended header just read. */
  absorb(payload: Buffer, dataOffset: number): void {
    const where = this.where;
    switch (this.typeflag) {
      case TypeFlag.paxExtended: {
        const records = parsePax(payload, where, dataOffset);
        this.pax = this.pax === null ? records : new Map([...this.pax, ...records]);
        break;
      }
      case TypeFlag.paxGlobal:
        for (const [k, v] of parsePax(payload, where, dataOffset)) {
          if (v.length === 0) this.globalPax.delete(k);
          else this.globalPax.set(k, v);
        }
        break;
      case TypeFlag.gnuLongName:
        this.longName = nulTerminated(payload);
        break;
      case TypeFlag.gnuLongLink:
        this.longLink = nulTerminated(payload);
        break;
      default:
        throw new NydusError('INTERNAL', `tar: absorb of type ${this.typeflag}`);
    }
  }

  /** Forgets per-entry extended headers. */
  reset(): void {
    this.pax = null;
    this.longName = null;
    this.longLink = null;
  }

  checkNothingPending(offset: number): void {
    if (this.pax !== null || this.longName !== null || this.longLink !== null) {
      throw new FormatError('tar.header', 'archive ends after an extended header without the entry it describes', { offset });
    }
  }

  /**
   * The entry of the (non-extended) header just read, with the pending extended headers
   * applied; `where` then names it. Regular files get `size`, without content yet.
   */
  entry(block: Buffer, headerOffset: number): LayerEntry {
    const typeflag = this.typeflag;
    let size = this.size;
    const dataOffset = headerOffset + BLOCK_SIZE;
    const rawName = this.rawName;
    // Effective PAX records: global ones overridden by this entry's; an empty per-entry
    // value cancels the keyword.
    let records: ReadonlyMap<string, Buffer> = this.globalPax.size === 0 ? NO_RECORDS : this.globalPax;
    if (this.pax !== null && this.globalPax.size === 0 && !cancelsAny(this.pax)) {
      records = this.pax;
    } else if (this.pax !== null) {
      const merged: PaxRecords = new Map(this.globalPax);
      for (const [k, v] of this.pax!) {
        if (v.length === 0 && !k.startsWith('SCHILY.xattr.') && !k.startsWith('LIBARCHIVE.xattr.')) merged.delete(k);
        else merged.set(k, v);
      }
      records = merged;
    }

    // magic "ustar\0" (POSIX; GNU writes "ustar  ")
    const isPosixUstar = block[257] === 0x75 && block[258] === 0x73 && block[259] === 0x74 && block[260] === 0x61 && block[261] === 0x72 && block[262] === 0;
    let name: string;
    const paxPath = records.get('path');
    if (paxPath !== undefined) name = paxPath.toString('utf8');
    else if (this.longName !== null) name = this.longName;
    else {
      name = rawName;
      if (isPosixUstar) {
        const prefix = readString(block, Field.prefix);
        if (prefix.length > 0) name = `${prefix}/${name}`;
      }
    }
    const paxLink = records.get('linkpath');
    const linkName = paxLink !== undefined ? paxLink.toString('utf8') : (this.longLink ?? readString(block, Field.linkname));
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
    this.reset();
    this.where = entryWhere;
    this.size = size; // with a PAX size applied
    return entry;
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

function verifyChecksum(block: Buffer, where: string, offset: number, views?: WordViews): void {
  const stored = readNumber(block, 'chksum', where, offset);
  const unsigned = headerChecksum(block, views);
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
    // The decimal length: 1 to 12 digits, then a space.
    let space = pos;
    let len = 0;
    while (space < data.length && space - pos < 12 && data[space]! >= 0x30 && data[space]! <= 0x39) len = len * 10 + (data[space++]! - 0x30);
    if (space === pos || data[space] !== 0x20) len = NaN;
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

/** True if a record of this extended header cancels a keyword (an empty value, xattrs excepted). */
function cancelsAny(pax: PaxRecords): boolean {
  for (const [k, v] of pax) if (v.length === 0 && !k.startsWith('SCHILY.xattr.') && !k.startsWith('LIBARCHIVE.xattr.')) return true;
  return false;
}

/** PAX mtime: decimal seconds with an optional fraction; whole seconds (floor) are kept. */
function paxSeconds(value: Buffer, where: string, offset: number): number {
  // Fast path for the common form: 1 to 15 digits, optionally "." and digits.
  let i = 0;
  let whole = 0;
  while (i < value.length && i < 15 && value[i]! >= 0x30 && value[i]! <= 0x39) whole = whole * 10 + (value[i++]! - 0x30);
  if (i > 0 && (i === value.length || value[i] === 0x2e)) {
    let j = i + 1;
    while (j < value.length && value[j]! >= 0x30 && value[j]! <= 0x39) j++;
    if (i === value.length || j === value.length) return whole;
  }
  return paxSecondsSlow(value, where, offset);
}

function paxSecondsSlow(value: Buffer, where: string, offset: number): number {
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
