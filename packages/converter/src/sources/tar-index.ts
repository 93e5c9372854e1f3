import { open, type FileHandle } from 'node:fs/promises';
import { FormatError, NotFoundError, throwIfAborted } from '@nydus-ts/core';
import { BLOCK_SIZE, Field, TypeFlag, headerChecksum, headerChecksumSigned, isZeroBlock, readNumber, readString } from '@nydus-ts/image/internal';

/** Where one regular-file member's data lies in a tar file. */
export interface TarMember {
  /** Normalised member name (no leading `./` or `/`). */
  name: string;
  /** Absolute offset of the first data byte. */
  offset: number;
  size: number;
}

/** Regular-file members of a tar file by normalised name (the last one of a name wins, as tar extracts). */
export type TarIndex = Map<string, TarMember>;

/** Largest PAX / GNU long-name payload read (member names, not data). */
const MAX_EXTENDED_HEADER = 1 << 20;

/** `./blobs//sha256/x` → `blobs/sha256/x`. */
export function normalizeMemberName(name: string): string {
  return name.split('/').filter((c) => c !== '' && c !== '.').join('/');
}

/**
 * Indexes a tar file by reading its headers only: each member's data is seeked past, never
 * read, so a multi-gigabyte archive costs one 512-byte read per member. Handles ustar/GNU/PAX
 * names (PAX `path`/`size`, GNU `L` long names, ustar prefix). A member whose data would end
 * past the end of the file — a truncated archive — is a FormatError naming it.
 */
export async function indexTarFile(file: string, signal?: AbortSignal): Promise<TarIndex> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new NotFoundError(`archive ${file}: no such file`, { cause: err });
    throw err;
  }
  try {
    const fileSize = (await fh.stat()).size;
    const index: TarIndex = new Map();
    const block = Buffer.alloc(BLOCK_SIZE);
    let pos = 0;
    let paxPath: string | undefined;
    let paxSize: number | undefined;
    let longName: string | undefined;
    const readAt = async (buf: Buffer, at: number, what: string): Promise<void> => {
      let done = 0;
      while (done < buf.length) {
        const { bytesRead } = await fh.read(buf, done, buf.length - done, at + done);
        if (bytesRead === 0) {
          throw new FormatError('tar', `archive ${file} is truncated: ${what} at offset ${at} needs ${buf.length} bytes, the file ends at ${fileSize}`, { offset: at + done });
        }
        done += bytesRead;
      }
    };
    for (;;) {
      throwIfAborted(signal);
      if (pos === fileSize) break; // end-of-archive blocks are optional
      if (pos + BLOCK_SIZE > fileSize) {
        throw new FormatError('tar.header', `archive ${file} is truncated inside a header at offset ${pos} (file size ${fileSize})`, { offset: pos });
      }
      await readAt(block, pos, 'header');
      if (isZeroBlock(block)) break;
      const rawName = readString(block, Field.name);
      const where = `archive ${file}: member "${rawName}" (header at offset ${pos})`;
      const stored = readNumber(block, 'chksum', where, pos);
      if (stored !== headerChecksum(block) && stored !== headerChecksumSigned(block)) {
        throw new FormatError('tar.header.chksum', `${where}: header checksum mismatch; not a tar archive or corrupt`, { offset: pos + Field.chksum[0] });
      }
      const typeflag = block[Field.typeflag[0]]!;
      let size = readNumber(block, 'size', where, pos);
      const dataOffset = pos + BLOCK_SIZE;
      const next = dataOffset + size + pad(size);
      const readPayload = async (): Promise<Buffer> => {
        if (size > MAX_EXTENDED_HEADER) throw new FormatError('tar.header.size', `${where}: ${size}-byte extended header is too large`, { offset: pos, value: size });
        const buf = Buffer.alloc(size);
        await readAt(buf, dataOffset, `extended header of ${where}`);
        return buf;
      };
      if (typeflag === TypeFlag.paxExtended) {
        const records = parsePaxRecords(await readPayload(), where);
        paxPath = records.get('path') ?? paxPath;
        const s = records.get('size');
        if (s !== undefined) {
          if (!/^[0-9]{1,16}$/.test(s)) throw new FormatError('tar.pax.size', `${where}: invalid PAX size "${s}"`, { offset: dataOffset });
          paxSize = Number(s);
        }
        pos = next;
        continue;
      }
      if (typeflag === TypeFlag.gnuLongName) {
        const payload = await readPayload();
        const nul = payload.indexOf(0);
        longName = payload.toString('utf8', 0, nul < 0 ? payload.length : nul);
        pos = next;
        continue;
      }
      if (typeflag === TypeFlag.paxGlobal || typeflag === TypeFlag.gnuLongLink) {
        pos = next;
        continue;
      }
      let name = paxPath ?? longName ?? rawName;
      if (paxPath === undefined && longName === undefined && block.toString('latin1', 257, 263) === 'ustar\0') {
        const prefix = readString(block, Field.prefix);
        if (prefix) name = `${prefix}/${name}`;
      }
      if (paxSize !== undefined) size = paxSize;
      paxPath = undefined;
      paxSize = undefined;
      longName = undefined;
      const isFile = typeflag === TypeFlag.regular || typeflag === TypeFlag.regularOld || typeflag === TypeFlag.contiguous;
      const dataSize = isFile ? size : 0;
      if (dataOffset + dataSize > fileSize) {
        throw new FormatError('tar.entry.data', `archive ${file} is truncated: member "${name}" needs ${dataSize} bytes at offset ${dataOffset}, the file ends at ${fileSize}`, { offset: dataOffset, value: size });
      }
      if (isFile && !name.endsWith('/')) {
        const normalized = normalizeMemberName(name);
        index.set(normalized, { name: normalized, offset: dataOffset, size });
      }
      pos = dataOffset + dataSize + pad(dataSize);
    }
    return index;
  } finally {
    await fh.close();
  }
}

function pad(n: number): number {
  const r = n % BLOCK_SIZE;
  return r === 0 ? 0 : BLOCK_SIZE - r;
}

function parsePaxRecords(data: Buffer, where: string): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length && data[pos] !== 0) {
    const space = data.indexOf(0x20, pos);
    const len = space < 0 ? NaN : Number(data.toString('latin1', pos, space));
    if (!(len > 0) || pos + len > data.length) throw new FormatError('tar.pax.record', `${where}: malformed PAX record at byte ${pos}`);
    const record = data.toString('utf8', space + 1, pos + len - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}
