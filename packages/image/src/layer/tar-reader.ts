import { FormatError, InvalidArgumentError, NydusError, throwIfAborted } from '@nydus-ts/core';
import { WHOLE_CONTENT, decodeFsName, printableFsName, type LayerEntry, type LayerEntryType, type WholeContentSource } from '@nydus-ts/format';
import { ChunkReader } from './chunk-reader.js';
import { checkSparseMap, oldGnuExtension, oldGnuSparse, pax1Map, paxSparse, sparseContent, type SparseSpec } from './tar-sparse.js';
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

/** `TarEntries.next()` at the end of the archive. */
const END: unique symbol = Symbol('end of archive');
/** `TarEntries.afterHeader()`: an extended header was taken in, read the next header. */
const MORE: unique symbol = Symbol('next header');

type NextEntry = LayerEntry | typeof END;

/**
 * Parses a tar stream (ustar, GNU, PAX) into layer entries, one at a time and without
 * buffering file data: a regular file's `content` yields subarrays of the source chunks and
 * must be read before asking for the next entry; whatever the consumer leaves unread is
 * skipped when it does. Names are normalised into layer paths (leading `/` and `./` stripped,
 * `//` collapsed, trailing `/` dropped, root → ''); a `..` component is rejected with an
 * InvalidArgumentError naming the entry. The end-of-archive zero blocks are optional (umoci
 * omits them), and so is the padding after the last entry's data (`umoci insert` writes
 * neither), as in Go's archive/tar; a stream that ends inside a header or a body is a FormatError.
 */
export async function* readTarEntries(
  source: AsyncIterable<Uint8Array>,
  options: ReadTarEntriesOptions = {},
): AsyncGenerator<LayerEntry, void, undefined> {
  // The work is in TarEntries, synchronous while the source chunk holds the bytes: this
  // generator only waits and yields (a small generator compiles and optimises far faster).
  const tar = new TarEntries(new ChunkReader(source), options.maxMetadataSize ?? DEFAULT_MAX_METADATA, options.signal);
  try {
    for (;;) {
      const next = tar.next();
      const entry = next instanceof Promise ? await next : next;
      if (entry === END) return;
      try {
        yield entry;
      } finally {
        tar.leaveEntry();
      }
    }
  } finally {
    await tar.close();
  }
}

/**
 * The reading side of the tar parser: headers, extended-header payloads and skipped bytes,
 * taken synchronously while the current source chunk holds them, with an async fallback for
 * the rest. Each step consumes its bytes whole or not at all, so a step that must wait is
 * finished asynchronously and parsing then goes on synchronously.
 */
class TarEntries {
  private readonly parser = new HeaderParser();
  /** The last regular file yielded, whose unread content and padding precede the next header. */
  private body: TarBody | null = null;

  constructor(
    private readonly reader: ChunkReader,
    private readonly maxMetadata: number,
    private readonly signal: AbortSignal | undefined,
  ) {}

  /** The next entry (END after the last), or a promise of it when bytes must be waited for. */
  next(): NextEntry | Promise<NextEntry> {
    const body = this.body;
    if (body !== null) {
      this.body = null;
      if (!this.reader.trySkip(body.remaining + padding(body.size))) {
        return this.continueAfter(skipData(this.reader, body.remaining, padding(body.size), body.where, body.dataOffset + body.size - body.remaining));
      }
    }
    for (;;) {
      throwIfAborted(this.signal);
      const headerOffset = this.reader.offset;
      const block = this.reader.tryReadExact(BLOCK_SIZE);
      const next = block !== null ? this.afterHeader(block, headerOffset) : this.afterHeaderAsync(headerOffset);
      if (next !== MORE) return next;
    }
  }

  /** Marks the entry last yielded as left: its content can no longer be read. */
  leaveEntry(): void {
    if (this.body !== null) this.body.current = false;
  }

  close(): Promise<void> {
    return this.reader.close();
  }

  private async continueAfter(wait: Promise<void>): Promise<NextEntry> {
    await wait;
    return this.next();
  }

  private async afterHeaderAsync(headerOffset: number): Promise<NextEntry> {
    const next = this.afterHeader(await this.reader.readExact(BLOCK_SIZE), headerOffset);
    return next === MORE ? this.next() : next;
  }

  /** Takes in a header block (empty or short at the end of input) and what follows it up to the entry. */
  private afterHeader(block: Buffer, headerOffset: number): NextEntry | typeof MORE | Promise<NextEntry> {
    const parser = this.parser;
    const reader = this.reader;
    if (block.length === 0 || (block.length === BLOCK_SIZE && isZeroBlock(block))) {
      parser.checkNothingPending(headerOffset);
      // End of archive. What follows the first zero block (the second one, record padding)
      // is read but ignored, so that digests computed on the source stream see it all.
      return block.length !== 0 ? reader.drain().then(() => END) : END;
    }
    parser.header(block, headerOffset);
    const dataOffset = headerOffset + BLOCK_SIZE;
    if (parser.extended) return this.afterExtendedHeader(dataOffset);
    const entry = parser.entry(block, headerOffset);
    const size = parser.size;
    const sparse = parser.takeSparse();
    if (sparse !== null) return this.sparseEntry(entry, sparse, dataOffset);
    if (entry.type === 'file') {
      const body = new TarBody(reader, parser.where, size, dataOffset);
      entry.content = body;
      entry.dataOffset = dataOffset;
      this.body = body;
      return entry;
    }
    // Types without data records (POSIX; as Go's archive/tar does): their size field is
    // informational. Regular files and GNU dump directories carry `size` bytes.
    const dataSize = parser.typeflag === TypeFlag.gnuDumpDir ? size : 0;
    if (reader.trySkip(dataSize + padding(dataSize))) return entry;
    return skipData(reader, dataSize, padding(dataSize), parser.where, dataOffset).then(() => entry);
  }

  /**
   * A sparse file (see tar-sparse.ts): the rest of its map (old GNU extension blocks, or the
   * PAX 1.0 map at the start of its data), then its content: the stored fragments with the
   * holes between them as zeros.
   */
  private async sparseEntry(entry: LayerEntry, spec: SparseSpec, dataOffset: number): Promise<LayerEntry> {
    const reader = this.reader;
    const where = this.parser.where;
    let stored = this.parser.size;
    let at = dataOffset;
    let fragments = spec.fragments;
    const nextBlock = async (): Promise<Buffer> => {
      if (at - dataOffset >= this.maxMetadata) {
        throw new FormatError('tar.sparse', `${where}: sparse map exceeds the ${this.maxMetadata}-byte limit`, { offset: at });
      }
      const block = reader.tryReadExact(BLOCK_SIZE) ?? (await reader.readExact(BLOCK_SIZE));
      if (block.length < BLOCK_SIZE) throw new FormatError('tar.sparse', `${where}: archive truncated inside the sparse map`, { offset: at });
      at += BLOCK_SIZE;
      return block;
    };
    if (spec.format === 'old-gnu') {
      for (let extended = spec.extended; extended; ) {
        const blockAt = at;
        const ext = oldGnuExtension(await nextBlock(), where, blockAt);
        fragments = fragments.concat(ext.fragments);
        extended = ext.extended;
      }
    } else if (spec.format === 'pax-1.0') {
      let text = '';
      for (let found = pax1Map(text, where, dataOffset); ; found = pax1Map(text, where, dataOffset)) {
        if (typeof found !== 'number') {
          fragments = found;
          break;
        }
        if (stored < BLOCK_SIZE) throw new FormatError('tar.sparse', `${where}: the sparse map runs past the entry's ${this.parser.size} bytes of data`, { offset: at });
        text += (await nextBlock()).toString('latin1');
        stored -= BLOCK_SIZE;
      }
    }
    checkSparseMap(fragments, entry.size, stored, where, dataOffset);
    const body = new TarBody(reader, where, stored, at);
    this.body = body;
    entry.content = sparseContent(body, fragments, entry.size);
    return entry;
  }

  private afterExtendedHeader(dataOffset: number): typeof MORE | Promise<NextEntry> {
    const parser = this.parser;
    const reader = this.reader;
    const size = parser.size;
    if (parser.typeflag === TypeFlag.gnuVolumeLabel) {
      if (!reader.trySkip(size + padding(size))) return this.continueAfter(skipData(reader, size, padding(size), parser.where, dataOffset).then(() => parser.reset()));
      parser.reset();
      return MORE;
    }
    const payload = payloadNow(reader, size, this.maxMetadata);
    if (payload === null) {
      return this.continueAfter(readPayload(reader, size, this.maxMetadata, parser.where, dataOffset).then((data) => parser.absorb(data, dataOffset)));
    }
    parser.absorb(payload, dataOffset);
    return MORE;
  }
}

/**
 * Skips `n` data bytes that the archive must contain, then up to `pad` bytes of padding. As in
 * Go's archive/tar, the stream may end inside or before the padding (umoci writes layers whose
 * last entry has neither padding nor end-of-archive blocks): the next header read then finds
 * the end of the input.
 */
async function skipData(reader: ChunkReader, n: number, pad: number, what: string, at: number): Promise<void> {
  if (reader.trySkip(n + pad)) return;
  const got = await reader.skip(n);
  if (got < n) {
    throw new FormatError('tar.entry.data', `${what}: archive truncated: ${got} of ${n} bytes present`, {
      offset: at,
    });
  }
  if (pad > 0) await reader.skip(pad);
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
  if (!reader.trySkip(pad)) await skipData(reader, 0, pad, what, at + size);
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
  /** The sparse map of the entry just read (see tar-sparse.ts), until taken. */
  private sparse: SparseSpec | null = null;

  /** The sparse spec of the entry just read, or null; cleared. */
  takeSparse(): SparseSpec | null {
    const spec = this.sparse;
    this.sparse = null;
    return spec;
  }

  /** Reads and checks a (non-zero, complete or truncated) header block. */
  header(block: Buffer, headerOffset: number): void {
    if (block.length < BLOCK_SIZE) {
      throw new FormatError('tar.header', `archive truncated inside a header: ${block.length} of ${BLOCK_SIZE} bytes present`, {
        offset: headerOffset,
      });
    }
    const rawName = readString(block, Field.name);
    const where = `entry "${printableFsName(rawName)}" (header at offset ${headerOffset})`;
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
    const sparseName = records.size > 0 ? records.get('GNU.sparse.name') : undefined;
    const paxSparseSpec = records.size > 0 ? paxSparse(records, `entry (header at offset ${headerOffset})`, dataOffset) : null;
    if (paxSparseSpec !== null && sparseName !== undefined && sparseName.length > 0) name = decodeFsName(sparseName);
    else if (paxPath !== undefined) name = decodeFsName(paxPath);
    else if (this.longName !== null) name = this.longName;
    else {
      name = rawName;
      if (isPosixUstar) {
        const prefix = readString(block, Field.prefix);
        if (prefix.length > 0) name = `${prefix}/${name}`;
      }
    }
    const paxLink = records.get('linkpath');
    const linkName = paxLink !== undefined ? decodeFsName(paxLink) : (this.longLink ?? readString(block, Field.linkname));
    const entryWhere = `entry "${printableFsName(name)}" (header at offset ${headerOffset})`;


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
        type = 'file';
        break;
      default:
        // Bad input like any other malformed header (exit code 2), as containerd's applier
        // refuses such entries too.
        throw new FormatError(
          'tar.header.typeflag',
          `${entryWhere}: unknown entry type ${JSON.stringify(String.fromCharCode(typeflag))} (0x${typeflag.toString(16)})`,
          { offset: headerOffset + Field.typeflag[0], value: typeflag },
        );
    }

    const paxSize = records.get('size');
    if (paxSize !== undefined) size = paxInteger(paxSize, 'size', entryWhere, dataOffset);
    // Sparse files: `size` is what the archive stores; the entry's size is the file's.
    const sparse = typeflag === TypeFlag.gnuSparse ? oldGnuSparse(block, entryWhere, headerOffset) : paxSparseSpec;
    if (sparse !== null && type !== 'file') {
      throw new FormatError('tar.sparse', `${entryWhere}: a sparse map on a ${type} entry`, { offset: dataOffset });
    }
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
      size: type !== 'file' ? 0 : sparse !== null && sparse.realSize >= 0 ? sparse.realSize : size,
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
    this.sparse = sparse;
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
  /** Bytes the consumer has not read yet. */
  remaining: number;
  /** False once the next entry was asked for: the content can no longer be read. */
  current = true;

  constructor(
    readonly reader: ChunkReader,
    readonly where: string,
    readonly size: number,
    readonly dataOffset: number,
  ) {
    this.remaining = size;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array, undefined> {
    return new BodyIterator(this);
  }

  [WHOLE_CONTENT](): Uint8Array | null {
    if (!this.current || this.remaining !== this.size) return null;
    if (this.size === 0) return NO_BYTES;
    const body = this.reader.tryReadExact(this.size);
    if (body !== null) this.remaining = 0;
    return body;
  }
}

/**
 * A file's content as subarrays of the source chunks. Hand-written rather than an async
 * generator: a piece already in the current source chunk costs one resolved promise.
 */
class BodyIterator implements AsyncIterator<Uint8Array, undefined> {
  constructor(private readonly body: TarBody) {}

  next(): Promise<IteratorResult<Uint8Array, undefined>> {
    const body = this.body;
    if (!body.current) {
      return Promise.reject(new NydusError('FAILED_PRECONDITION', `tar ${body.where}: content read after the next entry was requested`));
    }
    if (body.remaining === 0) return Promise.resolve({ done: true, value: undefined });
    const piece = body.reader.trySome(body.remaining);
    if (piece !== null) {
      body.remaining -= piece.length;
      return Promise.resolve({ done: false, value: piece });
    }
    return this.nextAsync();
  }

  private async nextAsync(): Promise<IteratorResult<Uint8Array, undefined>> {
    const body = this.body;
    const chunk = await body.reader.readSome(body.remaining);
    if (chunk === null) {
      throw new FormatError('tar.entry.data', `${body.where}: archive truncated: ${body.size - body.remaining} of ${body.size} content bytes present`, {
        offset: body.dataOffset + body.size - body.remaining,
      });
    }
    body.remaining -= chunk.length;
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
  return decodeFsName(data, 0, end < 0 ? data.length : end);
}

/** Parses PAX records: `"<len> <keyword>=<value>\n"`, where len counts the whole record. */
function parsePax(data: Buffer, where: string, offset: number): PaxRecords {
  const records: PaxRecords = new Map();
  const sparse: string[] = [];
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
    if (!isIgnoredTime(data, space + 1, eq)) {
      const key = data.toString('utf8', space + 1, eq);
      const value = data.subarray(eq + 1, pos + len - 1);
      if (key === 'GNU.sparse.offset' || key === 'GNU.sparse.numbytes') {
        // PAX sparse 0.0 repeats these two keywords, alternating: kept as a 0.1 map, as Go does.
        if ((sparse.length % 2 === 0) !== (key === 'GNU.sparse.offset') || value.includes(0x2c)) {
          throw new FormatError('tar.pax.record', `${where}: ${key} out of order in a sparse map`, { offset: offset + pos });
        }
        sparse.push(value.toString('latin1'));
      } else {
        records.set(key, value);
      }
    }
    pos += len;
  }
  if (sparse.length > 0) records.set('GNU.sparse.map', Buffer.from(sparse.join(','), 'latin1'));
  return records;
}

/**
 * True for the keywords `atime` and `ctime`, which GNU tar writes for every entry and layers
 * do not keep: left out of the records, they cost no strings or map entries.
 */
function isIgnoredTime(data: Buffer, start: number, end: number): boolean {
  const first = data[start];
  return (
    end - start === 5 &&
    (first === 0x61 || first === 0x63) &&
    data[start + 1] === 0x74 &&
    data[start + 2] === 0x69 &&
    data[start + 3] === 0x6d &&
    data[start + 4] === 0x65
  );
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
