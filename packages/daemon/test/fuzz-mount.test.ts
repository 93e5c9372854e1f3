// The daemon's mount path under mutated and truncated bootstraps (issue 11, done-when 3; the
// format package's reader fuzz covers the reader itself): loading an image (which checks the
// whole bootstrap) and then walking it through the filesystem operations either works or fails
// with a NydusError (or an errno answer); never another exception, never a hang. Deterministic:
// NYDUS_FUZZ_SEED replays another seed.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isNydusError, noopLogger } from '@nydus-ts/core';
import { LocalBlobBackend } from '@nydus-ts/backend';
import { createRandom } from '@nydus-ts/testing';
import { BlobCacheManager, FetchScheduler, FsError, RafsFilesystem, RafsImage } from '../src/index.js';
import { buildLocalImage } from './support/images.js';

const SEED = Number(process.env.NYDUS_FUZZ_SEED ?? 0x5eed_0011) >>> 0;
const fixtures = fileURLToPath(new URL('../../../testdata/nydus-upstream/', import.meta.url));
const ITERATIONS = 250;

/** mulberry32 */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0xffffffff, 4096, 4095, 0x100000, 128, 12];

describe('mount path under mutated bootstraps', () => {
  let work: string;
  let ourBoot: Buffer;
  let ourBlobs: string;
  const failures: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-fuzz-'));
    const src = path.join(work, 'src');
    await mkdir(path.join(src, 'd/e'), { recursive: true });
    const rnd = createRandom(3);
    await writeFile(path.join(src, 'a.bin'), rnd.bytes(9000));
    await writeFile(path.join(src, 'd/e/b.txt'), 'bee\n');
    await writeFile(path.join(src, 'd/c'), rnd.bytes(70_000));
    const boot = path.join(work, 'ours.boot');
    ourBlobs = path.join(work, 'blobs');
    await buildLocalImage(src, boot, ourBlobs, { chunkSize: '0x4000' });
    ourBoot = await readFile(boot);
  }, 120_000);

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
    if (failures.length > 0) console.error(failures.join('\n'));
  });

  async function exercise(bytes: Uint8Array, blobDir: string, cacheDir: string): Promise<void> {
    const backend = new LocalBlobBackend(blobDir);
    const manager = new BlobCacheManager(noopLogger);
    let image: RafsImage | undefined;
    try {
      image = await RafsImage.load(bytes, { backend, cacheManager: manager, scheduler: new FetchScheduler(), workDir: cacheDir, amplifyIo: 0, id: '/' });
      const fs = new RafsFilesystem(image);
      const walk = async (dir: string, depth: number): Promise<void> => {
        if (depth > 64) return;
        for (const name of fs.readdir(dir)) {
          if (name === '.' || name === '..') continue;
          const p = dir === '/' ? `/${name}` : `${dir}/${name}`;
          const nid = fs.resolve(p);
          const st = fs.getattr(nid);
          for (const x of fs.listxattr(nid)) fs.getxattr(nid, x);
          const type = st.mode & 0o170000;
          if (type === 0o040000) await walk(p, depth + 1);
          else if (type === 0o120000) fs.readlink(nid);
          else if (type === 0o100000) {
            fs.open(nid, 0);
            await fs.read(nid, Buffer.alloc(8192), 0, 8192);
          }
        }
      };
      fs.statfs();
      await walk('/', 0);
    } finally {
      await image?.close();
      await backend.close();
    }
  }

  async function run(name: string, input: Buffer, blobDir: string): Promise<void> {
    const rand = prng(SEED ^ input.length);
    const cacheDir = path.join(work, `cache-${name}`);
    const work2 = Buffer.from(input);
    const cases: Array<{ label: string; bytes: Uint8Array }> = [];
    for (let i = 0; i < ITERATIONS; i++) {
      const m = Buffer.from(input);
      const count = 1 + Math.floor(rand() * 3);
      const muts: string[] = [];
      for (let k = 0; k < count; k++) {
        // Mostly the metadata area (superblocks, tables, inodes), sometimes anywhere.
        const off = rand() < 0.7 ? 1024 + Math.floor(rand() * Math.min(m.length - 1024, 16384)) : Math.floor(rand() * m.length);
        if (rand() < 0.5) m[off] = m[off]! ^ (1 << Math.floor(rand() * 8));
        else {
          const v = INTERESTING[Math.floor(rand() * INTERESTING.length)]!;
          for (let b = 0; b < 4 && off + b < m.length; b++) m[off + b] = (v >>> (8 * b)) & 0xff;
        }
        muts.push(String(off));
      }
      cases.push({ label: `${name} seed=0x${SEED.toString(16)} iteration=${i} offsets=${muts.join(',')}`, bytes: m });
    }
    for (let cut = 512; cut < input.length; cut += 1536) cases.push({ label: `${name} truncated to ${cut}`, bytes: work2.subarray(0, cut) });
    const outcomes = new Map<string, number>();
    for (const c of cases) {
      const started = Date.now();
      try {
        await exercise(c.bytes, blobDir, cacheDir);
        outcomes.set('ok', (outcomes.get('ok') ?? 0) + 1);
      } catch (err) {
        const kind = isNydusError(err) ? err.code : err instanceof FsError ? `errno ${err.errno}` : 'OTHER';
        outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
        if (kind === 'OTHER') failures.push(`${c.label}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
      if (Date.now() - started > 5000) failures.push(`${c.label}: took ${Date.now() - started} ms`);
    }
    // Both the happy and the refusing paths were reached.
    expect(outcomes.get('ok') ?? 0, JSON.stringify([...outcomes])).toBeGreaterThan(0);
    expect(outcomes.get('INVALID_FORMAT') ?? 0, JSON.stringify([...outcomes])).toBeGreaterThan(0);
  }

  it('the reference fixture rafs-v6-2.2.boot', async () => {
    await run('fixture', await readFile(path.join(fixtures, 'rafs-v6-2.2.boot')), fixtures);
    expect(failures).toEqual([]);
  }, 300_000);

  it('an image built by nydusify-ts', async () => {
    await run('ours', ourBoot, ourBlobs);
    expect(failures).toEqual([]);
  }, 300_000);
});
