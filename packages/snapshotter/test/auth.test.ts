// A Nydus image in a registry that needs a login: the labels carry no credentials, so the
// snapshotter takes them from its credentials file (docker config.json format) and hands them to
// nydusd-ts in the image's config (written 0600); without them the container cannot start and
// the error says why.
import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertImage } from '@nydus-ts/converter';
import { dockerConfigCredentials } from '@nydus-ts/registry';
import { lazyPull } from '@nydus-ts/snapshotter/pull';
import { buildLayer, makeBusyboxRootfs, pushImage } from '@nydus-ts/snapshotter/testing';
import { appBin } from '@nydus-ts/testing';
import { SNAPSHOTTER, startTestEnv } from './support/env.js';
import type { TestEnv } from './support/env.js';

const user = { username: 'puller', password: 'pa55word' };

for (const withCredentials of [true, false]) {
  describe(`a registry with basic auth, snapshotter ${withCredentials ? 'with' : 'without'} a credentials file`, () => {
    let env: TestEnv;
    let ref: string;
    let credsFile: string;

    beforeAll(async () => {
      const registryOptions = { auth: 'htpasswd' as const, users: { [user.username]: user.password } };
      // (the file is written once the registry's address is known; it is read when a daemon config is made)
      env = await startTestEnv(
        { daemon: { command: [process.execPath, appBin('nydusd-ts')] }, ...(withCredentials && { credentials: (registry: string) => dockerConfigCredentials(credsFile)(registry) }) },
        registryOptions,
      );
      credsFile = path.join(env.work, 'auth.json');
      await writeFile(credsFile, JSON.stringify({ auths: { [env.registry.host]: { auth: Buffer.from(`${user.username}:${user.password}`).toString('base64') } } }));
      const rootfs = path.join(env.work, 'rootfs');
      await mkdir(rootfs);
      await makeBusyboxRootfs(rootfs, { 'secret/file.txt': 'behind a login\n' });
      const layer = await buildLayer(rootfs, path.join(env.work, 'l.tgz'));
      const oci = await pushImage({ registry: env.registry.host, repository: 'auth/busybox', tag: 'oci', layers: [layer], credentials: user });
      ref = `${env.registry.host}/auth/busybox:native`;
      const creds = { username: user.username, password: user.password };
      await convertImage({ source: oci.ref, target: ref, sourceRegistry: { insecure: true, credentials: creds }, targetRegistry: { insecure: true, credentials: creds } });
      await lazyPull({ address: env.containerd.address, snapshotter: SNAPSHOTTER, ref, plainHttp: true, credentials: user });
    });

    afterAll(async () => {
      await env?.stop();
    });

    if (withCredentials) {
      it('the container reads its files; the daemon config holding the password is private', async () => {
        const out = await env.containerd.ctrOk(['run', '--rm', '--snapshotter', SNAPSHOTTER, ref, 'auth-1', '/bin/cat', '/secret/file.txt']);
        expect(out).toBe('behind a login\n');
        const configDir = path.join(env.snapshotter.root, 'config');
        const { readdir, readFile } = await import('node:fs/promises');
        const [file] = await readdir(configDir);
        expect(((await stat(path.join(configDir, file!))).mode & 0o777).toString(8)).toBe('600');
        const config = JSON.parse(await readFile(path.join(configDir, file!), 'utf8')) as { device: { backend: { config: { auth: string; scheme: string } } } };
        expect(Buffer.from(config.device.backend.config.auth, 'base64').toString()).toBe(`${user.username}:${user.password}`);
        expect(config.device.backend.config.scheme).toBe('http');
      });
    } else {
      it('the container cannot start, and the error names the registry’s refusal', async () => {
        const r = await env.containerd.ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, ref, 'auth-2', '/bin/cat', '/secret/file.txt']);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/registry 127\.0\.0\.1:\d+ refuses anonymous access for auth\/busybox .*: give the snapshotter credentials/);
      });
    }
  });
}
