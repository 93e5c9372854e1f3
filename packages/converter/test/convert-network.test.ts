// Issue 9, items 7, 8, 9 and 13 (the blob limit): convert against real registries behind fault
// proxies. Upload failures (500, 429 with Retry-After, resets on PATCH, a lost commit reply) and
// corrupted or stalled source bodies are retried within one budget per layer, in-process and in
// worker threads; a layer that cannot be resumed is converted again from its first byte.
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { isNydusError } from '@nydus-ts/core';
import { RegistryClient } from '@nydus-ts/registry';
import { startFaultProxy, startRegistry } from '@nydus-ts/registry/testing';
import type { FaultProxy, TestRegistry } from '@nydus-ts/registry/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConvertedImage, convertImage } from '../src/index.js';
import type { ConvertImageOptions, ConvertProgressEvent } from '../src/index.js';
import { busyboxImage, pushRawImage } from './support/images.js';
import type { TestImage } from './support/images.js';
import { END, fileMember } from '@nydus-ts/testing';

const fast = { attempts: 4, baseDelayMs: 10, maxDelayMs: 1500 };

describe('convertImage over faulty networks', () => {
  let src: TestRegistry;
  let dst: TestRegistry;
  let srcProxy: FaultProxy;
  let dstProxy: FaultProxy;
  let srcClient: RegistryClient;
  let dstClient: RegistryClient;
  let img: TestImage;
  /** Source image as seen through the proxy. */
  let source: string;

  beforeAll(async () => {
    [src, dst] = await Promise.all([startRegistry(), startRegistry()]);
    [srcProxy, dstProxy] = await Promise.all([startFaultProxy(src.url), startFaultProxy(dst.url)]);
    srcClient = new RegistryClient({ registry: src.host, insecure: true });
    dstClient = new RegistryClient({ registry: dst.host, insecure: true });
    img = await busyboxImage(srcClient, { repository: 'net/busybox', tag: 'v1' });
    source = `${srcProxy.host}/net/busybox:v1`;
  });
  afterAll(async () => {
    await Promise.all([srcClient?.close(), dstClient?.close()]);
    await Promise.all([srcProxy?.stop(), dstProxy?.stop()]);
    await Promise.all([src?.stop(), dst?.stop()]);
  });

  function convert(repo: string, extra: Partial<ConvertImageOptions> = {}) {
    return convertImage({
      source,
      target: `${dstProxy.host}/${repo}:nydus`,
      sourceRegistry: { insecure: true },
      targetRegistry: { insecure: true },
      retry: fast,
      timeouts: { connectMs: 2000, idleMs: 700 },
      workers: false,
      ...extra,
    });
  }

  async function expectChecks(repo: string): Promise<void> {
    const report = await checkConvertedImage({ source: img.reference, target: `${dst.host}/${repo}:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    expect(report.differences).toEqual([]);
  }

  for (const workers of [false, true]) {
    it(`upload faults (PATCH 500, PATCH 429 + Retry-After, a reset PATCH, a lost commit reply, a failed config PUT) are retried${workers ? ', in worker threads' : ''}`, async () => {
      const repo = `net/uploads-${workers ? 'workers' : 'main'}`;
      srcProxy.setRules([]);
      dstProxy.setRules([
        { method: 'PATCH', path: /\/blobs\/uploads\//, action: { kind: 'status', status: 500 } },
        { method: 'PATCH', path: /\/blobs\/uploads\//, action: { kind: 'status', status: 429, retryAfter: 1 } },
        { method: 'PATCH', path: /\/blobs\/uploads\//, action: { kind: 'reset-upload', afterBytes: 1 } },
        { method: 'PUT', path: /\/blobs\/uploads\/.*digest=/, action: { kind: 'drop-reply' } },
      ]);
      dstProxy.requests.length = 0;
      const retries: ConvertProgressEvent[] = [];
      const r = await convert(repo, { workers, onProgress: (e) => e.type === 'layer-retry' && retries.push(e) });
      expect(r.workers).toBe(workers);
      expect(dstProxy.injected).toBe(4);
      // Each broken streaming upload converted its layer again (the builder gives the same blob).
      expect(retries.length).toBeGreaterThanOrEqual(3);
      expect(retries.every((e) => e.type === 'layer-retry' && e.attempt >= 1)).toBe(true);
      await expectChecks(repo);
    });
  }

  it('a failed bootstrap or config upload (a monolithic PUT of bytes in memory) is sent again in a new session', async () => {
    dstProxy.setRules([
      { method: 'PUT', path: /\/blobs\/uploads\//, withBody: true, action: { kind: 'status', status: 503 } },
      { method: 'PUT', path: /\/blobs\/uploads\//, withBody: true, action: { kind: 'reset-upload', afterBytes: 1 } },
    ]);
    dstProxy.requests.length = 0;
    await convert('net/small-blobs');
    expect(dstProxy.injected).toBe(2);
    // bootstrap layer and config: each failed PUT was followed by a good one
    const puts = dstProxy.requests.filter((q) => q.method === 'PUT' && q.path.includes('/blobs/uploads/'));
    expect(puts.filter((q) => q.fault).map((q) => q.fault).sort()).toEqual(['reset-upload', 'status']);
    expect(puts.filter((q) => !q.fault && q.requestBytes > 0).map((q) => q.status)).toEqual([201, 201]);
    await expectChecks('net/small-blobs');
  });

  it('a corrupted source body is fetched again and the layer converted again; a body corrupted every time fails with DATA_LOSS and the attempts', async () => {
    dstProxy.setRules([]);
    const layer0 = new RegExp(`/blobs/${img.layers[0]!.digest}`);
    srcProxy.setRules([{ method: 'GET', path: layer0, action: { kind: 'corrupt' } }]);
    srcProxy.requests.length = 0;
    await convert('net/corrupt-once');
    expect(srcProxy.injected).toBe(1);
    expect(srcProxy.requests.filter((q) => q.method === 'GET' && layer0.test(q.path) && !q.range)).toHaveLength(2);
    await expectChecks('net/corrupt-once');

    srcProxy.setRules([{ method: 'GET', path: layer0, action: { kind: 'corrupt' }, times: Infinity }]);
    srcProxy.requests.length = 0;
    const err = await convert('net/corrupt-always').catch((e: unknown) => e);
    expect(isNydusError(err, 'DATA_LOSS'), String(err)).toBe(true);
    expect((err as Error).message).toContain(`layer 0 (${img.layers[0]!.digest})`);
    expect((err as Error).message).toMatch(new RegExp(`gave up after ${fast.attempts} attempts`));
    expect(srcProxy.requests.filter((q) => q.method === 'GET' && layer0.test(q.path))).toHaveLength(fast.attempts);
    expect(await dstClient.headManifest('net/corrupt-always', 'nydus')).toBeUndefined();
  });

  it('a reset or stalled source body is resumed with Range (idle timeout), in-process and in workers', async () => {
    for (const workers of [false, true]) {
      const layer0 = new RegExp(`/blobs/${img.layers[0]!.digest}`);
      srcProxy.setRules([
        { method: 'GET', path: layer0, action: { kind: 'reset', afterBytes: 200_000 } },
        { method: 'GET', path: layer0, action: { kind: 'stall', afterBytes: 100_000 } },
      ]);
      srcProxy.requests.length = 0;
      const repo = `net/resume-${workers}`;
      await convert(repo, { workers });
      expect(srcProxy.injected).toBe(2);
      const starts = srcProxy.requests.filter((q) => q.method === 'GET' && layer0.test(q.path) && q.range).map((q) => Number(/^bytes=(\d+)-$/.exec(q.range!)?.[1]));
      expect(starts).toHaveLength(2);
      expect(starts.every((n) => n > 0)).toBe(true);
      await expectChecks(repo);
    }
  });

  it('check: a target that stalls (no response, then a body stopping mid-way) is retried and resumed after the idle timeout', async () => {
    srcProxy.setRules([]);
    dstProxy.setRules([]);
    const r = await convert('net/check-stall');
    const manifest = JSON.parse((await dstClient.getManifest('net/check-stall', r.targetDigest)).bytes.toString()) as { layers: Array<{ digest: string }> };
    const boot = manifest.layers[manifest.layers.length - 1]!.digest;
    dstProxy.setRules([
      { method: 'GET', path: /\/manifests\//, action: { kind: 'stall' } },
      { method: 'GET', path: new RegExp(`/blobs/${boot}`), action: { kind: 'stall', afterBytes: 1000 } },
    ]);
    dstProxy.requests.length = 0;
    const report = await checkConvertedImage({ source: img.reference, target: `${dstProxy.host}/net/check-stall:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, timeouts: { connectMs: 2000, idleMs: 500 }, retry: fast });
    expect(report.differences).toEqual([]);
    expect(dstProxy.injected).toBe(2);
    expect(dstProxy.requests.some((q) => q.path.includes(boot) && q.range !== undefined)).toBe(true);
  });

  it('a genuinely corrupt gzip layer still fails at once as bad input (INVALID_FORMAT), read to its end once', async () => {
    srcProxy.setRules([]);
    const good = gzipSync(Buffer.concat([fileMember('a.txt', 'x'.repeat(200_000)), END]));
    const broken = Buffer.from(good);
    broken[Math.floor(broken.length / 2)] ^= 0xff;
    const bad = await pushRawImage(srcClient, 'net/broken', 'v1', [{ bytes: broken, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }]);
    srcProxy.requests.length = 0;
    const err = await convertImage({ source: `${srcProxy.host}/net/broken:v1`, target: `${dstProxy.host}/net/broken:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, retry: fast, workers: false }).catch((e: unknown) => e);
    expect(isNydusError(err, 'INVALID_FORMAT'), String(err)).toBe(true);
    expect(srcProxy.requests.filter((q) => q.method === 'GET' && q.path.includes(bad.layers[0]!.digest))).toHaveLength(1);
  });

  it('more layers than a bootstrap can address (254) is refused before any layer is converted', async () => {
    const layers = Array.from({ length: 255 }, (_, i) => ({ bytes: gzipSync(Buffer.concat([fileMember(`f${i}`, `layer ${i}\n`), END])), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }));
    // A well-known empty layer does not count: 256 layers, 255 with data.
    layers.push({ bytes: Buffer.from('1f8b08000000000000ff621805a360148c5800080000ffff2eafb5ef00040000', 'hex'), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
    const tall = await pushRawImage(srcClient, 'net/tall', 'v1', layers);
    srcProxy.setRules([]);
    dstProxy.setRules([]);
    srcProxy.requests.length = 0;
    dstProxy.requests.length = 0;
    const err = await convertImage({ source: `${srcProxy.host}/net/tall:v1`, target: `${dstProxy.host}/net/tall:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, retry: fast, workers: false }).catch((e: unknown) => e);
    expect(isNydusError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/has 255 layers, but a Nydus image holds at most 254 data blobs/);
    expect(srcProxy.requests.filter((q) => q.method === 'GET' && q.path.includes('/blobs/') && tall.layers.some((l) => q.path.includes(l.digest)))).toEqual([]);
    expect(dstProxy.requests.filter((q) => q.method === 'POST' || q.method === 'PATCH' || q.method === 'PUT')).toEqual([]);
  });

  // Last in this file: each aborted upload's stalled proxy connection is left as it is.
  it('a layer that fails stops the others: their uploads are cancelled (session deleted) before convertImage rejects with that failure, in-process and in workers', async () => {
    const gzipLayer = 'application/vnd.oci.image.layer.v1.tar+gzip';
    const two = await pushRawImage(srcClient, 'net/two', 'v1', [
      { bytes: gzipSync(Buffer.concat([fileMember('big.bin', randomBytes(3 << 20)), END])), mediaType: gzipLayer },
      { bytes: gzipSync(Buffer.concat([fileMember('small.txt', 'small'), END])), mediaType: gzipLayer },
    ]);
    const layer1 = two.layers[1]!;
    for (const workers of [false, true]) {
      const repo = `net/stop-${workers ? 'workers' : 'main'}`;
      const uploads = new RegExp(`^/v2/${repo}/blobs/uploads/`);
      // Layer 0's upload stalls (the registry stops reading it), so it is certainly under way
      // when layer 1's source answers 404, which it does only once that upload has started.
      dstProxy.setRules([{ method: 'PATCH', path: uploads, action: { kind: 'stall-upload', afterBytes: 1 } }]);
      srcProxy.setRules([{ method: 'GET', path: new RegExp(`/blobs/${layer1.digest}`), action: { kind: 'status', status: 404 }, hold: dstProxy.nextRequest({ method: 'PATCH', path: uploads }) }]);
      const err = await convertImage({
        source: `${srcProxy.host}/net/two:v1`,
        target: `${dstProxy.host}/${repo}:nydus`,
        sourceRegistry: { insecure: true },
        targetRegistry: { insecure: true },
        retry: fast,
        // long enough that the stalled upload is not retried before the abort reaches it
        timeouts: { connectMs: 2000, idleMs: 5000 },
        workers,
      }).catch((e: unknown) => e);
      const rejectedAt = performance.now();
      const done = dstProxy.requests.filter((q) => uploads.test(q.path));
      expect(isNydusError(err, 'NOT_FOUND'), String(err)).toBe(true);
      expect((err as Error).message).toContain(`layer 1 (${layer1.digest})`);
      // The stalled upload was aborted, not retried, and its session deleted before the rejection.
      const seen = () => [...dstProxy.requests, ...dstProxy.inFlight, ...srcProxy.requests, ...srcProxy.inFlight].filter((q) => q.path.includes(`/${repo}/`) || q.path.includes('/net/two/'));
      expect(seen().filter((q) => q.method === 'PATCH')).toHaveLength(1);
      // (404: the registry may already have dropped the session its stalled PATCH was writing to.)
      const deletes = done.filter((q) => q.method === 'DELETE');
      expect(deletes).toHaveLength(1);
      expect([204, 404]).toContain(deletes[0]!.status);
      expect(await dstClient.headManifest(repo, 'nydus')).toBeUndefined();
      // Nothing of the conversion starts after it has rejected.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(seen().filter((q) => q.startedAt > rejectedAt)).toEqual([]);
    }
  });
});
