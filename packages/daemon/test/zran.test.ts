// Issue 12 (targz-ref / zran), runtime: the reference fixtures' gzip layers, each wrapped as a
// one-layer OCI image in a loopback docker-registry and converted with `nydusify-ts convert
// --oci-ref`, are served by nydusd-ts over FUSE and in erofs mode byte-identical to `tar -x` of
// the original (data read from the original gzip layer through its inflate contexts). Damaged
// bytes of an original give EIO for the affected chunks only; a mutated meta blob is refused at
// mount (its CI data is fetched frame by frame, each zstd frame checksummed); a copy of the
// image to a second registry mounts from there. Needs root, FUSE, loop
// devices and the erofs module (CI has them).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest, ImageManifest } from '@nydus-ts/core';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { diffTrees, snapshotTree, type TreeSnapshot } from '@nydus-ts/testing';
import { blobData, fetchBootstrap, nydusify, pushOneLayerImage, registryConfig } from './support/images.js';
import { DaemonScope, runNydusdToExit } from './support/nydusd-process.js';
import { ensureMinbase, minbaseImage } from '../../converter/test/support/images.js';

const run = promisify(execFile);
const fixtures = fileURLToPath(new URL('../../../testdata/nydus-upstream/', import.meta.url));
const FIXTURES = ['zran-single-stream.tar.gz', 'zran-two-streams.tar.gz', 'zran-zero-file.tar.gz', 'bgzip.tar.gz'];

describe('nydusd-ts serves targz-ref (zran) images', () => {
  const daemons = new DaemonScope();
  let work: string;
  let registry: TestRegistry;
  let registry2: TestRegistry;
  let client: RegistryClient;
  const extracted = new Map<string, TreeSnapshot>();
  const originals = new Map<string, Digest>();

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-zran-'));
    [registry, registry2] = await Promise.all([startRegistry(), startRegistry()]);
    client = new RegistryClient({ registry: registry.host, insecure: true });
    for (const name of FIXTURES) {
      const tgz = await readFile(path.join(fixtures, name));
      const base = name.replace(/\.tar\.gz$/, '');
      originals.set(name, await pushOneLayerImage(client, `src/${base}`, tgz));
      const dir = path.join(work, `x-${base}`);
      await mkdir(dir);
      await run('tar', ['--numeric-owner', '-xzf', path.join(fixtures, name), '-C', dir]);
      extracted.set(name, await snapshotTree(dir));
      await nydusify(['convert', '--oci-ref', '--chunk-size', '0x10000', '--source', `${registry.host}/src/${base}:v1`, '--target', `${registry.host}/zran/${base}:v1`, '--source-insecure', '--target-insecure']);
    }
  }, 600_000);

  afterAll(async () => {
    await daemons.cleanup();
    await client?.close();
    await Promise.allSettled([registry?.stop(), registry2?.stop()]);
    await rm(work, { recursive: true, force: true });
  }, 120_000);

  /** Mounts `host/repo:v1` in `mode` with a fresh cache and returns the served tree. */
  async function serve(host: string, repo: string, mode: 'fuse' | 'erofs', tag: string): Promise<{ tree: TreeSnapshot; mnt: string; stop: () => Promise<number | null> }> {
    const dir = path.join(work, tag);
    await mkdir(dir, { recursive: true });
    const boot = path.join(dir, 'image.boot');
    await fetchBootstrap(host, repo, 'v1', boot);
    const config = path.join(dir, 'config.json');
    await writeFile(config, registryConfig(host, repo, path.join(dir, 'cache')));
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt);
    const d = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args: ['--config', config, '--bootstrap', boot, '--mode', mode] });
    return { tree: await snapshotTree(mnt), mnt, stop: () => d.stop() };
  }

  for (const name of FIXTURES) {
    it(`${name}: FUSE and erofs mode equal tar -x of the original`, async () => {
      const base = name.replace(/\.tar\.gz$/, '');
      for (const mode of ['fuse', 'erofs'] as const) {
        const s = await serve(registry.host, `zran/${base}`, mode, `${base}-${mode}`);
        // (tar -x gives the extraction directory its own mtime, and the root its mode.)
        expect(diffTrees(extracted.get(name)!, s.tree, { ignoreRootMtime: true, ignoreDirNlink: true, ignorePath: (p) => p === '' }), `${mode}`).toEqual([]);
        expect(await s.stop()).toBe(0);
      }
    }, 600_000);
  }

  it('Debian minbase as an oci-ref image: the served tree equals the source rootfs attribute by attribute, in FUSE and erofs mode', async () => {
    const c = new RegistryClient({ registry: registry.host, insecure: true });
    try {
      await minbaseImage(c, { repository: 'src/minbase', tag: 'v1' });
    } finally {
      await c.close();
    }
    await nydusify(['convert', '--oci-ref', '--source', `${registry.host}/src/minbase:v1`, '--target', `${registry.host}/zran/minbase:v1`, '--source-insecure', '--target-insecure']);
    const source = await snapshotTree((await ensureMinbase()).dir);
    expect(source.nodes.size).toBeGreaterThan(5000);
    for (const mode of ['fuse', 'erofs'] as const) {
      const s = await serve(registry.host, 'zran/minbase', mode, `minbase-${mode}`);
      expect(diffTrees(source, s.tree, { ignorePath: (p) => p === '' }), mode).toEqual([]);
      expect(await s.stop()).toBe(0);
    }
  }, 900_000);

  it('a copy to a second registry mounts from there', async () => {
    await nydusify(['copy', '--source', `${registry.host}/zran/bgzip:v1`, '--target', `${registry2.host}/copied/bgzip:v1`, '--source-insecure', '--target-insecure']);
    const s = await serve(registry2.host, 'copied/bgzip', 'fuse', 'copied-bgzip');
    expect(diffTrees(extracted.get('bgzip.tar.gz')!, s.tree, { ignoreRootMtime: true, ignoreDirNlink: true, ignorePath: (p) => p === '' })).toEqual([]);
    expect(await s.stop()).toBe(0);
  }, 600_000);

  it('damaged bytes of the original give EIO for the affected files only; a mutated meta blob is refused at mount', async () => {
    // A conversion of its own in registry 2, so that damage there leaves the other tests' data alone.
    await nydusify(['convert', '--oci-ref', '--chunk-size', '0x1000', '--source', `${registry.host}/src/bgzip:v1`, '--target', `${registry2.host}/damaged/bgzip:v1`, '--source-insecure', '--target-insecure']);
    const original = originals.get('bgzip.tar.gz')!;
    const data = blobData(registry2, original);
    const bytes = await readFile(data);
    const damaged = Buffer.from(bytes);
    for (let i = 0; i < 32; i++) damaged[(damaged.length >> 1) + i] ^= 0x5a;
    await writeFile(data, damaged);
    try {
      const dir = path.join(work, 'damaged');
      await mkdir(dir);
      const boot = path.join(dir, 'image.boot');
      const { manifest } = await fetchBootstrap(registry2.host, 'damaged/bgzip', 'v1', boot);
      const config = path.join(dir, 'config.json');
      await writeFile(config, registryConfig(registry2.host, 'damaged/bgzip', path.join(dir, 'cache')));
      const mnt = path.join(dir, 'mnt');
      await mkdir(mnt);
      const d = await daemons.start({ mountpoint: mnt, apisock: path.join(dir, 'api.sock'), args: ['--config', config, '--bootstrap', boot] });
      let eio = 0;
      let ok = 0;
      const want = extracted.get('bgzip.tar.gz')!;
      const walk = async (rel: string): Promise<void> => {
        for (const e of await readdir(path.join(mnt, rel), { withFileTypes: true })) {
          const p = rel ? `${rel}/${e.name}` : e.name;
          if (e.isDirectory()) await walk(p);
          else if (e.isFile()) {
            try {
              const got = await readFile(path.join(mnt, p));
              expect(createHash('sha256').update(got).digest('hex'), p).toBe(want.nodes.get(p)!.sha256);
              ok++;
            } catch (err) {
              expect((err as NodeJS.ErrnoException).code, p).toBe('EIO');
              eio++;
            }
          }
        }
      };
      await walk('');
      expect(eio).toBeGreaterThan(0);
      expect(ok).toBeGreaterThan(eio);
      expect(await d.stop()).toBe(0);

      // The meta blob (nydus-ref layer) mutated in storage: refused before anything is mounted
      // (byte 10 lies in the zstd frame of the CI entries, which the daemon fetches at mount).
      const metaData = blobData(registry2, (manifest as ImageManifest).layers[0]!.digest);
      const meta = await readFile(metaData);
      const mutated = Buffer.from(meta);
      mutated[10] ^= 0xff;
      await writeFile(metaData, mutated);
      try {
        const mnt2 = path.join(dir, 'mnt2');
        await mkdir(mnt2);
        // A fresh cache: the first daemon's cache holds the meta's frames, which are not fetched again.
        const config2 = path.join(dir, 'config2.json');
        await writeFile(config2, registryConfig(registry2.host, 'damaged/bgzip', path.join(dir, 'cache2')));
        const r = await runNydusdToExit(['--config', config2, '--bootstrap', boot, '--mountpoint', mnt2, '--apisock', path.join(dir, 'api2.sock')]);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/blob [0-9a-f]{64} CI frame 0: corrupt zstd data/);
      } finally {
        await writeFile(metaData, meta);
      }
    } finally {
      await writeFile(data, bytes);
    }
  }, 600_000);
});
