// Issue 12, done-when 2 through the daemon: the node image of the convert benchmark (Debian
// minbase + this Node.js, two gzip layers, cached under the benchmarks' cache dir), converted
// with `nydusify-ts convert --oci-ref` in a loopback docker-registry and mounted by nydusd-ts:
// at mount only the heads of the meta blobs are fetched (seek tables, CCT headers, CI entries and
// contexts: under a quarter of the meta blobs); reading one small file fetches ≤ 2 MB of the
// original layers, as the daemon's backend metrics count it; and the served tree equals the
// source rootfs (`tar -x` of its layers in order) attribute by attribute. Needs root and FUSE.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageManifest } from '@nydus-ts/core';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { diffTrees, snapshotTree, type TreeSnapshot } from '@nydus-ts/testing';
import { ensureNodeLayerAsync, pushNodeImage } from '../../../scripts/bench/_node-image.mjs';
import { ensureMinbase } from '../../converter/test/support/images.js';
import { fetchBootstrap, nydusify, registryConfig } from './support/images.js';
import { DaemonScope } from './support/nydusd-process.js';

/** `tar -x` of one layer tar onto `root`, as root: owners, modes, xattrs and times restored. */
function extractLayer(tarFile: string, root: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', tarFile, '-C', root], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar -x ${tarFile} failed (exit ${code}): ${stderr}`))));
  });
}

describe('nydusd-ts serves the node image converted with --oci-ref', () => {
  const daemons = new DaemonScope();
  let work: string;
  let registry: TestRegistry;
  let rootfs: string;
  let source: TreeSnapshot;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-zran-node-'));
    registry = await startRegistry();
    const minbase = await ensureMinbase();
    const node = await ensureNodeLayerAsync();
    const client = new RegistryClient({ registry: registry.host, insecure: true });
    try {
      await pushNodeImage(client, 'src/node', [{ tar: minbase.tar, tgz: minbase.tgz }, node]);
    } finally {
      await client.close();
    }
    rootfs = path.join(work, 'rootfs');
    await mkdir(rootfs);
    await Promise.all([
      nydusify(['convert', '--oci-ref', '--source', `${registry.host}/src/node:v1`, '--target', `${registry.host}/zran/node:v1`, '--source-insecure', '--target-insecure']),
      (async () => {
        await extractLayer(minbase.tar, rootfs);
        await extractLayer(node.tar, rootfs);
        source = await snapshotTree(rootfs);
      })(),
    ]);
  }, 900_000);

  afterAll(async () => {
    await daemons.cleanup();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  }, 120_000);

  it('mount fetches the heads of the meta blobs only; one small file ≤ 2 MB of the originals; the tree equals the source rootfs', async () => {
    const dir = path.join(work, 'fuse');
    await mkdir(dir);
    const boot = path.join(dir, 'image.boot');
    const { manifest } = await fetchBootstrap(registry.host, 'zran/node', 'v1', boot);
    const refLayers = (manifest as ImageManifest).layers.slice(0, -1);
    expect(refLayers.map((l) => l.annotations?.['containerd.io/snapshot/nydus-ref'] !== undefined)).toEqual([true, true]);
    const config = path.join(dir, 'config.json');
    await writeFile(config, registryConfig(registry.host, 'zran/node', path.join(dir, 'cache')));
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt);
    const d = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args: ['--config', config, '--bootstrap', boot] });
    const fetched = async (): Promise<number> => ((await d.api('GET', '/api/v1/metrics/backend')).json as { read_amount_total: number }).read_amount_total;

    // At mount: of the two meta blobs (nydus-ref layers) only the seek tables, CCT headers and
    // the frames of CI entries and contexts (no dictionary), and nothing of the originals.
    const atMount = await fetched();
    const metaBytes = async (): Promise<number> => ((await d.api('GET', '/api/v1/metrics/blobcache')).json as { meta_fetch_bytes: number }).meta_fetch_bytes;
    expect(atMount).toBe(await metaBytes());
    expect(atMount).toBeGreaterThan(0);
    expect(atMount).toBeLessThan(refLayers.reduce((a, l) => a + l.size, 0) / 4);
    const file = 'etc/debian_version';
    expect((await readFile(path.join(mnt, file))).equals(await readFile(path.join(rootfs, file)))).toBe(true);
    const oneFile = (await fetched()) - atMount;
    expect(oneFile).toBeGreaterThan(0);
    expect(oneFile).toBeLessThanOrEqual(2_000_000);

    const served = await snapshotTree(mnt);
    expect(source.nodes.size).toBeGreaterThan(7000);
    expect(served.nodes.get('usr/local/bin/node')?.sha256).toBe(source.nodes.get('usr/local/bin/node')!.sha256);
    expect(diffTrees(source, served, { ignorePath: (p) => p === '' })).toEqual([]);
    expect(await d.stop()).toBe(0);
  }, 900_000);
});
