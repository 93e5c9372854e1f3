import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RegistryResponseError, dockerConfigCredentials, isRetryableError, parseRetryAfter, redactUrl } from '../src/index.js';
import { mergeScopes, normalizeAuthKey, parseWwwAuthenticate } from '../src/internal.js';

describe('WWW-Authenticate', () => {
  it('parses bearer and basic challenges', () => {
    expect(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull,push' } },
    ]);
    expect(parseWwwAuthenticate('Basic realm="x y", Bearer realm="r",error="insufficient_scope"')).toEqual([
      { scheme: 'basic', params: { realm: 'x y' } },
      { scheme: 'bearer', params: { realm: 'r', error: 'insufficient_scope' } },
    ]);
    expect(parseWwwAuthenticate('')).toEqual([]);
  });
  it('merges scopes per resource', () => {
    expect(mergeScopes(['repository:a:pull', 'repository:a:push', 'repository:b:pull', 'repository:a:pull'])).toEqual(['repository:a:pull,push', 'repository:b:pull']);
  });
});

describe('retry classification', () => {
  it('retries resets, 5xx and 429 but never other 4xx', () => {
    const e = (status: number) => new RegistryResponseError({ status, method: 'GET', url: 'http://h/v2/' });
    expect(isRetryableError(e(500))).toBe(true);
    expect(isRetryableError(e(503))).toBe(true);
    expect(isRetryableError(e(429))).toBe(true);
    expect(isRetryableError(e(404))).toBe(false);
    expect(isRetryableError(e(401))).toBe(false);
    expect(isRetryableError(e(400))).toBe(false);
    expect(isRetryableError(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isRetryableError(new Error('plain'))).toBe(false);
    expect(parseRetryAfter('3')).toBe(3);
    expect(parseRetryAfter(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThanOrEqual(4);
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
  it('keeps error context without secrets', () => {
    expect(redactUrl('https://u:p@h/v2/x/blobs/uploads/1?_state=secret&digest=sha256:1')).toBe('https://h/v2/x/blobs/uploads/1?_state=REDACTED&digest=sha256%3A1');
    const err = new RegistryResponseError({ status: 404, method: 'GET', url: 'http://h/v2/x/manifests/t', body: '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}' });
    expect(err.code).toBe('NOT_FOUND');
    expect(err.errors[0]?.code).toBe('MANIFEST_UNKNOWN');
    expect(err.message).toContain('GET http://h/v2/x/manifests/t returned 404 (MANIFEST_UNKNOWN: manifest unknown)');
  });
});

describe('docker config credentials', () => {
  it('reads auths (base64 auth, identity tokens) from DOCKER_CONFIG', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nydus-dockercfg-'));
    try {
      await writeFile(join(dir, 'config.json'), JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hub:pass').toString('base64') },
          'http://127.0.0.1:5000': { auth: Buffer.from('local:pw').toString('base64') },
          'ghcr.io': { identitytoken: 'refresh-me', username: 'x' },
          'quay.io': { username: 'q', password: 'qp' },
        },
      }));
      const creds = dockerConfigCredentials(join(dir, 'config.json'));
      expect(await creds('docker.io')).toEqual({ username: 'hubuser', password: 'hub:pass' });
      expect(await creds('127.0.0.1:5000')).toEqual({ username: 'local', password: 'pw' });
      expect(await creds('ghcr.io')).toEqual({ identityToken: 'refresh-me', username: 'x' });
      expect(await creds('quay.io')).toEqual({ username: 'q', password: 'qp' });
      expect(await creds('other.io')).toBeUndefined();
      expect(await dockerConfigCredentials(join(dir, 'none', 'config.json'))('docker.io')).toBeUndefined();
      await writeFile(join(dir, 'config.json'), '{not json');
      await expect(dockerConfigCredentials(join(dir, 'config.json'))('docker.io')).rejects.toThrow(/invalid JSON/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  it('normalises auth keys', () => {
    expect(normalizeAuthKey('https://registry-1.docker.io/v2/')).toBe('docker.io');
    expect(normalizeAuthKey('HTTP://Example.com:5000/x')).toBe('example.com:5000');
  });
});
