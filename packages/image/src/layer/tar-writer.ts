import { InvalidArgumentError, UnsupportedError, noopLogger, throwIfAborted, type Logger } from '@nydus-ts/core';
import { isUtf8 } from 'node:buffer';
import { encodeFsName, type LayerEntry } from '@nydus-ts/format';
import { BLOCK_SIZE, Field, TypeFlag, headerChecksum, maxOctal, normalizeTarPath, type FieldName } from './tar-header.js';

export interface WriteTarEntriesOptions {
  signal?: AbortSignal;
  /** Sockets cannot be stored in tar; they are skipped with a warning here. */
  logger?: Logger;
}

/**
 * Serialises layer entries as a POSIX (PAX) tar stream. Plain ustar headers are used whenever
 * the entry fits; a PAX extended header is added for names over ustar's limits, non-ASCII
 * names and link targets (raw bytes, with `hdrcharset=BINARY` when they are not UTF-8), numbers too large for octal fields (which also get GNU base-256
 * values, for readers without PAX), and extended attributes (`SCHILY.xattr.<name>`, raw
 * value bytes, as GNU tar and Go write them). Device numbers that do not fit octal use
 * base-256. File content is passed through without copying and must yield exactly `size`
 * bytes. The stream ends with two zero blocks.
 */
export async function* writeTarEntries(
  entries: AsyncIterable<LayerEntry>,
  options: WriteTarEntriesOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const logger = options.logger ?? noopLogger;
  for await (const entry of entries) {
    throwIfAborted(options.signal);
    if (entry.type === 'socket') {
      logger.warn('tar writer: socket skipped (tar cannot store sockets)', { path: entry.path });
      continue;
    }
    yield encodeTarHeader(entry);
    if (entry.type !== 'file') continue;
    let written = 0;
    if (entry.content !== undefined) {
      for await (const chunk of entry.content) {
        written += chunk.length;
        if (written > entry.size) break;
        yield chunk;
      }
    }
    if (written !== entry.size) {
      throw new InvalidArgumentError(
        `tar writer: entry "${entry.path}": content ${written > entry.size ? 'exceeds' : `has ${written} bytes, less than`} its size ${entry.size}`,
      );
    }
    const pad = padding(entry.size);
    if (pad > 0) yield Buffer.alloc(pad);
  }
  yield Buffer.alloc(2 * BLOCK_SIZE);
}

/**
 * The header blocks of one entry: an optional PAX extended header (header block plus records,
 * padded) followed by the ustar header. Exported for tests of the numeric encodings.
 */
export function encodeTarHeader(entry: LayerEntry): Buffer {
  if (normalizeTarPath(entry.path, `"${entry.path}"`) !== entry.path) {
    throw new InvalidArgumentError(`tar writer: entry path "${entry.path}" is not a normalised layer path`);
  }
  const pax: Array<[string, Buffer]> = [];
  const block = Buffer.alloc(BLOCK_SIZE);

  // Name: root → "./", directories end in "/".
  const name = entry.path === '' ? './' : entry.type === 'directory' ? `${entry.path}/` : entry.path;
  if (!writeName(block, name)) pax.push(['path', encodeFsName(name)]);

  let typeflag: number;
  let size = 0;
  switch (entry.type) {
    case 'file':
      typeflag = TypeFlag.regular;
      size = entry.size;
      break;
    case 'directory':
      typeflag = TypeFlag.directory;
      break;
    case 'symlink':
      typeflag = TypeFlag.symlink;
      break;
    case 'hardlink':
      typeflag = TypeFlag.hardlink;
      break;
    case 'char-device':
      typeflag = TypeFlag.charDevice;
      break;
    case 'block-device':
      typeflag = TypeFlag.blockDevice;
      break;
    case 'fifo':
      typeflag = TypeFlag.fifo;
      break;
    default:
      throw new UnsupportedError(`tar writer: entry "${entry.path}" has type ${entry.type}, which tar cannot store`);
  }
  block[Field.typeflag[0]] = typeflag;

  if (entry.type === 'symlink' || entry.type === 'hardlink') {
    const target = entry.linkTarget;
    if (target === undefined || target === '') {
      throw new InvalidArgumentError(`tar writer: ${entry.type} "${entry.path}" has no link target`);
    }
    if (isAscii(target) && target.length <= Field.linkname[1]) {
      block.write(target, Field.linkname[0], Field.linkname[1], 'latin1');
    } else {
      pax.push(['linkpath', encodeFsName(target)]);
      block.write(asciiPrefix(target, Field.linkname[1]), Field.linkname[0], 'latin1');
    }
  }

  checkInteger(entry, 'mode', entry.mode, 0, 0xffffffff);
  writeNumber(block, 'mode', entry.mode & 0o7777);
  const big = (field: FieldName, key: string, value: number, min: number): void => {
    checkInteger(entry, key, value, min, Number.MAX_SAFE_INTEGER);
    if (value < 0 || value > maxOctal(Field[field][1])) pax.push([key, Buffer.from(String(value))]);
    writeNumber(block, field, value);
  };
  big('uid', 'uid', entry.uid, 0);
  big('gid', 'gid', entry.gid, 0);
  big('size', 'size', size, 0);
  big('mtime', 'mtime', entry.mtime, Number.MIN_SAFE_INTEGER);
  if (entry.type === 'char-device' || entry.type === 'block-device') {
    const major = entry.devMajor ?? 0;
    const minor = entry.devMinor ?? 0;
    checkInteger(entry, 'devMajor', major, 0, 0xffffffff);
    checkInteger(entry, 'devMinor', minor, 0, 0xffffffff);
    writeNumber(block, 'devmajor', major);
    writeNumber(block, 'devminor', minor);
  }
  block.write('ustar\x0000', Field.magic[0], 8, 'latin1');

  if (entry.xattrs !== undefined) {
    for (const [key, value] of entry.xattrs) {
      if (key.length === 0 || key.includes('=') || key.includes('\0')) {
        throw new InvalidArgumentError(`tar writer: entry "${entry.path}": xattr name ${JSON.stringify(key)} cannot be stored in PAX`);
      }
      pax.push([`SCHILY.xattr.${key}`, Buffer.from(value.buffer, value.byteOffset, value.byteLength)]);
    }
  }
  writeChecksum(block);
  if (pax.length === 0) return block;

  // Names that are not UTF-8 go in as raw bytes, flagged as POSIX asks (GNU tar then keeps
  // them as they are; Go's archive/tar reads them raw anyway).
  if (pax.some(([k, v]) => (k === 'path' || k === 'linkpath') && !isUtf8(v))) pax.unshift(['hdrcharset', Buffer.from('BINARY')]);
  const payload = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)));
  const paxHeader = Buffer.alloc(BLOCK_SIZE);
  const base = entry.path === '' ? '.' : entry.path.slice(entry.path.lastIndexOf('/') + 1);
  paxHeader.write(asciiPrefix(`PaxHeaders/${base}`, Field.name[1]), Field.name[0], 'latin1');
  paxHeader[Field.typeflag[0]] = TypeFlag.paxExtended;
  writeNumber(paxHeader, 'mode', 0o644);
  writeNumber(paxHeader, 'size', payload.length);
  writeNumber(paxHeader, 'mtime', Math.min(Math.max(entry.mtime, 0), maxOctal(Field.mtime[1])));
  paxHeader.write('ustar\x0000', Field.magic[0], 8, 'latin1');
  writeChecksum(paxHeader);
  return Buffer.concat([paxHeader, payload, Buffer.alloc(padding(payload.length)), block]);
}

function padding(size: number): number {
  const r = size % BLOCK_SIZE;
  return r === 0 ? 0 : BLOCK_SIZE - r;
}

function isAscii(s: string): boolean {
  return /^[\x01-\x7f]*$/.test(s);
}

/** A printable stand-in for a header field whose real value is in a PAX record. */
function asciiPrefix(s: string, max: number): string {
  return s.replace(/[^\x20-\x7e]/g, '_').slice(0, max);
}

/** Stores a name in the ustar name/prefix fields; false if it needs a PAX `path` record. */
function writeName(block: Buffer, name: string): boolean {
  const [nameOff, nameLen] = Field.name;
  const [prefixOff, prefixLen] = Field.prefix;
  const ascii = isAscii(name);
  if (ascii && name.length <= nameLen) {
    block.write(name, nameOff, 'latin1');
    return true;
  }
  if (ascii) {
    // Split at a '/' so that prefix ≤ 155 and the rest (non-empty) ≤ 100 bytes.
    for (let i = Math.max(name.length - nameLen - 1, 1); i <= prefixLen && i < name.length - 1; i++) {
      if (name.charCodeAt(i) === 0x2f) {
        block.write(name.slice(0, i), prefixOff, 'latin1');
        block.write(name.slice(i + 1), nameOff, 'latin1');
        return true;
      }
    }
  }
  block.write(asciiPrefix(name, nameLen), nameOff, 'latin1');
  return false;
}

/** Octal with a NUL terminator when it fits, GNU base-256 otherwise (negative: 0xff-led). */
function writeNumber(block: Buffer, field: FieldName, value: number): void {
  const [off, len] = Field[field];
  if (value >= 0 && value <= maxOctal(len)) {
    block.write(value.toString(8).padStart(len - 1, '0'), off, len - 1, 'latin1');
    block[off + len - 1] = 0;
    return;
  }
  let v = BigInt(value);
  if (v < 0n) v += 1n << BigInt(8 * len);
  for (let i = len - 1; i >= 0; i--) {
    block[off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  block[off] = value < 0 ? 0xff : 0x80;
}

function writeChecksum(block: Buffer): void {
  const unsigned = headerChecksum(block);
  const [off] = Field.chksum;
  block.write(unsigned.toString(8).padStart(6, '0'), off, 6, 'latin1');
  block[off + 6] = 0;
  block[off + 7] = 0x20;
}

/** One PAX record: `"<len> <key>=<value>\n"`, len counting the whole record including itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const base = 3 + Buffer.byteLength(key) + value.length;
  let len = base + 1;
  while (String(len).length + base !== len) len++;
  const head = Buffer.from(`${len} ${key}=`, 'utf8');
  return Buffer.concat([head, value, Buffer.from('\n')]);
}

function checkInteger(entry: LayerEntry, what: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`tar writer: entry "${entry.path}": ${what} ${value} is out of range [${min}, ${max}]`);
  }
}
