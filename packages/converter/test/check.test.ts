import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaType, isNydusError } from '@nydus-ts/core';
import type { Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Platform } from '@nydus-ts/core';
import { BootstrapReader } from '@nydus-ts/format';
import { RegistryClient, copyImage } from '@nydus-ts/registry';
import { startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { RegistryBlobBackend } from '@nydus-ts/backend';
import { checkConvertedImage, convertImage, packBootstrapLayer, readBootstrapLayer } from '../src/index.js';
import { writeTarEntries } from '@nydus-ts/image';
import type { CheckReport } from '../src/index.js';
import { busyboxImage, dir, file, hostLinuxPlatform, pushTestIndex, whiteoutImage, writeOciLayout } from './support/images.js';
import type { TestImage } from './support/images.js';

const run = promisify(execFile);
const BLOB_ANNOTATION = 'containerd.io/snapshot/nydus-blob';
const BOOTSTRAP_ANNOTATION = 'containerd.io/snapshot/nydus-bootstrap';
const FS_VERSION_ANNOTATION = 'containerd.io/snapshot/nydus-fs-version';

let registry: TestRegistry;
let client: RegistryClient;
let tmp: string;
let busybox: TestImage;
let whiteouts: TestImage;
const platform = hostLinuxPlatform();
/** `host/check/busybox:nydus`, the converted busybox. */
let busyboxNydus: string;

const sha256 = (b: Uint8Array): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

async function pushBytes(repo: string, bytes: Uint8Array): Promise<Digest> {
  const digest = sha256(bytes);
  const up = await client.createUpload(repo);
  up.end(bytes);
  await up.commit({ digest, size: bytes.length });
  return digest;
}

function check(source: string, target: string, extra: Partial<Parameters<typeof checkConvertedImage>[0]> = {}): Promise<CheckReport> {
  return checkConvertedImage({ source, target, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, platform, ...extra });
}

async function convert(source: string, target: string, extra: Partial<Parameters<typeof convertImage>[0]> = {}): Promise<void> {
  await convertImage({ source, target: `${registry.host}/${target}`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, ...extra });
}

/**
 * Re-publishes the Nydus image `repo:from` as `repo:to` after editing its manifest and/or its
 * bootstrap (re-packed into a new bootstrap layer; the config's last diff_id follows).
 */
async function pushTampered(
  repo: string,
  from: string,
  to: string,
  edit: { manifest?: (m: ImageManifest) => void; bootstrap?: (b: Buffer, reader: BootstrapReader) => void; metas?: (metas: Map<string, Uint8Array>) => void },
): Promise<string> {
  const m = JSON.parse((await client.getManifest(repo, from)).bytes.toString()) as ImageManifest;
  if (edit.bootstrap || edit.metas) {
    const last = m.layers[m.layers.length - 1]!;
    const content = await readBootstrapLayer(client.fetchBlob(repo, last));
    const boot = Buffer.from(content.bootstrap);
    edit.bootstrap?.(boot, await BootstrapReader.open(Buffer.from(boot)));
    edit.metas?.(content.blobMetas);
    const packed = await packBootstrapLayer(boot, [...content.blobMetas].map(([blobId, meta]) => ({ blobId, meta })));
    await pushBytes(repo, packed.bytes);
    m.layers[m.layers.length - 1] = { ...last, digest: packed.digest, size: packed.size };
    const config = JSON.parse((await readAll(client.fetchBlob(repo, m.config))).toString()) as ImageConfig;
    config.rootfs.diff_ids[config.rootfs.diff_ids.length - 1] = packed.diffId;
    const configBytes = Buffer.from(JSON.stringify(config));
    m.config = { ...m.config, digest: await pushBytes(repo, configBytes), size: configBytes.length };
  }
  edit.manifest?.(m);
  const bytes = Buffer.from(JSON.stringify(m));
  await client.putManifest(repo, to, bytes, m.mediaType ?? MediaType.OciManifest);
  return `${registry.host}/${repo}:${to}`;
}


beforeAll(async () => {
  registry = await startRegistry();
  client = new RegistryClient({ registry: registry.host, insecure: true });
  tmp = await mkdtemp(path.join(tmpdir(), 'nydus-check-'));
  [busybox, whiteouts] = await Promise.all([
    busyboxImage(client, { repository: 'check/busybox', tag: 'v1' }),
    whiteoutImage(client, { repository: 'check/whiteouts', tag: 'v1' }),
  ]);
  await convert(busybox.reference, 'check/busybox:nydus');
  busyboxNydus = `${registry.host}/check/busybox:nydus`;
});

afterAll(async () => {
  await client?.close();
  await registry?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('check on converted images', () => {
  it('passes on converted busybox, reading every file through ranged registry reads', async () => {
    const r = await check(busybox.reference, busyboxNydus);
    expect(r.differences).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.source.digest).toBe(busybox.manifest.descriptor.digest);
    expect(r.platform).toBe(`${platform.os}/${platform.architecture}`);
    // 2 source layers → 2 blobs + the bootstrap layer
    expect(r.counts).toMatchObject({ sourceLayers: 2, targetLayers: 3, blobs: 2 });
    expect(r.counts.sourceEntries).toBe(r.counts.targetEntries);
    // busybox, passwd, group, hostname, shadow, motd
    expect(r.counts.filesRead).toBe(6);
    // Read in blob order through 4 MiB read-ahead windows: one request per window of each blob.
    const m = JSON.parse((await client.getManifest('check/busybox', 'nydus')).bytes.toString()) as ImageManifest;
    const windows = m.layers.slice(0, -1).reduce((n, l) => n + Math.ceil(l.size / (4 << 20)), 0);
    expect(r.counts.rangeRequests).toBeGreaterThanOrEqual(2);
    expect(r.counts.rangeRequests).toBeLessThanOrEqual(windows);
    expect(r.counts.bytesRead).toBeGreaterThan(500_000);
  });

  it('passes on the whiteout image (whiteouts, opaque dirs, hardlink groups across layers, xattrs, devices)', async () => {
    await convert(whiteouts.reference, 'check/whiteouts:nydus');
    const r = await check(whiteouts.reference, `${registry.host}/check/whiteouts:nydus`, { verifyBlobs: true });
    expect(r.differences).toEqual([]);
    expect(r.counts.sourceLayers).toBe(3);
    expect(r.counts.sourceEntries).toBe(r.counts.targetEntries);
  });

  it('accepts oci-archive, docker-archive and oci: sources for the same image', async () => {
    const layout = path.join(tmp, 'layout');
    await writeOciLayout(client, busybox, layout, 'v1');
    const tarFile = path.join(tmp, 'busybox-oci.tar');
    await run('tar', ['-C', layout, '-cf', tarFile, '.']);
    const dockerFile = path.join(tmp, 'busybox-docker.tar');
    await run('skopeo', ['copy', '-q', `oci:${layout}:v1`, `docker-archive:${dockerFile}:busybox:v1`]);
    for (const source of [`oci:${layout}:v1`, `oci-archive:${tarFile}:v1`, `docker-archive:${dockerFile}`]) {
      const r = await checkConvertedImage({ source, target: busyboxNydus, targetRegistry: { insecure: true }, platform });
      expect(r.differences, source).toEqual([]);
      expect(r.source.name).toBe(source);
    }
  });

  it('picks the Nydus manifest of a --merge-platform index for the target and the OCI one for the source', async () => {
    const other: Platform = platform.architecture === 'arm64' ? { os: 'linux', architecture: 'amd64' } : { os: 'linux', architecture: 'arm64' };
    const mine = await busyboxImage(client, { repository: 'check/multi', untagged: true, platform });
    // The other platform's image differs (the whiteout image), so a wrong pick cannot pass.
    const theirs = await whiteoutImage(client, { repository: 'check/multi', untagged: true, platform: other });
    await pushTestIndex(client, 'check/multi', 'v1', [mine, theirs]);
    await convert(`${registry.host}/check/multi:v1`, 'check/multi:merged', { allPlatforms: true, mergePlatform: true });
    const index = JSON.parse((await client.getManifest('check/multi', 'merged')).bytes.toString()) as ImageIndex;
    expect(index.manifests.length).toBe(4);
    for (const p of [platform, other]) {
      const r = await check(`${registry.host}/check/multi:v1`, `${registry.host}/check/multi:merged`, { platform: p });
      expect(r.differences, JSON.stringify(p)).toEqual([]);
      const nydus = index.manifests.find((m) => m.platform?.architecture === p.architecture && m.artifactType === 'application/vnd.nydus.image.manifest.v1+json');
      expect(r.target.digest).toBe(nydus?.digest);
    }
    // Checking one platform against the other's source is caught.
    const crossed = await checkConvertedImage({ source: whiteouts.reference, target: `${registry.host}/check/multi:merged`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, platform });
    expect(crossed.ok).toBe(false);
    expect(crossed.differences).toContain('/etc/passwd: not in source (target has a file)');
    const none = checkConvertedImage({ source: busybox.reference, target: `${registry.host}/check/multi:merged`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, platform: 'linux/s390x' });
    await expect(none).rejects.toSatisfy((e) => isNydusError(e, 'NOT_FOUND') && /no Nydus manifest for linux\/s390x/.test((e as Error).message));
  });
});

describe('check reports precise differences', () => {
  it('manifest lacking the Nydus annotations', async () => {
    const target = await pushTampered('check/busybox', 'nydus', 'no-annotations', {
      manifest: (m) => {
        delete m.layers[0]!.annotations![BLOB_ANNOTATION];
        m.layers[2]!.annotations![FS_VERSION_ANNOTATION] = '5';
      },
    });
    const r = await check(busybox.reference, target);
    expect(r.ok).toBe(false);
    expect(r.differences).toEqual([
      `manifest: layer 0 lacks annotation ${BLOB_ANNOTATION}`,
      `manifest: layer 2 (bootstrap) annotation ${FS_VERSION_ANNOTATION} is "5", expected "6"`,
    ]);
    const t2 = await pushTampered('check/busybox', 'nydus', 'no-bootstrap-annotation', {
      manifest: (m) => {
        delete m.layers[2]!.annotations![BOOTSTRAP_ANNOTATION];
        m.layers[1]!.mediaType = MediaType.OciLayerGzip;
      },
    });
    expect((await check(busybox.reference, t2)).differences).toEqual([
      `manifest: layer 1 media type ${MediaType.OciLayerGzip} != application/vnd.oci.image.layer.nydus.blob.v1`,
      `manifest: layer 2 (the last) lacks annotation ${BOOTSTRAP_ANNOTATION}`,
    ]);
  });

  it('a changed mode and a missing file in a re-packed bootstrap layer', async () => {
    const target = await pushTampered('check/busybox', 'nydus', 'repacked', {
      bootstrap: (boot, reader) => {
        // chmod 0600 /etc/passwd: i_mode is a little-endian u16 at +4 of the inode.
        const nid = reader.lookup('/etc/passwd')!;
        const at = reader.superblock.metaBlkaddr * reader.blockSize + nid * 32 + 4;
        boot.writeUInt16LE((boot.readUInt16LE(at) & ~0o7777) | 0o600, at);
        // Rename the dirent "hostname" to "hostnamf" (still sorted): /etc/hostname disappears.
        const name = Buffer.from('hostname');
        const pos = boot.indexOf(name);
        expect(boot.indexOf(name, pos + 1)).toBe(-1);
        boot[pos + name.length - 1] = 'f'.charCodeAt(0);
      },
    });
    const r = await check(busybox.reference, target);
    expect(r.differences).toEqual([
      '/etc/hostname: missing from target (source has a file)',
      '/etc/hostnamf: not in source (target has a file)',
      '/etc/passwd: mode 0644 != 0600',
    ]);
  });

  it('changed file content, mode and a missing symlink (a Nydus image of another source)', async () => {
    // A variant of busybox: same first layer, a second layer with another motd (same length,
    // mode 0600) and no /usr/sbin/init.
    const motd = 'Welcome to the nydus-ts busybox test image\n';
    const other = motd.replace('Welcome', 'WELCOME');
    const parts: Uint8Array[] = [];
    for await (const c of writeTarEntries((async function* () {
      yield dir('etc');
      yield file('etc/motd', other, 0o600);
      yield dir('usr');
      yield dir('usr/sbin');
    })())) parts.push(c);
    const layer = Buffer.concat(parts);
    const layerDigest = await pushBytes('check/busybox', layer);
    const config = { ...busybox.configJson, rootfs: { type: 'layers' as const, diff_ids: [busybox.diffIds[0]!, layerDigest] } };
    const configBytes = Buffer.from(JSON.stringify(config));
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: await pushBytes('check/busybox', configBytes), size: configBytes.length },
      layers: [busybox.layers[0]!, { mediaType: MediaType.OciLayer, digest: layerDigest, size: layer.length }],
    };
    await client.putManifest('check/busybox', 'variant', Buffer.from(JSON.stringify(manifest)), MediaType.OciManifest);
    await convert(`${registry.host}/check/busybox:variant`, 'check/busybox:variant-nydus');
    const r = await check(busybox.reference, `${registry.host}/check/busybox:variant-nydus`);
    const hex = (s: string): string => createHash('sha256').update(s).digest('hex');
    expect(r.differences).toEqual([
      `/etc/motd: content sha256:${hex(motd)} != sha256:${hex(other)}`,
      '/etc/motd: mode 0644 != 0600',
      '/usr/sbin/init: missing from target (source has a symlink)',
    ]);
  });

  it('blob meta files missing from or inconsistent in the bootstrap layer', async () => {
    const m = JSON.parse((await client.getManifest('check/busybox', 'nydus')).bytes.toString()) as ImageManifest;
    const [a, b] = [m.layers[0]!.digest.slice(7), m.layers[1]!.digest.slice(7)];
    const target = await pushTampered('check/busybox', 'nydus', 'bad-metas', {
      metas: (metas) => {
        expect([...metas.keys()].sort()).toEqual([a, b].sort());
        metas.set(b, metas.get(a)!); // another blob's CI table: valid, but not this blob's
        metas.delete(a);
      },
    });
    const r = await check(busybox.reference, target);
    expect(r.differences).toHaveLength(2);
    expect(r.differences[0]).toMatch(new RegExp(`^bootstrap: image/${b}\\.blob\\.meta: blob_meta_header\\.s_ci_entries: .*header says \\d+, blob table says 1$`));
    expect(r.differences[1]).toBe(`bootstrap: layer lacks image/${a}.blob.meta`);
    const zeros = await pushTampered('check/busybox', 'nydus', 'zero-meta', { metas: (metas) => metas.set(a, new Uint8Array(4096)) });
    expect((await check(busybox.reference, zeros)).differences).toEqual([`bootstrap: image/${a}.blob.meta: blob_meta_header.s_magic at offset 0: bad magic 0x0`]);
  });

  it('a missing blob, a corrupt chunk and an invalid bootstrap', async () => {
    // Missing blob: the image copied to another repository, then one blob deleted there.
    await copyImage({ source: busyboxNydus, target: `${registry.host}/check/missing:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const m = JSON.parse((await client.getManifest('check/missing', 'nydus')).bytes.toString()) as ImageManifest;
    const victim = m.layers[0]!;
    const del = await request(`${registry.url}/v2/check/missing/blobs/${victim.digest}`, { method: 'DELETE' });
    await del.body.dump();
    expect(del.statusCode).toBe(202);
    const r = await check(busybox.reference, `${registry.host}/check/missing:nydus`);
    expect(r.differences).toEqual([
      `blob ${victim.digest}: 5 file(s) of the target have data in it and were not compared`,
      `blob ${victim.digest}: missing from target`,
    ]);

    // Corrupt chunk: the digest of /etc/group's chunk in the chunk table no longer matches.
    const corrupt = await pushTampered('check/busybox', 'nydus', 'bad-chunk', {
      bootstrap: (boot, reader) => {
        const chunk = reader.chunks(reader.lookup('/etc/group')!)[0]!;
        const digest = Buffer.from(chunk.digest, 'hex');
        const pos = boot.indexOf(digest);
        expect(pos).toBeGreaterThan(0);
        boot[pos] = boot[pos]! ^ 0xff;
      },
    });
    const c = await check(busybox.reference, corrupt);
    expect(c.differences).toHaveLength(1);
    expect(c.differences[0]).toMatch(/^\/etc\/group: content unreadable in target: chunk \d+ of blob [0-9a-f]{64}: digest mismatch/);

    // Invalid bootstrap: the EROFS magic is gone.
    const invalid = await pushTampered('check/busybox', 'nydus', 'bad-magic', { bootstrap: (boot) => boot.writeUInt32LE(0x12345678, 1024) });
    const i = await check(busybox.reference, invalid);
    expect(i.differences).toHaveLength(1);
    expect(i.differences[0]).toMatch(/^bootstrap: invalid: superblock\.s_magic/);
  });

  it('a plain OCI image as target fails on the manifest and the missing bootstrap, without throwing', async () => {
    const r = await check(busybox.reference, busybox.reference);
    expect(r.ok).toBe(false);
    expect(r.differences).toContain(`manifest: layer 1 (the last) lacks annotation ${BOOTSTRAP_ANNOTATION}`);
    expect(r.differences).toContain(`manifest: layer 0 lacks annotation ${BLOB_ANNOTATION}`);
    expect(r.differences.some((d) => /^bootstrap: layer sha256:[0-9a-f]{64} has no image\/image.boot \(it has: etc, etc\/motd, usr, usr\/sbin, usr\/sbin\/init\)$/.test(d))).toBe(true);
  });
});

describe('RegistryBlobBackend', () => {
  it('reads exact byte ranges of a blob and rejects bad ids', async () => {
    const m = JSON.parse((await client.getManifest('check/busybox', 'nydus')).bytes.toString()) as ImageManifest;
    const blob = m.layers[0]! as Descriptor;
    const whole = await readAll(client.fetchBlob('check/busybox', blob));
    const backend = new RegistryBlobBackend(client, 'check/busybox');
    for (const [off, len] of [[0, 1], [12345, 4096], [blob.size - 100, 100], [7, 0]] as const) {
      const got = await backend.readRange(blob.digest.slice(7), off, len);
      expect(Buffer.from(got).equals(whole.subarray(off, off + len))).toBe(true);
    }
    expect(backend.stats.requests).toBe(3);
    await expect(backend.readRange('nothex', 0, 1)).rejects.toSatisfy((e) => isNydusError(e, 'INVALID_ARGUMENT'));
    await expect(backend.readRange(blob.digest, blob.size - 10, 20)).rejects.toSatisfy((e) => isNydusError(e));
    await expect(backend.readRange('0'.repeat(64), 0, 10)).rejects.toSatisfy((e) => isNydusError(e, 'NOT_FOUND'));
  });

  it('with read-ahead: aligned windows fetched once (shared by concurrent readers), reads across windows, LRU eviction', async () => {
    const m = JSON.parse((await client.getManifest('check/busybox', 'nydus')).bytes.toString()) as ImageManifest;
    const blob = m.layers[0]! as Descriptor;
    expect(blob.size).toBeGreaterThan(200_000);
    const whole = await readAll(client.fetchBlob('check/busybox', blob));
    const w = 64 * 1024;
    const backend = new RegistryBlobBackend(client, 'check/busybox', { readAhead: w, maxWindows: 2, blobSizes: new Map([[blob.digest, blob.size]]) });
    const id = blob.digest.slice(7);
    const same = await Promise.all([0, 100, 5000, 60_000].map((off) => backend.readRange(id, off, 1000)));
    same.forEach((got, i) => expect(Buffer.from(got).equals(whole.subarray([0, 100, 5000, 60_000][i]!, [0, 100, 5000, 60_000][i]! + 1000))).toBe(true));
    expect(backend.stats.requests).toBe(1); // window 0 once, though four readers asked together
    const across = await backend.readRange(id, w - 10, 30); // windows 0 and 1
    expect(Buffer.from(across).equals(whole.subarray(w - 10, w + 20))).toBe(true);
    expect(backend.stats.requests).toBe(2);
    await backend.readRange(id, 2 * w + 1, 10); // window 2 evicts window 0
    await backend.readRange(id, 5, 10);
    expect(backend.stats.requests).toBe(4);
    const tail = await backend.readRange(id, blob.size - 7, 7); // the clipped last window
    expect(Buffer.from(tail).equals(whole.subarray(blob.size - 7))).toBe(true);
    const big = await backend.readRange(id, 10, w + 1); // larger than a window: direct
    expect(Buffer.from(big).equals(whole.subarray(10, 10 + w + 1))).toBe(true);
    await expect(backend.readRange(id, blob.size - 5, 10)).rejects.toSatisfy((e) => isNydusError(e, 'INVALID_ARGUMENT'));
    // Without known sizes the window is clipped after a HEAD.
    const headed = new RegistryBlobBackend(client, 'check/busybox', { readAhead: w });
    const end = await headed.readRange(id, blob.size - 3, 3);
    expect(Buffer.from(end).equals(whole.subarray(blob.size - 3))).toBe(true);
    // (the size learnt from the HEAD then bounds every read)
    await expect(headed.readRange(id, blob.size - 3, 5)).rejects.toSatisfy((e) => isNydusError(e, 'INVALID_ARGUMENT'));
  });
});
