import { FormatError } from '@nydus-ts/core';
import { LeReader, LeWriter } from './bytes.js';
import { XATTR_ENTRY_HEADER_SIZE, XATTR_HEADER_SIZE, alignUp } from './constants.js';

/** EROFS xattr name prefixes by index (spec §1.11). Longest prefix first for encoding. */
const XATTR_PREFIXES: ReadonlyArray<readonly [number, string]> = [
  [2, 'system.posix_acl_access'],
  [3, 'system.posix_acl_default'],
  [1, 'user.'],
  [4, 'trusted.'],
  [6, 'security.'],
];
const PREFIX_BY_INDEX = new Map<number, string>([...XATTR_PREFIXES, [5, 'lustre.']]);

export const MAX_XATTR_NAME_SUFFIX = 255;
export const MAX_XATTR_VALUE_SIZE = 65535;

export function splitXattrName(name: string): { index: number; suffix: Uint8Array } {
  for (const [index, prefix] of XATTR_PREFIXES) {
    if (name.startsWith(prefix)) {
      const suffix = Buffer.from(name.slice(prefix.length), 'utf8');
      if ((index === 2 || index === 3) && suffix.length !== 0) continue;
      return { index, suffix };
    }
  }
  throw new FormatError('xattr.name', `unsupported xattr name "${name}" (only user., trusted., security. and POSIX ACLs)`, { value: name });
}

/**
 * Encodes inline xattrs: a 12-byte header, then `name_len u8, name_index u8, value_size u16,
 * suffix, value`, each entry padded to 4 bytes. Entries are sorted by name so output is stable.
 */
export function encodeXattrs(xattrs: ReadonlyMap<string, Uint8Array>): { bytes: Uint8Array; icount: number } {
  if (xattrs.size === 0) return { bytes: new Uint8Array(0), icount: 0 };
  const entries = [...xattrs.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const parts = entries.map(([name, value]) => {
    const { index, suffix } = splitXattrName(name);
    if (suffix.length > MAX_XATTR_NAME_SUFFIX) throw new FormatError('xattr.name', `xattr name "${name}" is too long`, { value: name });
    if (value.length > MAX_XATTR_VALUE_SIZE) throw new FormatError('xattr.value', `xattr "${name}" value of ${value.length} bytes exceeds 64 KiB`, { value: name });
    return { index, suffix, value };
  });
  const size = XATTR_HEADER_SIZE + parts.reduce((n, p) => n + alignUp(XATTR_ENTRY_HEADER_SIZE + p.suffix.length + p.value.length, 4), 0);
  const w = new LeWriter(size);
  let off = XATTR_HEADER_SIZE;
  for (const p of parts) {
    w.u8(off, p.suffix.length).u8(off + 1, p.index).u16(off + 2, p.value.length);
    w.set(off + 4, p.suffix).set(off + 4 + p.suffix.length, p.value);
    off += alignUp(XATTR_ENTRY_HEADER_SIZE + p.suffix.length + p.value.length, 4);
  }
  return { bytes: w.bytes, icount: (size - XATTR_HEADER_SIZE) / 4 + 1 };
}

/** Decodes an inline xattr area (header included). */
export function decodeXattrs(area: Uint8Array, absOffset: number, nid: number): Map<string, Uint8Array> {
  const what = `inode[nid ${nid}].xattrs`;
  const r = new LeReader(area, what, absOffset);
  const sharedCount = r.u8(4, 'h_shared_count');
  if (sharedCount !== 0) throw new FormatError(`${what}.h_shared_count`, `shared xattrs are not supported (${sharedCount})`, { offset: absOffset + 4 });
  const out = new Map<string, Uint8Array>();
  let off = XATTR_HEADER_SIZE;
  while (off < area.length) {
    const nameLen = r.u8(off, 'e_name_len');
    const index = r.u8(off + 1, 'e_name_index');
    const valueSize = r.u16(off + 2, 'e_value_size');
    const prefix = PREFIX_BY_INDEX.get(index);
    if (prefix === undefined) throw new FormatError(`${what}.e_name_index`, `unknown prefix index ${index}`, { offset: absOffset + off + 1, value: index });
    const suffix = r.slice(off + 4, nameLen, 'name');
    const value = r.slice(off + 4 + nameLen, valueSize, 'value');
    out.set(prefix + Buffer.from(suffix).toString('utf8'), value.slice());
    off += alignUp(XATTR_ENTRY_HEADER_SIZE + nameLen + valueSize, 4);
  }
  return out;
}
