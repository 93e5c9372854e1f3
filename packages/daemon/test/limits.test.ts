// The FUSE binding's documented limits, and the erofs mode that has none of them: a name that is
// not UTF-8 is listed by the FUSE mode with U+FFFD and opens only if no other name of its
// directory reads the same way; a sub-millisecond mtime is cut to milliseconds. The erofs mode
// (the kernel reads the bootstrap) lists the exact name bytes, opens every file and reports the
// exact time.
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLocalImage, localfsConfig } from './support/images.js';
import { DaemonScope } from './support/nydusd-process.js';

/** Latin-1 "café" and "cafè", one byte per character: not valid UTF-8, both read as "caf\ufffd". */
const LATIN1_NAME = Buffer.from([0x63, 0x61, 0x66, 0xe9]);
const LATIN1_TWIN = Buffer.from([0x63, 0x61, 0x66, 0xe8]);

function under(dir: string, name: Buffer): Buffer {
  return Buffer.concat([Buffer.from(dir + '/'), name]);
}

describe('FUSE-mode limits and the erofs mode', () => {
  const daemons = new DaemonScope();
  let work: string;
  let boot: string;
  let blobs: string;
  let sourceMtimeNs: bigint;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-limits-'));
    const src = path.join(work, 'src');
    await mkdir(src);
    await mkdir(path.join(src, 'one'));
    await mkdir(path.join(src, 'two'));
    await writeFile(under(path.join(src, 'one'), LATIN1_NAME), 'latin-1 name\n');
    await writeFile(under(path.join(src, 'two'), LATIN1_NAME), 'first twin\n');
    await writeFile(under(path.join(src, 'two'), LATIN1_TWIN), 'second twin\n');
    await writeFile(path.join(src, 'precise'), 'time\n');
    await utimes(path.join(src, 'precise'), 1_600_000_000.000125, 1_600_000_000.000125);
    sourceMtimeNs = (await stat(path.join(src, 'precise'), { bigint: true })).mtimeNs;
    expect(sourceMtimeNs % 1_000_000n).not.toBe(0n);
    boot = path.join(work, 'image.boot');
    blobs = path.join(work, 'blobs');
    await buildLocalImage(src, boot, blobs);
  }, 120_000);

  afterAll(async () => {
    await daemons.cleanup();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  async function serve(mode: 'fuse' | 'erofs'): Promise<string> {
    const dir = path.join(work, mode);
    await mkdir(dir);
    const config = path.join(dir, 'config.json');
    await writeFile(config, localfsConfig(blobs, path.join(dir, 'cache')));
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt);
    await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args: ['--config', config, '--bootstrap', boot, '--mode', mode] });
    return mnt;
  }

  it('FUSE mode: non-UTF-8 names are listed with U+FFFD and open when unambiguous; times are whole milliseconds', async () => {
    const mnt = await serve('fuse');
    const lossy = Buffer.from('caf\ufffd');
    // Looked up before its directory is listed, then listed.
    expect((await readFile(under(path.join(mnt, 'one'), LATIN1_NAME))).toString()).toBe('latin-1 name\n');
    expect(await readdir(path.join(mnt, 'one'), { encoding: 'buffer' })).toEqual([lossy]);
    expect((await readFile(under(path.join(mnt, 'one'), lossy))).toString()).toBe('latin-1 name\n');
    const two = await readdir(path.join(mnt, 'two'), { encoding: 'buffer' });
    expect(two).toEqual([lossy, lossy]);
    await expect(readFile(under(path.join(mnt, 'two'), LATIN1_NAME))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(readFile(under(path.join(mnt, 'two'), LATIN1_TWIN))).rejects.toMatchObject({ code: 'ENOENT' });
    const { mtimeNs } = await stat(path.join(mnt, 'precise'), { bigint: true });
    expect(mtimeNs).toBe((sourceMtimeNs / 1_000_000n) * 1_000_000n);
  }, 60_000);

  it('erofs mode: the exact name bytes and the exact time', async () => {
    const mnt = await serve('erofs');
    expect(await readdir(path.join(mnt, 'one'), { encoding: 'buffer' })).toEqual([LATIN1_NAME]);
    expect((await readFile(under(path.join(mnt, 'one'), LATIN1_NAME))).toString()).toBe('latin-1 name\n');
    expect(await readdir(path.join(mnt, 'two'), { encoding: 'buffer' })).toEqual([LATIN1_TWIN, LATIN1_NAME]);
    expect((await readFile(under(path.join(mnt, 'two'), LATIN1_NAME))).toString()).toBe('first twin\n');
    expect((await readFile(under(path.join(mnt, 'two'), LATIN1_TWIN))).toString()).toBe('second twin\n');
    expect((await stat(path.join(mnt, 'precise'), { bigint: true })).mtimeNs).toBe(sourceMtimeNs);
  }, 60_000);
});
