import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isNydusError } from '@nydus-ts/core';
import { RegistryClient, RegistryResponseError, copyImage, dockerConfigCredentials } from '../src/index.js';
import { pushGeneratedImage, startFaultProxy, startRegistry } from '../src/testing/index.js';
import type { TestRegistry } from '../src/testing/index.js';

describe('htpasswd basic auth', () => {
  let reg: TestRegistry;
  let configDir: string;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'htpasswd', users: { alice: 's3cret:with:colons' } });
    configDir = await mkdtemp(join(tmpdir(), 'nydus-dockercfg-'));
  });
  afterAll(async () => {
    await reg?.stop();
    await rm(configDir, { recursive: true, force: true });
  });

  it('pushes and copies with explicit credentials', async () => {
    const client = new RegistryClient({ registry: reg.host, insecure: true, credentials: { username: 'alice', password: 's3cret:with:colons' } });
    const img = await pushGeneratedImage(client, 'auth/app', { tag: 'v1', layers: [{ size: 50_000 }, { size: 20_000 }] });
    await client.close();
    const creds = { username: 'alice', password: 's3cret:with:colons' };
    const r = await copyImage({ source: `${reg.host}/auth/app:v1`, target: `${reg.host}/auth/copy:v1`, sourceRegistry: { insecure: true, credentials: creds }, targetRegistry: { insecure: true, credentials: creds } });
    expect(r.digest).toBe(img.manifest.descriptor.digest);
  });

  it('takes credentials from a docker config file', async () => {
    await writeFile(join(configDir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('alice:s3cret:with:colons').toString('base64') } } }));
    const fromConfig = dockerConfigCredentials(join(configDir, 'config.json'));
    const r = await copyImage({ source: `${reg.host}/auth/app:v1`, target: `${reg.host}/auth/cfg:v1`, sourceRegistry: { insecure: true, credentials: fromConfig }, targetRegistry: { insecure: true, credentials: fromConfig } });
    expect(r.blobs.total).toBe(3);
  });

  it('learns the challenge from a ping, so requests carry credentials without a 401 first', async () => {
    const proxy = await startFaultProxy(reg.url);
    const creds = { username: 'alice', password: 's3cret:with:colons' };
    const digest = `sha256:${'1'.repeat(64)}` as const;
    try {
      const cold = new RegistryClient({ registry: proxy.host, insecure: true, credentials: creds });
      expect(await cold.headBlob('auth/app', digest)).toBeUndefined();
      await cold.close();
      expect(proxy.requests.filter((q) => q.method === 'HEAD').map((q) => q.status)).toEqual([401, 404]);
      proxy.requests.length = 0;
      const warm = new RegistryClient({ registry: proxy.host, insecure: true, credentials: creds });
      await warm.ping();
      expect(await warm.headBlob('auth/app', digest)).toBeUndefined();
      await warm.close();
      expect(proxy.requests.map((q) => `${q.method} ${q.path} ${q.status}`)).toEqual(['GET /v2/ 401', `HEAD /v2/auth/app/blobs/${digest} 404`]);
    } finally {
      await proxy.stop();
    }
  });

  it('reports wrong or missing credentials as UNAUTHENTICATED with the registry URL', async () => {
    const bad = new RegistryClient({ registry: reg.host, insecure: true, credentials: { username: 'alice', password: 'wrong' } });
    const err = await bad.getManifest('auth/app', 'v1').catch((e: unknown) => e);
    await bad.close();
    expect(err).toBeInstanceOf(RegistryResponseError);
    expect(isNydusError(err, 'UNAUTHENTICATED')).toBe(true);
    expect((err as RegistryResponseError).status).toBe(401);
    expect(String((err as Error).message)).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/v2\/auth\/app\/manifests\/v1 returned 401.*check the credentials/);
    expect(String((err as Error).message)).not.toContain('wrong');
    const anon = await copyImage({ source: `${reg.host}/auth/app:v1`, target: `${reg.host}/auth/x:v1`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } }).catch((e: unknown) => e);
    expect(isNydusError(anon, 'UNAUTHENTICATED')).toBe(true);
  });
});

describe('bearer token auth', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'token', users: { bob: 'hunter2' } });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('fetches tokens from the challenge realm and reuses them per scope', async () => {
    const creds = { username: 'bob', password: 'hunter2' };
    const client = new RegistryClient({ registry: reg.host, insecure: true, credentials: creds });
    const img = await pushGeneratedImage(client, 'tok/app', { tag: 'v1', layers: [{ size: 40_000 }, { size: 30_000 }, { size: 20_000 }] });
    await client.close();
    const ts = reg.tokenServer!;
    // createUpload/putManifest all need repository:tok/app:pull,push: one token serves them all.
    expect(ts.requests.filter((r) => r.granted).map((r) => r.scopes.join(' '))).toEqual(['repository:tok/app:pull,push']);
    ts.requests.length = 0;
    const r = await copyImage({ source: `${reg.host}/tok/app:v1`, target: `${reg.host}/tok/copy:v1`, sourceRegistry: { insecure: true, credentials: creds }, targetRegistry: { insecure: true, credentials: creds } });
    expect(r.digest).toBe(img.manifest.descriptor.digest);
    expect(r.blobs.mounted).toBe(4);
    // pull token for the source, a push+mount token for the target; not one per blob.
    expect(ts.requests.length, JSON.stringify(ts.requests)).toBeLessThanOrEqual(4);
    expect(ts.requests.every((q) => q.user === 'bob' && q.granted)).toBe(true);
  });

  it('gives a clear error for wrong credentials', async () => {
    const bad = new RegistryClient({ registry: reg.host, insecure: true, credentials: { username: 'bob', password: 'nope' } });
    const err = await bad.getManifest('tok/app', 'v1').catch((e: unknown) => e);
    await bad.close();
    expect(err).toBeInstanceOf(RegistryResponseError);
    const re = err as RegistryResponseError;
    expect(re.code).toBe('UNAUTHENTICATED');
    expect(re.url).toBe(`${reg.tokenServer!.realm}?service=nydus-test-registry&scope=repository%3Atok%2Fapp%3Apull`);
    expect(re.message).toMatch(/token request \(credentials rejected\?\): GET .* returned 401/);
    expect(re.message).not.toContain('nope');
  });

  it('drops a refused token and fetches a fresh one after a 401', async () => {
    const strict = await startRegistry({ auth: 'token', users: { bob: 'hunter2' }, token: { emptyTokensFirst: 1 } });
    try {
      const client = new RegistryClient({ registry: strict.host, insecure: true, credentials: { username: 'bob', password: 'hunter2' } });
      const img = await pushGeneratedImage(client, 'retry/app', { tag: 'v1', layers: [{ size: 1000 }] });
      expect((await client.getManifest('retry/app', 'v1')).descriptor.digest).toBe(img.manifest.descriptor.digest);
      await client.close();
      // 1: anonymous-scope challenge answered with an empty token; 2: refused, fetched again; 3: pull scope.
      const granted = strict.tokenServer!.requests.filter((q) => q.granted).map((q) => q.scopes.join(' '));
      expect(granted).toEqual(['repository:retry/app:pull,push', 'repository:retry/app:pull,push', 'repository:retry/app:pull']);
    } finally {
      await strict.stop();
    }
  });

  it('refreshes an expired token', async () => {
    const short = await startRegistry({ auth: 'token', users: { bob: 'hunter2' }, token: { expiresIn: 2 } });
    try {
      const client = new RegistryClient({ registry: short.host, insecure: true, credentials: { username: 'bob', password: 'hunter2' } });
      await pushGeneratedImage(client, 'ref/app', { tag: 'v1', layers: [{ size: 1000 }] });
      await new Promise((r) => setTimeout(r, 2500));
      expect((await client.getManifest('ref/app', 'v1')).bytes.length).toBeGreaterThan(0);
      expect(short.tokenServer!.requests.filter((q) => q.granted).length).toBeGreaterThanOrEqual(2);
      await client.close();
    } finally {
      await short.stop();
    }
  });
});
