import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isNydusError } from '@nydus-ts/core';
import { RegistryClient, copyImage } from '../src/index.js';
import { pushGeneratedImage, startFaultProxy, startRegistry, startSilentServer } from '../src/testing/index.js';
import type { FaultProxy, PushedImage, TestRegistry } from '../src/testing/index.js';

// Stalls, timeouts and the retry budget, against real registries behind fault proxies. Timeouts
// are configured small (never the defaults) and asserted by outcome, never by elapsed time.

let src: TestRegistry;
let dst: TestRegistry;
let srcProxy: FaultProxy;
let dstProxy: FaultProxy;
let img: PushedImage;
let dstClient: RegistryClient;

const fast = { attempts: 4, baseDelayMs: 10, maxDelayMs: 200 };
const small = { connectMs: 1000, idleMs: 700 };

beforeAll(async () => {
  [src, dst] = await Promise.all([startRegistry(), startRegistry()]);
  [srcProxy, dstProxy] = await Promise.all([startFaultProxy(src.url), startFaultProxy(dst.url)]);
  const client = new RegistryClient({ registry: src.host, insecure: true });
  img = await pushGeneratedImage(client, 'net/app', { tag: 'v1', layers: [{ size: 2_000_000 }, { size: 500_000 }] });
  await client.close();
  dstClient = new RegistryClient({ registry: dst.host, insecure: true });
});
afterAll(async () => {
  await dstClient?.close();
  await Promise.all([srcProxy?.stop(), dstProxy?.stop()]);
  await Promise.all([src?.stop(), dst?.stop()]);
});

function copy(target: string, extra: { retry?: typeof fast } = {}) {
  return copyImage({
    source: `${srcProxy.host}/net/app:v1`,
    target: `${dstProxy.host}/${target}`,
    sourceRegistry: { insecure: true },
    targetRegistry: { insecure: true },
    retry: extra.retry ?? fast,
    timeouts: small,
  });
}


describe('idle and connect timeouts', () => {
  it('a blob body that stalls mid-way is resumed with Range after the idle timeout', async () => {
    srcProxy.setRules([{ method: 'GET', path: new RegExp(`/blobs/${img.layers[0]!.digest}`), action: { kind: 'stall', afterBytes: 600_000 } }]);
    srcProxy.requests.length = 0;
    const r = await copy('net/stall-body:v1');
    expect(r.digest).toBe(img.manifest.descriptor.digest);
    expect(srcProxy.injected).toBe(1);
    const gets = srcProxy.requests.filter((q) => q.path.includes(img.layers[0]!.digest) && q.method === 'GET');
    const resumed = gets.filter((q) => q.range).map((q) => Number(/^bytes=(\d+)-$/.exec(q.range!)?.[1]));
    expect(resumed).toHaveLength(1);
    expect(resumed[0]).toBeGreaterThan(0);
    expect(resumed[0]).toBeLessThanOrEqual(600_000);
    expect(await dstClient.headBlob('net/stall-body', img.layers[0]!.digest)).toBe(img.layers[0]!.size);
  });

  it('a request that never gets response headers is retried after the idle timeout', async () => {
    srcProxy.setRules([
      { method: 'GET', path: /\/manifests\/v1$/, action: { kind: 'stall' } },
      { method: 'GET', path: new RegExp(`/blobs/${img.config.digest}`), action: { kind: 'stall' } },
    ]);
    const r = await copy('net/stall-headers:v1');
    expect(r.digest).toBe(img.manifest.descriptor.digest);
    expect(srcProxy.injected).toBe(2);
  });

  it('an upload the registry stops reading is retried after the idle timeout', async () => {
    srcProxy.setRules([]);
    dstProxy.setRules([{ method: 'PUT', path: /\/blobs\/uploads\//, action: { kind: 'stall-upload', afterBytes: 100_000 } }]);
    const r = await copy('net/stall-upload:v1');
    expect(r.digest).toBe(img.manifest.descriptor.digest);
    expect(dstProxy.injected).toBe(1);
    for (const l of img.layers) expect(await dstClient.headBlob('net/stall-upload', l.digest)).toBe(l.size);
  });

  it('a host that accepts TCP but never completes the TLS handshake fails with the connect timeout, naming it', async () => {
    const silent = await startSilentServer();
    const client = new RegistryClient({ registry: silent.host, timeouts: { connectMs: 300, idleMs: 5000 }, retry: { attempts: 2, baseDelayMs: 10 } });
    try {
      const err = await client.getManifest('net/app', 'v1').catch((e: unknown) => e);
      expect(isNydusError(err, 'UNAVAILABLE')).toBe(true);
      const message = (err as Error).message;
      expect(message).toContain(`manifest net/app:v1 from ${silent.host}`);
      expect(message).toMatch(/connect timeout/);
      expect(message).toMatch(/gave up after 2 attempts/);
      expect(silent.connections).toBe(2);
    } finally {
      await client.close();
      await silent.stop();
    }
  });

  it('refuses nonsensical timeouts', () => {
    for (const timeouts of [{ connectMs: 0 }, { idleMs: -1 }, { idleMs: Number.NaN }, { connectMs: 1.5 }]) {
      expect(() => new RegistryClient({ registry: src.host, timeouts })).toThrow(/timeout/);
    }
  });
});

describe('one retry budget per blob', () => {
  it('a blob that always answers 500 is asked for exactly `attempts` times; the error names operation, registry, blob and attempts', async () => {
    srcProxy.setRules([{ method: 'GET', path: new RegExp(`/blobs/${img.layers[1]!.digest}`), action: { kind: 'status', status: 500 }, times: Infinity }]);
    dstProxy.setRules([]);
    srcProxy.requests.length = 0;
    const err = await copy('net/always-500:v1').catch((e: unknown) => e);
    expect(isNydusError(err, 'UNAVAILABLE')).toBe(true);
    const gets = srcProxy.requests.filter((q) => q.method === 'GET' && q.path.includes(img.layers[1]!.digest));
    expect(gets).toHaveLength(fast.attempts);
    const message = (err as Error).message;
    expect(message).toContain(`blob ${img.layers[1]!.digest}`);
    expect(message).toContain(`${srcProxy.host}/net/app`);
    expect(message).toMatch(/returned 500/);
    expect(message).toMatch(new RegExp(`gave up after ${fast.attempts} attempts`));
    expect(await dstClient.headManifest('net/always-500', 'v1')).toBeUndefined();
  });

  it('a body reset on every try ends in one clear message, not a raw socket error', async () => {
    srcProxy.setRules([{ method: 'GET', path: new RegExp(`/blobs/${img.layers[0]!.digest}`), action: { kind: 'reset', afterBytes: 0 }, times: Infinity }]);
    srcProxy.requests.length = 0;
    const err = await copy('net/always-reset:v1').catch((e: unknown) => e);
    expect(isNydusError(err, 'UNAVAILABLE')).toBe(true);
    const message = (err as Error).message;
    expect(message).not.toMatch(/SocketError|at Socket|onHttpSocketEnd/);
    expect(message).toContain(`fetching blob ${img.layers[0]!.digest} from ${srcProxy.host}/net/app`);
    expect(message).toMatch(/gave up after \d+ attempts/);
    const gets = srcProxy.requests.filter((q) => q.method === 'GET' && q.path.includes(img.layers[0]!.digest));
    expect(gets.length).toBe(fast.attempts);
  });

  it('a corrupted body on every try: `attempts` whole fetches, DATA_LOSS, nothing committed', async () => {
    srcProxy.setRules([{ method: 'GET', path: new RegExp(`/blobs/${img.layers[1]!.digest}`), action: { kind: 'corrupt' }, times: Infinity }]);
    srcProxy.requests.length = 0;
    const err = await copy('net/always-corrupt:v1').catch((e: unknown) => e);
    expect(isNydusError(err, 'DATA_LOSS')).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`gave up after ${fast.attempts} attempts`));
    expect(srcProxy.requests.filter((q) => q.method === 'GET' && q.path.includes(img.layers[1]!.digest))).toHaveLength(fast.attempts);
    expect(await dstClient.headBlob('net/always-corrupt', img.layers[1]!.digest)).toBeUndefined();
  });

  it('an upload that always fails: `attempts` PUTs and the target named in the message', async () => {
    srcProxy.setRules([]);
    dstProxy.setRules([{ method: 'PUT', path: /\/blobs\/uploads\//, action: { kind: 'status', status: 503 }, times: Infinity }]);
    dstProxy.requests.length = 0;
    const err = await copy('net/upload-503:v1', { retry: { ...fast, attempts: 3 } }).catch((e: unknown) => e);
    expect(isNydusError(err, 'UNAVAILABLE')).toBe(true);
    const message = (err as Error).message;
    expect(message).toMatch(new RegExp(`uploading blob sha256:[0-9a-f]{64} to ${dstProxy.host}/net/upload-503`));
    expect(message).toMatch(/gave up after 3 attempts/);
    // Every blob of the image: at most 3 PUTs each. Only this repository's: a previous test's copy
    // may still have an upload in flight when it fails, recorded after the reset above.
    const puts = dstProxy.requests.filter((q) => q.method === 'PUT' && q.path.includes('/v2/net/upload-503/blobs/uploads/'));
    expect(puts.length).toBeLessThanOrEqual(3 * (img.layers.length + 1));
    expect(puts.length).toBeGreaterThanOrEqual(3);
  });
});
