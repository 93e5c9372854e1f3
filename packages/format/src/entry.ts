/**
 * The builder's input: one filesystem entry of a layer. Sources (tar parser, directory walker)
 * live outside this package and produce these; the builder consumes them in order.
 */
export type LayerEntryType =
  | 'file'
  | 'directory'
  | 'symlink'
  | 'hardlink'
  | 'char-device'
  | 'block-device'
  | 'fifo'
  | 'socket';

export interface LayerEntry {
  /**
   * Path inside the layer: '/'-separated, no leading '/', no empty, '.' or '..' components.
   * The root directory is ''. Sources normalise and validate before yielding. Names are bytes:
   * those that are not UTF-8 arrive as `decodeFsName` writes them and are stored as exactly
   * those bytes (see names.ts).
   */
  path: string;
  type: LayerEntryType;
  /** Permission bits incl. setuid/setgid/sticky (`mode & 0o7777`); the type comes from `type`. */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time, whole seconds since the epoch (negative before 1970). */
  mtime: number;
  /** Nanoseconds part of the modification time (0 for tar input). */
  mtimeNsec?: number;
  /** Regular files: content length in bytes. Ignored for other types. */
  size: number;
  /**
   * Symlinks: the target exactly as stored (data, never resolved; bytes as for `path`).
   * Hardlinks: the layer path of an earlier regular-file entry of the same layer.
   */
  linkTarget?: string;
  /** Character and block devices. */
  devMajor?: number;
  devMinor?: number;
  /** Extended attributes by full name (`user.x`, `security.capability`, ...). */
  xattrs?: ReadonlyMap<string, Uint8Array>;
  /**
   * Regular files: the content, yielding exactly `size` bytes in total. The consumer reads it
   * fully before asking for the next entry (a tar stream cannot do otherwise).
   */
  content?: AsyncIterable<Uint8Array>;
  /**
   * Regular files: offset of the content's first byte in the layer's uncompressed source stream
   * (the tar). Tar sources set it; reference layers (zran, tar-ref) need it to place chunks.
   */
  dataOffset?: number;
}
