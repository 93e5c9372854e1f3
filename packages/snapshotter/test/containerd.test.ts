// Our snapshotter behind a real, private containerd 1.6 as a [proxy_plugins] snapshotter:
// `ctr snapshots ...` through containerd, then a plain OCI image pulled with `ctr images pull`
// (no remote labels: every layer unpacked by containerd into our overlay snapshots) and run
// with `ctr run`, its output and exit code coming back; finally GC removes our snapshots.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { NydusSnapshotter, SnapshotsClient, serveSnapshotter } from '@nydus-ts/snapshotter';
import type { SnapshotsServer } from '@nydus-ts/snapshotter';
import { buildLayer, makeBusyboxRootfs, pseudoRandomBytes, pushImage, startContainerd, waitForSnapshotter, run } from '@nydus-ts/snapshotter/testing';
import type { LayerFile, PushedImage, TestContainerd } from '@nydus-ts/snapshotter/testing';
import { chainIds } from '@nydus-ts/snapshotter/pull';

const NAME = 'nydus-ts';
let work: string;
let registry: TestRegistry;
let containerd: TestContainerd;
let snapshotter: NydusSnapshotter;
let server: SnapshotsServer;
let direct: SnapshotsClient;
let image: PushedImage;
let layers: LayerFile[];
const data = pseudoRandomBytes('containerd-test', 3 << 20);

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'sn-containerd-'));
  registry = await startRegistry();
  snapshotter = await NydusSnapshotter.open({ root: path.join(work, 'snapshotter') });
  server = await serveSnapshotter({ address: path.join(work, 'snapshotter.sock'), snapshotter });
  direct = new SnapshotsClient({ address: server.address });
  containerd = await startContainerd({ dir: path.join(work, 'containerd'), proxyPlugins: { [NAME]: server.address } });
  await waitForSnapshotter(containerd, NAME);
  // Two layers: busybox, then a data file and a deletion of a lower file.
  const base = path.join(work, 'base');
  await makeBusyboxRootfs(base, { 'etc/motd': 'from the lower layer\n' });
  const upper = path.join(work, 'upper');
  await makeBusyboxRootfs(upper, {});
  await rm(path.join(upper, 'bin'), { recursive: true });
  await rm(path.join(upper, 'etc'), { recursive: true });
  const { writeFile, mkdir } = await import('node:fs/promises');
  await mkdir(path.join(upper, 'data'), { recursive: true });
  await writeFile(path.join(upper, 'data/blob.bin'), data);
  await mkdir(path.join(upper, 'etc'));
  await writeFile(path.join(upper, 'etc/.wh.motd'), '');
  layers = [await buildLayer(base, path.join(work, 'base.tgz')), await buildLayer(upper, path.join(work, 'upper.tgz'))];
  image = await pushImage({ registry: registry.host, repository: 'test/busybox', tag: 'v1', layers, config: { cmd: ['/bin/sh'] } });
});

afterAll(async () => {
  await containerd?.stop();
  await server?.close();
  await direct?.close();
  await snapshotter?.close();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('containerd 1.6 with nydus-ts as a proxy snapshotter', () => {
  it('ctr snapshots: prepare, commit, ls, info, label, usage, tree, mounts, rm', async () => {
    const snap = (...args: string[]): Promise<string> => containerd.ctrOk(['snapshots', '--snapshotter', NAME, ...args]);
    await snap('prepare', 'ctr-a', '');
    await snap('commit', 'ctr-c', 'ctr-a');
    await snap('prepare', 'ctr-b', 'ctr-c');
    await snap('view', 'ctr-v', 'ctr-c');
    const ls = await snap('ls');
    expect(ls).toMatch(/ctr-c\s+Committed/);
    expect(ls).toMatch(/ctr-b\s+ctr-c\s+Active/);
    expect(ls).toMatch(/ctr-v\s+ctr-c\s+View/);
    await snap('label', 'ctr-b', 'containerd.io/snapshot/test=yes');
    const info = JSON.parse(await snap('info', 'ctr-b')) as { Kind: string; Parent: string; Labels: Record<string, string> };
    expect(info).toMatchObject({ Kind: 'Active', Parent: 'ctr-c' });
    expect(info.Labels['containerd.io/snapshot/test']).toBe('yes');
    // The label reached us (containerd passes containerd.io/snapshot/ labels on), under containerd's namespaced key.
    const ours = (await direct.list()).find((s) => s.labels['containerd.io/snapshot/test'] === 'yes');
    expect(ours?.name).toMatch(/^default\/\d+\/ctr-b$/);
    expect(await snap('usage', 'ctr-b')).toMatch(/ctr-b/);
    expect(await snap('tree')).toMatch(/ctr-c[\s\S]*ctr-b/);
    const mounts = await snap('mounts', '/mnt', 'ctr-b');
    expect(mounts).toContain('mount -t overlay overlay');
    expect(mounts).toContain(path.join(work, 'snapshotter', 'snapshots'));
    // errors come back with containerd's meaning
    const again = await containerd.ctr(['snapshots', '--snapshotter', NAME, 'prepare', 'ctr-a2', 'ctr-b']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/invalid argument|not committed|failed precondition/i);
    for (const k of ['ctr-v', 'ctr-b', 'ctr-a', 'ctr-c']) await containerd.ctr(['snapshots', '--snapshotter', NAME, 'rm', k]);
    expect(await snap('ls')).not.toMatch(/ctr-/);
  });

  it('pulls a plain OCI image with ctr images pull and runs it with ctr run (output, exit code, files)', async () => {
    await containerd.ctrOk(['images', 'pull', '--plain-http', '--snapshotter', NAME, image.ref], { timeoutMs: 120_000 });
    const r = await containerd.ctr(['run', '--rm', '--snapshotter', NAME, image.ref, 'oci-run-1', '/bin/sh', '-c', 'echo hello from nydus-ts; sha256sum /data/blob.bin; ls /etc; exit 7']);
    expect(r.stdout).toContain('hello from nydus-ts');
    const { createHash } = await import('node:crypto');
    expect(r.stdout).toContain(createHash('sha256').update(data).digest('hex'));
    expect(r.stdout).not.toContain('motd'); // the whiteout in the upper layer hides it
    expect(r.code).toBe(7);
    // The image's layers are committed snapshots of ours, named by containerd with their chain
    // ids, each on top of the one below. (Only this image's: containerd's GC removes the
    // previous test's snapshots from us asynchronously, so others may still be listed.)
    const [base, top] = chainIds(layers.map((l) => l.diffId));
    const all = await direct.list();
    const ofChain = (chain: string): typeof all => all.filter((s) => s.name.endsWith(`/${chain}`));
    expect(ofChain(base!).map((s) => [s.kind, s.parent])).toEqual([['COMMITTED', '']]);
    expect(ofChain(top!).map((s) => [s.kind, s.parent])).toEqual([['COMMITTED', ofChain(base!)[0]!.name]]);
  });

  it('writes land in the container snapshot, not in the image layers', async () => {
    await containerd.ctrOk(['run', '--snapshotter', NAME, image.ref, 'oci-run-2', '/bin/sh', '-c', 'echo written > /data/new.txt; rm /data/blob.bin']);
    const active = (await direct.list()).find((s) => s.kind === 'ACTIVE' && s.name.endsWith('/oci-run-2'));
    expect(active).toBeDefined();
    const mounts = await direct.mounts(active!.name);
    const upper = mounts[0]!.options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
    expect((await run('cat', [path.join(upper, 'data/new.txt')])).trim()).toBe('written');
    // the deletion is a whiteout in the upper dir
    expect((await run('stat', ['-c', '%F', path.join(upper, 'data/blob.bin')])).trim()).toBe('character special file');
    // a second container from the same image still sees the original file
    const r = await containerd.ctrOk(['run', '--rm', '--snapshotter', NAME, image.ref, 'oci-run-3', '/bin/sh', '-c', 'ls /data']);
    expect(r.trim()).toBe('blob.bin');
    await containerd.ctrOk(['tasks', 'delete', 'oci-run-2']).catch(() => undefined);
    await containerd.ctrOk(['containers', 'delete', 'oci-run-2']);
  });

  it('removing the image lets containerd GC remove our snapshots (Remove, then Cleanup)', async () => {
    await containerd.ctrOk(['images', 'rm', '--sync', image.ref]);
    let left = await direct.list();
    for (let i = 0; i < 300 && left.length > 0; i++) {
      await sleep(200);
      left = await direct.list();
    }
    expect(left).toEqual([]);
  });
});
