// Issue 11, done-when 2 (laziness) and 5 (concurrency), on the node image of the convert
// benchmark (Debian minbase + this Node.js, converted by nydusify-ts in a loopback registry):
// reading one small file fetches < 1% of its blob, reading it again fetches nothing, and after
// kill -9 and a restart with the same work_dir still nothing; 16 parallel readers over every
// file while prefetch runs get every byte right, and no chunk is fetched twice.
import { createHash } from 'node:crypto';
import { constants, createReadStream, existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '@nydus-ts/registry';
import { startFaultProxy, startRegistry, type FaultProxy, type TestRegistry } from '@nydus-ts/registry/testing';
import { ensureNodeLayerAsync, pushNodeImage } from '../../../scripts/bench/_node-image.mjs';
import { ensureMinbase } from '../../converter/test/support/images.js';
import { readMountTable } from '../src/index.js';
import { fetchBootstrap, nydusify, registryConfig } from './support/images.js';
import { DaemonScope, forceUnmount } from './support/nydusd-process.js';

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

/** Regular files of a mounted tree (relative paths), depth first. */
async function regularFiles(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await regularFiles(root, p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

describe('laziness and concurrency on the node image', () => {
  const daemons = new DaemonScope();
  let work: string;
  let registry: TestRegistry;
  let boot: string;
  let blobSizes: Map<string, number>;
  let minbaseDir: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-lazy-'));
    registry = await startRegistry();
    const minbase = await ensureMinbase();
    minbaseDir = minbase.dir;
    const client = new RegistryClient({ registry: registry.host, insecure: true });
    await pushNodeImage(client, 'bench/node', [{ tar: minbase.tar, tgz: minbase.tgz }, await ensureNodeLayerAsync()]);
    await client.close();
    await nydusify(['convert', '--source', `${registry.host}/bench/node:v1`, '--target', `${registry.host}/bench/node-nydus:v1`, '--source-insecure', '--target-insecure']);
    boot = path.join(work, 'image.boot');
    const { manifest } = await fetchBootstrap(registry.host, 'bench/node-nydus', 'v1', boot);
    blobSizes = new Map(manifest.layers.slice(0, -1).map((l) => [l.digest.slice(7), l.size]));
    expect(blobSizes.size).toBe(2);
  }, 900_000);

  afterAll(async () => {
    await daemons.cleanup();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('one small file fetches < 1% of its blob; again nothing; after kill -9 and a restart still nothing', async () => {
    const dir = path.join(work, 'lazy');
    await mkdir(dir);
    const config = path.join(dir, 'config.json');
    await writeFile(config, registryConfig(registry.host, 'bench/node-nydus', path.join(dir, 'cache')));
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt);
    const args = ['--config', config, '--bootstrap', boot];
    const first = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args });
    const fetched = async (d: typeof first): Promise<number> => ((await d.api('GET', '/api/v1/metrics/backend')).json as { read_amount_total: number }).read_amount_total;
    expect(await fetched(first)).toBe(0);
    const file = 'etc/debian_version';
    const expected = await readFile(path.join(minbaseDir, file));
    expect((await readFile(path.join(mnt, file))).equals(expected)).toBe(true);
    const once = await fetched(first);
    const minbaseBlob = Math.max(...blobSizes.values());
    expect(once).toBeGreaterThan(0);
    expect(once / minbaseBlob).toBeLessThan(0.01);
    // Again, with O_DIRECT so that the read reaches the daemon past the page cache: nothing more.
    const readsBefore = ((await first.api('GET', '/api/v1/metrics')).json as { fop_hits: number[] }).fop_hits[4]!;
    const fh = await open(path.join(mnt, file), constants.O_RDONLY | constants.O_DIRECT);
    const again = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(again, 0, 4096, 0);
    await fh.close();
    expect(again.subarray(0, bytesRead).equals(expected)).toBe(true);
    expect(((await first.api('GET', '/api/v1/metrics')).json as { fop_hits: number[] }).fop_hits[4]).toBeGreaterThan(readsBefore);
    expect(await fetched(first)).toBe(once);
    // The chunk is made durable within the cache's flush delay; then the process dies.
    await sleep(1000);
    first.child.kill('SIGKILL');
    await first.exited;
    // (A listing, as the kernel may still answer a stat from its attribute cache.)
    const dead = await readdir(mnt).then(() => 'alive', (e: NodeJS.ErrnoException) => e.code);
    expect(dead).toBe('ENOTCONN');

    const second = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args });
    expect((await readFile(path.join(mnt, file))).equals(expected)).toBe(true);
    expect(await fetched(second)).toBe(0);
    expect(((await second.api('GET', '/api/v1/metrics/blobcache')).json as { whole_hits: number }).whole_hits).toBeGreaterThan(0);
    expect(second.logs()).toMatch(/cleaning up a dead FUSE mount/);
    expect(await second.stop()).toBe(0);
    expect((await readMountTable()).some((m) => m.mountpoint === mnt)).toBe(false);
  }, 300_000);

  it('16 parallel readers over every file while prefetch runs: every byte right, no chunk fetched twice', async () => {
    const dir = path.join(work, 'concurrent');
    await mkdir(dir);
    // Recording proxy in front of the registry: every Range request is seen.
    const proxy: FaultProxy = await startFaultProxy(registry.url);
    try {
      const config = path.join(dir, 'config.json');
      await writeFile(
        config,
        registryConfig(proxy.host, 'bench/node-nydus', path.join(dir, 'cache'), {
          fs_prefetch: { enable: true, prefetch_all: true, threads_count: 2, merging_size: 1 << 20, bandwidth_rate: 30_000_000 },
        }),
      );
      const mnt = path.join(dir, 'mnt');
      await mkdir(mnt);
      const d = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args: ['--config', config, '--bootstrap', boot] });
      const files = await regularFiles(mnt);
      expect(files.length).toBeGreaterThan(3000);
      // What each file must hold: the minbase tree, with the node layer over it.
      const libDir = path.join(path.dirname(path.dirname(process.execPath)), 'lib', 'node_modules');
      const sourceOf = (rel: string): string => {
        if (rel === 'usr/local/bin/node') return process.execPath;
        if (rel.startsWith('usr/local/lib/node_modules/')) return path.join(libDir, rel.slice('usr/local/lib/node_modules/'.length));
        return path.join(minbaseDir, rel);
      };
      let next = 0;
      let checked = 0;
      const mismatches: string[] = [];
      const reader = async (): Promise<void> => {
        while (next < files.length) {
          const rel = files[next++]!;
          const src = sourceOf(rel);
          if (!existsSync(src) || !(await lstat(src)).isFile()) continue;
          const [a, b] = await Promise.all([sha256File(path.join(mnt, rel)), sha256File(src)]);
          if (a !== b) mismatches.push(rel);
          checked++;
        }
      };
      await Promise.all(Array.from({ length: 16 }, reader));
      expect(mismatches).toEqual([]);
      expect(checked).toBeGreaterThan(3000);

      const cache = (await d.api('GET', '/api/v1/metrics/blobcache')).json as Record<string, number>;
      expect(cache.digest_errors).toBe(0);
      expect(cache.chunks_fetched).toBe(cache.entries_count);
      expect(cache.prefetch_requests_count).toBeGreaterThan(0);
      // No byte of a blob was requested twice.
      const ranges = new Map<string, Array<[number, number]>>();
      for (const r of proxy.requests) {
        if (r.method !== 'GET' || !r.range) continue;
        const m = /bytes=(\d+)-(\d+)/.exec(r.range)!;
        const blob = /sha256:([0-9a-f]{64})/.exec(r.path)![1]!;
        const list = ranges.get(blob) ?? [];
        list.push([Number(m[1]), Number(m[2])]);
        ranges.set(blob, list);
      }
      for (const [blob, list] of ranges) {
        list.sort((x, y) => x[0] - y[0]);
        for (let i = 1; i < list.length; i++) expect(list[i]![0], `blob ${blob} range ${i}`).toBeGreaterThan(list[i - 1]![1]);
      }
      expect(await d.stop()).toBe(0);
    } finally {
      await proxy.stop();
      await forceUnmount(path.join(dir, 'mnt'));
    }
  }, 900_000);
});
