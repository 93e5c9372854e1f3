// How convert merges layers, against what containerd and umoci unpack make of the same image
// (issue 9): directories an upper layer implies without listing them keep the lower layer's
// attributes, and whiteouts never appear as files, whichever layer holds them; `check` (which
// applies the layers as the OCI spec says) agrees with the converted image.
import { execFile } from 'node:child_process';
import { lstat, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import type { BootstrapReader } from '@nydus-ts/format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConvertedImage, convertImage } from '../src/index.js';
import { dir, file, hostLinuxPlatform, opaque, pushLayeredImage, whiteout, type TestImage, type TestLayer } from './support/images.js';
import { fetchNydusImage } from './support/nydus-image.js';

const run = promisify(execFile);

let registry: TestRegistry;
let client: RegistryClient;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  client = new RegistryClient({ registry: registry.host, insecure: true });
  work = await mkdtemp(path.join(tmpdir(), 'nydus-layer-merge-'));
});

afterAll(async () => {
  await client?.close();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function layer(...entries: ReturnType<typeof file>[]): TestLayer {
  return { compression: 'gzip', entries: async function* () { yield* entries; } };
}

async function convertAndCheck(img: TestImage, repository: string): Promise<BootstrapReader> {
  await convertImage({ source: img.reference, target: `${registry.host}/${repository}:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
  const report = await checkConvertedImage({
    source: img.reference,
    target: `${registry.host}/${repository}:nydus`,
    sourceRegistry: { insecure: true },
    targetRegistry: { insecure: true },
    platform: hostLinuxPlatform(),
  });
  expect(report.differences).toEqual([]);
  expect(report.ok).toBe(true);
  return (await fetchNydusImage(client, repository, 'nydus')).reader;
}

function attrs(reader: BootstrapReader, p: string): { mode: string; uid: number; gid: number; mtime: number } {
  const inode = reader.inode(reader.lookup(p)!);
  return { mode: inode.mode.toString(8), uid: inode.uid, gid: inode.gid, mtime: inode.mtime };
}

describe('convert: directories an upper layer only implies', () => {
  it('keep the lower attributes, as containerd and umoci unpack do', async () => {
    const img = await pushLayeredImage(
      client,
      [
        layer(
          dir('deep', 0o700, { uid: 1, gid: 2, mtime: 1_600_000_000 }),
          dir('deep/d00', 0o750, { uid: 3, gid: 4, mtime: 1_600_000_001 }),
          dir('deep/d00/d01', 0o755),
          file('deep/d00/d01/f', 'f'),
          file('deep/keep', 'k'),
        ),
        // deep/ and deep/d00/ are not listed: the whiteout and the new file imply them.
        layer(whiteout('deep/d00/d01'), file('deep/d00/new', 'new')),
      ],
      { repository: 'merge/implied', tag: 'v1' },
    );
    const reader = await convertAndCheck(img, 'merge/implied');
    expect(attrs(reader, '/deep')).toEqual({ mode: '40700', uid: 1, gid: 2, mtime: 1_600_000_000 });
    expect(attrs(reader, '/deep/d00')).toEqual({ mode: '40750', uid: 3, gid: 4, mtime: 1_600_000_001 });
    expect(reader.lookup('/deep/d00/d01')).toBeUndefined();
    expect(reader.lookup('/deep/d00/new')).toBeDefined();
    expect(reader.lookup('/deep/keep')).toBeDefined();
    // No marker of the layer bootstraps reaches the image.
    for (const { nid } of reader.walk()) expect([...reader.xattrs(nid).keys()]).toEqual([]);

    // umoci unpack of the same image agrees on modes and owners (it leaves a directory's mtime
    // at the time it applied a whiteout inside it, so mtimes are compared for `deep` only).
    const layout = path.join(work, 'implied-layout');
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${img.reference}`, `oci:${layout}:v1`]);
    const bundle = path.join(work, 'implied-bundle');
    await run('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
    const deep = await lstat(path.join(bundle, 'rootfs/deep'));
    const d00 = await lstat(path.join(bundle, 'rootfs/deep/d00'));
    expect({ mode: deep.mode.toString(8), uid: deep.uid, gid: deep.gid, mtime: Math.floor(deep.mtimeMs / 1000) }).toEqual(attrs(reader, '/deep'));
    expect({ mode: d00.mode.toString(8), uid: d00.uid, gid: d00.gid }).toEqual({ mode: '40750', uid: 3, gid: 4 });
  });
});

describe('convert: whiteouts in the lowest layer', () => {
  it('never appear as files: the image passes its own check', async () => {
    const img = await pushLayeredImage(
      client,
      [layer(file('etc/a', 'a'), whiteout('etc/gone'), opaque('var'), file('var/v', 'v'), whiteout('nothing-here')), layer(file('usr/u', 'u'))],
      { repository: 'merge/lowest-whiteouts', tag: 'v1' },
    );
    const reader = await convertAndCheck(img, 'merge/lowest-whiteouts');
    const paths = [...reader.walk()].map((e) => e.path);
    expect(paths).toEqual(['/', '/etc', '/etc/a', '/usr', '/usr/u', '/var', '/var/v']);
  });
});
