import { DigestMismatchError, FormatError, NotFoundError, NydusError, UnsupportedError, throwIfAborted } from '@nydus-ts/core';
import { createHash } from 'node:crypto';
import { TAR_HEADER_SIZE, TOC_ENTRY_SIZE, TocFlags, TocNames, decodeTailTarHeader, decodeTocEntry, type TocEntry } from '../layout/toc.js';
import { readExact, type ByteSource } from './byte-source.js';
import { decompressChunk } from '../compression.js';

/** Largest ToC accepted (entries + tar header); real ones hold at most a handful of entries. */
export const MAX_TOC_SIZE = 1024 * 1024;
/** Without a known location, readers look for the ToC in the last this many bytes first. */
export const TOC_TAIL_PROBE_SIZE = 4096;
/** Default cap on an extracted section. */
export const DEFAULT_MAX_SECTION_SIZE = 1024 * 1024 * 1024;

/** A blob's table of contents (spec §3.6). */
export interface BlobToc {
  entries: TocEntry[];
  /** Absolute offset of the ToC (its first entry) in the blob, when known. */
  offset: number | undefined;
  /** Entries + the `rafs.blob.toc` tar header, i.e. the blob table's `blob_toc_size`. */
  size: number;
  /** sha256 (hex) of entries + tar header, i.e. the blob table's `blob_toc_digest`. */
  digest: string;
}

/** Where a ToC lies, as a blob table entry records it (`blob_toc_size`, `blob_toc_digest`). */
export interface BlobTocLocation {
  offset: number;
  size: number;
  /** Expected sha256 (hex, optionally `sha256:`-prefixed); all zeros means unknown. */
  digest?: string;
}

/** A section of a blob found by walking its tail tar headers (spec §3.1). */
export interface BlobTailSection {
  name: string;
  /** Offset of the section's content. */
  offset: number;
  size: number;
  /** Offset of the 512-byte tar header that follows (and describes) the content. */
  headerOffset: number;
}

function normaliseDigest(d: string): string {
  return (d.startsWith('sha256:') ? d.slice(7) : d).toLowerCase();
}

/**
 * Parses a ToC: 128-byte entries followed by the `rafs.blob.toc` tar header. With
 * `expectedDigest` (non-zero), the sha256 over all of it must match (DigestMismatchError).
 */
export function parseBlobToc(bytes: Uint8Array, options: { expectedDigest?: string; offset?: number } = {}): BlobToc {
  const size = bytes.byteLength;
  const base = options.offset ?? 0;
  if (size < TAR_HEADER_SIZE || (size - TAR_HEADER_SIZE) % TOC_ENTRY_SIZE !== 0 || size > MAX_TOC_SIZE) {
    throw new FormatError('toc', `${size} bytes are not 128-byte entries plus a 512-byte tar header`, { offset: options.offset, value: size });
  }
  const digest = createHash('sha256').update(bytes).digest('hex');
  const expected = options.expectedDigest === undefined ? undefined : normaliseDigest(options.expectedDigest);
  if (expected !== undefined && !/^0{64}$/.test(expected) && expected !== digest) {
    throw new DigestMismatchError('blob ToC', expected, digest);
  }
  const headerOffset = size - TAR_HEADER_SIZE;
  const header = decodeTailTarHeader(bytes.subarray(headerOffset));
  if (header === undefined || header.name !== TocNames.TOC) {
    throw new FormatError('toc.tar_header', `no valid "${TocNames.TOC}" tar header after the entries`, { offset: base + headerOffset, value: header?.name });
  }
  if (header.size !== headerOffset) {
    throw new FormatError('toc.tar_header.size', `tar header says ${header.size} bytes of entries, there are ${headerOffset}`, { offset: base + headerOffset + 124, value: header.size });
  }
  const entries: TocEntry[] = [];
  const names = new Set<string>();
  for (let i = 0; i < headerOffset / TOC_ENTRY_SIZE; i++) {
    const e = decodeTocEntry(bytes, i * TOC_ENTRY_SIZE, base + i * TOC_ENTRY_SIZE, i);
    if (e.name === '' || names.has(e.name)) {
      throw new FormatError(`toc[${i}].name`, e.name === '' ? 'empty name' : `duplicate name "${e.name}"`, { offset: base + i * TOC_ENTRY_SIZE + 8, value: e.name });
    }
    names.add(e.name);
    // image.blob's offset is its start in current blobs but its end in 2.2-era ones.
    const end = e.name === TocNames.BLOB ? e.compressedOffset : e.compressedOffset + e.compressedSize;
    if (options.offset !== undefined && end > options.offset) {
      throw new FormatError(`toc[${i}].compressed_offset`, `section "${e.name}" [${e.compressedOffset}, +${e.compressedSize}) overlaps the ToC at ${options.offset}`, {
        offset: base + i * TOC_ENTRY_SIZE + 56,
        value: e.compressedOffset,
      });
    }
    entries.push(e);
  }
  return { entries, offset: options.offset, size, digest };
}

/**
 * Reads a blob's ToC. With a location (from the blob table), exactly that range is read and
 * its digest checked. Without one, the last `min(4096, size)` bytes are read and the ToC is
 * found through the `rafs.blob.toc` tar header at the very end.
 */
export async function readBlobToc(source: ByteSource, location?: BlobTocLocation, options: { signal?: AbortSignal } = {}): Promise<BlobToc> {
  throwIfAborted(options.signal);
  if (location !== undefined) {
    const { offset, size } = location;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset < 0 || size < 0 || offset + size > source.size) {
      throw new FormatError('toc', `ToC [${offset}, +${size}) lies outside the blob's ${source.size} bytes`, { offset, value: size });
    }
    if (size > MAX_TOC_SIZE) throw new FormatError('toc', `ToC of ${size} bytes exceeds ${MAX_TOC_SIZE}`, { offset, value: size });
    const bytes = await readExact(source, 'blob ToC', offset, size, options.signal);
    return parseBlobToc(bytes, { expectedDigest: location.digest, offset });
  }
  if (source.size < TAR_HEADER_SIZE) throw new FormatError('toc', `blob of ${source.size} bytes is too small to end with a ToC`, { value: source.size });
  const probe = Math.min(TOC_TAIL_PROBE_SIZE, source.size);
  const tail = await readExact(source, 'blob tail', source.size - probe, probe, options.signal);
  const header = decodeTailTarHeader(tail.subarray(probe - TAR_HEADER_SIZE));
  if (header === undefined || header.name !== TocNames.TOC) {
    throw new FormatError('toc', `the blob does not end with a "${TocNames.TOC}" tar header`, { offset: source.size - TAR_HEADER_SIZE, value: header?.name });
  }
  const size = header.size + TAR_HEADER_SIZE;
  if (size > source.size || size > MAX_TOC_SIZE) {
    throw new FormatError('toc.tar_header.size', `ToC of ${header.size} bytes does not fit the blob (${source.size} bytes) or the ${MAX_TOC_SIZE}-byte limit`, {
      offset: source.size - TAR_HEADER_SIZE + 124,
      value: header.size,
    });
  }
  const offset = source.size - size;
  const bytes = size <= probe ? tail.subarray(probe - size) : await readExact(source, 'blob ToC', offset, size, options.signal);
  return parseBlobToc(bytes, { offset });
}

/**
 * Lists a blob's sections by walking its tail tar headers from the end (spec §3.1): the header
 * at `cur` describes `[cur − size, cur)`; the walk ends when it reaches offset 0. Sections
 * are returned in file order. A blob whose last 512 bytes are not a tar header has no tail
 * sections (empty list); a broken header further in is a FormatError.
 */
export async function walkBlobTail(source: ByteSource, options: { signal?: AbortSignal } = {}): Promise<BlobTailSection[]> {
  const sections: BlobTailSection[] = [];
  let cur = source.size - TAR_HEADER_SIZE;
  while (cur >= 0) {
    throwIfAborted(options.signal);
    const header = decodeTailTarHeader(await readExact(source, 'blob tail header', cur, TAR_HEADER_SIZE, options.signal));
    if (header === undefined) {
      if (sections.length === 0) return [];
      throw new FormatError('blob.tail', `no valid tar header at ${cur} (expected one before section "${sections[0]!.name}")`, { offset: cur });
    }
    if (header.size > cur) {
      throw new FormatError('blob.tail', `section "${header.name}" of ${header.size} bytes starts before the beginning of the blob`, { offset: cur + 124, value: header.size });
    }
    sections.unshift({ name: header.name, offset: cur - header.size, size: header.size, headerOffset: cur });
    cur -= header.size + TAR_HEADER_SIZE;
  }
  if (cur !== -TAR_HEADER_SIZE) {
    throw new FormatError('blob.tail', `the first section "${sections[0]!.name}" does not start at offset 0`, { offset: sections[0]!.offset });
  }
  return sections;
}

/**
 * Returns the uncompressed bytes of the ToC section `name` with its sha256 verified. Sections
 * are stored raw, zstd- or (the CI array of lz4_block blobs) lz4_block-compressed. For `image.blob` (raw chunk data, whose ToC digest covers
 * the data plus its tar header) the chunk data itself is returned.
 */
export async function extractBlobSection(
  source: ByteSource,
  toc: BlobToc,
  name: string,
  options: { maxSize?: number; signal?: AbortSignal } = {},
): Promise<Uint8Array> {
  const entry = toc.entries.find((e) => e.name === name);
  if (entry === undefined) throw new NotFoundError(`blob ToC has no "${name}" section (it has ${toc.entries.map((e) => e.name).join(', ')})`);
  const maxSize = options.maxSize ?? DEFAULT_MAX_SECTION_SIZE;
  const limit = toc.offset ?? source.size;
  const what = `toc section "${name}"`;
  if (name === TocNames.BLOB) {
    if (entry.compressedSize > maxSize) throw new NydusError('RESOURCE_EXHAUSTED', `${what} of ${entry.compressedSize} bytes exceeds the ${maxSize}-byte limit`);
    const start = await locateImageBlob(source, entry, limit, options.signal);
    const bytes = await readExact(source, what, start, entry.compressedSize + TAR_HEADER_SIZE, options.signal);
    verify(what, entry.digest, bytes);
    return bytes.subarray(0, entry.compressedSize);
  }
  if (entry.compressedOffset + entry.compressedSize > limit) {
    throw new FormatError(what, `[${entry.compressedOffset}, +${entry.compressedSize}) lies beyond ${limit}`, { offset: entry.compressedOffset, value: entry.compressedSize });
  }
  if (entry.uncompressedSize > maxSize || entry.compressedSize > maxSize) {
    throw new NydusError('RESOURCE_EXHAUSTED', `${what} of ${Math.max(entry.uncompressedSize, entry.compressedSize)} bytes exceeds the ${maxSize}-byte limit`);
  }
  const raw = await readExact(source, what, entry.compressedOffset, entry.compressedSize, options.signal);
  let data: Uint8Array;
  switch (entry.flags & 0xf) {
    case TocFlags.NONE:
      if (entry.compressedSize !== entry.uncompressedSize) {
        throw new FormatError(what, `uncompressed section with sizes ${entry.compressedSize} != ${entry.uncompressedSize}`, { value: entry.compressedSize });
      }
      data = raw;
      break;
    case TocFlags.ZSTD:
      data = decompressChunk('zstd', raw, entry.uncompressedSize, what);
      break;
    case TocFlags.LZ4_BLOCK:
      // The CI array of an lz4_block blob is compressed with the blob's compressor.
      data = decompressChunk('lz4_block', raw, entry.uncompressedSize, what);
      break;
    default:
      throw new UnsupportedError(`${what}: compression flags 0x${entry.flags.toString(16)} (only none, zstd and lz4_block sections can be extracted)`);
  }
  verify(what, entry.digest, data);
  return data;
}

/** image.blob's ToC offset is the data start (current builders) or its end (2.2-era). */
async function locateImageBlob(source: ByteSource, entry: TocEntry, limit: number, signal?: AbortSignal): Promise<number> {
  const headerMatches = async (at: number): Promise<boolean> => {
    if (at < 0 || at + TAR_HEADER_SIZE > limit) return false;
    const h = decodeTailTarHeader(await readExact(source, 'image.blob tar header', at, TAR_HEADER_SIZE, signal));
    return h !== undefined && h.name === TocNames.BLOB && h.size === entry.compressedSize;
  };
  if (await headerMatches(entry.compressedOffset + entry.compressedSize)) return entry.compressedOffset;
  if (entry.compressedOffset >= entry.compressedSize && (await headerMatches(entry.compressedOffset))) return entry.compressedOffset - entry.compressedSize;
  throw new FormatError('toc section "image.blob"', `no "image.blob" tar header after the ${entry.compressedSize}-byte section at ${entry.compressedOffset}`, {
    offset: entry.compressedOffset,
  });
}

function verify(what: string, expected: string, data: Uint8Array): void {
  const actual = createHash('sha256').update(data).digest('hex');
  if (actual !== expected) throw new DigestMismatchError(what, expected, actual);
}
