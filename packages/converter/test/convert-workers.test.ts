// Layers converted in worker threads (the default) give byte-identical images to the in-process
// path, fail with the same codes and messages, and cancel without moving a tag.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { isNydusError, noopLogger } from '@nydus-ts/core';
import type { Logger } from '@nydus-ts/core';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertImage } from '../src/index.js';
import type { ConvertImageOptions, ConvertImageResult } from '../src/index.js';
import { busyboxImage, corruptGzipLayers, dotDotLayers, pushRawImage, whiteoutImage, writeOciLayout } from './support/images.js';

/** A logger recording whether layers were converted by workers (debug 'layer converted' {worker}). */
function layerLog(): { logger: Logger; workerLayers: () => number; inProcessLayers: () => number } {
  const seen: boolean[] = [];
  const logger: Logger = {
    ...noopLogger,
    debug: (msg, fields) => {
      if (msg === 'layer converted') seen.push(fields?.worker === true);
    },
    child: () => logger,
  };
  return { logger, workerLayers: () => seen.filter(Boolean).length, inProcessLayers: () => seen.filter((w) => !w).length };
}

describe('convertImage: layers in worker threads', () => {
  let registry: TestRegistry;
  let client: RegistryClient;
  let work: string;

  beforeAll(async () => {
    registry = await startRegistry();
    client = new RegistryClient({ registry: registry.host, insecure: true });
    work = await mkdtemp(path.join(tmpdir(), 'nydus-convert-workers-'));
  });
  afterAll(async () => {
    await client?.close();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const blobs = (r: ConvertImageResult): Array<string | undefined> => r.manifests.flatMap((m) => [...m.layers.map((l) => l.blob?.digest), m.bootstrap.digest, m.config, m.target.digest]);

  it('worker and in-process conversions push byte-identical images (gzip, zstd and plain layers; several option sets)', async () => {
    const wh = await whiteoutImage(client, { repository: 'src/whiteout', tag: 'v1' });
    const bb = await busyboxImage(client, { repository: 'src/busybox', tag: 'v1' });
    const layout = path.join(work, 'layout');
    await writeOciLayout(client, bb, layout, 'v1');
    const rootfs = path.join(work, 'rootfs');
    await mkdir(path.join(rootfs, 'etc'), { recursive: true });
    await writeFile(path.join(rootfs, 'etc/hello'), 'hello\n');
    await writeFile(path.join(rootfs, 'big'), Buffer.alloc(3 << 20, 7));
    const cases: Array<[string, Partial<ConvertImageOptions>]> = [
      [`oci:${layout}:v1`, {}],
      [`dir:${rootfs}`, {}],
      [wh.reference, {}],
      [wh.reference, { compressor: 'none', digester: 'sha256', chunkSize: 0x10000, concurrency: 3 }],
      [bb.reference, { compressor: 'lz4_block', prefetchPatterns: ['/bin'] }],
    ];
    for (const [i, [source, extra]] of cases.entries()) {
      const w = layerLog();
      const p = layerLog();
      const base = { source, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, ...extra };
      const a = await convertImage({ ...base, target: `${registry.host}/conv/same${i}:workers`, workers: true, logger: w.logger });
      const b = await convertImage({ ...base, target: `${registry.host}/conv/same${i}:inproc`, workers: false, logger: p.logger });
      expect(a.workers).toBe(true);
      expect(b.workers).toBe(false);
      expect(w.workerLayers()).toBe(a.manifests[0]!.layers.length);
      expect(w.inProcessLayers()).toBe(0);
      expect(p.workerLayers()).toBe(0);
      expect(a.targetDigest).toBe(b.targetDigest);
      expect(blobs(a)).toEqual(blobs(b));
      expect(a.manifests[0]!.layers.map((l) => [l.bytesIn, l.bytesOut, l.entries, l.chunks])).toEqual(b.manifests[0]!.layers.map((l) => [l.bytesIn, l.bytesOut, l.entries, l.chunks]));
    }
  });

  it('workers: false/true selects the path; by default workers need > 2 cores and > 1 layer', async () => {
    await busyboxImage(client, { repository: 'src/bbenv', tag: 'v1' });
    const convert = (workers: boolean | undefined) => convertImage({ source: `${registry.host}/src/bbenv:v1`, target: `${registry.host}/conv/env:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, ...(workers !== undefined && { workers }) });
    expect((await convert(false)).workers).toBe(false);
    expect((await convert(true)).workers).toBe(true);
    const auto = await convert(undefined);
    expect(auto.manifests[0]!.layers.length).toBeGreaterThan(1);
    expect(auto.workers).toBe(availableParallelism() > 2);
  });

  it('errors from a worker keep their code and message (same as in-process); no tag is pushed', async () => {
    const img = await pushRawImage(client, 'src/corrupt', 'v1', corruptGzipLayers());
    const dotdot = await pushRawImage(client, 'src/dotdot', 'v1', dotDotLayers());
    for (const [name, source] of [['corrupt', img.reference], ['dotdot', dotdot.reference]] as const) {
      const run = (workers: boolean) => convertImage({ source, target: `${registry.host}/bad/${name}:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, workers }).then(() => undefined, (e: unknown) => e);
      const [w, p] = [await run(true), await run(false)];
      expect(isNydusError(w)).toBe(true);
      expect(isNydusError(p)).toBe(true);
      expect((w as { code: string }).code).toBe((p as { code: string }).code);
      expect((w as Error).message).toBe((p as Error).message);
      expect(await client.headManifest(`bad/${name}`, 'nydus')).toBeUndefined();
    }
  });

  it('credentials reach the worker: a private source converts with --source-creds; wrong ones fail as in-process', async () => {
    const auth = await startRegistry({ auth: 'htpasswd', users: { alice: 'right' } });
    try {
      const authed = new RegistryClient({ registry: auth.host, insecure: true, credentials: async () => ({ username: 'alice', password: 'right' }) });
      const img = await busyboxImage(authed, { repository: 'src/private', tag: 'v1' });
      await authed.close();
      const base = { source: img.reference, targetRegistry: { insecure: true } };
      // A lookup, as the CLI passes one: asked once in the main thread, its answer sent to the workers.
      const right = { insecure: true, credentials: async () => ({ username: 'alice', password: 'right' }) };
      const w = await convertImage({ ...base, target: `${registry.host}/conv/private:w`, sourceRegistry: right, workers: true });
      const p = await convertImage({ ...base, target: `${registry.host}/conv/private:p`, sourceRegistry: right, workers: false });
      expect(w.workers).toBe(true);
      expect(w.targetDigest).toBe(p.targetDigest);
      const bad = (workers: boolean) => convertImage({ ...base, target: `${registry.host}/conv/private:bad`, sourceRegistry: { insecure: true, credentials: { username: 'alice', password: 'wrong' } }, workers }).then(() => undefined, (e: unknown) => e as Error & { code: string });
      const [bw, bp] = [await bad(true), await bad(false)];
      expect(bw?.code).toBe('UNAUTHENTICATED');
      expect(bw?.code).toBe(bp?.code);
      expect(bw?.message).toBe(bp?.message);
    } finally {
      await auth.stop();
    }
  });

  it('cancellation while workers convert: CANCELLED, no tag', async () => {
    await whiteoutImage(client, { repository: 'src/cancel', tag: 'v1' });
    const controller = new AbortController();
    const err = await convertImage({
      workers: true,
      source: `${registry.host}/src/cancel:v1`,
      target: `${registry.host}/conv/cancel:nydus`,
      sourceRegistry: { insecure: true },
      targetRegistry: { insecure: true },
      signal: controller.signal,
      onProgress: (e) => {
        if (e.type === 'layer-start') controller.abort();
      },
    }).then(() => undefined, (e: unknown) => e);
    expect(isNydusError(err, 'CANCELLED')).toBe(true);
    expect(await client.headManifest('conv/cancel', 'nydus')).toBeUndefined();
  });
});
