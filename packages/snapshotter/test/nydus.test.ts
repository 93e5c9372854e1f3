// Nydus images (native and zran) through our snapshotter and a real containerd 1.6: the lazy pull
// commits the data layers remotely (nothing downloaded) and unpacks the bootstrap layer; `ctr
// run` gets an overlay whose lower dir is nydusd-ts's mount of the image; the container reads the
// right bytes while only a fraction of the blobs is fetched; writes land in its upper dir; two
// containers run at once; the daemon survives a snapshotter restart; GC unmounts and frees the
// cache. Shared and dedicated daemons.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertImage } from '@nydus-ts/converter';
import { SnapshotLabel } from '@nydus-ts/snapshotter';
import { lazyPull } from '@nydus-ts/snapshotter/pull';
import { buildLayer, makeBusyboxRootfs, pseudoRandomBytes, pushImage, run } from '@nydus-ts/snapshotter/testing';
import { appBin } from '@nydus-ts/testing';
import { SNAPSHOTTER, startTestEnv } from './support/env.js';
import type { TestEnv } from './support/env.js';

const big = pseudoRandomBytes('nydus-big', 24 << 20); // never read by the containers
const small = pseudoRandomBytes('nydus-small', 300 << 10);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Pushes a two-layer busybox image and its native and zran Nydus conversions; returns the refs. */
async function prepareImages(env: TestEnv): Promise<{ oci: string; native: string; zran: string; blobBytes: number; ociLayers: string[] }> {
  const base = path.join(env.work, 'img-base');
  await makeBusyboxRootfs(base);
  const upper = path.join(env.work, 'img-upper');
  await mkdir(path.join(upper, 'data'), { recursive: true });
  await writeFile(path.join(upper, 'data/big.bin'), big);
  await writeFile(path.join(upper, 'data/small.bin'), small);
  const layers = [await buildLayer(base, path.join(env.work, 'b.tgz')), await buildLayer(upper, path.join(env.work, 'u.tgz'))];
  const pushed = await pushImage({ registry: env.registry.host, repository: 'nydus/busybox', tag: 'oci', layers, config: { cmd: ['/bin/sh'] } });
  const native = `${env.registry.host}/nydus/busybox:native`;
  const zran = `${env.registry.host}/nydus/busybox:zran`;
  await convertImage({ source: pushed.ref, target: native, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
  await convertImage({ source: pushed.ref, target: zran, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, ociRef: true });
  return { oci: pushed.ref, native, zran, blobBytes: layers.reduce((a, l) => a + l.size, 0), ociLayers: layers.map((l) => l.digest) };
}

/** Pids of the nydusd-ts processes whose API socket lies under `root`. */
async function daemonPids(root: string): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').some((a) => a.startsWith(path.join(root, 'socket') + '/'))) out.push(Number(pid));
  }
  return out;
}

function backendBytes(metrics: Record<string, unknown>): number {
  return Number(metrics.read_amount_total ?? 0);
}

for (const mode of ['shared', 'dedicated'] as const) {
  describe(`Nydus images through containerd (${mode} daemon)`, () => {
    let env: TestEnv;
    let refs: Awaited<ReturnType<typeof prepareImages>>;

    beforeAll(async () => {
      env = await startTestEnv({ daemon: { mode, command: [process.execPath, appBin('nydusd-ts')] } });
      refs = await prepareImages(env);
    });

    afterAll(async () => {
      await env?.stop();
    });

    for (const kind of ['native', 'zran'] as const) {
      it(`${kind}: lazy pull commits data layers remotely, ctr run reads the right bytes lazily`, async () => {
        const ref = refs[kind];
        const result = await lazyPull({ address: env.containerd.address, snapshotter: SNAPSHOTTER, ref, plainHttp: true });
        expect(result.nydus).toBe(true);
        expect(result.layers.map((l) => l.how)).toEqual(['remote', 'remote', 'unpacked']);
        // only manifest, config and the bootstrap layer came down
        expect(result.bytesFetched).toBeLessThan(refs.blobBytes / 4);
        const meta = (await env.direct.list()).find((s) => s.kind === 'COMMITTED' && SnapshotLabel.NydusBootstrap in s.labels && s.labels[SnapshotLabel.CriImageRef] === ref)!;
        if (mode === 'shared') {
          // the pull's commit of the bootstrap layer mounts the image ahead of its first container
          for (let i = 0; i < 300 && !env.snapshotter.daemonFor(meta.name); i++) await sleep(100);
          expect(env.snapshotter.daemonFor(meta.name), 'served before any container').toBeDefined();
        } else {
          expect(env.snapshotter.daemonFor(meta.name), 'dedicated: no daemon before a container').toBeUndefined();
        }
        const out = await env.containerd.ctrOk(['run', '--rm', '--snapshotter', SNAPSHOTTER, ref, `${kind}-1`, '/bin/sh', '-c', 'echo hello; sha256sum /data/small.bin; ls -l /data/big.bin']);
        expect(out).toContain('hello');
        expect(out).toContain(sha(small));
        expect(out).toMatch(new RegExp(`${big.length}\\s+[A-Z][a-z]{2}`));
        // the image is served by nydusd-ts: its backend fetched the small file's chunks, not the big one's
        const daemon = env.snapshotter.daemonFor(meta.name)!;
        const fetched = backendBytes(await daemon.client.backendMetrics(daemon.instanceId));
        expect(fetched).toBeGreaterThan(0);
        expect(fetched).toBeLessThan(big.length / 4);
      });
    }

    it('ctr-remote image rpull (stargz labels, no cri.image-ref) pulls lazily and the image runs', async () => {
      await run('ctr-remote', ['--address', env.containerd.address, '--namespace', 'rp', 'image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, refs.native]);
      // no data blob reached containerd's content store: only manifest, config and bootstrap layer
      const content = await env.containerd.ctrOk(['-n', 'rp', 'content', 'ls', '-q']);
      expect(content.trim().split('\n')).toHaveLength(3);
      const meta = (await env.direct.list()).find((s) => s.name.startsWith('rp/') && SnapshotLabel.NydusBootstrap in s.labels)!;
      expect(meta.labels[SnapshotLabel.StargzReference]).toBe(refs.native);
      expect(meta.labels[SnapshotLabel.CriImageRef]).toBeUndefined();
      const out = await env.containerd.ctrOk(['-n', 'rp', 'run', '--rm', '--snapshotter', SNAPSHOTTER, refs.native, 'rp-1', '/bin/sha256sum', '/data/small.bin']);
      expect(out.split(' ')[0]).toBe(sha(small));
      await env.containerd.ctrOk(['-n', 'rp', 'images', 'rm', '--sync', refs.native]);
    });

    it('writes land in the container’s upper dir; two containers from one image at once', async () => {
      const ref = refs.native;
      await env.containerd.ctrOk(['run', '-d', '--snapshotter', SNAPSHOTTER, ref, 'two-a', '/bin/sh', '-c', 'echo a > /data/mine; while true; do sleep 1; done']);
      await env.containerd.ctrOk(['run', '-d', '--snapshotter', SNAPSHOTTER, ref, 'two-b', '/bin/sh', '-c', 'echo b > /data/mine; while true; do sleep 1; done']);
      await sleep(500);
      expect(await env.containerd.ctrOk(['tasks', 'exec', '--exec-id', 'x', 'two-a', 'cat', '/data/mine'])).toBe('a\n');
      expect(await env.containerd.ctrOk(['tasks', 'exec', '--exec-id', 'x', 'two-b', 'cat', '/data/mine'])).toBe('b\n');
      expect((await env.containerd.ctrOk(['tasks', 'exec', '--exec-id', 'y', 'two-b', 'sha256sum', '/data/small.bin'])).split(' ')[0]).toBe(sha(small));
      const active = (await env.direct.list()).find((s) => s.kind === 'ACTIVE' && s.name.endsWith('/two-a'))!;
      const mounts = await env.direct.mounts(active.name);
      const opts = mounts[0]!.options;
      const upper = opts.find((o) => o.startsWith('upperdir='))!.slice(9);
      expect((await run('cat', [path.join(upper, 'data/mine')])).trim()).toBe('a');
      // the lower dir is the daemon's mount of the whole image
      const lower = opts.find((o) => o.startsWith('lowerdir='))!.slice(9);
      expect(lower.split(':')).toHaveLength(1);
      expect(await readdir(path.join(lower, 'data'))).toEqual(['big.bin', 'small.bin']);
    });

    it('a snapshotter restart re-attaches the daemon; running containers keep reading', async () => {
      const names = async (): Promise<string[]> => (await env.direct.list()).map((s) => s.name).filter((n) => !n.includes('connectiontest-dummy'));
      const before = await names();
      await env.reopen();
      expect(await names()).toEqual(before);
      expect((await env.containerd.ctrOk(['tasks', 'exec', '--exec-id', 'z', 'two-a', 'sha256sum', '/data/small.bin'])).split(' ')[0]).toBe(sha(small));
      // a new container still starts
      expect(await env.containerd.ctrOk(['run', '--rm', '--snapshotter', SNAPSHOTTER, refs.native, 'after-reopen', '/bin/cat', '/data/mine']).catch((e: Error) => e.message)).toMatch(/No such file/);
      for (const id of ['two-a', 'two-b']) {
        await env.containerd.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
        for (let i = 0; i < 50 && (await env.containerd.ctr(['tasks', 'delete', id])).code !== 0; i++) await sleep(100);
        await env.containerd.ctrOk(['containers', 'delete', id]);
      }
    });

    it('a daemon that died is started again (and its images mounted again) on the next use', async () => {
      // one shared daemon, or one per image (native and zran)
      const pids = await daemonPids(env.snapshotter.root);
      expect(pids.length).toBe(mode === 'shared' ? 1 : 2);
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      const out = await env.containerd.ctrOk(['run', '--rm', '--snapshotter', SNAPSHOTTER, refs.native, 'after-daemon-death', '/bin/sha256sum', '/data/small.bin']);
      expect(out.split(' ')[0]).toBe(sha(small));
      const now = await daemonPids(env.snapshotter.root);
      expect(now).toHaveLength(1);
      expect(pids).not.toContain(now[0]);
    });

    it('removing one image frees only its blob cache files', async () => {
      const cache = env.snapshotter.cacheDir;
      const blobIdsInCache = async (): Promise<string[]> => [...new Set((await readdir(cache)).map((n) => /^[0-9a-f]{64}/.exec(n)?.[0]).filter((id) => id !== undefined))];
      // a zran image's blobs are the OCI layers themselves, and its lazily read metas are kept
      // under their nydus-ref layers' digests (`<digest>.zran_meta`); the native image has its own
      const zranMetas = new Set((await readdir(cache)).filter((n) => n.endsWith('.zran_meta')).map((n) => n.slice(0, 64)));
      expect(zranMetas.size).toBeGreaterThan(0);
      const zranBlob = (id: string): boolean => refs.ociLayers.includes(`sha256:${id}`) || zranMetas.has(id);
      const before = await blobIdsInCache();
      expect(before.filter(zranBlob).length).toBeGreaterThan(0);
      expect(before.filter((id) => !zranBlob(id)).length).toBeGreaterThan(0);
      await env.containerd.ctrOk(['images', 'rm', '--sync', refs.native]);
      const ofNative = async (): Promise<number> => (await env.direct.list()).filter((s) => s.labels[SnapshotLabel.CriImageRef] === refs.native).length;
      for (let i = 0; i < 300 && (await ofNative()) > 0; i++) await sleep(200);
      expect(await ofNative()).toBe(0);
      await env.direct.cleanup();
      const after = await blobIdsInCache();
      expect(after.filter((id) => !zranBlob(id))).toEqual([]);
      expect(after.sort()).toEqual(before.filter(zranBlob).sort());
      // the zran image still reads (from its cache files and the registry)
      const out = await env.containerd.ctrOk(['run', '--rm', '--snapshotter', SNAPSHOTTER, refs.zran, 'zran-after-gc', '/bin/sha256sum', '/data/small.bin']);
      expect(out.split(' ')[0]).toBe(sha(small));
    });

    it('removing the images lets GC unmount them, stop dedicated daemons and free the blob cache', async () => {
      const cache = env.snapshotter.cacheDir;
      expect((await readdir(cache)).length).toBeGreaterThan(0);
      for (const ref of [refs.native, refs.zran]) await env.containerd.ctr(['images', 'rm', '--sync', ref]);
      let left = await env.direct.list();
      for (let i = 0; i < 100 && left.length > 0; i++) {
        await sleep(200);
        left = await env.direct.list();
      }
      if (left.length > 0) {
        // Say what containerd still holds before failing.
        const held = await Promise.all([['containers', 'ls'], ['images', 'ls'], ['snapshots', '--snapshotter', SNAPSHOTTER, 'ls'], ['leases', 'ls']].map((a) => env.containerd.ctr(a)));
        expect(left.map((s) => `${s.kind} ${s.name}`), held.map((r) => r.stdout + r.stderr).join('\n')).toEqual([]);
      }
      await env.direct.cleanup();
      expect(await readdir(cache)).toEqual([]);
      const mounts = (await run('cat', ['/proc/self/mountinfo'])).split('\n').filter((l) => l.includes(env.snapshotter.root));
      expect(mounts.map((l) => l.split(' ')[4])).toEqual(mode === 'shared' ? [path.join(env.snapshotter.root, 'mnt')] : []);
      // the shared daemon keeps running (ready for the next image), serving nothing
      if (mode === 'shared') expect(await readdir(path.join(env.snapshotter.root, 'mnt'))).toEqual([]);
      else expect(await daemonPids(env.snapshotter.root)).toEqual([]);
    });

    it('an image removed right after its pull (its mount ahead of use still on the way) leaves nothing mounted', async () => {
      await lazyPull({ address: env.containerd.address, snapshotter: SNAPSHOTTER, ref: refs.native, plainHttp: true });
      await env.containerd.ctrOk(['images', 'rm', '--sync', refs.native]);
      for (let i = 0; i < 100 && (await env.direct.list()).length > 0; i++) await sleep(200);
      expect(await env.direct.list()).toEqual([]);
      if (mode === 'shared') expect(await readdir(path.join(env.snapshotter.root, 'mnt'))).toEqual([]);
      else expect(await daemonPids(env.snapshotter.root)).toEqual([]);
    });
  });
}

describe('Nydus images through containerd (dedicated daemons in erofs mode)', () => {
  let env: TestEnv;
  let refs: Awaited<ReturnType<typeof prepareImages>>;

  beforeAll(async () => {
    env = await startTestEnv({ daemon: { mode: 'dedicated', command: [process.execPath, appBin('nydusd-ts')], extraArgs: ['--mode', 'erofs'] } });
    refs = await prepareImages(env);
  });

  afterAll(async () => {
    await env?.stop();
  });

  it('the container’s lower dir is a kernel EROFS mount; it reads the right bytes; GC unmounts it', async () => {
    await lazyPull({ address: env.containerd.address, snapshotter: SNAPSHOTTER, ref: refs.native, plainHttp: true });
    await env.containerd.ctrOk(['run', '-d', '--snapshotter', SNAPSHOTTER, refs.native, 'erofs-1', '/bin/sh', '-c', 'while true; do sleep 1; done']);
    const active = (await env.direct.list()).find((s) => s.kind === 'ACTIVE' && s.name.endsWith('/erofs-1'))!;
    const lower = (await env.direct.mounts(active.name))[0]!.options.find((o) => o.startsWith('lowerdir='))!.slice(9);
    expect((await run('findmnt', ['-n', '-o', 'FSTYPE', lower])).trim()).toBe('erofs');
    expect((await env.containerd.ctrOk(['tasks', 'exec', '--exec-id', 'x', 'erofs-1', 'sha256sum', '/data/small.bin'])).split(' ')[0]).toBe(sha(small));
    await env.containerd.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'erofs-1']);
    for (let i = 0; i < 50 && (await env.containerd.ctr(['tasks', 'delete', 'erofs-1'])).code !== 0; i++) await sleep(100);
    await env.containerd.ctrOk(['containers', 'delete', 'erofs-1']);
    await env.containerd.ctrOk(['images', 'rm', '--sync', refs.native]);
    for (let i = 0; i < 100 && (await env.direct.list()).length > 0; i++) await sleep(200);
    expect(await env.direct.list()).toEqual([]);
    expect(await run('cat', ['/proc/self/mountinfo'])).not.toContain(env.snapshotter.root);
  });
});
