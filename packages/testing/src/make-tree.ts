/**
 * Builds on disk a deterministic tree with every entry type a layer can hold, for directory
 * walker, tar and kernel round-trip tests. Needs root (mknod, chown, trusted.* and
 * security.capability xattrs). The same seed and options always give the same tree (names,
 * contents, modes, owners, mtimes, xattrs); only inode numbers differ.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  chmodSync,
  closeSync,
  ftruncateSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  symlinkSync,
  utimesSync,
  writeSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setAttributeSync } from 'fs-xattr';

export interface MakeTreeOptions {
  /** PRNG seed for contents, sizes and mtimes (default 1). */
  seed?: number;
  /** A light tree for quick tests: defaults below shrink to 60 wide entries, depth 6, 1.5 MiB. */
  small?: boolean;
  /** Entries of the wide directory (default 10,000; small 60). */
  wideEntries?: number;
  /** Nesting depth of the deep directory chain (default 40; small 6). */
  depth?: number;
  /** Size of the multi-chunk file (default 3.5 MiB; small 1.5 MiB). */
  bigFileSize?: number;
  /** Apparent size of the sparse file (default 16 MiB; small 3 MiB). */
  sparseSize?: number;
  /** Create char/block device nodes (default true). */
  devices?: boolean;
  /** Set trusted.* and security.capability xattrs (default true). */
  privilegedXattrs?: boolean;
  /**
   * Length in bytes of the longest names (default 255, NAME_MAX). mkfs.erofs 1.5 (Debian 12)
   * fails on 255-byte names ("Could not format the device"), so tests that feed it use 254.
   */
  longNameBytes?: number;
}

export interface MadeTree {
  root: string;
  /** Number of paths created, the root included (hardlink names each count). */
  pathCount: number;
}

/** A valid VFS_CAP_REVISION_2 security.capability value: effective, cap_net_bind_service. */
export const CAPABILITY_NET_BIND_SERVICE = Uint8Array.from([
  0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00,
]);

/** mulberry32: a tiny seeded PRNG. */
export function createRandom(seed: number): { u32(): number; below(n: number): number; bytes(n: number): Buffer } {
  let state = seed >>> 0;
  const u32 = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return {
    u32,
    below: (n) => u32() % n,
    bytes: (n) => {
      const words = new Uint32Array(Math.ceil(n / 4));
      for (let i = 0; i < words.length; i++) words[i] = u32();
      return Buffer.from(words.buffer, 0, n);
    },
  };
}

interface Times {
  path: string;
  mtime: number;
  symlink: boolean;
}

/**
 * Lets the event loop run between batches of the synchronous file operations below: thousands
 * of them in a row would starve the test worker's messages to vitest on a busy machine.
 */
const letEventLoopRun = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function makeTree(root: string, options: MakeTreeOptions = {}): Promise<MadeTree> {
  const small = options.small ?? false;
  const rnd = createRandom(options.seed ?? 1);
  const wide = options.wideEntries ?? (small ? 60 : 10_000);
  const depth = options.depth ?? (small ? 6 : 40);
  const bigSize = options.bigFileSize ?? (small ? 1.5 * 2 ** 20 : 3.5 * 2 ** 20);
  const sparseSize = options.sparseSize ?? (small ? 3 * 2 ** 20 : 16 * 2 ** 20);
  const devices = options.devices ?? true;
  const privileged = options.privilegedXattrs ?? true;
  const longName = options.longNameBytes ?? 255;

  const times: Times[] = [];
  let count = 0;
  const mtime = (): number => 1_500_000_000 + rnd.below(200_000_000);
  const p = (rel: string): string => join(root, rel);

  const dir = (rel: string, mode = 0o755, uid = 0, gid = 0): void => {
    mkdirSync(p(rel), { recursive: rel === '' });
    lchownSync(p(rel), uid, gid);
    chmodSync(p(rel), mode);
    times.push({ path: p(rel), mtime: mtime(), symlink: false });
    count++;
  };
  const file = (rel: string, content: Uint8Array | string, mode = 0o644, uid = 0, gid = 0): void => {
    writeFileSync(p(rel), content);
    lchownSync(p(rel), uid, gid);
    chmodSync(p(rel), mode);
    times.push({ path: p(rel), mtime: mtime(), symlink: false });
    count++;
  };
  const symlink = (rel: string, target: string, uid = 0, gid = 0): void => {
    symlinkSync(target, p(rel));
    lchownSync(p(rel), uid, gid);
    times.push({ path: p(rel), mtime: mtime(), symlink: true });
    count++;
  };
  const hardlink = (rel: string, existing: string): void => {
    linkSync(p(existing), p(rel));
    count++; // shares the inode's mtime, set through `existing`
  };
  const node = async (rel: string, kind: 'c' | 'b' | 'p', mode: number, major?: number, minor?: number): Promise<void> => {
    const args = ['-m', mode.toString(8), p(rel), kind];
    if (kind !== 'p') args.push(String(major), String(minor));
    await promisify(execFile)('mknod', args);
    chmodSync(p(rel), mode); // mknod -m is subject to nothing, but be explicit about special bits
    times.push({ path: p(rel), mtime: mtime(), symlink: false });
    count++;
  };
  const xattr = (rel: string, name: string, value: Uint8Array | string): void => {
    setAttributeSync(p(rel), name, typeof value === 'string' ? value : Buffer.from(value));
  };

  dir('', 0o755);

  // Regular files: empty, small text, assorted random sizes, multi-chunk, sparse.
  dir('files');
  file('files/empty', '');
  file('files/small.txt', 'hello, nydus\n');
  for (let i = 0; i < 6; i++) {
    const size = [1, 511, 512, 513, 4096, 65_537][i]! + rnd.below(3);
    file(`files/random-${i}.bin`, rnd.bytes(size), 0o640, 1000 + i, 1000);
  }
  file('files/multi-chunk.bin', rnd.bytes(bigSize), 0o600, 1000, 1000);
  {
    const path = p('files/sparse.img');
    const fd = openSync(path, 'w');
    try {
      for (const [at, len] of [
        [0, 4096],
        [2 ** 20 + 123, 10_000],
        [sparseSize - 4096, 4096],
      ] as const) {
        writeSync(fd, rnd.bytes(len), 0, len, at);
      }
      ftruncateSync(fd, sparseSize);
    } finally {
      closeSync(fd);
    }
    times.push({ path, mtime: mtime(), symlink: false });
    count++;
  }
  // A sub-second mtime (exactly representable) for the walker's nanosecond field.
  file('files/nsec-mtime', 'n');

  // A chain of nested directories with a file at the bottom.
  let chain = 'deep';
  dir(chain);
  for (let i = 0; i < depth; i++) {
    chain += `/d${String(i).padStart(2, '0')}`;
    dir(chain);
  }
  file(`${chain}/bottom.txt`, 'the bottom\n');

  // One wide directory.
  dir('wide');
  for (let i = 0; i < wide; i++) {
    if (i % 250 === 0) await letEventLoopRun();
    const name = `wide/e${String(i).padStart(5, '0')}`;
    if (i % 997 === 0) file(name, rnd.bytes(1 + rnd.below(300)));
    else file(name, '');
  }

  // Symlinks: relative, absolute, dangling, long, to a directory.
  dir('links');
  symlink('links/relative', '../files/small.txt');
  symlink('links/absolute', '/files/small.txt');
  symlink('links/dangling', 'does/not/exist');
  symlink('links/long', `${'long-target-component/'.repeat(150)}end`, 1000, 1000);
  symlink('links/to-dir', '../deep');

  // Hardlinks: several names in one directory and across directories.
  dir('hardlinks');
  file('hardlinks/first', rnd.bytes(3000), 0o644, 1000, 1000);
  hardlink('hardlinks/second', 'hardlinks/first');
  hardlink('hardlinks/third', 'hardlinks/first');
  hardlink('links/hardlink-elsewhere', 'hardlinks/first');
  file('hardlinks/pair-a', 'pair\n');
  hardlink(`${chain}/pair-b`, 'hardlinks/pair-a');
  file('hardlinks/empty-linked', '');
  hardlink('hardlinks/empty-linked-2', 'hardlinks/empty-linked');

  // Devices and fifos.
  dir('dev');
  if (devices) {
    await node('dev/null', 'c', 0o666, 1, 3);
    await node('dev/sda1', 'b', 0o660, 8, 1);
    await node('dev/big', 'c', 0o600, 259, 65_537);
  }
  await node('dev/fifo', 'p', 0o644);

  // Extended attributes.
  dir('xattrs');
  file('xattrs/file', 'has xattrs\n');
  xattr('xattrs/file', 'user.text', 'hello');
  xattr('xattrs/file', 'user.binary', Uint8Array.from({ length: 256 }, (_, i) => i));
  xattr('xattrs/file', 'user.empty', '');
  if (privileged) {
    xattr('xattrs/file', 'trusted.secret', 'trusted value');
    file('xattrs/capable', 'cap\n', 0o755);
    xattr('xattrs/capable', 'security.capability', CAPABILITY_NET_BIND_SERVICE);
  }
  xattr('xattrs', 'user.on-directory', 'dir');
  // user.* is only allowed on regular files and directories; trusted.* on anything.
  if (privileged) xattr('dev/fifo', 'trusted.on-fifo', 'fifo');

  // Names: unicode, 255 bytes (ASCII and multi-byte), awkward characters.
  dir('names');
  file('names/ünïcödé-名前-😀.txt', 'unicode\n');
  file(`names/${'n'.repeat(longName)}`, 'long name\n');
  file(`names/${'日'.repeat(Math.floor(longName / 3))}${'u'.repeat(longName % 3)}`, 'long name in multi-byte UTF-8\n');
  dir(`names/${'d'.repeat(longName)}`);
  file(`names/${'d'.repeat(longName)}/${'f'.repeat(longName)}`, 'long path\n');
  file('names/with space', 's\n');
  file('names/-leading-dash', 'd\n');
  file('names/.hidden', 'h\n');
  file('names/back\\slash', 'b\n');

  // Special mode bits and owners.
  dir('modes');
  file('modes/setuid', '#!/bin/sh\n', 0o4755);
  file('modes/setgid', '#!/bin/sh\n', 0o2755, 0, 50);
  dir('modes/sticky', 0o1777);
  dir('modes/setgid-dir', 0o2775, 1000, 1000);
  file('modes/none', 'x', 0o000);
  file('modes/owner-only', 'x', 0o700, 65_534, 65_534);
  file('modes/big-ids', 'x', 0o644, 3_000_000, 4_000_000);

  // mtimes last, children before parents (creating a child changes its parent's mtime).
  for (let i = times.length - 1; i >= 0; i--) {
    if (i % 500 === 0) await letEventLoopRun();
    const t = times[i]!;
    if (t.symlink) lutimesSync(t.path, t.mtime, t.mtime);
    else utimesSync(t.path, t.mtime, t.mtime);
  }
  utimesSync(p('files/nsec-mtime'), 1_600_000_000.5, 1_600_000_000.5);
  return { root, pathCount: count };
}
