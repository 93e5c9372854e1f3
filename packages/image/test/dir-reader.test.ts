import { truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isNydusError } from '@nydus-ts/core';
import { WHOLE_CONTENT, type LayerEntry, type WholeContentSource } from '@nydus-ts/format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDirectoryEntries } from '../src/index.js';
import { splitDev } from '../src/layer/dir-reader.js';
import { diffTrees, makeTree, snapshotEntries, snapshotTree } from '@nydus-ts/testing';
import { collect } from '@nydus-ts/testing';

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('readDirectoryEntries on a full make-tree output', () => {
  let work: string;
  let src: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'nydus-dir-reader-'));
    src = join(work, 'src');
    await makeTree(src, { seed: 11 }); // full size: 10,000-entry directory, 40 levels, 3.5 MiB file
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('describes the same tree as snapshotTree', async () => {
    const fromWalk = await snapshotEntries(readDirectoryEntries(src));
    const onDisk = await snapshotTree(src);
    expect(fromWalk.nodes.size).toBe(onDisk.nodes.size);
    expect(fromWalk.nodes.size).toBeGreaterThan(10_000);
    expect(diffTrees(onDisk, fromWalk)).toEqual([]);
  });

  it('walks depth-first in byte order, parents first; later hardlink names point to the first', async () => {
    const entries: LayerEntry[] = [];
    for await (const e of readDirectoryEntries(src)) entries.push(e);
    const paths = entries.map((e) => e.path);
    expect(paths[0]).toBe('');
    // Pre-order DFS with byte-wise sorted siblings = byte-wise order of the paths with '/' as
    // the smallest separator.
    const key = (p: string): Buffer => Buffer.from(p.replace(/\//g, '\0'));
    expect([...paths].sort((a, b) => Buffer.compare(key(a), key(b)))).toEqual(paths);
    const seen = new Set<string>();
    for (const e of entries) {
      if (e.path !== '') expect(seen.has(e.path.slice(0, Math.max(0, e.path.lastIndexOf('/'))))).toBe(true);
      seen.add(e.path);
    }
    const hard = entries.filter((e) => e.type === 'hardlink');
    const chain = `deep/${Array.from({ length: 40 }, (_, i) => `d${String(i).padStart(2, '0')}`).join('/')}`;
    // 'deep/...' comes before 'hardlinks/' in walk order, so pair-b is the file there.
    expect(hard.map((e) => [e.path, e.linkTarget])).toEqual([
      ['hardlinks/empty-linked-2', 'hardlinks/empty-linked'],
      ['hardlinks/pair-a', `${chain}/pair-b`],
      ['hardlinks/second', 'hardlinks/first'],
      ['hardlinks/third', 'hardlinks/first'],
      ['links/hardlink-elsewhere', 'hardlinks/first'],
    ]);
    for (const h of hard) {
      expect(h.size).toBe(0);
      expect(h.content).toBeUndefined();
      expect(paths.indexOf(h.linkTarget!)).toBeLessThan(paths.indexOf(h.path));
    }
    const names = entries.filter((e) => e.path.startsWith('wide/')).map((e) => e.path);
    expect(names).toHaveLength(10_000);
    expect([...names].sort(byteOrder)).toEqual(names);
  });

  it('reports nanoseconds, device numbers, symlink targets and special modes', async () => {
    const byPath = new Map<string, LayerEntry>();
    for await (const e of readDirectoryEntries(src)) byPath.set(e.path, e);
    expect(byPath.get('files/nsec-mtime')).toMatchObject({ mtime: 1_600_000_000, mtimeNsec: 500_000_000 });
    expect(byPath.get('dev/big')).toMatchObject({ type: 'char-device', devMajor: 259, devMinor: 65_537 });
    expect(byPath.get('dev/sda1')).toMatchObject({ type: 'block-device', devMajor: 8, devMinor: 1 });
    expect(byPath.get('dev/fifo')).toMatchObject({ type: 'fifo' });
    expect(byPath.get('links/dangling')).toMatchObject({ type: 'symlink', linkTarget: 'does/not/exist' });
    expect(byPath.get('links/long')!.linkTarget).toHaveLength(22 * 150 + 3);
    expect(byPath.get('modes/setuid')!.mode).toBe(0o4755);
    expect(byPath.get('modes/sticky')).toMatchObject({ type: 'directory', mode: 0o1777 });
    expect(byPath.get('modes/big-ids')).toMatchObject({ uid: 3_000_000, gid: 4_000_000 });
    expect(byPath.get('files/sparse.img')!.size).toBe(16 * 2 ** 20);
    expect(Buffer.from(byPath.get('xattrs/capable')!.xattrs!.get('security.capability')!).toString('hex')).toBe(
      '0100000200040000000000000000000000000000',
    );
  });

  it('opens file content only when iterated', async () => {
    const fds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    let files = 0;
    for await (const e of readDirectoryEntries(src)) if (e.type === 'file') files++;
    expect(files).toBeGreaterThan(10_000);
    expect(await fds()).toBe(before);
  });

  it('streams file content in chunks of at most readChunkSize', async () => {
    for await (const e of readDirectoryEntries(src, { readChunkSize: 65_536 })) {
      if (e.path !== 'files/multi-chunk.bin') continue;
      let chunks = 0;
      for await (const c of e.content!) {
        expect(c.length).toBeLessThanOrEqual(65_536);
        chunks++;
      }
      expect(chunks).toBe(56);
    }
  });
});

describe('readDirectoryEntries edge cases', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'nydus-dir-reader-edge-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('skips sockets', async () => {
    const dir = join(work, 'sock');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a'), 'a');
    const server = createServer();
    await new Promise<void>((r) => server.listen(join(dir, 's.sock'), r));
    try {
      const paths: string[] = [];
      for await (const e of readDirectoryEntries(dir)) paths.push(e.path);
      expect(paths).toEqual(['', 'a']);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('fails with DATA_LOSS when a file shrinks before its content is read', async () => {
    const dir = join(work, 'shrink');
    mkdirSync(dir);
    writeFileSync(join(dir, 'f'), Buffer.alloc(10_000, 1));
    for await (const e of readDirectoryEntries(dir)) {
      if (e.path !== 'f') continue;
      truncateSync(join(dir, 'f'), 100);
      const err = await errorOf(collect(e.content!));
      expect(isNydusError(err, 'DATA_LOSS')).toBe(true);
    }
  });

  it('hands files of at most 1 MiB over whole (WHOLE_CONTENT), with the iterated bytes; DATA_LOSS when one shrank', async () => {
    const dir = join(work, 'whole');
    mkdirSync(dir);
    const sizes = { empty: 0, small: 5000, exact: 1 << 20, big: (1 << 20) + 1, shrinks: 9000 };
    for (const [name, size] of Object.entries(sizes)) writeFileSync(join(dir, name), Buffer.alloc(size, name.charCodeAt(0)));
    for await (const e of readDirectoryEntries(dir)) {
      if (e.type !== 'file') continue;
      const whole = (e.content as unknown as WholeContentSource)[WHOLE_CONTENT];
      if (e.path === 'shrinks') {
        truncateSync(join(dir, 'shrinks'), 10);
        expect(() => whole()).toThrow(expect.objectContaining({ code: 'DATA_LOSS' }));
        continue;
      }
      const got = whole();
      if (e.path === 'big') {
        expect(got).toBeNull();
        continue;
      }
      expect(Buffer.from(got!).equals(Buffer.alloc(e.size, e.path.charCodeAt(0)))).toBe(true);
      expect((await collect(e.content!)).equals(Buffer.from(got!))).toBe(true);
    }
  });

  it('rejects a missing root or a root that is not a directory', async () => {
    const missing = await errorOf(collect((async function* () {
      for await (const e of readDirectoryEntries(join(work, 'nope'))) yield Buffer.from(e.path);
    })()));
    expect(isNydusError(missing, 'NOT_FOUND')).toBe(true);
    writeFileSync(join(work, 'plain-file'), 'x');
    const notDir = await errorOf(collect((async function* () {
      for await (const e of readDirectoryEntries(join(work, 'plain-file'))) yield Buffer.from(e.path);
    })()));
    expect(isNydusError(notDir, 'INVALID_ARGUMENT')).toBe(true);
  });

  it('can leave xattrs out', async () => {
    const dir = join(work, 'noxattr');
    await makeTree(dir, { small: true, seed: 1 });
    for await (const e of readDirectoryEntries(dir, { xattrs: false })) expect(e.xattrs).toBeUndefined();
  });
});

describe('splitDev', () => {
  it('splits glibc dev_t values, including majors and minors beyond 8 and 12 bits', () => {
    const makedev = (major: bigint, minor: bigint): bigint =>
      (minor & 0xffn) | ((major & 0xfffn) << 8n) | ((minor & ~0xffn) << 12n) | ((major & ~0xfffn) << 32n);
    for (const [major, minor] of [
      [1, 3],
      [8, 1],
      [259, 65_537],
      [4095, 0xfffff],
      [0x12345, 0xabcdef01],
      [0, 0],
    ] as const) {
      expect(splitDev(makedev(BigInt(major), BigInt(minor)))).toEqual({ major, minor });
    }
  });
});
