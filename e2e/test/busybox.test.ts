// End to end with a small image: registry, containerd 1.6, the nydus-ts snapshotter process.
// The same busybox image as OCI, native Nydus and zran through one snapshotter: pulled with
// `nydusd-ts pull` and with `ctr-remote image rpull`, run with `ctr run`: output and exit code,
// a file's sha256 equal to the source, writes in the container's upper dir, two containers at
// once. OCI also through `ctr images pull`, and into containerd's overlayfs for comparison.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SnapshotsClient } from '@nydus-ts/snapshotter';
import { run } from '@nydus-ts/snapshotter/testing';
import { SNAPSHOTTER, blobBytesSince, startE2eEnv } from '../support/env.js';
import type { E2eEnv } from '../support/env.js';
import { busyboxData, busyboxImages } from '../support/images.js';
import type { E2eImage } from '../support/images.js';
import { pull } from '../support/cli.js';

const dataSha = createHash('sha256').update(busyboxData).digest('hex');
let env: E2eEnv;
let images: E2eImage;

beforeAll(async () => {
  env = await startE2eEnv();
  images = await busyboxImages(env.proxy.host, env.work);
}, 600_000);

afterAll(async () => {
  await env?.stop();
}, 300_000);

async function removeContainer(id: string, ns = 'default'): Promise<void> {
  await env.containerd.ctr(['-n', ns, 'tasks', 'kill', '-s', 'SIGKILL', id]);
  for (let i = 0; i < 50 && (await env.containerd.ctr(['-n', ns, 'tasks', 'delete', id])).code !== 0; i++) await sleep(100);
  await env.containerd.ctr(['-n', ns, 'containers', 'delete', id]);
}

describe('busybox through containerd and the nydus-ts snapshotter', () => {
  for (const kind of ['oci', 'native', 'zran'] as const) {
    it(`${kind}: nydusd-ts pull, then ctr run: output, exit code, sha256 of a file`, async () => {
      const ref = images[kind];
      const report = await pull(env.containerd.address, SNAPSHOTTER, ref);
      expect(report).toMatch(kind === 'oci' ? /OCI image, 2 layers \(0 remote, 2 unpacked/ : /Nydus image, 3 layers \(2 remote, 1 unpacked/);
      const r = await env.ctrRun(['--rm', ref, `${kind}-run`, '/bin/sh', '-c', 'echo "hello $(cat /etc/hostname)"; sha256sum /data/random.bin; cat /data/hello.txt; exit 42']);
      expect(r.stdout).toContain('hello nydus-ts');
      expect(r.stdout).toContain(dataSha);
      expect(r.stdout).toContain('hello from a nydus-ts e2e image');
      expect(r.code).toBe(42);
    });
  }

  it('a Nydus pull downloads no data blob: only manifest, config and the bootstrap layer', async () => {
    const manifest = JSON.parse((await env.client.getManifest('e2e/busybox', 'native')).bytes.toString()) as { layers: { digest: string; size: number }[] };
    const data = manifest.layers.slice(0, -1).map((l) => l.digest);
    const since = env.proxy.requests.length;
    await pull(env.containerd.address, SNAPSHOTTER, images.native, ['--namespace', 'lazy']);
    expect(blobBytesSince(env.proxy, since, data)).toBe(0);
    const content = await env.containerd.ctrOk(['-n', 'lazy', 'content', 'ls', '-q']);
    for (const d of data) expect(content).not.toContain(d);
  });

  for (const kind of ['native', 'zran'] as const) {
    it(`${kind}: ctr-remote image rpull, then ctr run`, async () => {
      const ref = images[kind];
      const ns = `rpull-${kind}`;
      await run('ctr-remote', ['--address', env.containerd.address, '--namespace', ns, 'image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, ref], { timeoutMs: 300_000 });
      const out = await env.containerd.ctrOk(['-n', ns, 'run', '--rm', '--snapshotter', SNAPSHOTTER, ref, `rp-${kind}`, '/bin/sha256sum', '/data/random.bin']);
      expect(out.split(' ')[0]).toBe(dataSha);
    });
  }

  it('oci: ctr images pull (no labels: containerd unpacks every layer into our snapshots), then ctr run', async () => {
    await env.containerd.ctrOk(['-n', 'plain', 'images', 'pull', '--plain-http', '--snapshotter', SNAPSHOTTER, images.oci], { timeoutMs: 300_000 });
    const out = await env.containerd.ctrOk(['-n', 'plain', 'run', '--rm', '--snapshotter', SNAPSHOTTER, images.oci, 'plain-1', '/bin/sha256sum', '/data/random.bin']);
    expect(out.split(' ')[0]).toBe(dataSha);
  });

  it('oci: nydusd-ts pull --snapshotter overlayfs is a full pull containerd’s own snapshotter runs', async () => {
    const report = await pull(env.containerd.address, 'overlayfs', images.oci, ['--namespace', 'ovl']);
    expect(report).toMatch(/2 unpacked/);
    const out = await env.containerd.ctrOk(['-n', 'ovl', 'run', '--rm', '--snapshotter', 'overlayfs', images.oci, 'ovl-1', '/bin/sha256sum', '/data/random.bin']);
    expect(out.split(' ')[0]).toBe(dataSha);
    expect(await env.containerd.ctrOk(['-n', 'ovl', 'images', 'check'])).toMatch(/complete/);
  });

  for (const kind of ['native', 'zran'] as const) {
    it(`${kind}: two containers at once; each one's writes land in its own upper dir`, async () => {
      const ref = images[kind];
      const ids = [`${kind}-two-a`, `${kind}-two-b`];
      for (const id of ids) {
        await env.containerd.ctrOk(['run', '-d', '--snapshotter', SNAPSHOTTER, ref, id, '/bin/sh', '-c', `echo ${id} > /data/mine; rm /etc/motd; while true; do sleep 1; done`]);
      }
      try {
        for (let i = 0; i < 50; i++) {
          const r = await env.containerd.ctr(['tasks', 'exec', '--exec-id', `w${i}`, ids[1]!, 'cat', '/data/mine']);
          if (r.code === 0) break;
          await sleep(100);
        }
        const direct = new SnapshotsClient({ address: env.snapshotter.address });
        try {
          for (const id of ids) {
            expect((await env.containerd.ctrOk(['tasks', 'exec', '--exec-id', 'c', id, 'cat', '/data/mine'])).trim()).toBe(id);
            expect((await env.containerd.ctrOk(['tasks', 'exec', '--exec-id', 's', id, 'sha256sum', '/data/random.bin'])).split(' ')[0]).toBe(dataSha);
            const snap = (await direct.list()).find((s) => s.kind === 'ACTIVE' && s.name.endsWith(`/${id}`))!;
            const options = (await direct.mounts(snap.name))[0]!.options;
            const upper = options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
            expect((await readFile(path.join(upper, 'data/mine'), 'utf8')).trim()).toBe(id);
            // the deletion of a lower file is a whiteout in the upper dir
            expect((await run('stat', ['-c', '%F', path.join(upper, 'etc/motd')])).trim()).toBe('character special file');
          }
        } finally {
          await direct.close();
        }
      } finally {
        for (const id of ids) await removeContainer(id);
      }
    });
  }
});
