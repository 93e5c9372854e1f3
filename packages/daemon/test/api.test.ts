// Issue 11, done-when 6 (API): every endpoint answers with nydusd's shape; shared mode mounts two
// images in one daemon (nydusd's POST /api/v1/mount body) and unmounts one while the other keeps
// serving; errors are nydusd's {code, message} with an HTTP status; exit through the API. Shared
// mode as the snapshotter drives it: a daemon started without config or bootstrap, images from
// two repositories of a loopback registry, each mount's config naming its repository.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { createRandom } from '@nydus-ts/testing';
import { readMountTable } from '../src/index.js';
import { buildLocalImage, convertDirToRegistry, fetchBootstrap, localfsConfig, registryConfig } from './support/images.js';
import { DaemonScope, type NydusdProcess } from './support/nydusd-process.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('nydusd API and shared mode', () => {
  const daemons = new DaemonScope();
  let work: string;
  const trees: Record<string, Map<string, Buffer>> = {};
  const boots: Record<string, string> = {};
  let blobDir: string;
  let cacheDir: string;
  let registry: TestRegistry | undefined;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-api-'));
    blobDir = path.join(work, 'blobs');
    cacheDir = path.join(work, 'cache');
    for (const [name, seed] of [['a', 1], ['b', 2]] as const) {
      const src = path.join(work, `src-${name}`);
      await mkdir(path.join(src, 'etc'), { recursive: true });
      const rnd = createRandom(seed);
      const files = new Map<string, Buffer>();
      for (const [rel, data] of [
        ['etc/os-release', Buffer.from(`NAME=${name}\n`)],
        ['data.bin', rnd.bytes(300_000)],
        ['small', rnd.bytes(100)],
      ] as const) {
        await writeFile(path.join(src, rel), data);
        files.set(rel, data);
      }
      trees[name] = files;
      boots[name] = path.join(work, `${name}.boot`);
      await buildLocalImage(src, boots[name], blobDir);
    }
  }, 120_000);

  afterAll(async () => {
    await daemons.cleanup();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  async function expectTree(dir: string, files: Map<string, Buffer>): Promise<void> {
    for (const [rel, data] of files) expect(sha(await readFile(path.join(dir, rel))), rel).toBe(sha(data));
  }

  function expectError(reply: { status: number; json: unknown }, status: number, message: RegExp): void {
    expect(reply.status).toBe(status);
    expect(reply.json).toEqual({ code: 'UNDEFINED', message: expect.stringMatching(message) });
  }

  it('shared mode: two images at /a and /b, metrics per mount, unmount one while the other serves, remount, exit', async () => {
    const mnt = path.join(work, 'shared');
    await mkdir(mnt);
    const defaultConfig = path.join(work, 'default.json');
    await writeFile(defaultConfig, localfsConfig(blobDir, cacheDir));
    const d: NydusdProcess = await daemons.start({ mountpoint: mnt, apisock: path.join(work, 'shared.sock'), args: ['--config', defaultConfig, '--id', 'shared-daemon'] });

    const info = await d.api('GET', '/api/v1/daemon');
    expect(info.status).toBe(200);
    expect(info.json).toEqual({
      version: { package_ver: expect.any(String), git_commit: expect.any(String), build_time: expect.any(String), profile: expect.any(String), rustc: expect.any(String) },
      id: 'shared-daemon',
      supervisor: null,
      state: 'RUNNING',
      backend_collection: {},
    });
    expect((await d.api('GET', '/api/v2/daemon')).json).toMatchObject({ state: 'RUNNING' });

    // nydusd's mount body: config as a JSON string (a, with file accounting) or the daemon's default (b).
    const configA = localfsConfig(blobDir, cacheDir, { iostats_files: true, access_pattern: true });
    expect((await d.api('POST', '/api/v1/mount?mountpoint=/a', { source: boots.a, fs_type: 'rafs', config: configA })).status).toBe(204);
    expect((await d.api('POST', '/api/v1/mount?mountpoint=/b', { source: boots.b, fs_type: 'rafs', config: '' })).status).toBe(204);
    expect((await readdir(mnt)).sort()).toEqual(['a', 'b']);
    await expectTree(path.join(mnt, 'a'), trees.a!);
    await expectTree(path.join(mnt, 'b'), trees.b!);

    const collection = (await d.api('GET', '/api/v1/daemon')).json as { backend_collection: Record<string, { backend_type: string; mountpoint: string; mounted_time: string; config: unknown }> };
    expect(Object.keys(collection.backend_collection).sort()).toEqual(['/a', '/b']);
    expect(collection.backend_collection['/a']).toEqual({ backend_type: 'rafs', mountpoint: '/a', mounted_time: expect.stringMatching(/^\d{4}-/), config: JSON.parse(configA) });
    expect((await d.api('GET', '/api/v1/daemon/backend')).json).toEqual(collection.backend_collection);

    // Metrics of one mount (id = its mountpoint).
    const m = (await d.api('GET', '/api/v1/metrics?id=/a')).json as Record<string, unknown>;
    expect(Object.keys(m).sort()).toEqual(
      ['access_pattern_enabled', 'block_count_read', 'data_read', 'files_account_enabled', 'fop_cumulative_latency_total', 'fop_errors', 'fop_hits', 'id', 'last_fop_tp', 'measure_latency', 'nr_max_opens', 'nr_opens', 'read_latency_dist'].sort(),
    );
    expect(m).toMatchObject({ id: '/a', files_account_enabled: true, access_pattern_enabled: true, data_read: [...trees.a!.values()].reduce((n, b) => n + b.length, 0) });
    const fopHits = m.fop_hits as number[];
    expect(fopHits).toHaveLength(15);
    expect(fopHits[4]).toBeGreaterThan(0); // read
    expect(fopHits[2]).toBe(3); // open
    expect((m.read_latency_dist as number[]).reduce((a, b) => a + b, 0)).toBe(fopHits[4]);
    expect((m.block_count_read as number[]).reduce((a, b) => a + b, 0)).toBe(fopHits[4]);

    const files = (await d.api('GET', '/api/v1/metrics/files?id=/a')).json as Record<string, { path: string; nr_open: number; data_read: number }>;
    const byPath = new Map(Object.values(files).map((f) => [f.path, f]));
    expect(byPath.get('/data.bin')).toMatchObject({ nr_open: 1, data_read: 300_000 });
    const pattern = (await d.api('GET', '/api/v1/metrics/pattern?id=/a')).json as Array<{ file_path: string; nr_read: number; first_access_order: number; ino: number; first_access_time_secs: number }>;
    expect(pattern.map((p) => p.file_path)).toEqual(['/etc/os-release', '/data.bin', '/small']);
    expect(pattern.map((p) => p.first_access_order)).toEqual([0, 1, 2]);
    expect(pattern[0]!.first_access_time_secs).toBeGreaterThan(1_600_000_000);

    const backend = (await d.api('GET', '/api/v1/metrics/backend?id=/a')).json as Record<string, unknown>;
    expect(backend).toMatchObject({ backend_type: 'localfs', read_errors: 0, read_count: expect.any(Number), read_amount_total: expect.any(Number) });
    expect((backend.read_latency_dist as number[][]).flat().reduce((a, b) => a + b, 0)).toBe(backend.read_count);
    const cache = (await d.api('GET', '/api/v1/metrics/blobcache?id=/b')).json as Record<string, unknown>;
    expect(cache).toMatchObject({ id: '/b', store_path: cacheDir, digest_errors: 0, data_all_ready: true, underlying_files: [expect.stringMatching(/\.blob\.data$/)] });
    expect((await d.api('GET', '/api/v1/metrics/inflight')).json).toEqual({ values: [] });

    const prom = await d.api('GET', '/metrics');
    expect(prom.status).toBe(200);
    expect(prom.body).toMatch(/^# HELP nydusd_up /m);
    expect(prom.body).toMatch(/^nydusd_fop_hits_total\{mount="\/a",fop="read"\} [1-9]\d*$/m);
    expect(prom.body).toMatch(/^nydusd_data_read_bytes_total\{mount="\/b"\} \d+$/m);
    expect(prom.body).toMatch(/^nydusd_chunk_verify_errors_total 0$/m);

    // Errors: nydusd's shape and statuses.
    expectError(await d.api('GET', '/api/v1/metrics'), 404, /several images/);
    expectError(await d.api('GET', '/api/v1/metrics?id=/zz'), 404, /no instance \/zz/);
    expectError(await d.api('GET', '/api/v1/no-such'), 404, /no such API/);
    expectError(await d.api('POST', '/api/v1/mount?mountpoint=/a', { source: boots.a, fs_type: 'rafs', config: configA }), 400, /already mounted/);
    expectError(await d.api('POST', '/api/v1/mount?mountpoint=/c', { source: boots.a, fs_type: 'passthrough_fs' }), 400, /fs_type/);
    expectError(await d.api('POST', '/api/v1/mount?mountpoint=/c'), 400, /body/);
    expectError(await d.api('POST', '/api/v1/mount?mountpoint=/c', '{not json'), 400, /not valid JSON/);
    expectError(await d.api('POST', '/api/v1/mount?mountpoint=/c/d', { source: boots.a, fs_type: 'rafs' }), 400, /one path component/);
    expectError(await d.api('POST', '/api/v1/mount?mountpoint=/c', { source: boots.a, fs_type: 'rafs', config: '{"device":{"backend":{"type":"oss","config":{}}}}' }), 400, /device\.backend\.type: "oss" is not supported/);
    expectError(await d.api('POST', '/api/v1/mount?mountpoint=/c', { source: path.join(work, 'missing.boot'), fs_type: 'rafs' }), 404, /no such file/);
    const garbage = path.join(work, 'garbage.boot');
    await writeFile(garbage, Buffer.alloc(8192, 0x55));
    expectError(await d.api('POST', '/api/v1/mount?mountpoint=/c', { source: garbage, fs_type: 'rafs' }), 400, /superblock/);
    expectError(await d.api('DELETE', '/api/v1/mount?mountpoint=/zz'), 404, /not mounted/);
    expectError(await d.api('PUT', '/api/v1/daemon', { log_level: 'loud' }), 400, /log_level/);
    expect((await d.api('PUT', '/api/v1/daemon', { log_level: 'debug' })).status).toBe(204);
    expectError(await d.api('PUT', '/api/v1/daemon/fuse/sendfd'), 501, /not supported/);
    expect(((await d.api('GET', '/api/v1/daemon/events')).json as { total_errors: number }).total_errors).toBeGreaterThanOrEqual(12);
    expect(await readdir(mnt)).not.toContain('c');

    // Unmount b: a keeps serving, b disappears (its kernel cache entries live 1 s).
    expect((await d.api('DELETE', '/api/v1/mount?mountpoint=/b')).status).toBe(204);
    expect(await readdir(mnt)).toEqual(['a']);
    await expectTree(path.join(mnt, 'a'), trees.a!);
    for (let i = 0; ; i++) {
      const gone = await stat(path.join(mnt, 'b', 'small')).then(() => false, (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
      if (gone) break;
      if (i > 50) throw new Error('b still visible 5 s after its unmount');
      await sleep(100);
    }
    expect(Object.keys(((await d.api('GET', '/api/v1/daemon')).json as { backend_collection: object }).backend_collection)).toEqual(['/a']);
    // With one mount left, metrics need no id.
    expect(((await d.api('GET', '/api/v1/metrics')).json as { id: string }).id).toBe('/a');

    // Remount a with b's bootstrap (PUT).
    expect((await d.api('PUT', '/api/v1/mount?mountpoint=/a', { source: boots.b, fs_type: 'rafs', config: configA })).status).toBe(204);
    await sleep(1500);
    await expectTree(path.join(mnt, 'a'), trees.b!);

    // Exit through the API: 204, then the daemon unmounts and exits 0.
    expect((await d.api('PUT', '/api/v1/daemon/exit')).status).toBe(204);
    expect((await d.exited).code).toBe(0);
    expect((await readMountTable()).some((e) => e.mountpoint === mnt)).toBe(false);
  }, 180_000);

  it('dedicated mode: the image at the root, metrics without an id, no API mounts', async () => {
    const mnt = path.join(work, 'dedicated');
    await mkdir(mnt);
    const cfg = path.join(work, 'dedicated.json');
    await writeFile(cfg, localfsConfig(blobDir, path.join(work, 'cache-d')));
    const d = await daemons.start({ mountpoint: mnt, apisock: path.join(work, 'dedicated.sock'), args: ['--config', cfg, '--bootstrap', boots.a!] });
    await expectTree(mnt, trees.a!);
    const info = (await d.api('GET', '/api/v1/daemon')).json as { backend_collection: Record<string, unknown> };
    expect(Object.keys(info.backend_collection)).toEqual(['/']);
    expect(((await d.api('GET', '/api/v1/metrics')).json as { id: string }).id).toBe('/');
    expectError(await d.api('POST', '/api/v1/mount?mountpoint=/x', { source: boots.b, fs_type: 'rafs' }), 400, /one image at its root/);
    expect(await d.stop('SIGINT')).toBe(0);
    expect((await readMountTable()).some((e) => e.mountpoint === mnt)).toBe(false);
  }, 120_000);
  it('shared mode without --config: images of two registry repositories, each mount naming its own, unmount one while the other serves', async () => {
    registry = await startRegistry();
    const host = registry.host;
    const regBoots: Record<string, string> = {};
    for (const name of ['a', 'b']) {
      await convertDirToRegistry(host, path.join(work, `src-${name}`), `shared/${name}`, { compressor: 'zstd' });
      regBoots[name] = path.join(work, `registry-${name}.boot`);
      await fetchBootstrap(host, `shared/${name}`, 'v1', regBoots[name]);
    }
    const mnt = path.join(work, 'shared-registry');
    await mkdir(mnt);
    const d = await daemons.start({ mountpoint: mnt, apisock: path.join(work, 'shared-registry.sock'), args: [] });
    const cache = path.join(work, 'cache-registry');
    // Without a config of its own, a mount must bring one.
    expectError(await d.api('POST', '/api/v1/mount?mountpoint=/a', { source: regBoots.a, fs_type: 'rafs' }), 400, /no config/);
    for (const name of ['a', 'b']) {
      const config = registryConfig(host, `shared/${name}`, cache, { amplify_io: 0 });
      expect((await d.api('POST', `/api/v1/mount?mountpoint=/${name}`, { source: regBoots[name], fs_type: 'rafs', config })).status).toBe(204);
    }
    await expectTree(path.join(mnt, 'a'), trees.a!);
    // b: its small files now, data.bin (its own chunks) only after a is gone.
    for (const rel of ['etc/os-release', 'small']) expect(sha(await readFile(path.join(mnt, 'b', rel))), rel).toBe(sha(trees.b!.get(rel)!));
    const backend = async (id: string): Promise<{ backend_type: string; read_errors: number; read_amount_total: number }> =>
      (await d.api('GET', `/api/v1/metrics/backend?id=${id}`)).json as { backend_type: string; read_errors: number; read_amount_total: number };
    for (const id of ['/a', '/b']) {
      expect(await backend(id)).toMatchObject({ backend_type: 'registry', read_errors: 0 });
      expect((await backend(id)).read_amount_total).toBeGreaterThan(0);
    }
    expect((await d.api('DELETE', '/api/v1/mount?mountpoint=/a')).status).toBe(204);
    expect(await readdir(mnt)).toEqual(['b']);
    const fetchedBefore = (await backend('/b')).read_amount_total;
    expect(sha(await readFile(path.join(mnt, 'b', 'data.bin')))).toBe(sha(trees.b!.get('data.bin')!));
    expect((await backend('/b')).read_amount_total).toBeGreaterThan(fetchedBefore);
    expect(await d.stop()).toBe(0);
    expect((await readMountTable()).some((e) => e.mountpoint === mnt)).toBe(false);
  }, 300_000);
});
