import { createWriteStream, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isNydusError } from '@nydus-ts/core';
import { decodeFsName, type LayerEntry } from '@nydus-ts/format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDirectoryEntries, readTarEntries, writeTarEntries } from '../src/index.js';
import { encodeTarHeader } from '../src/layer/tar-writer.js';
import { CAPABILITY_NET_BIND_SERVICE, createRandom, diffTrees, makeTree, snapshotEntries, snapshotTree, runTool, runToolBuffer } from '@nydus-ts/testing';
import { chunked, collect, fromArray } from '@nydus-ts/testing';

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

type Plain = Omit<LayerEntry, 'content' | 'xattrs'> & { data?: string; xattrs?: Record<string, string> };

async function plainEntries(entries: AsyncIterable<LayerEntry>): Promise<Plain[]> {
  const out: Plain[] = [];
  for await (const e of entries) {
    // dataOffset: where the reader found the body; the writer's input has none.
    const { content, xattrs, mtimeNsec, dataOffset, ...rest } = e;
    void mtimeNsec;
    void dataOffset;
    const p: Plain = { ...rest };
    if (content) p.data = (await collect(content)).toString('hex');
    if (xattrs && xattrs.size > 0) p.xattrs = Object.fromEntries([...xattrs].map(([k, v]) => [k, Buffer.from(v).toString('hex')]));
    out.push(p);
  }
  return out;
}

/** Fresh entries each call (contents are single-use iterables). */
function sampleEntries(): LayerEntry[] {
  const rnd = createRandom(5);
  const big = rnd.bytes(200_000);
  const file = (path: string, data: Uint8Array, extra: Partial<LayerEntry> = {}): LayerEntry => ({
    path,
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 1_700_000_000,
    size: data.length,
    content: chunked(data, 4096),
    ...extra,
  });
  const base = { mode: 0o755, uid: 0, gid: 0, mtime: 1_700_000_001, size: 0 };
  return [
    { ...base, path: '', type: 'directory' },
    { ...base, path: 'dir', type: 'directory', mode: 0o2775 },
    file('dir/empty', new Uint8Array(0)),
    file('dir/big', big, { mode: 0o4755, uid: 1000, gid: 1000 }),
    file('n'.repeat(255), Buffer.from('255-byte name')),
    file(`dir/${'日'.repeat(85)}`, Buffer.from('255-byte unicode name')),
    file('ünïcödé/😀 and spaces', Buffer.from('unicode')),
    file(`${'a'.repeat(120)}/${'b'.repeat(90)}`, Buffer.from('ustar prefix split')),
    { ...base, path: `${'p'.repeat(200)}/${'q'.repeat(200)}`, type: 'directory' },
    { ...base, path: 'dir/hard', type: 'hardlink', linkTarget: 'dir/big' },
    { ...base, path: 'hard-long', type: 'hardlink', linkTarget: 'n'.repeat(255) },
    { ...base, path: 'sym', type: 'symlink', linkTarget: '../../some/where' },
    { ...base, path: 'sym-long', type: 'symlink', linkTarget: 'x/'.repeat(1000) },
    { ...base, path: 'sym-unicode', type: 'symlink', linkTarget: 'ünï' },
    { ...base, path: 'null', type: 'char-device', mode: 0o666, devMajor: 1, devMinor: 3 },
    { ...base, path: 'sda1', type: 'block-device', mode: 0o660, devMajor: 8, devMinor: 1 },
    { ...base, path: 'nvme', type: 'block-device', mode: 0o600, devMajor: 259, devMinor: 65_537 },
    { ...base, path: 'huge-dev', type: 'char-device', devMajor: 4095, devMinor: 0x7fffffff }, // minor beyond octal: base-256,
    { ...base, path: 'fifo', type: 'fifo', mode: 0o1644 },
    file('xattrs', Buffer.from('x'), {
      xattrs: new Map<string, Uint8Array>([
        ['user.text', Buffer.from('hello')],
        ['user.binary', Uint8Array.from({ length: 256 }, (_, i) => i)],
        ['user.empty', new Uint8Array(0)],
        ['security.capability', CAPABILITY_NET_BIND_SERVICE],
        ['trusted.newline', Buffer.from('a\nb=c')],
      ]),
    }),
    file('big-ids', Buffer.from('i'), { uid: 3_000_000_000, gid: 2_097_152, mtime: 99_999_999_999 }),
    file('old', Buffer.from('o'), { mtime: -1 }),
  ];
}

describe('writeTarEntries', () => {
  it('round-trips through readTarEntries: names, types, modes, ids, links, devices, xattrs, contents', async () => {
    const expected = await plainEntries(fromArray(sampleEntries()));
    const tar = await collect(writeTarEntries(fromArray(sampleEntries())));
    expect(tar.length % 512).toBe(0);
    for (const size of [1, 512, 777, 1 << 20]) {
      expect(await plainEntries(readTarEntries(chunked(tar, size)))).toEqual(expected);
    }
  });

  it('writes archives GNU tar lists identically', async () => {
    const tar = await collect(writeTarEntries(fromArray(sampleEntries())));
    const listing = await runTool('tar', ['--numeric-owner', '-tvf', '-'], { input: tar });
    const names = listing.trim().split('\n').map((l) => /\d\d:\d\d (.*?)(?: -> .*| link to .*)?$/.exec(l)![1]);
    expect(names).toEqual(
      sampleEntries().map((e) => (e.path === '' ? './' : e.type === 'directory' ? `${e.path}/` : e.path)),
    );
    expect(listing).toContain('hrwxr-xr-x 0/0 ');
    expect(listing).toMatch(/crw-rw-rw- 0\/0 +1,3 /);
    expect(listing).toMatch(/brw------- 0\/0 +259,65537 /);
    expect(listing).toMatch(/-rw-r--r-- 3000000000\/2097152 /);
    expect(listing).toContain('-rwsr-xr-x 1000/1000    200000 ');
  });

  it('encodes sizes over 8 GiB with a PAX record and a base-256 field', async () => {
    const size = 10 * 2 ** 30 + 3;
    const header = encodeTarHeader({ path: 'huge', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size });
    expect(header.length).toBe(3 * 512); // PAX header block, one record block, ustar header
    expect(header.subarray(512, 1024).toString('latin1')).toContain(`size=${size}\n`);
    const ustar = header.subarray(1024);
    expect(ustar[124]).toBe(0x80);
    expect(ustar.readBigUInt64BE(128)).toBe(BigInt(size));
    // Both forms decode to the size: with the PAX header, and the ustar header alone.
    for (const h of [header, ustar]) {
      const it = readTarEntries(chunked(h))[Symbol.asyncIterator]();
      const first = (await it.next()).value as LayerEntry;
      expect(first.size).toBe(size);
      await it.return(undefined);
    }
    // Just under the octal limit needs neither.
    const small = encodeTarHeader({ path: 'f', type: 'file', mode: 0, uid: 0, gid: 0, mtime: 0, size: 8 ** 11 - 1 });
    expect(small.length).toBe(512);
    expect(small.toString('latin1', 124, 136)).toBe('77777777777\0');
  });

  it('uses plain ustar headers when everything fits', () => {
    const h = encodeTarHeader({ path: 'a/b', type: 'symlink', mode: 0o777, uid: 1, gid: 2, mtime: 3, size: 0, linkTarget: 'c' });
    expect(h.length).toBe(512);
    expect(h.toString('latin1', 257, 265)).toBe('ustar\x0000');
  });

  it('rejects content that does not match the size, paths that are not normalised, links without targets', async () => {
    const short: LayerEntry = { path: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 10, content: chunked(Buffer.from('abc')) };
    expect(isNydusError(await errorOf(collect(writeTarEntries(fromArray([short])))), 'INVALID_ARGUMENT')).toBe(true);
    const long: LayerEntry = { ...short, size: 2, content: chunked(Buffer.from('abc')) };
    expect(isNydusError(await errorOf(collect(writeTarEntries(fromArray([long])))), 'INVALID_ARGUMENT')).toBe(true);
    const missing: LayerEntry = { ...short, content: undefined };
    expect(isNydusError(await errorOf(collect(writeTarEntries(fromArray([missing])))), 'INVALID_ARGUMENT')).toBe(true);
    for (const path of ['/abs', 'a/../b', 'a//b', 'dir/', './x']) {
      const err = await errorOf(collect(writeTarEntries(fromArray([{ ...short, path, size: 0, content: undefined }]))));
      expect(isNydusError(err, 'INVALID_ARGUMENT'), path).toBe(true);
    }
    const sym: LayerEntry = { path: 's', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, size: 0 };
    expect(isNydusError(await errorOf(collect(writeTarEntries(fromArray([sym])))), 'INVALID_ARGUMENT')).toBe(true);
  });

  it('writes names and link targets that are not UTF-8 as their raw bytes (hdrcharset=BINARY); GNU tar extracts them exactly', async () => {
    const B = (latin1: string): Buffer => Buffer.from(latin1, 'latin1');
    const base = { mode: 0o755, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0 };
    const entries = (): LayerEntry[] => [
      { ...base, path: decodeFsName(B('bin\xff')), type: 'directory' },
      { ...base, path: decodeFsName(B('bin\xff/f\xe9')), type: 'file', mode: 0o644, size: 2, content: chunked(Buffer.from('ok')) },
      { ...base, path: decodeFsName(B('l\xfe')), type: 'symlink', mode: 0o777, linkTarget: decodeFsName(B('t\xfc/x')) },
      { ...base, path: decodeFsName(B('h\xfb')), type: 'hardlink', mode: 0o644, linkTarget: decodeFsName(B('bin\xff/f\xe9')) },
    ];
    const tar = await collect(writeTarEntries(fromArray(entries())));
    expect(tar.toString('latin1')).toContain('hdrcharset=BINARY');
    expect(await plainEntries(readTarEntries(chunked(tar, 100)))).toEqual(await plainEntries(fromArray(entries())));
    const dst = await mkdtemp(join(tmpdir(), 'nydus-tar-bytes-'));
    try {
      await runToolBuffer('tar', ['-C', dst, '-xf', '-'], { input: tar });
      const root = Buffer.from(dst);
      const at = (name: string): Buffer => Buffer.concat([root, B('/'), B(name)]);
      expect(readdirSync(root, { encoding: 'buffer' }).map((n) => n.toString('latin1')).sort()).toEqual(['bin\xff', 'h\xfb', 'l\xfe']);
      expect(readFileSync(at('bin\xff/f\xe9')).toString()).toBe('ok');
      expect(readlinkSync(at('l\xfe'), { encoding: 'buffer' }).toString('latin1')).toBe('t\xfc/x');
      expect(lstatSync(at('h\xfb')).ino).toBe(lstatSync(at('bin\xff/f\xe9')).ino);
    } finally {
      await rm(dst, { recursive: true, force: true });
    }
  });

  it('skips sockets', async () => {
    const entries: LayerEntry[] = [
      { path: 'sock', type: 'socket', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0 },
      { path: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 },
    ];
    const out = await plainEntries(readTarEntries(writeTarEntries(fromArray(entries))));
    expect(out.map((e) => e.path)).toEqual(['f']);
  });
});

describe('directory → writeTarEntries → GNU tar extraction', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'nydus-tar-writer-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('extracts to a tree equal to the source (GNU tar reads our PAX xattrs, devices, hardlinks)', async () => {
    const src = join(work, 'src');
    await makeTree(src, { small: true, seed: 21 });
    const tarPath = join(work, 'out.tar');
    await pipeline(Readable.from(writeTarEntries(readDirectoryEntries(src))), createWriteStream(tarPath));
    const dst = join(work, 'dst');
    mkdirSync(dst);
    await runTool('tar', ['--xattrs', '--xattrs-include=*', '--same-owner', '--same-permissions', '--numeric-owner', '-C', dst, '-xf', tarPath]);
    expect(diffTrees(await snapshotTree(src), await snapshotTree(dst))).toEqual([]);
    // And our own reader sees the source tree in our archive.
    expect(diffTrees(await snapshotTree(src), await snapshotEntries(readTarEntries(chunked(await collect(writeTarEntries(readDirectoryEntries(src)))))))).toEqual([]);
  });
});
