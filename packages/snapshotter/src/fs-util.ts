/** File-system helpers of the snapshotter: disk usage, mount table, safe removal. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, readdir, readFile, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { SnapshotUsage } from './types.js';

const run = promisify(execFile);

/** Usage of a directory tree as containerd's fs.DiskUsage counts it: allocated blocks, inodes once. */
export async function diskUsage(dir: string): Promise<SnapshotUsage> {
  const seen = new Set<string>();
  let size = 0;
  const visit = async (p: string): Promise<void> => {
    const st = await lstat(p, { bigint: true });
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      size += Number(st.blocks) * 512;
    }
    if (st.isDirectory()) {
      for (const name of await readdir(p)) await visit(path.join(p, name));
    }
  };
  try {
    await visit(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return { size, inodes: seen.size };
}

export interface MountEntry {
  mountpoint: string;
  fsType: string;
  source: string;
}

/** `\040`-style escapes of /proc/self/mountinfo. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The mount table of this process's mount namespace. */
export async function readMountTable(): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const fields = left?.split(' ') ?? [];
    const after = right?.split(' ') ?? [];
    if (fields[4] === undefined || after[0] === undefined) continue;
    out.push({ mountpoint: unescapeMountField(fields[4]), fsType: after[0], source: unescapeMountField(after[1] ?? '') });
  }
  return out;
}

/** Mountpoints at or below `dir`, deepest first (the order to unmount them in). */
export async function mountsUnder(dir: string): Promise<MountEntry[]> {
  const root = path.resolve(dir);
  const table = await readMountTable();
  return table
    .filter((m) => m.mountpoint === root || m.mountpoint.startsWith(root + '/'))
    .sort((a, b) => b.mountpoint.length - a.mountpoint.length);
}

export async function isMountpoint(dir: string): Promise<boolean> {
  const root = path.resolve(dir);
  return (await readMountTable()).some((m) => m.mountpoint === root);
}

/** Unmounts `target`; a busy or dead (ENOTCONN) mount is detached lazily. */
export async function unmount(target: string): Promise<void> {
  try {
    await run('umount', [target]);
  } catch {
    await run('umount', ['-l', target]).catch(async (err: unknown) => {
      if (await isMountpoint(target)) throw err;
    });
  }
}

/**
 * Removes a directory tree after unmounting everything mounted inside it: a recursive delete
 * must never descend into a live (or dead) FUSE or overlay mount.
 */
export async function removeTree(dir: string): Promise<void> {
  for (const m of await mountsUnder(dir)) await unmount(m.mountpoint);
  await rm(dir, { recursive: true, force: true });
}

const OVERLAYFS_SUPER_MAGIC = 0x794c7630;

/** True if `dir` lies on an overlayfs: overlay mounts cannot use upper dirs there. */
export async function isOnOverlayfs(dir: string): Promise<boolean> {
  return (await statfs(dir)).type === OVERLAYFS_SUPER_MAGIC;
}

/** overlayfs has an `index` feature to turn off (as containerd's overlay snapshotter does). */
export function overlayHasIndexOption(): boolean {
  return existsSync('/sys/module/overlay/parameters/index');
}
