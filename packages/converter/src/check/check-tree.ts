/**
 * The filesystem model check compares: one record per absolute path with what matters to a
 * container (type, permission bits, owner, size, link target, device number, xattrs, content
 * digest, hardlink group). Both sides (source layers, Nydus bootstrap) are reduced to this.
 */
export type CheckNodeType = 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo' | 'socket';

export interface CheckAttrs {
  type: CheckNodeType;
  /** Permission bits incl. setuid/setgid/sticky (`& 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files: content length. */
  size: number;
  /** Symlinks. */
  linkTarget?: string;
  /** Devices. */
  rdev?: { major: number; minor: number };
  /** xattr name → value (hex). */
  xattrs: Map<string, string>;
  /** Regular files: hex sha256 of the content; undefined until computed or if unreadable. */
  sha256?: string;
  /** Regular files: why the content could not be read (target side). */
  unreadable?: string;
}

export interface CheckEntry {
  path: string;
  attrs: CheckAttrs;
  /** Regular files with more than one name: every surviving name of the inode, sorted. */
  links?: string[];
}

export type CheckTree = Map<string, CheckEntry>;

export function xattrMap(xattrs: ReadonlyMap<string, Uint8Array> | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (xattrs) for (const [k, v] of xattrs) out.set(k, Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex'));
  return out;
}

/** Printable form of an xattr value: a JSON string when it is text, else `0x…`. */
export function formatXattrValue(hex: string): string {
  const b = Buffer.from(hex, 'hex');
  const text = b.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(b) && !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(text)) return JSON.stringify(text);
  return `0x${hex}`;
}

/** Fills `links` of every regular file whose inode (attrs object) has several surviving names. */
export function assignLinkGroups(tree: CheckTree, groupOf: (e: CheckEntry) => unknown): void {
  const groups = new Map<unknown, string[]>();
  for (const e of tree.values()) {
    if (e.attrs.type !== 'file') continue;
    const key = groupOf(e);
    const g = groups.get(key);
    if (g) g.push(e.path);
    else groups.set(key, [e.path]);
  }
  for (const e of tree.values()) {
    if (e.attrs.type !== 'file') continue;
    const g = groups.get(groupOf(e))!;
    if (g.length > 1) e.links = [...g].sort();
  }
}
