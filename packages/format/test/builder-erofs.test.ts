// Independent check of buildLayer output with erofs-utils (fsck.erofs / dump.erofs): a raw
// ('none') blob is a valid EROFS extra device, so fsck can verify and extract the layer.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Stats } from 'node:fs';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LayerEntry } from '../src/index.js';
import { BootstrapView, E, build, prng } from './builder-helpers.js';

const run = promisify(execFile);

const work = mkdtempSync(join(tmpdir(), 'nydus-builder-erofs-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Expected {
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'chr' | 'blk';
  mode: number;
  uid: number;
  gid: number;
  mtime?: number;
  content?: Buffer;
  target?: string;
  rdev?: [number, number];
}

function layer(): { entries: () => LayerEntry[]; expected: Map<string, Expected> } {
  const expected = new Map<string, Expected>();
  const files: Array<[string, Buffer, number, number, number]> = [
    ['etc/passwd', Buffer.from('root:x:0:0:root:/root:/bin/sh\n'), 0o644, 0, 0],
    ['etc/shadow', Buffer.from('root:*:19000::::::\n'), 0o600, 0, 42],
    ['bin/big', prng(3 * 65536 + 1234, 5), 0o755, 0, 0],
    ['bin/exact', prng(2 * 65536, 6, true), 0o4755, 0, 0],
    ['home/user/empty', Buffer.alloc(0), 0o640, 1000, 1000],
    ['home/user/dup', prng(70_000, 5), 0o644, 1000, 1000],
    ['home/user/\u00fcnicode \u2603.txt', Buffer.from('snow'), 0o644, 1000, 1000],
  ];
  for (let i = 0; i < 300; i++) files.push([`many/entry-${String(i).padStart(4, '0')}-${'n'.repeat(i % 60)}`, Buffer.from(`#${i}\n`.repeat(i % 9)), 0o644, i, i + 1]);
  for (const [p, content, mode, uid, gid] of files) expected.set(p, { type: 'file', mode, uid, gid, mtime: 1_650_000_000, content });
  // Before 1970 (negative PAX mtimes are accepted): i_mtime is a signed 64-bit field.
  expected.set('etc/ancient', { type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: -86_400 * 365 - 1, content: Buffer.from('1969\n') });
  expected.set('etc', { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 1_650_000_001 });
  expected.set('bin', { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
  expected.set('home', { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
  expected.set('home/user', { type: 'dir', mode: 0o700, uid: 1000, gid: 1000, mtime: 1_650_000_002 });
  expected.set('many', { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
  expected.set('bin/sh', { type: 'symlink', mode: 0o777, uid: 0, gid: 0, target: 'big' });
  expected.set('long-link', { type: 'symlink', mode: 0o777, uid: 0, gid: 0, target: '/x'.repeat(2000) });
  expected.set('bin/hard', { ...expected.get('bin/big')! });
  expected.set('dev', { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
  expected.set('dev/fifo', { type: 'fifo', mode: 0o644, uid: 0, gid: 0 });
  expected.set('dev/null', { type: 'chr', mode: 0o666, uid: 0, gid: 0, rdev: [1, 3] });
  expected.set('dev/loop9', { type: 'blk', mode: 0o660, uid: 0, gid: 6, rdev: [7, 9] });
  const entries = (): LayerEntry[] => [
    ...files.map(([p, c, mode, uid, gid]) => E.file(p, c, { mode, uid, gid, mtime: 1_650_000_000, pieceSize: 10_000, xattrs: { 'user.origin': p } })),
    E.file('etc/ancient', '1969\n', { mtime: -86_400 * 365 - 1 }),
    E.dir('etc', { mtime: 1_650_000_001 }),
    E.dir('home/user', { mode: 0o700, uid: 1000, gid: 1000, mtime: 1_650_000_002 }),
    E.symlink('bin/sh', 'big'),
    E.symlink('long-link', '/x'.repeat(2000)),
    E.hardlink('bin/hard', 'bin/big'),
    E.fifo('dev/fifo'),
    E.chr('dev/null', 1, 3),
    E.blk('dev/loop9', 7, 9, { gid: 6 }),
  ];
  return { entries, expected };
}

function typeOf(st: Stats): Expected['type'] {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'chr';
  return 'blk';
}

function listTree(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, rel))) {
    const p = rel === '' ? name : `${rel}/${name}`;
    out.push(p);
    if (lstatSync(join(root, p)).isDirectory()) out.push(...listTree(root, p));
  }
  return out;
}

describe('buildLayer output checked by erofs-utils', () => {
  it('passes fsck.erofs and extracts to exactly the input tree', async () => {
    const { entries, expected } = layer();
    const r = await build(entries, { compressor: 'none', chunkSize: 65536, digester: 'sha256' });
    const boot = join(work, 'image.boot');
    const blob = join(work, r.blob!.id);
    writeFileSync(boot, r.bootstrap);
    writeFileSync(blob, r.blobBytes);

    const sb = (await run('dump.erofs', [`--device=${blob}`, '-s', boot], { encoding: 'utf8' })).stdout;
    expect(sb).toMatch(/Filesystem root nid:\s+128/);
    expect(sb).toMatch(new RegExp(`Filesystem inode count:\\s+${expected.size + 1}\\b`));
    expect(sb).toContain('chunked_file');
    expect(sb).toContain('device_table');

    // dump.erofs 1.5 prints permission bits only; the setuid bit is checked on the inode itself.
    const v = new BootstrapView(r.bootstrap);
    expect(v.inode(v.lookup('bin/exact')).mode).toBe(0o104755);
    expect(v.inode(v.lookup('etc/ancient')).mtime).toBe(-86_400 * 365 - 1);

    const out = join(work, 'extract');
    await run('fsck.erofs', [`--device=${blob}`, `--extract=${out}`, '--preserve', boot]);
    expect(listTree(out).sort()).toEqual([...expected.keys()].sort());
    for (const [p, want] of expected) {
      const full = join(out, p);
      const st = lstatSync(full);
      expect(typeOf(st), p).toBe(want.type);
      // fsck.erofs 1.5 chowns after chmod, which clears setuid/setgid: compare those via dump.erofs.
      if (want.type !== 'symlink') expect(st.mode & 0o777, p).toBe(want.mode & 0o777);
      expect([st.uid, st.gid], p).toEqual([want.uid, want.gid]);
      if (want.mtime !== undefined && want.type !== 'dir') expect(Math.floor(st.mtimeMs / 1000), p).toBe(want.mtime);
      if (want.content) expect(readFileSync(full).equals(want.content), p).toBe(true);
      if (want.target) expect(readlinkSync(full), p).toBe(want.target);
      if (want.rdev) expect([Math.floor(st.rdev / 256) & 0xfff, st.rdev & 0xff], p).toEqual(want.rdev);
    }
  });

  it('shows hardlinks as one inode with nlink 2 and xattrs in dump.erofs', async () => {
    const { entries } = layer();
    const r = await build(entries, { compressor: 'none', chunkSize: 65536 });
    const boot = join(work, 'links.boot');
    const blob = join(work, 'links.blob');
    writeFileSync(boot, r.bootstrap);
    writeFileSync(blob, r.blobBytes);
    const big = (await run('dump.erofs', [`--device=${blob}`, '--path=/bin/big', boot], { encoding: 'utf8' })).stdout;
    const hard = (await run('dump.erofs', [`--device=${blob}`, '--path=/bin/hard', boot], { encoding: 'utf8' })).stdout;
    const nid = /NID:\s*(\d+)/.exec(big)?.[1];
    expect(nid).toBeDefined();
    expect(/NID:\s*(\d+)/.exec(hard)?.[1]).toBe(nid);
    expect(big).toMatch(/Links:\s*2/);
    expect(big).toMatch(/Xattr size:\s*\d+/);
  });
});
