import { readFile, statfs } from 'node:fs/promises';
import path from 'node:path';
import { NydusError, type Logger } from '@nydus-ts/core';
import { lazyUnmount } from './fuse-binding.js';

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
}

/** `\040`-style escapes of /proc/self/mountinfo. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The mounts of this mount namespace. */
export async function readMountTable(): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 0 || fields.length < dash + 3) continue;
    out.push({ mountpoint: unescapeMountField(fields[4]!), fstype: fields[dash + 1]!, source: unescapeMountField(fields[dash + 2]!) });
  }
  return out;
}

export async function isMountpoint(dir: string): Promise<boolean> {
  const abs = path.resolve(dir);
  return (await readMountTable()).some((m) => m.mountpoint === abs);
}

/**
 * Makes `dir` ready to be mounted on: a dead FUSE mount left by a killed daemon ("transport
 * endpoint is not connected") is lazily unmounted; a live mount is an error.
 */
export async function clearStaleMount(dir: string, logger: Logger): Promise<void> {
  const abs = path.resolve(dir);
  for (let round = 0; round < 8; round++) {
    const mounted = (await readMountTable()).filter((m) => m.mountpoint === abs);
    if (mounted.length === 0) return;
    const top = mounted[mounted.length - 1]!;
    let dead = false;
    try {
      // statfs always reaches the filesystem (a stat may be answered from the kernel's cache).
      await statfs(abs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      dead = code === 'ENOTCONN' || code === 'ECONNABORTED';
      if (!dead) throw new NydusError('FAILED_PRECONDITION', `mountpoint ${abs}: ${(err as Error).message}`);
    }
    if (!dead) throw new NydusError('FAILED_PRECONDITION', `mountpoint ${abs} is already mounted (${top.fstype} from ${top.source}) and alive`);
    logger.warn('cleaning up a dead FUSE mount', { mountpoint: abs, fstype: top.fstype });
    await lazyUnmount(abs);
  }
  throw new NydusError('FAILED_PRECONDITION', `mountpoint ${abs}: could not clear stale mounts`);
}
