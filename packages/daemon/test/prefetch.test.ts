// Prefetch (issue 11): the bootstrap's prefetch table (nydusify-ts --prefetch-patterns) with
// fs_prefetch.enable, and --prefetch-files, fetch their files in the background: reading them
// afterwards costs no backend request, while files outside the lists still come on demand.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRandom } from '@nydus-ts/testing';
import { buildLocalImage, localfsConfig } from './support/images.js';
import { DaemonScope, type NydusdProcess } from './support/nydusd-process.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('prefetch', () => {
  const daemons = new DaemonScope();
  let work: string;
  let boot: string;
  let blobs: string;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-prefetch-'));
    const src = path.join(work, 'src');
    const rnd = createRandom(21);
    for (const dir of ['hot', 'warm', 'cold']) {
      await mkdir(path.join(src, dir), { recursive: true });
      for (let i = 0; i < 5; i++) {
        const data = rnd.bytes(150_000);
        files.set(`${dir}/f${i}`, data);
        await writeFile(path.join(src, dir, `f${i}`), data);
      }
    }
    const patterns = path.join(work, 'patterns');
    await writeFile(patterns, '/hot\n');
    boot = path.join(work, 'image.boot');
    blobs = path.join(work, 'blobs');
    await buildLocalImage(src, boot, blobs, { chunkSize: '0x10000', prefetchPatterns: patterns });
  }, 120_000);

  afterAll(async () => {
    await daemons.cleanup();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  async function settled(d: NydusdProcess): Promise<Record<string, number>> {
    for (let i = 0; i < 300; i++) {
      const m = (await d.api('GET', '/api/v1/metrics/blobcache')).json as Record<string, number>;
      if (m.prefetch_end_time_secs! > 0) return m;
      await sleep(100);
    }
    throw new Error('prefetch did not finish in 30 s');
  }

  it("the bootstrap's prefetch table and --prefetch-files are fetched in the background; other files on demand", async () => {
    const config = path.join(work, 'config.json');
    // Amplification off: a read of /cold must fetch it on demand, not ride on a neighbour.
    await writeFile(config, localfsConfig(blobs, path.join(work, 'cache'), { amplify_io: 0, fs_prefetch: { enable: true, threads_count: 2, merging_size: 131072, bandwidth_rate: 50_000_000 } }));
    const mnt = path.join(work, 'mnt');
    await mkdir(mnt);
    const d = await daemons.start({ mountpoint: mnt, apisock: path.join(work, 'api.sock'), args: ['--config', config, '--bootstrap', boot, '--prefetch-files', '/warm/f1', '/warm/f2'] });
    const cache = await settled(d);
    const prefetched = 5 * 150_000 + 2 * 150_000;
    expect(cache.prefetch_requests_count).toBeGreaterThan(0);
    expect(cache.prefetch_data_amount).toBeGreaterThanOrEqual(prefetched * 0.9);
    const readsAfterPrefetch = ((await d.api('GET', '/api/v1/metrics/backend')).json as { read_count: number }).read_count;
    for (const name of ['hot/f0', 'hot/f1', 'hot/f2', 'hot/f3', 'hot/f4', 'warm/f1', 'warm/f2']) {
      expect(sha(await readFile(path.join(mnt, name))), name).toBe(sha(files.get(name)!));
    }
    expect(((await d.api('GET', '/api/v1/metrics/backend')).json as { read_count: number }).read_count).toBe(readsAfterPrefetch);
    expect(sha(await readFile(path.join(mnt, 'cold/f3')))).toBe(sha(files.get('cold/f3')!));
    expect(((await d.api('GET', '/api/v1/metrics/backend')).json as { read_count: number }).read_count).toBeGreaterThan(readsAfterPrefetch);
    expect(((await d.api('GET', '/api/v1/metrics/blobcache')).json as { data_all_ready: boolean }).data_all_ready).toBe(false);
    expect(await d.stop()).toBe(0);
  }, 120_000);

  it('prefetch_all fetches every chunk', async () => {
    const config = path.join(work, 'config-all.json');
    await writeFile(config, localfsConfig(blobs, path.join(work, 'cache-all'), { fs_prefetch: { enable: true, prefetch_all: true, threads_count: 4 } }));
    const mnt = path.join(work, 'mnt-all');
    await mkdir(mnt);
    const d = await daemons.start({ mountpoint: mnt, apisock: path.join(work, 'api-all.sock'), args: ['--config', config, '--bootstrap', boot] });
    const cache = await settled(d);
    expect(cache.data_all_ready).toBe(true);
    const reads = ((await d.api('GET', '/api/v1/metrics/backend')).json as { read_count: number }).read_count;
    for (const [name, data] of files) expect(sha(await readFile(path.join(mnt, name))), name).toBe(sha(data));
    expect(((await d.api('GET', '/api/v1/metrics/backend')).json as { read_count: number }).read_count).toBe(reads);
    expect(await d.stop()).toBe(0);
  }, 120_000);
});
