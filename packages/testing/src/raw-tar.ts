/**
 * Hand-made tar headers for tests of malformed or unusual archives, written independently of
 * the project's tar writer.
 */
export interface RawHeader {
  name: string;
  typeflag?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: number;
  linkname?: string;
  /** 'ustar' (POSIX "ustar\0" "00", default), 'gnu' ("ustar " " \0") or 'v7' (no magic). */
  magic?: 'ustar' | 'gnu' | 'v7';
  prefix?: string;
  devmajor?: number;
  devminor?: number;
  /** Raw bytes to place over a numeric field instead of octal, e.g. base-256. */
  rawFields?: Partial<Record<'size' | 'uid' | 'gid' | 'mtime' | 'devmajor' | 'devminor', Uint8Array>>;
}

const offsets = { size: [124, 12], uid: [108, 8], gid: [116, 8], mtime: [136, 12], devmajor: [329, 8], devminor: [337, 8] } as const;

export function rawHeader(h: RawHeader): Buffer {
  const b = Buffer.alloc(512);
  b.write(h.name, 0, 100, 'utf8');
  const octal = (off: number, len: number, v: number): void => {
    b.write(v.toString(8).padStart(len - 1, '0'), off, len - 1, 'latin1');
  };
  octal(100, 8, h.mode ?? 0o644);
  octal(108, 8, h.uid ?? 0);
  octal(116, 8, h.gid ?? 0);
  octal(124, 12, h.size ?? 0);
  octal(136, 12, h.mtime ?? 1_700_000_000);
  b.write(h.typeflag ?? '0', 156, 1, 'latin1');
  if (h.linkname !== undefined) b.write(h.linkname, 157, 100, 'utf8');
  const magic = h.magic ?? 'ustar';
  if (magic === 'ustar') b.write('ustar\x0000', 257, 8, 'latin1');
  else if (magic === 'gnu') b.write('ustar  \x00', 257, 8, 'latin1');
  octal(329, 8, h.devmajor ?? 0);
  octal(337, 8, h.devminor ?? 0);
  if (h.prefix !== undefined) b.write(h.prefix, 345, 155, 'utf8');
  for (const [field, bytes] of Object.entries(h.rawFields ?? {})) {
    const [off, len] = offsets[field as keyof typeof offsets];
    b.fill(0, off, off + len);
    Buffer.from(bytes).copy(b, off);
  }
  return fixChecksum(b);
}

/** Recomputes the checksum of a (possibly tampered) header block in place. */
export function fixChecksum(b: Buffer): Buffer {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return b;
}

/** A PAX extended header ('x' or 'g') with the given records (values as bytes or strings). */
export function paxHeader(records: Array<[string, string | Uint8Array]>, typeflag: 'x' | 'g' = 'x'): Buffer {
  const body = Buffer.concat(
    records.map(([k, v]) => {
      const value = typeof v === 'string' ? Buffer.from(v) : Buffer.from(v);
      const base = Buffer.byteLength(k) + value.length + 3;
      let len = base + String(base).length;
      if (String(len).length !== String(base).length) len = base + String(len).length;
      return Buffer.concat([Buffer.from(`${len} ${k}=`), value, Buffer.from('\n')]);
    }),
  );
  return Buffer.concat([rawHeader({ name: 'PaxHeader', typeflag, size: body.length }), body, Buffer.alloc(pad(body.length))]);
}

/** A regular-file member: header, data and padding. */
export function fileMember(name: string, data: string | Uint8Array, extra: Partial<RawHeader> = {}): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
  return Buffer.concat([rawHeader({ name, size: bytes.length, ...extra }), bytes, Buffer.alloc(pad(bytes.length))]);
}

export function pad(n: number): number {
  return (512 - (n % 512)) % 512;
}

export const END = Buffer.alloc(1024);
