// The lazy-pull client (`lazyPull`, what `nydusd-ts pull` runs) against a real containerd: with
// containerd's own overlayfs snapshotter it fully pulls a plain OCI image; with ours it prepares
// every layer with the remote-snapshot labels (OCI layers come back with mounts and are unpacked);
// `ctr run` runs the result; a second pull fetches no layer; and `ctr-remote image rpull` (the
// stargz labels) pulls into our snapshotter too.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SnapshotLabel } from '@nydus-ts/snapshotter';
import { lazyPull } from '@nydus-ts/snapshotter/pull';
import { buildLayer, makeBusyboxRootfs, pseudoRandomBytes, pushImage, run } from '@nydus-ts/snapshotter/testing';
import type { PushedImage } from '@nydus-ts/snapshotter/testing';
import { SNAPSHOTTER, startTestEnv } from './support/env.js';
import type { TestEnv } from './support/env.js';

let env: TestEnv;
let image: PushedImage;
const data = pseudoRandomBytes('pull-test', 2 << 20);

beforeAll(async () => {
  env = await startTestEnv();
  const base = path.join(env.work, 'base');
  await makeBusyboxRootfs(base);
  const upper = path.join(env.work, 'upper');
  await mkdir(path.join(upper, 'srv'), { recursive: true });
  await writeFile(path.join(upper, 'srv/data.bin'), data);
  const layers = [await buildLayer(base, path.join(env.work, 'l0.tgz')), await buildLayer(upper, path.join(env.work, 'l1.tgz'))];
  image = await pushImage({ registry: env.registry.host, repository: 'pull/busybox', tag: 'v1', layers, config: { cmd: ['/bin/sh'] } });
});

afterAll(async () => {
  await env?.stop();
});

const sha = createHash('sha256').update(data).digest('hex');

describe('lazy pull into containerd', () => {
  it('fully pulls a plain OCI image into containerd’s overlayfs snapshotter', async () => {
    const result = await lazyPull({ address: env.containerd.address, snapshotter: 'overlayfs', ref: image.ref, plainHttp: true, namespace: 'ovl' });
    expect(result.layers.map((l) => l.how)).toEqual(['unpacked', 'unpacked']);
    expect(result.nydus).toBe(false);
    const layerBytes = image.layers.reduce((a, l) => a + l.size, 0);
    expect(result.bytesFetched).toBeGreaterThan(layerBytes);
    expect(await env.containerd.ctrOk(['-n', 'ovl', 'images', 'ls', '-q'])).toContain(image.ref);
    // `ctr images check` finds every blob present
    expect(await env.containerd.ctrOk(['-n', 'ovl', 'images', 'check'])).toMatch(/complete \(\d+\/\d+\)/);
    const out = await env.containerd.ctrOk(['-n', 'ovl', 'run', '--rm', '--snapshotter', 'overlayfs', image.ref, 'ovl-1', '/bin/sh', '-c', 'sha256sum /srv/data.bin']);
    expect(out).toContain(sha);
    // pulling again downloads no layer
    const again = await lazyPull({ address: env.containerd.address, snapshotter: 'overlayfs', ref: image.ref, plainHttp: true, namespace: 'ovl' });
    expect(again.layers.map((l) => l.how)).toEqual(['present', 'present']);
    expect(again.layers.every((l) => l.bytes === 0)).toBe(true);
  });

  it('pulls a plain OCI image into our snapshotter with the remote-snapshot labels, and ctr run runs it', async () => {
    const result = await lazyPull({ address: env.containerd.address, snapshotter: SNAPSHOTTER, ref: image.ref, plainHttp: true });
    expect(result.layers.map((l) => l.how)).toEqual(['unpacked', 'unpacked']);
    const committed = (await env.direct.list()).filter((s) => s.kind === 'COMMITTED');
    expect(committed).toHaveLength(2);
    const top = committed.find((s) => s.labels[SnapshotLabel.TargetRef] === result.chainId)!;
    // The labels a remote snapshotter needs reached ours, and the committed snapshot keeps them.
    expect(top.labels[SnapshotLabel.CriImageRef]).toBe(image.ref);
    expect(top.labels[SnapshotLabel.CriLayerDigest]).toBe(image.layers[1]!.digest);
    expect(top.labels[SnapshotLabel.CriManifestDigest]).toBe(image.manifest.digest);
    expect(top.labels[SnapshotLabel.CriImageLayers]).toBe(image.layers[1]!.digest);
    const r = await env.containerd.ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, image.ref, 'pull-1', '/bin/sh', '-c', 'sha256sum /srv/data.bin; exit 5']);
    expect(r.stdout).toContain(sha);
    expect(r.code).toBe(5);
    // the config carries the GC reference to the top snapshot of our snapshotter
    const info = await env.containerd.ctrOk(['content', 'ls']);
    expect(info).toContain(`containerd.io/gc.ref.snapshot.${SNAPSHOTTER}=${result.chainId}`);
  });

  it('ctr-remote image rpull pulls into our snapshotter (stargz labels) and the image runs', async () => {
    await env.containerd.ctrOk(['images', 'rm', '--sync', image.ref]);
    const r = await run('ctr-remote', ['--address', env.containerd.address, '--namespace', 'rp', 'image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, image.ref]);
    expect(r).toContain(image.manifest.digest.slice(0, 15));
    const withStargzRef = (await env.direct.list()).filter((s) => s.labels[SnapshotLabel.StargzReference] === image.ref);
    expect(withStargzRef.length).toBeGreaterThan(0);
    const out = await env.containerd.ctrOk(['-n', 'rp', 'run', '--rm', '--snapshotter', SNAPSHOTTER, image.ref, 'rp-1', '/bin/sh', '-c', 'sha256sum /srv/data.bin']);
    expect(out).toContain(sha);
  });

  it('names what is wrong: unknown image, unknown snapshotter', async () => {
    await expect(lazyPull({ address: env.containerd.address, snapshotter: SNAPSHOTTER, ref: `${env.registry.host}/pull/none:v1`, plainHttp: true })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(lazyPull({ address: env.containerd.address, snapshotter: 'no-such-snapshotter', ref: image.ref, plainHttp: true })).rejects.toThrow(/no-such-snapshotter|not found/);
  });
});
