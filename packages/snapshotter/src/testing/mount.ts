/**
 * Performs a snapshot's mounts the way containerd's shim does (mount/mount_linux.go), for tests:
 * bind and overlay, with long overlay `lowerdir` lists made relative to their common parent
 * (the mount data of one call is limited to a page).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Mount } from '../types.js';
import { unmount } from '../fs-util.js';

const run = promisify(execFile);

const PAGE = 4096;

/** containerd's compactLowerdirOption: relative lower dirs and the directory to run in. */
function compactOverlay(options: string[]): { options: string[]; cwd: string | undefined } {
  const i = options.findIndex((o) => o.startsWith('lowerdir='));
  if (i < 0 || options.join(',').length < PAGE) return { options, cwd: undefined };
  const lowers = options[i]!.slice('lowerdir='.length).split(':');
  let common = path.dirname(lowers[0]!);
  while (!lowers.every((l) => l.startsWith(common + '/'))) common = path.dirname(common);
  // Up one more level when the common dir is the lower itself (".../snapshots/1/fs" vs ".../snapshots/12/fs").
  const rel = lowers.map((l) => path.relative(common, l));
  const out = [...options];
  out[i] = `lowerdir=${rel.join(':')}`;
  return { options: out, cwd: common };
}

/** Mounts `mounts` on `target` in order (containerd returns one mount for our snapshots). */
export async function mountAll(mounts: readonly Mount[], target: string): Promise<void> {
  for (const m of mounts) {
    if (m.type === 'bind') {
      const ro = m.options.includes('ro');
      await run('mount', ['--rbind', m.source, target]);
      if (ro) await run('mount', ['-o', 'remount,ro,bind', target]);
    } else {
      const { options, cwd } = m.type === 'overlay' ? compactOverlay(m.options) : { options: m.options, cwd: undefined };
      await run('mount', ['-t', m.type, '-o', options.join(','), m.source, target], cwd ? { cwd } : {});
    }
  }
}

/** Unmounts everything mounted on `target` (recursively, innermost first). */
export async function unmountAll(target: string): Promise<void> {
  await run('umount', ['-R', target]).catch(() => unmount(target));
}
