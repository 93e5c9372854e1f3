import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileSystemError, exitCodeFor, fileSystemError, isNydusError } from '../src/index.js';
import { checkOutputDirectory, checkOutputFile, makeDirectories, removeCreatedDirectories } from '../src/files.js';

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

describe('FileSystemError', () => {
  it('turns a failed system call into one line with the path and the errno', async () => {
    const raw = await errorOf(writeFile('/nonexistent-dir/x', 'x'));
    const err = fileSystemError(raw, '/nonexistent-dir/x', 'writing');
    expect(err).toBeInstanceOf(FileSystemError);
    expect((err as Error).message).toBe('writing /nonexistent-dir/x: no such file or directory (ENOENT)');
    expect(isNydusError(err, 'NOT_FOUND')).toBe(true);
    expect(exitCodeFor(err)).toBe(1);
    // Node's own path when none is given; anything that is not a system call error passes through.
    expect((fileSystemError(raw) as Error).message).toBe("/nonexistent-dir/x: no such file or directory (ENOENT)");
    const other = new Error('x');
    expect(fileSystemError(other)).toBe(other);
    expect(new FileSystemError('/f', 'ENOSPC', 'no space left on device').code).toBe('RESOURCE_EXHAUSTED');
  });
});

describe('output paths', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydus-files-'));
    await mkdir(path.join(work, 'dir'));
    await writeFile(path.join(work, 'file'), 'x');
    await symlink(path.join(work, 'missing'), path.join(work, 'dangling'));
    await symlink(path.join(work, 'dir'), path.join(work, 'dirlink'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('accepts new and existing regular files, with or without their directories', async () => {
    await checkOutputFile(path.join(work, 'file'), 'out');
    await checkOutputFile(path.join(work, 'new'), 'out');
    await checkOutputFile(path.join(work, 'a/b/new'), 'out');
    await checkOutputFile(path.join(work, 'dangling'), 'out'); // replaced by the new file
    await checkOutputDirectory(path.join(work, 'a/b'), 'dir');
  });

  it('refuses directories and special files as bad input, and names what is in the way', async () => {
    for (const p of [path.join(work, 'dir'), path.join(work, 'dirlink'), `${work}/new/`, '/', '/dev/null']) {
      const err = await errorOf(checkOutputFile(p, 'out'));
      expect(isNydusError(err, 'INVALID_ARGUMENT'), p).toBe(true);
    }
    const underFile = await errorOf(checkOutputFile(path.join(work, 'file/x/y'), 'out'));
    expect((underFile as Error).message).toBe(`out ${path.join(work, 'file')}: not a directory (ENOTDIR)`);
    const underLink = await errorOf(checkOutputDirectory(path.join(work, 'dangling/x'), 'dir'));
    expect((underLink as Error).message).toBe(`dir ${path.join(work, 'dangling')}: dangling symbolic link to ${path.join(work, 'missing')} (ENOENT)`);
    const missing = await errorOf(checkOutputFile(path.join(work, 'nope/x.json'), '--output-json', { createParents: false }));
    expect((missing as Error).message).toBe(`--output-json ${path.join(work, 'nope')}: no such directory (ENOENT)`);
  });

  it('makes directories one by one, says which, and removes them again; refusals fail at once', async () => {
    const created = await makeDirectories(path.join(work, 'm/n/o'));
    expect(created).toEqual([path.join(work, 'm'), path.join(work, 'm/n'), path.join(work, 'm/n/o')]);
    expect(await makeDirectories(path.join(work, 'm/n'))).toEqual([]);
    await removeCreatedDirectories(created);
    expect(await readdir(work)).not.toContain('m');
    const proc = await errorOf(makeDirectories('/proc/nydus-ts-test/x'));
    expect((proc as Error).message).toBe('creating directory /proc/nydus-ts-test: no such file or directory (ENOENT)');
  });
});
