import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isNydusError } from '@nydus-ts/core';
import { RegistryClient, copyImage } from '../src/index.js';
import { pushGeneratedImage, startFaultProxy, startRegistry } from '../src/testing/index.js';
import type { FaultProxy, PushedImage, TestRegistry } from '../src/testing/index.js';

let src: TestRegistry;
let dst: TestRegistry;
let srcProxy: FaultProxy;
let dstProxy: FaultProxy;
let img: PushedImage;
let dstClient: RegistryClient;

const fast = { attempts: 6, baseDelayMs: 10, maxDelayMs: 2000 };

beforeAll(async () => {
  [src, dst] = await Promise.all([startRegistry(), startRegistry()]);
  srcProxy = await startFaultProxy(src.url);
  dstProxy = await startFaultProxy(dst.url);
  const client = new RegistryClient({ registry: src.host, insecure: true });
  img = await pushGeneratedImage(client, 'fault/app', { tag: 'v1', layers: [{ size: 3_000_000 }, { size: 2_000_000 }, { size: 1_000_000, kind: 'compressible' }] });
  await client.close();
  dstClient = new RegistryClient({ registry: dst.host, insecure: true });
});
afterAll(async () => {
  await dstClient?.close();
  await Promise.all([srcProxy?.stop(), dstProxy?.stop()]);
  await Promise.all([src?.stop(), dst?.stop()]);
});

function copy(target: string, extra: { pushChunkSize?: number; timeouts?: { idleMs: number } } = {}) {
  return copyImage({
    source: `${srcProxy.host}/fault/app:v1`,
    target: `${dstProxy.host}/${target}`,
    sourceRegistry: { insecure: true },
    targetRegistry: { insecure: true },
    retry: fast,
    ...extra,
  });
}

describe('copy through a fault-injecting proxy', () => {
  it('survives resets mid-blob, 500, 429 with Retry-After and truncated bodies, resuming with Range', async () => {
    srcProxy.setRules([
      { method: 'GET', path: /\/manifests\/v1$/, action: { kind: 'status', status: 429, retryAfter: 1 } },
      { method: 'GET', path: new RegExp(img.layers[0]!.digest), action: { kind: 'reset', afterBytes: 700_000 }, times: 2 },
      { method: 'GET', path: new RegExp(img.layers[1]!.digest), action: { kind: 'truncate', afterBytes: 1_000_000 } },
      { method: 'GET', path: new RegExp(img.layers[2]!.digest), action: { kind: 'status', status: 500 } },
      { method: 'GET', path: new RegExp(img.config.digest), action: { kind: 'status', status: 503 } },
    ]);
    srcProxy.requests.length = 0;
    const started = Date.now();
    const r = await copy('fault/ok:v1');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900); // Retry-After honoured
    expect(r.digest).toBe(img.manifest.descriptor.digest);
    expect(srcProxy.injected).toBe(6);
    // The broken streams were resumed from the byte reached, not restarted.
    // (A reset may drop bytes already in flight, so the resume point is at most what was sent.)
    const starts = (digest: string) => srcProxy.requests.filter((q) => q.path.includes(digest) && q.range).map((q) => Number(/^bytes=(\d+)-$/.exec(q.range!)?.[1]));
    const l0 = starts(img.layers[0]!.digest);
    expect(l0).toHaveLength(2);
    expect(l0[0]).toBeGreaterThan(0);
    expect(l0[1]).toBeGreaterThan(l0[0]!);
    expect(starts(img.layers[1]!.digest)).toEqual([1_000_000]);
    const fetched = srcProxy.requests.filter((q) => q.path.includes(img.layers[0]!.digest)).reduce((n, q) => n + q.responseBytes, 0);
    expect(fetched).toBeLessThan(2 * img.layers[0]!.size);
    expect((await dstClient.getManifest('fault/ok', 'v1')).descriptor.digest).toBe(img.manifest.descriptor.digest);
    for (const l of img.layers) expect(await dstClient.headBlob('fault/ok', l.digest)).toBe(l.size);
  });

  it('retries a corrupted body and never commits corrupted bytes', async () => {
    srcProxy.setRules([{ method: 'GET', path: new RegExp(img.layers[0]!.digest), action: { kind: 'corrupt' } }]);
    const r = await copy('fault/corrupt-once:v1');
    expect(r.digest).toBe(img.manifest.descriptor.digest);
    expect(srcProxy.injected).toBe(1);

    srcProxy.setRules([{ method: 'GET', path: new RegExp(img.layers[1]!.digest), action: { kind: 'corrupt' }, times: Infinity }]);
    const err = await copy('fault/corrupt:v1').catch((e: unknown) => e);
    expect(isNydusError(err, 'DATA_LOSS')).toBe(true);
    expect(String(err)).toContain(img.layers[1]!.digest);
    expect(await dstClient.headBlob('fault/corrupt', img.layers[1]!.digest)).toBeUndefined();
    // The tag was never written: nothing points at missing content.
    expect(await dstClient.headManifest('fault/corrupt', 'v1')).toBeUndefined();
  });

  it('retries failed uploads, monolithic and chunked', async () => {
    srcProxy.setRules([]);
    dstProxy.setRules([
      { method: 'PUT', path: /\/blobs\/uploads\//, action: { kind: 'status', status: 500 } },
      { method: 'POST', path: /\/blobs\/uploads\//, action: { kind: 'status', status: 503 } },
      { method: 'PUT', path: /\/manifests\/v1$/, action: { kind: 'status', status: 502 } },
    ]);
    const r = await copy('fault/up:v1');
    expect(r.digest).toBe(img.manifest.descriptor.digest);
    expect(dstProxy.injected).toBe(3);
    dstProxy.setRules([{ method: 'PATCH', path: /\/blobs\/uploads\//, action: { kind: 'status', status: 500 }, times: 2 }]);
    dstProxy.requests.length = 0;
    const c = await copy('fault/chunked:v1', { pushChunkSize: 512 * 1024 });
    expect(c.digest).toBe(img.manifest.descriptor.digest);
    expect(dstProxy.injected).toBe(2);
    expect(dstProxy.requests.filter((q) => q.method === 'PATCH' && !q.fault).every((q) => q.requestBytes <= 512 * 1024)).toBe(true);
    for (const l of img.layers) expect(await dstClient.headBlob('fault/chunked', l.digest)).toBe(l.size);
  });

  // Last in this file: the aborted upload's stalled proxy connection is left as it is.
  it('a blob that fails stops the others: their uploads are aborted, not retried, and the copy rejects with that failure once they have ended', async () => {
    const [layer0, layer1] = [img.layers[0]!, img.layers[1]!];
    // layer 0's upload stalls (the registry stops reading it) and so is certainly under way when
    // layer 1's source answers 404, which it does only once that upload has started.
    const layer0Put = new RegExp(`/v2/fault/stop/blobs/uploads/.*${layer0.digest.slice(7)}`);
    dstProxy.setRules([{ method: 'PUT', path: layer0Put, action: { kind: 'stall-upload', afterBytes: 100_000 } }]);
    srcProxy.setRules([{ method: 'GET', path: new RegExp(`/blobs/${layer1.digest}`), action: { kind: 'status', status: 404 }, hold: dstProxy.nextRequest({ method: 'PUT', path: layer0Put }) }]);
    // Without the abort, the stalled upload would be retried after this idle timeout and completed.
    const err = await copy('fault/stop:v1', { timeouts: { idleMs: 3000 } }).catch((e: unknown) => e);
    const rejectedAt = performance.now();
    expect(isNydusError(err, 'NOT_FOUND'), String(err)).toBe(true);
    expect((err as Error).message).toContain(layer1.digest);
    const seen = () => [...dstProxy.requests, ...dstProxy.inFlight, ...srcProxy.requests, ...srcProxy.inFlight].filter((q) => q.path.includes('/fault/'));
    expect(seen().filter((q) => q.method === 'PUT' && layer0Put.test(q.path))).toHaveLength(1);
    expect(await dstClient.headBlob('fault/stop', layer0.digest)).toBeUndefined();
    expect(await dstClient.headManifest('fault/stop', 'v1')).toBeUndefined();
    // Nothing of the copy starts after it has rejected.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(seen().filter((q) => q.startedAt > rejectedAt)).toEqual([]);
  });
});
