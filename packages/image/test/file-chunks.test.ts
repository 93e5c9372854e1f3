// Sources that reuse their buffers: readFileChunks, and the tar reader + builder contract that
// makes it safe (no source bytes kept across reads).
import { createReadStream, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLayer, type LayerEntry } from '@nydus-ts/format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTarEntries } from '../src/index.js';
import { readFileChunks } from '../src/layer/file-chunks.js';
import { END, fileMember, paxHeader } from '@nydus-ts/testing';
import { chunked } from '@nydus-ts/testing';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const allTypes = resolve(repoRoot, 'testdata/nydus-upstream/all-entry-type.tar');

/** Like `chunked`, but every chunk is one buffer, scribbled over before it is refilled. */
async function* reusing(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  const buf = Buffer.alloc(size);
  for (let off = 0; off < data.length; off += size) {
    buf.fill(0xaa);
    const n = Math.min(size, data.length - off);
    buf.set(data.subarray(off, off + n));
    yield buf.subarray(0, n);
  }
  buf.fill(0xaa);
}

/** Entries with their content copied piece by piece as it arrives (what a consumer must do). */
async function readCopying(source: AsyncIterable<Uint8Array>): Promise<Array<Omit<LayerEntry, 'content'> & { data?: string }>> {
  const out: Array<Omit<LayerEntry, 'content'> & { data?: string }> = [];
  for await (const e of readTarEntries(source)) {
    const { content, ...rest } = e;
    let data: string | undefined;
    if (content) {
      data = '';
      for await (const piece of content) data += Buffer.from(piece).toString('latin1');
    }
    out.push(data === undefined ? rest : { ...rest, data });
  }
  return out;
}

function archive(): Buffer {
  const members: Buffer[] = [];
  for (let i = 0; i < 40; i++) {
    const name = `dir/${'long-name-'.repeat(i % 12)}${i}`;
    // PAX headers (path, xattr) that cross source chunks at the small chunk sizes.
    members.push(paxHeader([['path', name], ['SCHILY.xattr.user.n', `value-${i}`]]));
    members.push(fileMember(`short${i}`, Buffer.alloc(i * 97, 0x30 + (i % 10))));
  }
  return Buffer.concat([...members, END]);
}

describe('tar reader over a source that reuses its buffer', () => {
  it('gives the same entries, names, xattrs and contents as over fresh chunks', async () => {
    for (const bytes of [readFileSync(allTypes), archive()]) {
      const reference = await readCopying(chunked(bytes, 1 << 20));
      for (const size of [100, 511, 512, 513, 4096, 65_536]) {
        expect(await readCopying(reusing(bytes, size))).toEqual(reference);
      }
    }
  });

  it('builds the same layer (bootstrap and blob) as over fresh chunks', async () => {
    const bytes = archive();
    const build = async (source: AsyncIterable<Uint8Array>) => {
      const parts: Buffer[] = [];
      const r = await buildLayer(readTarEntries(source), { write: async (b) => void parts.push(Buffer.from(b)) }, { compressor: 'lz4_block', chunkSize: 4096 });
      return { boot: Buffer.from(r.bootstrap).toString('hex'), blob: Buffer.concat(parts).toString('hex') };
    };
    const reference = await build(chunked(bytes, 1 << 20));
    for (const size of [300, 4096, 10_000]) expect(await build(reusing(bytes, size))).toEqual(reference);
  });
});

describe('readFileChunks', () => {
  let work: string;
  let file: string;
  const data = Buffer.from(Array.from({ length: 300_001 }, (_, i) => (i * 31) & 0xff));

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'nydus-file-chunks-'));
    file = join(work, 'data');
    await writeFile(file, data);
  });
  afterAll(async () => rm(work, { recursive: true, force: true }));

  const openFds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;

  it('yields the file in chunks from two alternating buffers, then closes it', async () => {
    const before = await openFds();
    const parts: Buffer[] = [];
    const buffers = new Set<ArrayBufferLike>();
    for await (const c of readFileChunks(file, { chunkSize: 65_536 })) {
      expect(c.length).toBe(Math.min(65_536, data.length - parts.reduce((n, p) => n + p.length, 0)));
      buffers.add(c.buffer);
      parts.push(Buffer.from(c));
    }
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    expect(buffers.size).toBe(2);
    expect(await openFds()).toBe(before);
    const tail: Buffer[] = [];
    for await (const c of readFileChunks(file, { chunkSize: 1 << 20, position: 300_000 })) tail.push(Buffer.from(c));
    expect(Buffer.concat(tail)).toEqual(data.subarray(300_000));
  });

  it('closes the file when the consumer stops early, and reads an empty file as nothing', async () => {
    const before = await openFds();
    for await (const c of readFileChunks(file, { chunkSize: 4096 })) {
      expect(c.length).toBe(4096);
      break;
    }
    expect(await openFds()).toBe(before);
    const empty = join(work, 'empty');
    await writeFile(empty, '');
    let n = 0;
    for await (const c of readFileChunks(empty)) n += c.length;
    expect(n).toBe(0);
    await expect(async () => {
      for await (const c of readFileChunks(join(work, 'missing'))) void c;
    }).rejects.toThrow(/ENOENT/);
  });

  it('feeds the tar reader like a read stream', async () => {
    const tar = join(work, 'a.tar');
    await writeFile(tar, archive());
    expect(await readCopying(readFileChunks(tar, { chunkSize: 1000 }))).toEqual(await readCopying(createReadStream(tar)));
  });
});

describe('headerChecksum', () => {
  it('sums the same on word-aligned (four bytes a step) and unaligned blocks', async () => {
    const { WordViews, headerChecksum } = await import('../src/layer/tar-header.js');
    const naive = (b: Buffer): number => {
      let sum = 8 * 0x20;
      for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += b[i]!;
      return sum;
    };
    for (let seed = 0; seed < 50; seed++) {
      const raw = Buffer.alloc(516);
      for (let i = 0; i < raw.length; i++) raw[i] = seed === 0 ? 0xff : (i * 131 + seed * 7919) & 0xff;
      const aligned = raw.subarray(0, 512);
      const unaligned = Buffer.from(raw.subarray(3, 515));
      const odd = raw.subarray(1, 513);
      expect(headerChecksum(aligned)).toBe(naive(aligned));
      expect(headerChecksum(odd)).toBe(naive(odd));
      expect(headerChecksum(unaligned)).toBe(naive(unaligned));
      const views = new WordViews();
      expect(headerChecksum(aligned, views)).toBe(naive(aligned));
      expect(headerChecksum(Buffer.from(raw).subarray(4, 516), views)).toBe(naive(raw.subarray(4, 516)));
      expect(headerChecksum(aligned, views)).toBe(naive(aligned));
    }
  });
});

describe('AtomicFileWriter.end', () => {
  it('starts the sync early; writes after it still land; commit renames', async () => {
    const { AtomicFileWriter } = await import('../src/atomic-file.js');
    const work = await mkdtemp(join(tmpdir(), 'nydus-atomic-'));
    try {
      const w = await AtomicFileWriter.create(work);
      await w.write(Buffer.from('hello '));
      await w.write(Buffer.alloc(2 << 20, 0x61)); // large: written without the buffer
      await w.end();
      await w.write(Buffer.from('late'));
      await w.commit(join(work, 'final'));
      const got = readFileSync(join(work, 'final'));
      expect(got.length).toBe(6 + (2 << 20) + 4);
      expect(got.subarray(0, 6).toString()).toBe('hello ');
      expect(got.subarray(-4).toString()).toBe('late');
      expect((await readdir(work)).sort()).toEqual(['final']);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
