// Issue 11, done-when 3 (integrity): one byte flipped in a blob inside the registry's storage
// directory; reads touching that chunk fail with EIO in both modes, every other file reads
// correctly, the metrics count the mismatch, the log names blob and chunk. A truncated or mutated
// bootstrap is refused at start with a clear error (exit 2), nothing mounted.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BootstrapReader } from '@nydus-ts/format';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { createRandom } from '@nydus-ts/testing';
import { readMountTable } from '../src/index.js';
import { convertDirToRegistry, fetchBootstrap, registryConfig } from './support/images.js';
import { DaemonScope, runNydusdToExit } from './support/nydusd-process.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('integrity', () => {
  const daemons = new DaemonScope();
  let work: string;
  let registry: TestRegistry;
  let boot: string;
  let config: string;
  const files = new Map<string, Buffer>();
  const VICTIM = 'victim.bin';

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-integrity-'));
    registry = await startRegistry();
    const src = path.join(work, 'src');
    await mkdir(path.join(src, 'd'), { recursive: true });
    const rnd = createRandom(9);
    for (const [rel, data] of [
      ['a.txt', Buffer.from('first file\n'.repeat(500))],
      [VICTIM, rnd.bytes(200_000)],
      ['d/b.bin', rnd.bytes(150_000)],
      ['z.txt', Buffer.from('last file\n'.repeat(300))],
    ] as const) {
      await writeFile(path.join(src, rel), data);
      files.set(rel, data);
    }
    // 64 KiB chunks, no amplification (below): the victim's first chunk is read on its own.
    await convertDirToRegistry(registry.host, src, 'integrity/img', { compressor: 'zstd', chunkSize: '0x10000' });
    boot = path.join(work, 'image.boot');
    const { blobIds } = await fetchBootstrap(registry.host, 'integrity/img', 'v1', boot);
    expect(blobIds).toHaveLength(1);
    // Flip one byte inside the victim's first chunk, in the registry's own storage.
    const reader = await BootstrapReader.open(await readFile(boot));
    const chunk = reader.chunks(reader.lookup(`/${VICTIM}`)!)[0]!;
    const blobFile = path.join(registry.dir, 'storage/docker/registry/v2/blobs/sha256', blobIds[0]!.slice(0, 2), blobIds[0]!, 'data');
    const fh = await open(blobFile, 'r+');
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, chunk.compressedOffset + 17);
    byte[0]! ^= 0x40;
    await fh.write(byte, 0, 1, chunk.compressedOffset + 17);
    await fh.close();
  }, 120_000);

  afterAll(async () => {
    await daemons.cleanup();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  for (const mode of ['fuse', 'erofs'] as const) {
    it(`${mode} mode: the corrupted chunk reads EIO, is counted and logged, never cached; other files read correctly`, async () => {
      const dir = path.join(work, mode);
      await mkdir(dir);
      config = path.join(dir, 'config.json');
      await writeFile(config, registryConfig(registry.host, 'integrity/img', path.join(dir, 'cache'), { amplify_io: 0 }));
      const mnt = path.join(dir, 'mnt');
      await mkdir(mnt);
      const d = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args: ['--config', config, '--bootstrap', boot, '--mode', mode] });
      for (let attempt = 0; attempt < 2; attempt++) {
        const err = await readFile(path.join(mnt, VICTIM)).then(() => undefined, (e: NodeJS.ErrnoException) => e);
        expect(err?.code, `attempt ${attempt}`).toBe('EIO');
      }
      // The victim's later chunks and every other file read fine.
      const fh = await open(path.join(mnt, VICTIM), 'r');
      const tail = Buffer.alloc(65536);
      await fh.read(tail, 0, 65536, 2 * 65536);
      await fh.close();
      expect(tail.equals(files.get(VICTIM)!.subarray(2 * 65536, 3 * 65536))).toBe(true);
      for (const [rel, data] of files) if (rel !== VICTIM) expect(sha(await readFile(path.join(mnt, rel))), rel).toBe(sha(data));

      const cache = (await d.api('GET', '/api/v1/metrics/blobcache')).json as { digest_errors: number; entries_count: number };
      expect(cache.digest_errors).toBeGreaterThanOrEqual(2);
      const prom = (await d.api('GET', '/metrics')).body;
      const m = /^nydusd_chunk_verify_errors_total (\d+)$/m.exec(prom);
      expect(Number(m?.[1])).toBe(cache.digest_errors);
      const failures = d
        .logs()
        .split('\n')
        .filter((l) => l.includes('chunk verification failed'))
        .map((l) => JSON.parse(l) as { level: string; blob: string; chunk: number });
      expect(failures.length).toBe(cache.digest_errors);
      expect(failures[0]).toMatchObject({ level: 'error', blob: expect.stringMatching(/^[0-9a-f]{64}$/), chunk: expect.any(Number) });
      // Never cached: the map on disk does not have the chunk after a clean stop either.
      expect(await d.stop()).toBe(0);
    }, 180_000);
  }

  it('a truncated or mutated bootstrap is refused at start with a clear error, nothing mounted', async () => {
    const dir = path.join(work, 'bad-boot');
    await mkdir(dir);
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt);
    const cfg = path.join(dir, 'config.json');
    await writeFile(cfg, registryConfig(registry.host, 'integrity/img', path.join(dir, 'cache')));
    const good = await readFile(boot);
    const reader = await BootstrapReader.open(good);
    const victimNid = reader.lookup(`/${VICTIM}`)!;
    const inodeAt = reader.superblock.metaBlkaddr * 4096 + victimNid * 32;
    const cases: Array<[string, Buffer, RegExp]> = [
      ['truncated', good.subarray(0, good.length - 4096), /bootstrap|beyond the end|past the end/],
      ['bad superblock magic', Buffer.concat([good.subarray(0, 1024), Buffer.alloc(4), good.subarray(1028)]), /superblock\.s_magic/],
      ['mutated inode format', (() => { const b = Buffer.from(good); b.writeUInt16LE(0xffff, inodeAt); return b; })(), /inode\[nid \d+\]/],
      ['empty', Buffer.alloc(0), /smaller than one 4096-byte block/],
    ];
    for (const [name, bytes, message] of cases) {
      const file = path.join(dir, `${name.replace(/ /g, '-')}.boot`);
      await writeFile(file, bytes);
      const r = await runNydusdToExit(['--config', cfg, '--bootstrap', file, '--mountpoint', mnt]);
      expect(r.code, name).toBe(2);
      expect(r.stderr, name).toMatch(/^error: /m);
      expect(r.stderr, name).toMatch(message);
    }
    expect((await readMountTable()).some((e) => e.mountpoint === mnt)).toBe(false);
  }, 120_000);
});
