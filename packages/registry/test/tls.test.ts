import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isNydusError } from '@nydus-ts/core';
import { RegistryClient, copyImage } from '../src/index.js';
import { pushGeneratedImage, startRegistry } from '../src/testing/index.js';
import type { PushedImage, TestRegistry } from '../src/testing/index.js';

let plain: TestRegistry;
let tls: TestRegistry;
let img: PushedImage;

beforeAll(async () => {
  [plain, tls] = await Promise.all([startRegistry(), startRegistry({ tls: true })]);
  const c = new RegistryClient({ registry: plain.host, insecure: true });
  img = await pushGeneratedImage(c, 'tls/app', { tag: 'v1', layers: [{ size: 200_000 }] });
  await c.close();
});
afterAll(async () => {
  await Promise.all([plain?.stop(), tls?.stop()]);
});

describe('transport security', () => {
  it('verifies TLS by default and refuses a self-signed registry', async () => {
    expect(tls.url.startsWith('https://')).toBe(true);
    const strict = new RegistryClient({ registry: tls.host });
    const err = await strict.headBlob('tls/app', img.config.digest).catch((e: unknown) => e);
    await strict.close();
    expect(isNydusError(err, 'UNAVAILABLE')).toBe(true);
    expect(String(err)).toMatch(/https:\/\/127\.0\.0\.1:\d+\/v2\/tls\/app\/blobs\/.*connection failed: TLS certificate rejected: .*\((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\)$/);
    expect(String(err)).not.toMatch(/gave up/); // the same answer every time: not retried
  });

  it('with insecure, uses HTTPS without verification when offered and plain HTTP otherwise', async () => {
    const r = await copyImage({ source: `${plain.host}/tls/app:v1`, target: `${tls.host}/tls/app:v1`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    expect(r.digest).toBe(img.manifest.descriptor.digest);
    const c = new RegistryClient({ registry: tls.host, insecure: true });
    expect(await c.transport.originBase()).toBe(`https://${tls.host}`);
    expect((await c.getManifest('tls/app', 'v1')).descriptor.digest).toBe(img.manifest.descriptor.digest);
    await c.close();
    const p = new RegistryClient({ registry: plain.host, insecure: true });
    expect(await p.transport.originBase()).toBe(`http://${plain.host}`);
    await p.close();
    const noFlag = await copyImage({ source: `${plain.host}/tls/app:v1`, target: `${tls.host}/tls/other:v1`, sourceRegistry: { insecure: true }, retry: { attempts: 1 } }).catch((e: unknown) => e);
    expect(isNydusError(noFlag, 'UNAVAILABLE')).toBe(true);
  });

  it('verifies TLS against a CA given with the endpoint', async () => {
    // The test registry's self-signed certificate is its own CA.
    const ca = await readFile(join(tls.dir, 'tls.crt'));
    const r = await copyImage({ source: `${plain.host}/tls/app:v1`, target: `${tls.host}/tls/ca:v1`, sourceRegistry: { insecure: true }, targetRegistry: { ca } });
    expect(r.digest).toBe(img.manifest.descriptor.digest);
    const c = new RegistryClient({ registry: tls.host, ca: [ca.toString('utf8')] });
    expect((await c.getManifest('tls/ca', 'v1')).descriptor.digest).toBe(img.manifest.descriptor.digest);
    await c.close();
  });

  it('refuses an endpoint configured for another registry', async () => {
    const err = await copyImage({ source: `${plain.host}/tls/app:v1`, target: `${tls.host}/tls/x:v1`, sourceRegistry: { host: tls.host, insecure: true } }).catch((e: unknown) => e);
    expect(isNydusError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect(String(err)).toContain(`sourceRegistry.host is "${tls.host}" but the image reference names registry "${plain.host}"`);
  });
});
