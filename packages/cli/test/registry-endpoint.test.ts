import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@nydus-ts/core';
import { dockerConfigPath, parseCredentials, proxyFromEnv, registryEndpointFromFlags } from '../src/registry-endpoint.js';
import { reportError, withFlagNames } from '../src/program-core.js';
import type { CliIo } from '../src/io.js';
import { PassThrough } from 'node:stream';

describe('registry endpoints from flags and the environment (CLI only)', () => {
  it('parses user:pass, finds docker config, reads the proxy variables', () => {
    expect(parseCredentials('a:b:c', '--source-creds')).toEqual({ username: 'a', password: 'b:c' });
    expect(() => parseCredentials('nocolon', '--source-creds')).toThrow(/--source-creds: expected USER:PASSWORD/);
    expect(dockerConfigPath({ DOCKER_CONFIG: '/etc/dc' })).toBe('/etc/dc/config.json');
    expect(dockerConfigPath({ HOME: '/home/u' })).toBe('/home/u/.docker/config.json');
    expect(proxyFromEnv({})).toBeUndefined();
    expect(proxyFromEnv({ NO_PROXY: 'x' })).toBeUndefined();
    expect(proxyFromEnv({ https_proxy: 'http://p:3128', NO_PROXY: '127.0.0.1' })).toEqual({ https: 'http://p:3128', noProxy: '127.0.0.1' });
    expect(proxyFromEnv({ HTTP_PROXY: 'http://a:1', http_proxy: 'http://b:2' })).toEqual({ http: 'http://a:1' });
  });

  it('gives explicit credentials for the side registry only, docker config for the rest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nydus-cli-endpoint-'));
    try {
      await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { 'mirror:5000': { auth: Buffer.from('m:pw').toString('base64') }, 'reg:5000': { auth: Buffer.from('cfg:pw').toString('base64') } } }));
      const env = { DOCKER_CONFIG: dir, HTTPS_PROXY: 'http://proxy:3128' };
      const explicit = registryEndpointFromFlags({ registry: 'reg:5000', insecure: true, creds: 'u:p', credsFlag: '--source-creds', mirrors: ['http://mirror:5000'] }, env);
      expect(explicit).toMatchObject({ insecure: true, mirrors: ['http://mirror:5000'], proxy: { https: 'http://proxy:3128' } });
      const lookup = explicit.credentials as (host: string) => Promise<unknown>;
      expect(await lookup('reg:5000')).toEqual({ username: 'u', password: 'p' });
      expect(await lookup('mirror:5000')).toEqual({ username: 'm', password: 'pw' });
      const fromConfig = registryEndpointFromFlags({ registry: 'reg:5000', credsFlag: '--target-creds' }, { DOCKER_CONFIG: dir });
      expect(fromConfig.proxy).toBeUndefined();
      expect(await (fromConfig.credentials as (host: string) => Promise<unknown>)('reg:5000')).toEqual({ username: 'cfg', password: 'pw' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('shows the library option names an error mentions as flags', () => {
    expect(withFlagNames('blobIds has 2 ids for 3 sources', ['blobIds'])).toBe('--blob-ids has 2 ids for 3 sources');
    expect(withFlagNames('mode erofs needs bootstrap (shared mode serves FUSE only)', ['mode', 'bootstrap'])).toBe('--mode erofs needs --bootstrap (shared mode serves FUSE only)');
    // paths that contain an option's name stay as they are
    expect(withFlagNames('source /data/type/x.tar is not a directory (type dir-rafs)', ['type'])).toBe('source /data/type/x.tar is not a directory (--type dir-rafs)');
    expect(withFlagNames('chunkDict ./chunkDict.boot: no such file', ['chunkDict'])).toBe('--chunk-dict ./chunkDict.boot: no such file');
    expect(withFlagNames('digester: "md5" is not one of blake3, sha256', [])).toBe('digester: "md5" is not one of blake3, sha256');
    const stderr = new PassThrough();
    let text = '';
    stderr.on('data', (b: Buffer) => (text += b.toString()));
    const io: CliIo = { stdout: new PassThrough(), stderr, env: {}, cwd: '/' };
    expect(reportError(new InvalidArgumentError('blobDir is required', { optionNames: ['blobDir'] }), io)).toBe(2);
    expect(text).toBe('error: --blob-dir is required\n');
  });
});
