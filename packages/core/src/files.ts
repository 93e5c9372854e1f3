/**
 * `@nydus-ts/core/files`: checks of output paths before a run starts, and directory creation that
 * remembers what it made so that a failed or interrupted run can remove it. Kept out of the main
 * entry, which does no I/O.
 */
import { constants } from 'node:fs';
import { access, lstat, mkdir, readlink, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { FileSystemError, InvalidArgumentError, fileSystemError, isSystemCallError } from './errors.js';

export interface CheckOutputOptions {
  /** Missing parent directories may be created by the run (default true); else they must exist. */
  createParents?: boolean;
}

/**
 * Checks, before anything is read or written, that `file` can be written as a new or replaced
 * regular file: it is not a directory (nor a device, FIFO or socket, which a rename would
 * replace), and its directory exists and is writable, or can be created (no file or dangling
 * symlink in the way). `what` names the output in messages (`output`, `bootstrap`). A path that
 * is or names a directory is bad input (InvalidArgumentError); a system error is a
 * FileSystemError naming the path and the errno.
 */
export async function checkOutputFile(file: string, what: string, options: CheckOutputOptions = {}): Promise<void> {
  const resolved = path.resolve(file);
  if (file.endsWith('/') || resolved === path.parse(resolved).root) throw new InvalidArgumentError(`${what} ${file}: is a directory, not a file`);
  const existing = await lstat(resolved).catch((err: unknown) => {
    if (isSystemCallError(err) && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) return undefined;
    throw fileSystemError(err, resolved, `${what}`);
  });
  if (existing) {
    const target = existing.isSymbolicLink() ? await stat(resolved).catch(() => undefined) : existing;
    if (target?.isDirectory()) throw new InvalidArgumentError(`${what} ${file}: is a directory, not a file`);
    if (target && !target.isFile()) throw new InvalidArgumentError(`${what} ${file}: exists and is not a regular file`);
  }
  await checkDirectory(path.dirname(resolved), what, options.createParents ?? true);
}

/**
 * Checks that `dir` is a writable directory, or can be created (no file or dangling symlink in
 * the way): the check of an output directory before a run.
 */
export async function checkOutputDirectory(dir: string, what: string): Promise<void> {
  await checkDirectory(path.resolve(dir), what, true);
}

async function checkDirectory(dir: string, what: string, mayCreate: boolean): Promise<void> {
  const { existing, missing } = await nearestDirectory(dir, what);
  if (missing.length > 0 && !mayCreate) {
    throw new FileSystemError(missing[0]!, 'ENOENT', 'no such directory', { action: what });
  }
  await access(existing, constants.W_OK).catch((err: unknown) => {
    throw fileSystemError(err, existing, `${what}: directory`);
  });
}

/** The nearest existing ancestor directory of `dir` (or itself) and the missing ones below it, outermost first. */
async function nearestDirectory(dir: string, what: string): Promise<{ existing: string; missing: string[] }> {
  const missing: string[] = [];
  for (let p = dir; ; p = path.dirname(p)) {
    try {
      const st = await stat(p);
      if (!st.isDirectory()) throw new FileSystemError(p, 'ENOTDIR', 'not a directory', { action: what });
      return { existing: p, missing: missing.reverse() };
    } catch (err) {
      if (!isSystemCallError(err) || (err.code !== 'ENOENT' && err.code !== 'ENOTDIR')) throw fileSystemError(err, p, what);
      if (err.code === 'ENOENT') {
        // A dangling symlink is not a directory the run could create.
        const link = await lstat(p).catch(() => undefined);
        if (link?.isSymbolicLink()) {
          const target = await readlink(p).catch(() => '?');
          throw new FileSystemError(p, 'ENOENT', `dangling symbolic link to ${target}`, { action: what });
        }
      }
      // ENOTDIR: a file further up; found when the walk gets there.
      missing.push(p);
      if (path.dirname(p) === p) throw fileSystemError(err, p, what);
    }
  }
}

/**
 * Creates `dir` and its missing parents one by one and returns the directories it created,
 * outermost first (for `removeCreatedDirectories`). Unlike `mkdir -p` in Node, which retries
 * forever where the kernel refuses new directories with ENOENT (as /proc does), a refusal is
 * a FileSystemError at once.
 */
export async function makeDirectories(dir: string): Promise<string[]> {
  const { missing } = await nearestDirectory(path.resolve(dir), 'creating directory');
  const created: string[] = [];
  try {
    for (const p of missing) {
      try {
        await mkdir(p);
        created.push(p);
      } catch (err) {
        if (isSystemCallError(err) && err.code === 'EEXIST' && (await stat(p).catch(() => undefined))?.isDirectory()) continue; // made meanwhile
        throw fileSystemError(err, p, 'creating directory');
      }
    }
  } catch (err) {
    await removeCreatedDirectories(created);
    throw err;
  }
  return created;
}

/** Removes directories that `makeDirectories` created, innermost first, where they are still empty. */
export async function removeCreatedDirectories(created: readonly string[]): Promise<void> {
  for (const p of [...created].reverse()) await rmdir(p).catch(() => undefined);
}
