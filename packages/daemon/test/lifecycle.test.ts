// Daemon lifecycle (issue 11, "SIGTERM/SIGINT" and restart): a read in flight when SIGTERM
// arrives finishes, then the daemon unmounts, flushes its cache and exits 0; an erofs-mode
// daemon killed with -9 leaves a kernel mount, loop devices and a dead FUSE mount, which the next
// daemon on the same mountpoint and work_dir removes before serving again from the cache.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, startRegistry, type FaultProxy, type TestRegistry } from '@nydus-ts/registry/testing';
import { createRandom } from '@nydus-ts/testing';
import { readMountTable } from '../src/index.js';
import { buildLocalImage, convertDirToRegistry, fetchBootstrap, localfsConfig, registryConfig } from './support/images.js';
import { DaemonScope } from './support/nydusd-process.js';

const run = promisify(execFile);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('daemon lifecycle', () => {
  const daemons = new DaemonScope();
  let work: string;
  let src: string;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-life-'));
    src = path.join(work, 'src');
    await mkdir(src);
    const rnd = createRandom(12);
    for (let i = 0; i < 4; i++) {
      const data = rnd.bytes(300_000);
      files.set(`f${i}`, data);
      await writeFile(path.join(src, `f${i}`), data);
    }
  }, 60_000);

  afterAll(async () => {
    await daemons.cleanup();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('SIGTERM while a read waits on the registry: the read completes, the cache is flushed, exit 0', async () => {
    const registry: TestRegistry = await startRegistry();
    const proxy: FaultProxy = await startFaultProxy(registry.url);
    try {
      await convertDirToRegistry(registry.host, src, 'life/img', { compressor: 'zstd' });
      const dir = path.join(work, 'sigterm');
      await mkdir(dir);
      const boot = path.join(dir, 'image.boot');
      await fetchBootstrap(registry.host, 'life/img', 'v1', boot);
      const config = path.join(dir, 'config.json');
      await writeFile(config, registryConfig(proxy.host, 'life/img', path.join(dir, 'cache'), { amplify_io: 0 }, { timeout: 2, retry_limit: 2 }));
      const mnt = path.join(dir, 'mnt');
      await mkdir(mnt);
      const d = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args: ['--config', config, '--bootstrap', boot] });
      // The first blob GET stalls: the read waits ~2 s for the timeout, then the retry succeeds.
      proxy.setRules([{ method: 'GET', path: /\/blobs\/sha256:/, action: { kind: 'stall', afterBytes: 100 }, times: 1 }]);
      const reading = readFile(path.join(mnt, 'f0'));
      await sleep(500);
      d.child.kill('SIGTERM');
      expect(sha(await reading)).toBe(sha(files.get('f0')!));
      expect((await d.exited).code).toBe(0);
      expect(d.logs()).toMatch(/"msg":"daemon stopped"/);
      expect((await readMountTable()).some((m) => m.mountpoint === mnt)).toBe(false);
      // Flushed at the stop: a new daemon reads the file from the cache without a fetch.
      const again = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args: ['--config', config, '--bootstrap', boot] });
      expect(sha(await readFile(path.join(mnt, 'f0')))).toBe(sha(files.get('f0')!));
      expect(((await again.api('GET', '/api/v1/metrics/backend')).json as { read_count: number }).read_count).toBe(0);
      expect(await again.stop('SIGINT')).toBe(0);
    } finally {
      await proxy.stop();
      await registry.stop();
    }
  }, 180_000);

  it('erofs mode after kill -9: the next daemon removes the kernel mount, loops and dead FUSE mount, and serves from the cache', async () => {
    const dir = path.join(work, 'erofs-kill');
    await mkdir(dir);
    const boot = path.join(dir, 'image.boot');
    const blobs = path.join(dir, 'blobs');
    await buildLocalImage(src, boot, blobs, { compressor: 'lz4_block' });
    const cache = path.join(dir, 'cache');
    const config = path.join(dir, 'config.json');
    await writeFile(config, localfsConfig(blobs, cache));
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt);
    const args = ['--config', config, '--bootstrap', boot, '--mode', 'erofs'];
    const first = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args });
    for (const [name, data] of files) expect(sha(await readFile(path.join(mnt, name))), name).toBe(sha(data));
    await sleep(1000); // past the cache's flush delay
    first.child.kill('SIGKILL');
    await first.exited;
    const table = await readMountTable();
    expect(table.some((m) => m.mountpoint === mnt && m.fstype === 'erofs')).toBe(true);
    const deviceMount = table.find((m) => m.mountpoint.startsWith(path.join(cache, 'erofs-devices')));
    expect(deviceMount?.fstype).toBe('fuse.nydusd-ts');
    const loopsBefore = (await run('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'])).stdout.split('\n').filter((l) => l.includes(deviceMount!.mountpoint));
    expect(loopsBefore.length).toBe(1);

    const second = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args });
    expect(second.logs()).toMatch(/unmounting a kernel EROFS mount left by an earlier daemon/);
    expect(second.logs()).toMatch(/detached loop devices left by an earlier daemon/);
    // Served from the cache: fresh kernel mount, no backend reads.
    for (const [name, data] of files) expect(sha(await readFile(path.join(mnt, name))), name).toBe(sha(data));
    expect(((await second.api('GET', '/api/v1/metrics/backend')).json as { read_count: number }).read_count).toBe(0);
    expect(await second.stop()).toBe(0);
    const after = await readMountTable();
    expect(after.some((m) => m.mountpoint === mnt || m.mountpoint === deviceMount!.mountpoint)).toBe(false);
    const loopsAfter = (await run('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'])).stdout.split('\n').filter((l) => l.includes(deviceMount!.mountpoint));
    expect(loopsAfter).toEqual([]);
  }, 180_000);
});
