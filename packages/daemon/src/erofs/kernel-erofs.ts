/**
 * Kernel EROFS mounts of a bootstrap over the daemon's blob device files: lookups, stats and
 * readdirs never leave the kernel; only data reads reach the daemon, through the FUSE files.
 * Each device file is attached read-only as a loop device (`device=/dev/loopN`) and the bootstrap
 * is mounted with `-o loop`: Linux ≥ 6.12 could take the files directly, but util-linux 2.38's
 * mount(8) puts a loop device under any regular-file source, and EROFS will not mix a
 * block-device primary with file-backed devices.
 */
import { execFile } from 'node:child_process';
import { NydusError } from '@nydus-ts/core';

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new NydusError('UNAVAILABLE', `${cmd} ${args.join(' ')} failed: ${(stderr || err.message).trim()}`, { cause: err }));
      else resolve(stdout.trim());
    });
  });
}

export interface KernelErofsMount {
  mountpoint: string;
  /** Loop devices of the blob device files, in blob-table order. */
  loops: string[];
}

/** `losetup -r` each device file, then `mount -t erofs -o loop,ro,device=...`. */
export async function mountKernelErofs(bootstrap: string, deviceFiles: string[], mountpoint: string): Promise<KernelErofsMount> {
  for (const p of [bootstrap, mountpoint]) {
    if (p.includes(',')) throw new NydusError('INVALID_ARGUMENT', `path ${p} contains ",", which mount options cannot carry`);
  }
  const loops: string[] = [];
  try {
    for (const file of deviceFiles) loops.push(await run('losetup', ['-r', '--find', '--show', file]));
    await run('mount', ['-t', 'erofs', '-o', ['loop', 'ro', ...loops.map((l) => `device=${l}`)].join(','), bootstrap, mountpoint]);
  } catch (err) {
    await detachLoops(loops);
    throw err;
  }
  return { mountpoint, loops };
}

/** Unmounts (lazily if busy), then detaches the loop devices. */
export async function unmountKernelErofs(mount: KernelErofsMount): Promise<void> {
  await unmountKernel(mount.mountpoint);
  await detachLoops(mount.loops);
}

export async function unmountKernel(mountpoint: string, lazy = false): Promise<void> {
  if (lazy) {
    await run('umount', ['-l', mountpoint]);
    return;
  }
  try {
    await run('umount', [mountpoint]);
  } catch {
    await run('umount', ['-l', mountpoint]);
  }
}

async function detachLoops(loops: string[]): Promise<void> {
  for (const loop of loops) await run('losetup', ['-d', loop]).catch(() => undefined);
}

/** Detaches loop devices whose backing file lies under `dir` (left by a killed daemon). */
export async function detachLoopsUnder(dir: string): Promise<string[]> {
  const out = await run('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE']).catch(() => '');
  const prefix = dir.endsWith('/') ? dir : dir + '/';
  const stale = out
    .split('\n')
    .map((line) => /^(\S+)\s+(.*)$/.exec(line.trim()))
    .filter((m): m is RegExpExecArray => m !== null && m[2]!.replace(/ \(deleted\)$/, '').startsWith(prefix))
    .map((m) => m[1]!);
  await detachLoops(stale);
  return stale;
}
