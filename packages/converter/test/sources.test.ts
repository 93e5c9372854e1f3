import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, open, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaType, isNydusError } from '@nydus-ts/core';
import type { Descriptor, Digest, ImageIndex, ImageManifest } from '@nydus-ts/core';
import { RegistryClient } from '@nydus-ts/registry';
import type { ImageSource } from '@nydus-ts/registry';
import { generatedStream, measureProcess, startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import type { OciArchiveSource } from '../src/index.js';
import { DockerArchiveSource, openArchiveSource, openImageSource, parseArchiveLocation } from '../src/index.js';
import { decompressStream, readTarEntries, writeTarEntries } from '@nydus-ts/image';
import { indexTarFile } from '../src/internal.js';
import { busyboxImage, dir, file, symlink, whiteoutImage, writeOciLayout } from './support/images.js';
import type { TestImage } from './support/images.js';

const run = promisify(execFile);

let registry: TestRegistry;
let client: RegistryClient;
let tmp: string;
let busybox: TestImage;
let whiteouts: TestImage;
let ociDir: string;
let ociTar: string;

async function bytesOf(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const sha256 = (b: Uint8Array): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The entries of a layer blob from a source, as `path type size sha256` lines. */
async function layerListing(source: ImageSource, layer: Descriptor): Promise<string[]> {
  const out: string[] = [];
  for await (const e of readTarEntries(decompressStream(source.fetchBlob(layer)))) {
    let digest = '';
    if (e.content) {
      const h = createHash('sha256');
      for await (const c of e.content) h.update(c);
      digest = h.digest('hex').slice(0, 16);
    }
    out.push(`${e.path} ${e.type} ${e.mode.toString(8)} ${e.size} ${e.linkTarget ?? ''} ${digest}`);
  }
  return out;
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<unknown> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, `expected a ${code} error`).toBeDefined();
  expect(isNydusError(err) ? err.code : err).toBe(code);
  return err;
}

beforeAll(async () => {
  registry = await startRegistry();
  client = new RegistryClient({ registry: registry.host, insecure: true });
  tmp = await mkdtemp(path.join(tmpdir(), 'nydus-sources-'));
  busybox = await busyboxImage(client, { repository: 'src/busybox', tag: 'v1' });
  whiteouts = await whiteoutImage(client, { repository: 'src/whiteouts', tag: 'v1' });
  ociDir = path.join(tmp, 'layout');
  await writeOciLayout(client, busybox, ociDir, 'v1');
  await writeOciLayout(client, whiteouts, ociDir, 'wh');
  ociTar = path.join(tmp, 'layout.tar');
  await run('tar', ['-C', ociDir, '-cf', ociTar, '.']);
});

afterAll(async () => {
  await client?.close();
  await registry?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('parseArchiveLocation', () => {
  it('splits kind, file and tag like skopeo', () => {
    expect(parseArchiveLocation('oci-archive:/a/b.tar')).toEqual({ kind: 'oci-archive', file: '/a/b.tar' });
    expect(parseArchiveLocation('oci-archive:/a/b.tar:v1')).toEqual({ kind: 'oci-archive', file: '/a/b.tar', tag: 'v1' });
    expect(parseArchiveLocation('docker-archive:x.tar:busybox:latest')).toEqual({ kind: 'docker-archive', file: 'x.tar', tag: 'busybox:latest' });
    expect(parseArchiveLocation('docker-archive:x.tar:@1')).toEqual({ kind: 'docker-archive', file: 'x.tar', tag: '@1' });
    expect(parseArchiveLocation('oci:/dir:v1')).toBeUndefined();
    expect(parseArchiveLocation('registry.example/repo:tag')).toBeUndefined();
    expect(() => parseArchiveLocation('oci-archive:')).toThrow(/needs a file path/);
    expect(() => parseArchiveLocation('oci-archive:f.tar:')).toThrow(/empty tag/);
  });
});

describe('indexTarFile', () => {
  it('finds members of GNU and PAX archives with long names without reading their data', async () => {
    const d = path.join(tmp, 'longnames');
    const long = `${'deep-directory-name-'.repeat(4)}/${'x'.repeat(120)}.bin`;
    await mkdir(path.join(d, path.dirname(long)), { recursive: true });
    await writeFile(path.join(d, long), Buffer.alloc(70_000, 7));
    await writeFile(path.join(d, 'small'), 'hi');
    for (const format of ['gnu', 'pax', 'ustar']) {
      const tarFile = path.join(tmp, `long-${format}.tar`);
      const args = format === 'ustar' ? ['--format=ustar', '-C', d, '-cf', tarFile, 'small'] : [`--format=${format}`, '-C', d, '-cf', tarFile, '.'];
      await run('tar', args);
      const index = await indexTarFile(tarFile);
      const small = index.get('small')!;
      expect(small.size).toBe(2);
      const fh = await open(tarFile, 'r');
      const b = Buffer.alloc(2);
      await fh.read(b, 0, 2, small.offset);
      await fh.close();
      expect(b.toString()).toBe('hi');
      if (format !== 'ustar') {
        const m = index.get(long)!;
        expect(m, `${format}: long name indexed`).toBeDefined();
        expect(m.size).toBe(70_000);
        expect(index.has(path.dirname(long))).toBe(false); // directories are not members with data
      }
    }
  });

  it('rejects a truncated archive and a non-tar file with FormatErrors', async () => {
    const cut = path.join(tmp, 'cut.tar');
    await copyFile(ociTar, cut);
    await truncate(cut, (await stat(cut)).size - 600_000);
    const err = await expectCode(indexTarFile(cut), 'INVALID_FORMAT');
    expect(String((err as Error).message)).toMatch(/truncated/);
    const junk = path.join(tmp, 'junk.tar');
    await writeFile(junk, Buffer.alloc(4096, 'not a tar archive '));
    await expectCode(indexTarFile(junk), 'INVALID_FORMAT');
    await expectCode(indexTarFile(path.join(tmp, 'nope.tar')), 'NOT_FOUND');
  });
});

describe('oci-archive', () => {
  it('serves manifests, configs and blobs of the tagged images, digest-verified', async () => {
    for (const img of [busybox, whiteouts]) {
      const tag = img === busybox ? 'v1' : 'wh';
      const src = await openArchiveSource('oci-archive', ociTar, tag);
      expect(src.name).toBe(`oci-archive:${ociTar}:${tag}`);
      const top = await src.resolve();
      // copyImage keeps the manifest bytes: the archive's manifest is the pushed one.
      expect(top.descriptor.digest).toBe(img.manifest.descriptor.digest);
      expect(top.bytes.equals(img.manifest.bytes)).toBe(true);
      const manifest = JSON.parse(top.bytes.toString()) as ImageManifest;
      const again = await src.getManifest(top.descriptor);
      expect(again.bytes.equals(top.bytes)).toBe(true);
      const config = await bytesOf(src.fetchBlob(manifest.config));
      expect(sha256(config)).toBe(img.config.digest);
      expect(JSON.parse(config.toString()).rootfs.diff_ids).toEqual(img.diffIds);
      for (const [i, layer] of manifest.layers.entries()) {
        const bytes = await bytesOf(src.fetchBlob(layer));
        expect(sha256(bytes)).toBe(img.layers[i]!.digest);
        // The same layer read from the registry lists the same entries.
        const fromRegistry = await openImageSource(`${registry.host}/${img.repository}:v1`, { registry: { insecure: true } });
        try {
          expect(await layerListing(src, layer)).toEqual(await layerListing(fromRegistry.source, layer));
        } finally {
          await fromRegistry.close();
        }
      }
    }
  });

  it('reads a layout holding an index (all platforms) and picks children by descriptor', async () => {
    const mdir = path.join(tmp, 'multi');
    const idxRepo = 'src/multi';
    // An index over busybox (pushed again for two platforms).
    const amd = await busyboxImage(client, { repository: idxRepo, untagged: true, platform: { os: 'linux', architecture: 'amd64' } });
    const arm = await busyboxImage(client, { repository: idxRepo, untagged: true, platform: { os: 'linux', architecture: 'arm64' } });
    const { pushTestIndex } = await import('./support/images.js');
    const index = await pushTestIndex(client, idxRepo, 'v1', [amd, arm]);
    await writeOciLayout(client, { repository: idxRepo, tag: 'v1', manifest: index }, mdir, 'multi');
    const mtar = path.join(tmp, 'multi.tar');
    await run('tar', ['-C', mdir, '-cf', mtar, '.']);
    const src = await openArchiveSource('oci-archive', mtar); // the only image
    const top = await src.resolve();
    expect(top.descriptor.digest).toBe(index.descriptor.digest);
    const children = (JSON.parse(top.bytes.toString()) as ImageIndex).manifests;
    expect(children.map((c) => c.platform?.architecture)).toEqual(['amd64', 'arm64']);
    const child = await src.getManifest(children[1]!);
    expect(child.descriptor.digest).toBe(arm.manifest.descriptor.digest);
  });

  it('gives typed errors: wrong tag, several images without a tag, missing and corrupt blobs, not a layout', async () => {
    await expectCode(openArchiveSource('oci-archive', ociTar, 'nope').then((s) => s.resolve()), 'NOT_FOUND');
    await expectCode(openArchiveSource('oci-archive', ociTar).then((s) => s.resolve()), 'INVALID_ARGUMENT');

    // Missing member: a layout tar without one layer blob.
    const src = (await openArchiveSource('oci-archive', ociTar, 'v1')) as OciArchiveSource;
    const manifest = JSON.parse((await src.resolve()).bytes.toString()) as ImageManifest;
    const victim = manifest.layers[0]!;
    const partial = path.join(tmp, 'partial.tar');
    await run('tar', ['-C', ociDir, '-cf', partial, '--exclude', `blobs/sha256/${victim.digest.slice(7)}`, '.']);
    const p = await openArchiveSource('oci-archive', partial, 'v1');
    await p.resolve();
    const err = await expectCode(() => p.fetchBlob(victim), 'NOT_FOUND');
    expect((err as Error).message).toContain(victim.digest);

    // Corrupt blob (same size): the stream fails with DATA_LOSS before it ends.
    const corrupt = path.join(tmp, 'corrupt.tar');
    await copyFile(ociTar, corrupt);
    const member = src.archive.index.get(`blobs/sha256/${victim.digest.slice(7)}`)!;
    const fh = await open(corrupt, 'r+');
    await fh.write(Buffer.from('XXXX'), 0, 4, member.offset + Math.floor(member.size / 2));
    await fh.close();
    const c = await openArchiveSource('oci-archive', corrupt, 'v1');
    await expectCode(bytesOf(c.fetchBlob(victim)), 'DATA_LOSS');
    // A descriptor with the wrong size is refused.
    await expectCode(() => c.fetchBlob({ ...victim, size: victim.size + 1 }), 'DATA_LOSS');

    // Truncated archive: typed at open.
    const cut = path.join(tmp, 'cut2.tar');
    await copyFile(ociTar, cut);
    await truncate(cut, member.offset + 100);
    await expectCode(openArchiveSource('oci-archive', cut, 'v1'), 'INVALID_FORMAT');

    // A docker archive opened as oci-archive says so.
    const docker = path.join(tmp, 'as-docker.tar');
    await run('skopeo', ['copy', '-q', `oci:${ociDir}:v1`, `docker-archive:${docker}:busybox:v1`]);
    const e2 = await expectCode(openArchiveSource('oci-archive', docker), 'NOT_FOUND');
    expect((e2 as Error).message).toMatch(/try docker-archive/);
  });

  it('opens through openImageSource', async () => {
    const o = await openImageSource(`oci-archive:${ociTar}:wh`);
    expect((await o.source.resolve()).descriptor.digest).toBe(whiteouts.manifest.descriptor.digest);
    await o.close();
  });
});

describe('docker-archive', () => {
  it('reads a skopeo-written docker archive: synthesized schema2 manifest, config, layer digests of the members', async () => {
    const archive = path.join(tmp, 'busybox-docker.tar');
    await run('skopeo', ['copy', '-q', `docker://${registry.host}/src/busybox:v1`, `docker-archive:${archive}:busybox:v1`, '--src-tls-verify=false']);
    const src = (await openArchiveSource('docker-archive', archive, 'busybox:v1')) as DockerArchiveSource;
    expect(src).toBeInstanceOf(DockerArchiveSource);
    const top = await src.resolve();
    expect(top.descriptor.mediaType).toBe(MediaType.DockerManifest);
    expect(top.descriptor.digest).toBe(sha256(top.bytes));
    const manifest = JSON.parse(top.bytes.toString()) as ImageManifest;
    expect(manifest.mediaType).toBe(MediaType.DockerManifest);
    expect(manifest.config.mediaType).toBe(MediaType.DockerConfig);
    expect(manifest.layers).toHaveLength(2);
    const config = await bytesOf(src.fetchBlob(manifest.config));
    expect(sha256(config)).toBe(manifest.config.digest);
    expect(JSON.parse(config.toString()).rootfs.diff_ids).toEqual(busybox.diffIds);

    // Each layer digest is the sha256 of its member, as GNU tar extracts it.
    const manifestJson = JSON.parse((await run('tar', ['-xOf', archive, 'manifest.json'], { encoding: 'buffer', maxBuffer: 1 << 20 })).stdout.toString());
    for (const [i, layer] of manifest.layers.entries()) {
      const member = (await run('tar', ['-xOf', archive, manifestJson[0].Layers[i]], { encoding: 'buffer', maxBuffer: 64 << 20 })).stdout as Buffer;
      expect(layer.digest).toBe(sha256(member));
      expect(layer.size).toBe(member.length);
      expect(layer.mediaType).toBe(member[0] === 0x1f && member[1] === 0x8b ? MediaType.DockerLayerGzip : MediaType.DockerLayer);
      const bytes = await bytesOf(src.fetchBlob(layer));
      expect(bytes.equals(member)).toBe(true);
    }
    // Same tree as the registry image.
    const reg = await openImageSource(`${registry.host}/src/busybox:v1`, { registry: { insecure: true } });
    try {
      for (const [i, layer] of manifest.layers.entries()) {
        expect(await layerListing(src, layer)).toEqual(await layerListing(reg.source, busybox.layers[i]!));
      }
    } finally {
      await reg.close();
    }
    expect((await src.getManifest(top.descriptor)).bytes.equals(top.bytes)).toBe(true);
    // Tag forms: exact, docker.io-normalised, by position, the only image.
    for (const t of ['docker.io/library/busybox:v1', '@0', undefined]) {
      expect((await (await openArchiveSource('docker-archive', archive, t)).resolve()).descriptor.digest).toBe(top.descriptor.digest);
    }
  });

  it('reads a hand-made multi-image archive with gzip and plain layers, picks by RepoTag', async () => {
    const d = path.join(tmp, 'handmade');
    await mkdir(path.join(d, 'l1'), { recursive: true });
    await mkdir(path.join(d, 'l2'), { recursive: true });
    const tarOf = async (entries: Parameters<typeof writeTarEntries>[0]): Promise<Buffer> => {
      const parts: Uint8Array[] = [];
      for await (const c of writeTarEntries(entries)) parts.push(c);
      return Buffer.concat(parts);
    };
    const l1 = await tarOf((async function* () { yield dir('etc'); yield file('etc/a', 'alpha\n'); yield symlink('etc/b', 'a'); })());
    const l2 = await tarOf((async function* () { yield dir('etc'); yield file('etc/c', 'gamma\n', 0o600); })());
    const gz = async (b: Buffer): Promise<Buffer> => {
      const parts: Buffer[] = [];
      await pipeline(Readable.from([b]), createGzip(), async function* (src) { for await (const c of src) parts.push(c as Buffer); });
      return Buffer.concat(parts);
    };
    const l2gz = await gz(l2);
    await writeFile(path.join(d, 'l1/layer.tar'), l1);
    await writeFile(path.join(d, 'l2/layer.tar'), l2gz);
    const configA = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(l1)] } }));
    const configB = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(l1), sha256(l2)] } }));
    await writeFile(path.join(d, `${sha256(configA).slice(7)}.json`), configA);
    await writeFile(path.join(d, `${sha256(configB).slice(7)}.json`), configB);
    await writeFile(path.join(d, 'manifest.json'), JSON.stringify([
      { Config: `${sha256(configA).slice(7)}.json`, RepoTags: ['example.com/one:1'], Layers: ['l1/layer.tar'] },
      { Config: `${sha256(configB).slice(7)}.json`, RepoTags: ['two:latest', 'two:2'], Layers: ['l1/layer.tar', 'l2/layer.tar'] },
    ]));
    const archive = path.join(tmp, 'handmade.tar');
    await run('tar', ['-C', d, '-cf', archive, 'manifest.json', 'l1', 'l2', `${sha256(configA).slice(7)}.json`, `${sha256(configB).slice(7)}.json`]);

    const two = await openArchiveSource('docker-archive', archive, 'two');
    const m2 = JSON.parse((await two.resolve()).bytes.toString()) as ImageManifest;
    expect(m2.config.digest).toBe(sha256(configB));
    expect(m2.layers.map((l) => [l.mediaType, l.digest, l.size])).toEqual([
      [MediaType.DockerLayer, sha256(l1), l1.length],
      [MediaType.DockerLayerGzip, sha256(l2gz), l2gz.length],
    ]);
    expect(await layerListing(two, m2.layers[1]!)).toEqual(['etc directory 755 0  ', `etc/c file 600 6  ${createHash('sha256').update('gamma\n').digest('hex').slice(0, 16)}`]);
    const one = await openArchiveSource('docker-archive', archive, 'example.com/one:1');
    expect((JSON.parse((await one.resolve()).bytes.toString()) as ImageManifest).layers).toHaveLength(1);
    expect(((await (await openArchiveSource('docker-archive', archive, '@1')).resolve()).descriptor.digest)).toBe((await two.resolve()).descriptor.digest);

    await expectCode(openArchiveSource('docker-archive', archive), 'INVALID_ARGUMENT');
    await expectCode(openArchiveSource('docker-archive', archive, 'three:latest'), 'NOT_FOUND');
    await expectCode(openArchiveSource('docker-archive', archive, '@5'), 'NOT_FOUND');
    await expectCode(two.getManifest({ mediaType: MediaType.DockerManifest, digest: sha256(Buffer.from('x')), size: 1 }), 'NOT_FOUND');
    await expectCode(() => two.fetchBlob({ mediaType: MediaType.DockerLayer, digest: sha256(Buffer.from('x')), size: 1 }), 'NOT_FOUND');

    // A missing layer member and a diff_id that does not match a plain layer.
    await writeFile(path.join(d, 'manifest.json'), JSON.stringify([{ Config: `${sha256(configB).slice(7)}.json`, RepoTags: ['two:2'], Layers: ['l1/layer.tar', 'l3/layer.tar'] }]));
    const missing = path.join(tmp, 'missing.tar');
    await run('tar', ['-C', d, '-cf', missing, 'manifest.json', 'l1', `${sha256(configB).slice(7)}.json`]);
    const e = await expectCode(openArchiveSource('docker-archive', missing), 'NOT_FOUND');
    expect((e as Error).message).toContain('l3/layer.tar');
    await writeFile(path.join(d, 'manifest.json'), JSON.stringify([{ Config: `${sha256(configA).slice(7)}.json`, RepoTags: ['bad:1'], Layers: ['l2/layer.tar'] }]));
    const bad = path.join(tmp, 'bad.tar');
    await writeFile(path.join(d, 'l2/layer.tar'), l2); // now plain, but configA's diff_id is l1's
    await run('tar', ['-C', d, '-cf', bad, 'manifest.json', 'l2', `${sha256(configA).slice(7)}.json`]);
    await expectCode(openArchiveSource('docker-archive', bad), 'DATA_LOSS');
    // An OCI archive opened as docker-archive says so.
    const e3 = await expectCode(openArchiveSource('docker-archive', ociTar), 'NOT_FOUND');
    expect((e3 as Error).message).toMatch(/try oci-archive/);
  });

  it('is usable as the copy source of the registry package (streams every blob verified)', async () => {
    // (skopeo cannot put the whiteout image's zstd layer into a docker archive: busybox it is.)
    const archive = path.join(tmp, 'bb-docker.tar');
    await run('skopeo', ['copy', '-q', `oci:${ociDir}:v1`, `docker-archive:${archive}:bb:1`]);
    const { copyImage } = await import('@nydus-ts/registry');
    const src = await openArchiveSource('docker-archive', archive);
    const r = await copyImage({ source: src, target: `${registry.host}/src/from-archive:1`, targetRegistry: { insecure: true } });
    const back = await client.getManifest('src/from-archive', '1');
    expect(back.descriptor.digest).toBe(r.digest);
    const m = JSON.parse(back.bytes.toString()) as ImageManifest;
    expect(m.layers).toHaveLength(2);
    for (const l of m.layers) expect(await client.headBlob('src/from-archive', l.digest)).toBe(l.size);
  });
});

describe('archive sources keep memory flat', () => {
  it('a 768 MiB blob in an oci-archive streams, verified, in a process whose peak RSS stays far below it', async () => {
    const size = 768 * 1024 * 1024;
    const hash = createHash('sha256');
    for await (const c of generatedStream(size, 'big archive blob')) hash.update(c as Buffer);
    const hex = hash.digest('hex');
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${hex}`] } }));
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length }, layers: [{ mediaType: MediaType.OciLayer, digest: `sha256:${hex}`, size }] }));
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaType.OciManifest, digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'big' } }] }));
    // The tar, written member by member (ustar headers from the converter's tar writer).
    const archive = path.join(tmp, 'big.tar');
    const members = (async function* () {
      const base = { type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime: 0 };
      yield { ...base, path: 'oci-layout', size: 30, content: (async function* () { yield Buffer.from('{"imageLayoutVersion":"1.0.0"}'); })() };
      yield { ...base, path: 'index.json', size: index.length, content: (async function* () { yield index; })() };
      for (const b of [config, manifest]) yield { ...base, path: `blobs/sha256/${sha256(b).slice(7)}`, size: b.length, content: (async function* () { yield b; })() };
      yield { ...base, path: `blobs/sha256/${hex}`, size, content: generatedStream(size, 'big archive blob') as AsyncIterable<Uint8Array> };
    })();
    await pipeline(Readable.from(writeTarEntries(members)), createWriteStream(archive));
    expect((await stat(archive)).size).toBeGreaterThan(size);

    // A child process using the built package: index the archive, stream the blob through sha256.
    const dist = path.resolve(import.meta.dirname, '../dist/index.js');
    const script = [
      `import { openArchiveSource } from ${JSON.stringify(dist)};`,
      "import { createHash } from 'node:crypto';",
      `const src = await openArchiveSource('oci-archive', ${JSON.stringify(archive)}, 'big');`,
      'const m = JSON.parse((await src.resolve()).bytes.toString());',
      "const h = createHash('sha256'); let n = 0;",
      'for await (const c of src.fetchBlob(m.layers[0])) { h.update(c); n += c.length; }',
      "console.log(n, 'sha256:' + h.digest('hex'));",
    ].join('\n');
    const r = await measureProcess(process.execPath, ['--input-type=module', '-e', script], { node: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`${size} sha256:${hex}`);
    expect(r.peakRssBytes).toBeLessThan(160 * 1024 * 1024);
  }, 240_000);
});
