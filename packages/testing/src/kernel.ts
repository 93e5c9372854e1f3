/**
 * Kernel mounts for tests (root only): RAFS v6 bootstraps through the in-kernel EROFS driver,
 * and overlayfs stacks as the reference for merge tests. Every helper returns a handle whose
 * `unmount()` undoes all it did (unmount, detach loop devices, remove the mountpoint it
 * created); a MountScope collects handles so that `afterAll(() => scope.cleanup())` never
 * leaves a mount or a loop device behind, even when a test fails half-way.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function sh(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { encoding: 'utf8' });
    return stdout.trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

export interface MountHandle {
  mountpoint: string;
  /** Loop devices attached for this mount (blob devices), in device-slot order. */
  loops: string[];
  unmount(): Promise<void>;
}

export interface ErofsMountOptions {
  /** Data blobs in device-slot order: each is attached read-only and passed as `device=`. */
  blobs?: string[];
  /** Where to mount; default a new temporary directory (removed on unmount). */
  mountpoint?: string;
}

/**
 * Mounts an EROFS image or a RAFS v6 bootstrap read-only: `losetup -r --find --show` for each
 * blob, then `mount -t erofs -o loop,ro,device=/dev/loopN... BOOTSTRAP MOUNTPOINT`.
 */
export async function mountErofs(bootstrap: string, options: ErofsMountOptions = {}): Promise<MountHandle> {
  const ownMountpoint = options.mountpoint === undefined;
  const mountpoint = options.mountpoint ?? (await mkdtemp(join(tmpdir(), 'nydus-erofs-')));
  const loops: string[] = [];
  const detach = async (): Promise<Error[]> => {
    const errors: Error[] = [];
    for (const loop of loops.splice(0).reverse()) {
      await sh('losetup', ['-d', loop]).catch((err: Error) => errors.push(err));
    }
    if (ownMountpoint) await rmdir(mountpoint).catch((err: Error) => errors.push(err));
    return errors;
  };
  try {
    for (const blob of options.blobs ?? []) loops.push(await sh('losetup', ['-r', '--find', '--show', blob]));
    const opts = ['loop', 'ro', ...loops.map((l) => `device=${l}`)].join(',');
    await sh('mount', ['-t', 'erofs', '-o', opts, bootstrap, mountpoint]);
  } catch (err) {
    await detach();
    throw err;
  }
  return mountedHandle('EROFS', mountpoint, [...loops], detach);
}

/**
 * Mounts layer directories as a read-only overlay, `layers` ordered bottom first (image
 * order); the merged view is the reference tree for merge tests. The layers must already be in
 * overlayfs form (whiteouts as 0:0 character devices, opaque dirs by `trusted.overlay.opaque`).
 * overlayfs needs two lower layers without an upper one, so a single layer gets an empty one.
 */
export async function mountOverlay(layers: string[], options: { mountpoint?: string } = {}): Promise<MountHandle> {
  if (layers.length === 0) throw new Error('mountOverlay: no layers');
  for (const layer of layers) {
    if (layer.includes(':') || layer.includes(',')) throw new Error(`mountOverlay: layer path ${layer} contains ':' or ','`);
  }
  const ownMountpoint = options.mountpoint === undefined;
  const mountpoint = options.mountpoint ?? (await mkdtemp(join(tmpdir(), 'nydus-overlay-')));
  const extra = layers.length === 1 ? await mkdtemp(join(tmpdir(), 'nydus-overlay-empty-')) : undefined;
  const lower = [...layers].reverse();
  if (extra !== undefined) lower.push(extra);
  const tidy = async (): Promise<Error[]> => {
    const errors: Error[] = [];
    if (ownMountpoint) await rmdir(mountpoint).catch((err: Error) => errors.push(err));
    if (extra !== undefined) await rm(extra, { recursive: true, force: true }).catch((err: Error) => errors.push(err));
    return errors;
  };
  try {
    await sh('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lower.join(':')}`, mountpoint]);
  } catch (err) {
    await tidy();
    throw err;
  }
  return mountedHandle('overlay', mountpoint, [], tidy);
}

/** A mounted filesystem whose unmount() unmounts, then runs `release` (loops, temp dirs); retryable. */
function mountedHandle(kind: string, mountpoint: string, loops: string[], release: () => Promise<Error[]>): MountHandle {
  let mounted = true;
  let released = false;
  return {
    mountpoint,
    loops,
    async unmount() {
      if (released) return;
      const errors: Error[] = [];
      if (mounted) {
        await unmountPath(mountpoint).catch((err: Error) => errors.push(err));
        mounted = false;
      }
      errors.push(...(await release()));
      released = errors.length === 0;
      if (errors.length > 0) throw new AggregateError(errors, `cleaning up ${kind} mount ${mountpoint} failed`);
    },
  };
}

/** umount, retrying a few times while busy, then lazily as a last resort. */
async function unmountPath(mountpoint: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await sh('umount', [mountpoint]);
      return;
    } catch (err) {
      if (attempt >= 4) {
        await sh('umount', ['-l', mountpoint]);
        throw err;
      }
      await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
    }
  }
}

/** Collects mounts so one `cleanup()` (in afterAll or finally) undoes them, newest first. */
export class MountScope {
  private readonly handles: MountHandle[] = [];

  async mountErofs(bootstrap: string, options?: ErofsMountOptions): Promise<MountHandle> {
    return this.track(await mountErofs(bootstrap, options));
  }

  async mountOverlay(layers: string[], options?: { mountpoint?: string }): Promise<MountHandle> {
    return this.track(await mountOverlay(layers, options));
  }

  private track(handle: MountHandle): MountHandle {
    this.handles.push(handle);
    return handle;
  }

  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (const handle of this.handles.splice(0).reverse()) {
      await handle.unmount().catch((err: unknown) => errors.push(err));
    }
    if (errors.length > 0) throw new AggregateError(errors, 'MountScope cleanup failed');
  }
}

/** Loop devices currently backed by `file` (for tests that check nothing was left behind). */
export async function loopsBackedBy(file: string): Promise<string[]> {
  const out = await sh('losetup', ['-j', file, '-O', 'NAME', '-n']);
  return out === '' ? [] : out.split('\n').map((l) => l.trim());
}
