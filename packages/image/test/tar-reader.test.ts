import { execFileSync } from 'node:child_process';
import { closeSync, createReadStream, mkdirSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isNydusError } from '@nydus-ts/core';
import { BootstrapReader, RafsFileReader, WHOLE_CONTENT, type LayerEntry, type WholeContentSource } from '@nydus-ts/format';
import { LocalBlobBackend } from '@nydus-ts/backend';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImage, readTarEntries } from '../src/index.js';
import { diffTrees, makeTree, snapshotEntries, snapshotTree, runTool } from '@nydus-ts/testing';
import { END, fileMember, fixChecksum, pad, paxHeader, rawHeader } from '@nydus-ts/testing';
import { chunked, collect } from '@nydus-ts/testing';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const fixtures = resolve(repoRoot, 'testdata/nydus-upstream');

type Plain = Omit<LayerEntry, 'content' | 'xattrs'> & { data?: string; xattrs?: Record<string, string> };

/** Reads all entries, buffering contents (small test archives only). */
async function readAll(source: AsyncIterable<Uint8Array>): Promise<Plain[]> {
  const out: Plain[] = [];
  for await (const e of readTarEntries(source)) {
    const { content, xattrs, ...rest } = e;
    const plain: Plain = { ...rest };
    if (content) plain.data = (await collect(content)).toString('latin1');
    if (xattrs) plain.xattrs = Object.fromEntries([...xattrs].map(([k, v]) => [k, Buffer.from(v).toString('hex')]));
    out.push(plain);
  }
  return out;
}

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** `tar -tvf` lines → name, type letter, permission string, link target. */
function parseTarTv(listing: string): Array<{ name: string; type: string; perms: string; link?: string }> {
  return listing
    .trim()
    .split('\n')
    .map((line) => {
      const m = /^(.)(.{9}) \S+\/\S+ +\S+ \d{4}-\d\d-\d\d \d\d:\d\d (.*)$/.exec(line);
      if (!m) throw new Error(`unparsed tar -tv line: ${line}`);
      const [, type, perms, rest] = m as unknown as [string, string, string, string];
      if (type === 'l') {
        const [name, link] = rest.split(' -> ') as [string, string];
        return { name, type, perms, link };
      }
      if (type === 'h') {
        const [name, link] = rest.split(' link to ') as [string, string];
        return { name, type, perms, link };
      }
      return { name: rest, type, perms };
    });
}

function permsToMode(perms: string): number {
  let mode = 0;
  for (let i = 0; i < 9; i++) {
    const c = perms[i]!;
    if (c !== '-' && c !== 'S' && c !== 'T') mode |= 1 << (8 - i);
  }
  if (perms[2] === 's' || perms[2] === 'S') mode |= 0o4000;
  if (perms[5] === 's' || perms[5] === 'S') mode |= 0o2000;
  if (perms[8] === 't' || perms[8] === 'T') mode |= 0o1000;
  return mode;
}

describe('readTarEntries on the upstream all-entry-type.tar', () => {
  const tarPath = join(fixtures, 'all-entry-type.tar');

  it('matches tar -tvf: names, types, modes, link targets, hardlink groups', async () => {
    const listing = parseTarTv(await runTool('tar', ['-tvf', tarPath]));
    const entries = await readAll(createReadStream(tarPath));
    expect(entries.map((e) => e.path)).toEqual(listing.map((l) => l.name.replace(/\/$/, '')));
    const typeOf: Record<string, LayerEntry['type']> = { d: 'directory', '-': 'file', h: 'hardlink', l: 'symlink' };
    entries.forEach((e, i) => {
      const l = listing[i]!;
      expect(e.type).toBe(typeOf[l.type]);
      expect(e.mode).toBe(permsToMode(l.perms));
      if (l.type === 'l') expect(e.linkTarget).toBe(l.link);
      if (l.type === 'h') expect(e.linkTarget).toBe(l.link);
    });
    // One regular file with three more names, one of them a link in another directory.
    const file = entries.find((e) => e.type === 'file')!;
    expect(file).toMatchObject({ path: 'tar/dir1/dir3/hardlink1.txt', size: 15, uid: 0, gid: 0 });
    expect(file.data).toHaveLength(15);
    expect(entries.filter((e) => e.type === 'hardlink').map((e) => [e.path, e.linkTarget])).toEqual([
      ['tar/dir1/dir3/xfile.txt', 'tar/dir1/dir3/hardlink1.txt'],
      ['tar/dir1/hardlink2.txt', 'tar/dir1/dir3/hardlink1.txt'],
      ['tar/dir2/hardlink3.txt', 'tar/dir1/dir3/hardlink1.txt'],
    ]);
    expect(entries.find((e) => e.type === 'symlink')).toMatchObject({
      path: 'tar/dir2/symlink1.txt',
      linkTarget: '../dir1/dir3/file1.txt',
    });
    expect(entries[0]!.mtime).toBe(Date.UTC(2022, 9, 12, 14, 35) / 1000 + (entries[0]!.mtime % 60));
  });

  it('gives the same entries whatever the chunking of the source', async () => {
    const bytes = readFileSync(tarPath);
    const reference = await readAll(chunked(bytes, 1 << 20));
    for (const size of [1, 3, 100, 511, 512, 513, 4096]) {
      expect(await readAll(chunked(bytes, size))).toEqual(reference);
    }
  });
});

describe('readTarEntries on archives made by GNU tar', () => {
  let work: string;
  let src: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'nydus-tar-reader-'));
    src = join(work, 'src');
    await makeTree(src, { small: true, seed: 3 });
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('reads a PAX archive with xattrs (tar --xattrs) into the source tree', async () => {
    const tarPath = join(work, 'posix.tar');
    await runTool('tar', ['--format=posix', '--xattrs', "--xattrs-include=*", '-C', src, '-cf', tarPath, '.']);
    const fromTar = await snapshotEntries(readTarEntries(createReadStream(tarPath)));
    const onDisk = await snapshotTree(src);
    expect(diffTrees(onDisk, fromTar)).toEqual([]);
    // Binary and capability values arrive byte for byte.
    expect(fromTar.nodes.get('xattrs/capable')!.xattrs['security.capability']).toBe(
      '0100000200040000000000000000000000000000',
    );
    expect(fromTar.nodes.get('xattrs/file')!.xattrs['user.binary']).toBe(
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex'),
    );
  });

  it('reads a GNU archive (long names and links as L/K members, base-256 ids)', async () => {
    const tarPath = join(work, 'gnu.tar');
    await runTool('tar', ['--format=gnu', '-C', src, '-cf', tarPath, '.']);
    const raw = readFileSync(tarPath);
    expect(raw.includes(Buffer.from('././@LongLink'))).toBe(true);
    const fromTar = await snapshotEntries(readTarEntries(chunked(raw, 10_000)));
    const onDisk = await snapshotTree(src, { xattrs: false });
    expect(diffTrees(onDisk, fromTar)).toEqual([]);
    expect(fromTar.nodes.get('modes/big-ids')).toMatchObject({ uid: 3_000_000, gid: 4_000_000 });
  });

  it('reads ustar names split into prefix and name', async () => {
    const dir = join(work, 'ustar-src');
    const deep = `${'a'.repeat(60)}/${'b'.repeat(60)}/${'c'.repeat(60)}`;
    execFileSync('mkdir', ['-p', join(dir, deep)]);
    execFileSync('touch', [join(dir, deep, 'file')]);
    const tarPath = join(work, 'ustar.tar');
    await runTool('tar', ['--format=ustar', '-C', dir, '-cf', tarPath, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa']);
    const entries = await readAll(createReadStream(tarPath));
    expect(entries.map((e) => e.path)).toEqual([
      'a'.repeat(60),
      `${'a'.repeat(60)}/${'b'.repeat(60)}`,
      deep,
      `${deep}/file`,
    ]);
  });
});

describe('readTarEntries: names', () => {
  it('strips leading "/" and "./", collapses "//", drops trailing "/", maps the root to ""', async () => {
    const tar = Buffer.concat([
      rawHeader({ name: './', typeflag: '5' }),
      rawHeader({ name: '.', typeflag: '5' }),
      rawHeader({ name: '/', typeflag: '5' }),
      rawHeader({ name: '/abs//dir/', typeflag: '5' }),
      fileMember('./abs/./dir//file', 'x'),
      rawHeader({ name: 'abs/link', typeflag: '1', linkname: '/abs/dir/file' }),
      rawHeader({ name: 'abs/sym', typeflag: '2', linkname: '/etc/../passwd' }),
      END,
    ]);
    const entries = await readAll(chunked(tar));
    expect(entries.map((e) => [e.path, e.type, e.linkTarget])).toEqual([
      ['', 'directory', undefined],
      ['', 'directory', undefined],
      ['', 'directory', undefined],
      ['abs/dir', 'directory', undefined],
      ['abs/dir/file', 'file', undefined],
      ['abs/link', 'hardlink', 'abs/dir/file'],
      // Symlink targets are data: stored as they are, never normalised.
      ['abs/sym', 'symlink', '/etc/../passwd'],
    ]);
  });

  it('rejects a ".." component with an InvalidArgumentError naming the entry', async () => {
    const tar = Buffer.concat([fileMember('ok', 'x'), fileMember('a/../../etc/passwd', 'root'), END]);
    const err = await errorOf(readAll(chunked(tar)));
    expect(isNydusError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toContain('a/../../etc/passwd');
    const link = Buffer.concat([rawHeader({ name: 'evil', typeflag: '1', linkname: '../outside' }), END]);
    const err2 = await errorOf(readAll(chunked(link)));
    expect(isNydusError(err2, 'INVALID_ARGUMENT')).toBe(true);
    expect((err2 as Error).message).toMatch(/evil.*\.\.\/outside|\.\.\/outside.*evil/);
  });
});

describe('readTarEntries: entry types and fields', () => {
  it('maps every type flag', async () => {
    const tar = Buffer.concat([
      fileMember('regular', 'r'),
      fileMember('old-regular', 'o', { typeflag: '\0' }),
      rawHeader({ name: 'old-dir/', typeflag: '\0' }),
      fileMember('contiguous', 'c', { typeflag: '7' }),
      rawHeader({ name: 'chr', typeflag: '3', devmajor: 1, devminor: 3 }),
      rawHeader({ name: 'blk', typeflag: '4', devmajor: 259, devminor: 65_537 }),
      rawHeader({ name: 'fifo', typeflag: '6', mode: 0o4644 }),
      rawHeader({ name: 'label', typeflag: 'V' }),
      END,
    ]);
    const entries = await readAll(chunked(tar));
    expect(entries.map((e) => [e.path, e.type, e.devMajor, e.devMinor, e.data])).toEqual([
      ['regular', 'file', undefined, undefined, 'r'],
      ['old-regular', 'file', undefined, undefined, 'o'],
      ['old-dir', 'directory', undefined, undefined, undefined],
      ['contiguous', 'file', undefined, undefined, 'c'],
      ['chr', 'char-device', 1, 3, undefined],
      ['blk', 'block-device', 259, 65_537, undefined],
      ['fifo', 'fifo', undefined, undefined, undefined],
    ]);
    expect(entries.find((e) => e.path === 'fifo')!.mode).toBe(0o4644);
  });

  it('rejects unknown types as bad input (INVALID_FORMAT, exit code 2), naming the entry', async () => {
    for (const typeflag of ['Z', 'M', 'N']) {
      const err = await errorOf(readAll(chunked(Buffer.concat([rawHeader({ name: 'weird', typeflag }), END]))));
      expect(isNydusError(err, 'INVALID_FORMAT')).toBe(true);
      expect((err as Error).message).toContain('"weird"');
      expect((err as Error).message).toContain(`unknown entry type "${typeflag}"`);
    }
  });

  it('keeps only permission bits of the mode', async () => {
    const [e] = await readAll(chunked(Buffer.concat([fileMember('m', '', { mode: 0o107755 }), END])));
    expect(e!.mode).toBe(0o7755);
  });

  it('decodes GNU base-256 numeric fields (positive and negative)', async () => {
    const be = (len: number, value: bigint): Uint8Array => {
      const b = Buffer.alloc(len);
      let v = value < 0n ? value + (1n << BigInt(8 * len)) : value;
      for (let i = len - 1; i >= 0; i--) {
        b[i] = Number(v & 0xffn);
        v >>= 8n;
      }
      b[0] = value < 0n ? 0xff : 0x80 | b[0]!;
      return b;
    };
    const header = rawHeader({
      name: 'big',
      typeflag: '3',
      rawFields: { uid: be(8, 3_000_000_000n), gid: be(8, 70_000n), mtime: be(12, -100n), devminor: be(8, 0xffffffffn) },
      devmajor: 4095,
    });
    const [e] = await readAll(chunked(Buffer.concat([header, END])));
    expect(e).toMatchObject({ uid: 3_000_000_000, gid: 70_000, mtime: -100, devMajor: 4095, devMinor: 0xffffffff });
    const sized = rawHeader({ name: 'file', rawFields: { size: be(12, 1n) } });
    const [f] = await readAll(chunked(Buffer.concat([sized, Buffer.from('z'), Buffer.alloc(511), END])));
    expect(f).toMatchObject({ size: 1, data: 'z' });
  });

  it('applies PAX records: path, linkpath, size, uid, gid, mtime, xattrs; global headers until overridden', async () => {
    const value = Buffer.from([0, 1, 0x0a, 0x3d, 0xff, 0x20]);
    const tar = Buffer.concat([
      paxHeader([['uid', '4242'], ['SCHILY.xattr.user.global', 'g']], 'g'),
      paxHeader([
        ['path', 'pax/ünïcödé/' + 'x'.repeat(200)],
        ['size', '5'],
        ['gid', '99999999'],
        ['mtime', '1700000000.999999999'],
        ['SCHILY.xattr.user.bin', value],
        ['SCHILY.xattr.security.capability', Buffer.from('0100000200040000000000000000000000000000', 'hex')],
        ['LIBARCHIVE.xattr.user.lib%3Dx', Buffer.from('aGVsbG8=').toString()],
        ['atime', '1.5'],
      ]),
      fileMember('short-name', 'hello', { size: 999 }).subarray(0, 512),
      Buffer.from('hello'),
      Buffer.alloc(507),
      paxHeader([['linkpath', 'l'.repeat(300)], ['uid', '']]),
      rawHeader({ name: 'sym', typeflag: '2', uid: 7, linkname: 'short' }),
      paxHeader([['mtime', '-1.5']]),
      rawHeader({ name: 'neg', typeflag: '5' }),
      END,
    ]);
    const entries = await readAll(chunked(tar, 100));
    expect(entries[0]).toMatchObject({
      path: 'pax/ünïcödé/' + 'x'.repeat(200),
      size: 5,
      data: 'hello',
      uid: 4242,
      gid: 99_999_999,
      mtime: 1_700_000_000,
      xattrs: {
        'user.global': '67',
        'user.bin': value.toString('hex'),
        'security.capability': '0100000200040000000000000000000000000000',
        'user.lib=x': Buffer.from('hello').toString('hex'),
      },
    });
    // An empty per-entry value cancels the global uid: the header's 7 applies.
    expect(entries[1]).toMatchObject({ path: 'sym', linkTarget: 'l'.repeat(300), uid: 7 });
    expect(entries[2]).toMatchObject({ path: 'neg', mtime: -2, uid: 4242 });
  });

  it('skips PAX atime and ctime records but still checks them and the header they are in', async () => {
    const times = paxHeader([['atime', '1700000001.5'], ['ctime', '1700000002.25'], ['mtime', '1700000003.5']]);
    const tar = Buffer.concat([times, fileMember('t', 'x'), paxHeader([['ctime', '1'], ['atime', '']]), rawHeader({ name: 'd', typeflag: '5', mtime: 9 }), END]);
    const entries = await readAll(chunked(tar, 100));
    expect(entries).toMatchObject([
      { path: 't', mtime: 1_700_000_003, data: 'x' },
      { path: 'd', type: 'directory', mtime: 9 },
    ]);
    expect(entries[0]!.xattrs).toBeUndefined();
    // A header of atime/ctime only still describes an entry, which must follow it.
    const dangling = await errorOf(readAll(chunked(Buffer.concat([fileMember('a', ''), paxHeader([['atime', '1']]), END]))));
    expect(isNydusError(dangling, 'INVALID_FORMAT')).toBe(true);
    expect((dangling as Error).message).toMatch(/extended header without the entry/);
    const noEquals = Buffer.concat([rawHeader({ name: 'p', typeflag: 'x', size: 9 }), Buffer.from('9 atime1\n'), Buffer.alloc(503), fileMember('f', ''), END]);
    expect(isNydusError(await errorOf(readAll(chunked(noEquals))), 'INVALID_FORMAT')).toBe(true);
  });

  it('rejects malformed PAX records and oversized extended headers', async () => {
    const bad = Buffer.concat([rawHeader({ name: 'p', typeflag: 'x', size: 9 }), Buffer.from('99 path=x'), Buffer.alloc(503), fileMember('f', ''), END]);
    const err = await errorOf(readAll(chunked(bad)));
    expect(isNydusError(err, 'INVALID_FORMAT')).toBe(true);
    const huge = Buffer.concat([rawHeader({ name: 'p', typeflag: 'x', size: 1 << 30 })]);
    const err2 = await errorOf(collect((async function* () {
      for await (const e of readTarEntries(chunked(huge), { maxMetadataSize: 1 << 20 })) yield Buffer.from(e.path);
    })()));
    expect(isNydusError(err2, 'INVALID_FORMAT')).toBe(true);
    expect((err2 as Error).message).toMatch(/limit/);
  });
});

describe('readTarEntries: end of archive, truncation, corruption', () => {
  const members = Buffer.concat([fileMember('a', 'alpha'), rawHeader({ name: 'd', typeflag: '5' }), fileMember('b', 'x'.repeat(1000))]);

  it('accepts archives without end-of-archive blocks, with one, or with record padding', async () => {
    const expected = await readAll(chunked(Buffer.concat([members, END])));
    expect(expected.map((e) => e.path)).toEqual(['a', 'd', 'b']);
    expect(await readAll(chunked(members))).toEqual(expected);
    expect(await readAll(chunked(Buffer.concat([members, Buffer.alloc(512)])))).toEqual(expected);
    expect(await readAll(chunked(Buffer.concat([members, Buffer.alloc(10_240 - (members.length % 10_240))])))).toEqual(expected);
    expect(await readAll(chunked(Buffer.alloc(0)))).toEqual([]);
  });

  it('fails with INVALID_FORMAT on a truncated body, naming the entry', async () => {
    const cut = members.subarray(0, members.length - 600); // inside b's data
    const err = await errorOf(readAll(chunked(cut)));
    expect(isNydusError(err, 'INVALID_FORMAT')).toBe(true);
    expect((err as Error).message).toContain('"b"');
    // Also when the consumer skips the content instead of reading it.
    const err2 = await errorOf((async () => {
      for await (const _ of readTarEntries(chunked(cut))) void _;
    })());
    expect(isNydusError(err2, 'INVALID_FORMAT')).toBe(true);
    // One data byte short of the last body's end is a truncation too.
    const lastData = members.length - pad(1000);
    const err3 = await errorOf(readAll(chunked(members.subarray(0, lastData - 1))));
    expect(isNydusError(err3, 'INVALID_FORMAT')).toBe(true);
    expect((err3 as Error).message).toContain('"b"');
  });

  it('accepts a stream that ends after the last body without its padding, whole or in part (umoci insert; Go archive/tar)', async () => {
    const expected = await readAll(chunked(Buffer.concat([members, END])));
    const lastData = members.length - pad(1000);
    for (const cut of [lastData, lastData + 1, members.length - 1]) {
      for (const size of [7, 512, 100_000]) expect(await readAll(chunked(members.subarray(0, cut), size))).toEqual(expected);
    }
    // Also when the consumer skips the last body instead of reading it.
    const skipped: string[] = [];
    for await (const e of readTarEntries(chunked(members.subarray(0, lastData), 64))) skipped.push(e.path);
    expect(skipped).toEqual(['a', 'd', 'b']);
  });

  it('fails with INVALID_FORMAT on a truncated header', async () => {
    const err = await errorOf(readAll(chunked(Buffer.concat([members, rawHeader({ name: 'c' }).subarray(0, 100)]))));
    expect(isNydusError(err, 'INVALID_FORMAT')).toBe(true);
    expect((err as Error).message).toMatch(/header/);
  });

  it('fails with INVALID_FORMAT on a checksum mismatch, naming entry and offset', async () => {
    const tampered = Buffer.from(members);
    tampered[1124] = tampered[1124]! ^ 1; // mode byte of "d", checksum left stale
    const err = await errorOf(readAll(chunked(tampered)));
    expect(isNydusError(err, 'INVALID_FORMAT')).toBe(true);
    expect((err as Error).message).toContain('"d"');
    expect((err as { offset?: number }).offset).toBe(1024 + 148);
    const garbage = Buffer.from('this is not a tar archive at all '.repeat(40));
    expect(isNydusError(await errorOf(readAll(chunked(garbage))), 'INVALID_FORMAT')).toBe(true);
  });

  it('fails with INVALID_FORMAT on a bad octal field', async () => {
    const h = rawHeader({ name: 'f' });
    h.write('12x4', 124, 'latin1');
    fixChecksum(h);
    const err = await errorOf(readAll(chunked(Buffer.concat([h, END]))));
    expect(isNydusError(err, 'INVALID_FORMAT')).toBe(true);
    expect((err as Error).message).toMatch(/size|octal/);
  });

  it('fails on an extended header with no entry after it', async () => {
    const err = await errorOf(readAll(chunked(Buffer.concat([paxHeader([['path', 'x']]), END]))));
    expect(isNydusError(err, 'INVALID_FORMAT')).toBe(true);
  });
});

describe('readTarEntries: GNU and PAX sparse files, holes expanded as Go archive/tar reads them', () => {
  let dir: string;
  const files = new Map<string, Buffer>();
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nydus-sparse-'));
    mkdirSync(join(dir, 'src'));
    // Data at the start, in the middle and at the very end; a file that is one hole.
    const sparse = Buffer.alloc(5 << 20);
    sparse.fill(0x41, 0, 100);
    sparse.fill(0x42, 1 << 20, (1 << 20) + 5000);
    sparse.fill(0x43, sparse.length - 10);
    const fd = openSync(join(dir, 'src/sparse.bin'), 'w');
    for (const [from, to] of [[0, 100], [1 << 20, (1 << 20) + 5000], [sparse.length - 10, sparse.length]] as const) writeSync(fd, sparse, from, to - from, from);
    closeSync(fd);
    writeFileSync(join(dir, 'src/holes.bin'), '');
    truncateSync(join(dir, 'src/holes.bin'), 3 << 20);
    // 32 fragments: the old GNU map continues in extension blocks (4 in the header, 21 per block).
    const many = Buffer.alloc(4 << 20);
    const fd2 = openSync(join(dir, 'src/many.bin'), 'w');
    for (let i = 0; i < 32; i++) {
      many.fill(0x61 + (i % 26), i * (128 << 10), i * (128 << 10) + 10);
      writeSync(fd2, many, i * (128 << 10), 10, i * (128 << 10));
    }
    closeSync(fd2);
    truncateSync(join(dir, 'src/many.bin'), many.length);
    files.set('sparse.bin', sparse).set('holes.bin', Buffer.alloc(3 << 20)).set('many.bin', many);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function archive(args: string[]): Promise<Buffer> {
    const out = join(dir, 'out.tar');
    await runTool('tar', ['--sparse', ...args, '-cf', out, '-C', join(dir, 'src'), 'holes.bin', 'many.bin', 'sparse.bin']);
    return readFileSync(out);
  }

  it.each([
    ['old GNU (type S)', ['--format=gnu']],
    ['PAX 0.0', ['--format=pax', '--sparse-version=0.0']],
    ['PAX 0.1', ['--format=pax', '--sparse-version=0.1']],
    ['PAX 1.0', ['--format=pax', '--sparse-version=1.0']],
  ])('%s', async (_label, args) => {
    const tar = await archive(args);
    // Really sparse: the archive holds the data, not the 12 MiB of the files.
    expect(tar.length).toBeLessThan(256 << 10);
    for (const size of [512, 1000, 1 << 20]) {
      const entries = await readAll(chunked(tar, size));
      expect(entries.map((e) => [e.path, e.type, e.size])).toEqual([
        ['holes.bin', 'file', 3 << 20],
        ['many.bin', 'file', 4 << 20],
        ['sparse.bin', 'file', 5 << 20],
      ]);
      for (const e of entries) expect(Buffer.from(e.data!, 'latin1').equals(files.get(e.path)!), e.path).toBe(true);
    }
    // Content the consumer skips is skipped as stored (the next entry still reads).
    const paths: string[] = [];
    for await (const e of readTarEntries(chunked(tar, 700))) paths.push(e.path);
    expect(paths).toEqual(['holes.bin', 'many.bin', 'sparse.bin']);
  });

  it('builds an image whose files read back with their holes as zeros', async () => {
    const tarFile = join(dir, 'pax10.tar');
    writeFileSync(tarFile, await archive(['--format=pax']));
    const bootstrap = join(dir, 'img/boot');
    const blobDir = join(dir, 'img/blobs');
    const built = await createImage({ type: 'tar-rafs', source: tarFile, bootstrap, blobDir, chunkSize: 0x10000 });
    const reader = await BootstrapReader.open(readFileSync(bootstrap));
    const rafs = new RafsFileReader(reader, new LocalBlobBackend(blobDir));
    for (const [name, content] of files) {
      const nid = reader.lookup(name)!;
      const parts: Uint8Array[] = [];
      for await (const p of rafs.stream(nid)) parts.push(p);
      expect(Buffer.concat(parts).equals(content), name).toBe(true);
    }
    // Holes are equal chunks: stored once.
    expect(built.blob!.chunkCount).toBeLessThan(40);
  });

  it('rejects maps that overlap, lie beyond the file or do not match the stored data (INVALID_FORMAT)', async () => {
    const bad = async (records: Array<[string, string]>, data: string): Promise<unknown> =>
      errorOf(readAll(chunked(Buffer.concat([paxHeader(records), fileMember('GNUSparseFile.1/f', data), END]))));
    const base: Array<[string, string]> = [['GNU.sparse.major', '0'], ['GNU.sparse.minor', '1'], ['GNU.sparse.name', 'f'], ['GNU.sparse.size', '100']];
    for (const [map, blocks, data] of [
      ['0,10,5,10', '2', 'x'.repeat(20)], // overlapping
      ['95,10', '1', 'x'.repeat(10)], // beyond the size
      ['0,10', '1', 'x'.repeat(11)], // stored data longer than the map
      ['0,10,20', '2', 'x'.repeat(10)], // odd number count
    ] as const) {
      const err = await bad([...base, ['GNU.sparse.numblocks', blocks], ['GNU.sparse.map', map]], data);
      expect(isNydusError(err, 'INVALID_FORMAT'), map).toBe(true);
    }
    // And the map as read: fragments, holes, the logical size.
    const [e] = await readAll(chunked(Buffer.concat([paxHeader([...base, ['GNU.sparse.numblocks', '2'], ['GNU.sparse.map', '2,3,90,4']]), fileMember('GNUSparseFile.1/f', 'abcWXYZ'), END])));
    expect(e).toMatchObject({ path: 'f', size: 100, data: `\0\0abc${'\0'.repeat(85)}WXYZ${'\0'.repeat(6)}` });
  });
});

describe('readTarEntries: streaming contract', () => {
  const big = Buffer.alloc(3 << 20, 7);
  const tar = Buffer.concat([fileMember('big', big), fileMember('small', 'tail'), fileMember('empty', ''), END]);

  it('skips content the consumer does not read, fully or partly', async () => {
    const paths: string[] = [];
    for await (const e of readTarEntries(chunked(tar, 65_536))) {
      paths.push(e.path);
      if (e.path === 'big') {
        for await (const chunk of e.content!) {
          expect(chunk.length).toBeGreaterThan(0);
          break; // read one chunk only
        }
      }
    }
    expect(paths).toEqual(['big', 'small', 'empty']);
  });

  it('refuses content reads after the next entry was requested', async () => {
    const it = readTarEntries(chunked(tar))[Symbol.asyncIterator]();
    const first = (await it.next()).value as LayerEntry;
    await it.next();
    const err = await errorOf(collect(first.content!));
    expect(isNydusError(err, 'FAILED_PRECONDITION')).toBe(true);
    await it.return(undefined);
  });

  it('pulls from the source only as the consumer reads (backpressure), without copying data', async () => {
    let pulled = 0;
    const chunks: Uint8Array[] = [];
    async function* source(): AsyncGenerator<Uint8Array> {
      for await (const c of chunked(tar, 65_536)) {
        pulled += c.length;
        chunks.push(c);
        yield c;
      }
    }
    const it = readTarEntries(source())[Symbol.asyncIterator]();
    const first = (await it.next()).value as LayerEntry;
    expect(first.size).toBe(3 << 20);
    expect(pulled).toBeLessThanOrEqual(65_536);
    const content = first.content![Symbol.asyncIterator]();
    const c1 = (await content.next()).value as Uint8Array;
    expect(pulled).toBeLessThanOrEqual(2 * 65_536);
    // The chunk is a view on the source's buffer, not a copy.
    expect(chunks.some((c) => c.buffer === c1.buffer)).toBe(true);
    await it.return(undefined);
  });

  it('stops the source when the consumer stops early', async () => {
    let finished = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        yield* chunked(tar, 4096);
      } finally {
        finished = true;
      }
    }
    for await (const e of readTarEntries(source())) {
      expect(e.path).toBe('big');
      break;
    }
    expect(finished).toBe(true);
  });

  it('honours an abort signal between entries', async () => {
    const controller = new AbortController();
    const err = await errorOf((async () => {
      for await (const e of readTarEntries(chunked(tar), { signal: controller.signal })) {
        void e;
        controller.abort();
      }
    })());
    expect(isNydusError(err, 'CANCELLED')).toBe(true);
  });
});

describe('readTarEntries WHOLE_CONTENT', () => {
  it('hands over a body inside the current source chunk whole, else declines and iterates', async () => {
    const tar = Buffer.concat([fileMember('a', 'hello'), fileMember('b', 'x'.repeat(3000)), fileMember('e', ''), END]);
    for (const size of [tar.length, 1024]) {
      const got: Array<[string, string | null, string]> = [];
      for await (const e of readTarEntries(chunked(tar, size))) {
        const c = e.content as unknown as WholeContentSource & AsyncIterable<Uint8Array>;
        const whole = c[WHOLE_CONTENT]();
        const again = c[WHOLE_CONTENT]();
        expect(again === null || (whole !== null && whole.length === 0)).toBe(true);
        got.push([e.path, whole === null ? null : Buffer.from(whole).toString('latin1'), (await collect(c)).toString('latin1')]);
      }
      if (size === tar.length) {
        expect(got).toEqual([['a', 'hello', ''], ['b', 'x'.repeat(3000), ''], ['e', '', '']]);
      } else {
        // 'b' spans source chunks: declined, then read by iteration.
        expect(got).toEqual([['a', 'hello', ''], ['b', null, 'x'.repeat(3000)], ['e', '', '']]);
      }
    }
  });
});
