// Issue 11, done-when 4 (faults), through the registry package's fault proxy: connection resets,
// 500s, 429 with Retry-After and stalled bodies; reads succeed after retries or fail with EIO
// within the configured timeout; the daemon never hangs, leaks file descriptors or crashes. The
// registry stopped and restarted mid-run: later reads succeed.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, startRegistry, type FaultProxy, type FaultRule, type TestRegistry } from '@nydus-ts/registry/testing';
import { createRandom } from '@nydus-ts/testing';
import { convertDirToRegistry, fetchBootstrap, registryConfig } from './support/images.js';
import { DaemonScope, type NydusdProcess } from './support/nydusd-process.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const BLOB_GET = /\/v2\/faults\/img\/blobs\/sha256:/;

describe('backend faults', () => {
  const daemons = new DaemonScope();
  let work: string;
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let d: NydusdProcess;
  let mnt: string;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-faults-'));
    registry = await startRegistry();
    proxy = await startFaultProxy(registry.url);
    const src = path.join(work, 'src');
    await mkdir(src);
    const rnd = createRandom(4);
    for (let i = 0; i < 12; i++) {
      const data = rnd.bytes(200_000 + i * 1000);
      files.set(`f${i}`, data);
      await writeFile(path.join(src, `f${i}`), data);
    }
    await convertDirToRegistry(registry.host, src, 'faults/img', { compressor: 'lz4_block' });
    const boot = path.join(work, 'image.boot');
    await fetchBootstrap(registry.host, 'faults/img', 'v1', boot);
    const config = path.join(work, 'config.json');
    // Through the proxy; 2 s per request, two retries; each file is its own fetch.
    await writeFile(config, registryConfig(proxy.host, 'faults/img', path.join(work, 'cache'), { amplify_io: 0 }, { timeout: 2, connect_timeout: 2, retry_limit: 2 }));
    mnt = path.join(work, 'mnt');
    await mkdir(mnt);
    d = await daemons.start({ mountpoint: mnt, apisock: path.join(work, 'api.sock'), args: ['--config', config, '--bootstrap', boot, '--log-level', 'debug'] });
  }, 120_000);

  afterAll(async () => {
    await daemons.cleanup();
    await proxy?.stop();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  async function read(name: string): Promise<{ ok: boolean; code?: string; ms: number }> {
    const started = Date.now();
    try {
      const data = await readFile(path.join(mnt, name));
      expect(sha(data), name).toBe(sha(files.get(name)!));
      return { ok: true, ms: Date.now() - started };
    } catch (err) {
      return { ok: false, code: (err as NodeJS.ErrnoException).code, ms: Date.now() - started };
    }
  }

  const fds = async (): Promise<number> => (await readdir(`/proc/${d.pid}/fd`)).length;
  const backendMetrics = async (): Promise<{ read_errors: number; retries: number }> => (await d.api('GET', '/api/v1/metrics/backend')).json as { read_errors: number; retries: number };

  async function withRules(rules: FaultRule[], fn: () => Promise<void>): Promise<void> {
    proxy.setRules(rules);
    try {
      await fn();
    } finally {
      proxy.setRules([]);
    }
  }

  it('transient faults are retried: reset mid-body, 500s, 429 with Retry-After, a stalled body', async () => {
    expect((await read('f0')).ok).toBe(true);
    const baseline = await fds();
    const cases: Array<[string, FaultRule]> = [
      ['f1', { method: 'GET', path: BLOB_GET, action: { kind: 'reset', afterBytes: 1000 }, times: 1 }],
      ['f2', { method: 'GET', path: BLOB_GET, action: { kind: 'status', status: 500 }, times: 2 }],
      ['f3', { method: 'GET', path: BLOB_GET, action: { kind: 'status', status: 429, retryAfter: 1 }, times: 1 }],
      ['f4', { method: 'GET', path: BLOB_GET, action: { kind: 'stall', afterBytes: 1000 }, times: 1 }],
      ['f5', { method: 'GET', path: BLOB_GET, action: { kind: 'truncate', afterBytes: 5000 }, times: 1 }],
    ];
    for (const [name, rule] of cases) {
      const before = await backendMetrics();
      await withRules([rule], async () => {
        const r = await read(name);
        expect(r, `${name} ${rule.action.kind}`).toMatchObject({ ok: true });
        expect(proxy.injected, name).toBe(rule.times);
      });
      const after = await backendMetrics();
      expect(after.retries - before.retries, name).toBe(rule.times);
    }
    expect(await fds()).toBeLessThanOrEqual(baseline + 8);
  }, 120_000);

  it('persistent faults answer EIO within the configured budget; the next read after they stop succeeds', async () => {
    // Three tries of at most 2 s each plus two backoffs: well under the 30 s the test allows.
    for (const [name, action] of [
      ['f6', { kind: 'status', status: 500 }],
      ['f7', { kind: 'stall', afterBytes: 100 }],
      ['f8', { kind: 'reset', afterBytes: 0 }],
    ] as const) {
      await withRules([{ method: 'GET', path: BLOB_GET, action, times: Infinity }], async () => {
        const r = await read(name);
        expect(r, `${name} ${action.kind}`).toMatchObject({ ok: false, code: 'EIO' });
        expect(r.ms, name).toBeLessThan(30_000);
      });
      expect((await read(name)).ok, `${name} after the fault`).toBe(true);
    }
    expect((await backendMetrics()).read_errors).toBeGreaterThanOrEqual(3);
    expect((await backendMetrics()).retries).toBeGreaterThanOrEqual(6);
    const settled = await fds();
    // Another round of failures leaks nothing.
    await withRules([{ method: 'GET', path: BLOB_GET, action: { kind: 'stall', afterBytes: 10 }, times: Infinity }], async () => {
      expect((await read('f9')).code).toBe('EIO');
    });
    expect(await fds()).toBeLessThanOrEqual(settled + 2);
    expect((await d.api('GET', '/api/v1/daemon')).json).toMatchObject({ state: 'RUNNING' });
  }, 180_000);

  it('the registry stopped: reads answer EIO; restarted: later reads succeed', async () => {
    await registry.pause();
    try {
      const r = await read('f10');
      expect(r).toMatchObject({ ok: false, code: 'EIO' });
    } finally {
      await registry.resume();
    }
    expect((await read('f10')).ok).toBe(true);
    expect((await read('f11')).ok).toBe(true);
    expect((await read('f9')).ok).toBe(true);
    expect(d.child.exitCode).toBeNull();
    expect(await d.stop()).toBe(0);
  }, 120_000);
});
