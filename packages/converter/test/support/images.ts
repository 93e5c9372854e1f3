/**
 * Test images built in the test suite and pushed to a (test) registry: busybox, Debian minbase
 * (debootstrap, cached), node on minbase, and a layered image full of whiteouts, opaque dirs,
 * hardlinks, xattrs and a file changed in three layers. Layers are streamed (tar → sha256 for the
 * diff_id → gzip/zstd/none → registry upload): nothing is staged on disk.
 *
 * Every builder returns the pushed manifest, config and layer descriptors; `writeOciLayout`
 * copies a pushed image into an OCI layout directory (for `oci:` sources, umoci and skopeo).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex} from 'node:stream';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync } from 'node:zlib';
import { MediaType } from '@nydus-ts/core';
import type { Descriptor, Digest, ImageConfig, Platform } from '@nydus-ts/core';
import type { LayerEntry } from '@nydus-ts/format';
import { copyImage } from '@nydus-ts/registry';
import type { ManifestData, RegistryClient } from '@nydus-ts/registry';
import { readDirectoryEntries, writeTarEntries } from '@nydus-ts/image';
import { END, fileMember } from '@nydus-ts/testing';
import { zstdCompressProcess } from '@nydus-ts/testing';

/** Fixed mtime of generated entries (2023-11-14). */
export const TEST_MTIME = 1_700_000_000;

export type TestLayerCompression = 'gzip' | 'zstd' | 'none';

/** One layer to push: its entries (a fresh iterable per call) or a ready tar file. */
export interface TestLayer {
  compression: TestLayerCompression;
  /** Generated entries; called once per push. */
  entries?: () => AsyncIterable<LayerEntry>;
  /** An existing uncompressed tar file (e.g. the cached minbase tar). */
  tarFile?: string;
  /**
   * An existing compressed file pushed byte for byte (with `compression` naming its format);
   * `tarFile` must then hold the same content uncompressed (for the diff_id).
   */
  compressedFile?: string;
  /** History line of this layer. */
  createdBy?: string;
  /** Drop the two end-of-archive zero blocks (as umoci writes layers). */
  omitEndOfArchive?: boolean;
}

export interface TestImageOptions {
  repository: string;
  /** Default `latest`. */
  tag?: string;
  /** Media types (default oci). */
  format?: 'oci' | 'docker';
  /** Default linux/<host arch>. */
  platform?: Platform;
  /** Push the manifest by digest only (for building indexes). */
  untagged?: boolean;
}

export interface TestImage {
  /** `host/repository:tag` (or `@digest` when untagged). */
  reference: string;
  repository: string;
  tag: string | undefined;
  manifest: ManifestData;
  config: Descriptor;
  configJson: ImageConfig;
  layers: Descriptor[];
  /** sha256 of each layer's uncompressed tar. */
  diffIds: Digest[];
  platform: Platform;
}

const hostArch = (): string => ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;

export function hostLinuxPlatform(): Platform {
  return { os: 'linux', architecture: hostArch() };
}

// ------------------------------------------------------------------ entries

const base = { uid: 0, gid: 0, mtime: TEST_MTIME, size: 0 } as const;

export function dir(p: string, mode = 0o755, extra: Partial<LayerEntry> = {}): LayerEntry {
  return { ...base, path: p, type: 'directory', mode, ...extra };
}

export function file(p: string, content: string | Uint8Array, mode = 0o644, extra: Partial<LayerEntry> = {}): LayerEntry {
  const data = typeof content === 'string' ? Buffer.from(content) : content;
  return { ...base, path: p, type: 'file', mode, size: data.length, content: (async function* () { if (data.length) yield data; })(), ...extra };
}

/** A regular file whose content is streamed from a host file when the entry is consumed. */
export function hostFile(p: string, hostPath: string, mode?: number, extra: Partial<LayerEntry> = {}): LayerEntry {
  const st = statSync(hostPath);
  return { ...base, path: p, type: 'file', mode: mode ?? st.mode & 0o7777, size: st.size, content: createReadStream(hostPath, { highWaterMark: 1 << 20 }), ...extra };
}

export function symlink(p: string, target: string): LayerEntry {
  return { ...base, path: p, type: 'symlink', mode: 0o777, linkTarget: target };
}

export function hardlink(p: string, to: string): LayerEntry {
  return { ...base, path: p, type: 'hardlink', mode: 0o644, linkTarget: to };
}

/** OCI whiteout of `p` (`dir/.wh.name`). */
export function whiteout(p: string): LayerEntry {
  const d = path.posix.dirname(p);
  const name = `.wh.${path.posix.basename(p)}`;
  return file(d === '.' ? name : `${d}/${name}`, '', 0o644);
}

/** OCI opaque marker for directory `d`. */
export function opaque(d: string): LayerEntry {
  return file(`${d}/.wh..wh..opq`, '', 0o644);
}

async function* fromArray(entries: LayerEntry[]): AsyncGenerator<LayerEntry> {
  yield* entries;
}

/** Prefixes every path (and hardlink target) of a directory walk with `prefix/`. */
async function* prefixed(entries: AsyncIterable<LayerEntry>, prefix: string): AsyncGenerator<LayerEntry> {
  for await (const e of entries) {
    const p = e.path === '' ? prefix : `${prefix}/${e.path}`;
    yield e.type === 'hardlink' ? { ...e, path: p, linkTarget: `${prefix}/${e.linkTarget!}` } : { ...e, path: p };
  }
}

// ------------------------------------------------------------------ pushing

function sha256(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function hashTap(hash: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
}

function compressor(c: TestLayerCompression): Duplex {
  if (c === 'gzip') return createGzip({ level: 6 });
  if (c === 'zstd') return zstdCompressProcess();
  return new PassThrough();
}

async function* withoutEndOfArchive(tar: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  // writeTarEntries yields the 1024-byte end-of-archive as its own last chunk.
  let prev: Uint8Array | undefined;
  for await (const chunk of tar) {
    if (prev) yield prev;
    prev = chunk;
  }
  if (prev && !(prev.length === 1024 && prev.every((b) => b === 0))) yield prev;
}

export function layerMediaType(c: TestLayerCompression, format: 'oci' | 'docker'): string {
  // Docker schema 2 has no zstd layer type: such manifests carry the OCI one (as buildx writes).
  if (format === 'docker' && c !== 'zstd') return c === 'none' ? MediaType.DockerLayer : MediaType.DockerLayerGzip;
  return c === 'none' ? MediaType.OciLayer : c === 'gzip' ? MediaType.OciLayerGzip : MediaType.OciLayerZstd;
}

async function pushLayer(client: RegistryClient, repository: string, layer: TestLayer, format: 'oci' | 'docker'): Promise<{ descriptor: Descriptor; diffId: Digest }> {
  const diff = createHash('sha256');
  const upload = await client.createUpload(repository);
  if (layer.compressedFile) {
    if (!layer.tarFile) throw new Error('compressedFile needs tarFile for the diff_id');
    await Promise.all([pipeline(createReadStream(layer.compressedFile, { highWaterMark: 1 << 20 }), upload), pipeline(createReadStream(layer.tarFile, { highWaterMark: 1 << 20 }), hashTap(diff), new PassThrough().resume())]);
  } else {
    let tar: Readable;
    if (layer.tarFile) tar = createReadStream(layer.tarFile, { highWaterMark: 1 << 20 });
    else if (layer.entries) {
      const gen = writeTarEntries(layer.entries());
      tar = Readable.from(layer.omitEndOfArchive ? withoutEndOfArchive(gen) : gen, { objectMode: false });
    } else throw new Error('a test layer needs entries or a tar file');
    await pipeline(tar, hashTap(diff), compressor(layer.compression), upload);
  }
  const { digest, size } = await upload.commit();
  return { descriptor: { mediaType: layerMediaType(layer.compression, format), digest, size }, diffId: `sha256:${diff.digest('hex')}` };
}

async function pushSmallBlob(client: RegistryClient, repository: string, bytes: Uint8Array): Promise<Digest> {
  const digest = sha256(bytes);
  if ((await client.headBlob(repository, digest)) !== undefined) return digest;
  const up = await client.createUpload(repository);
  up.end(bytes);
  await up.commit({ digest, size: bytes.length });
  return digest;
}

/**
 * Pushes an image of the given layers (in parallel) with a config that has Env/Cmd/Labels and a
 * history line per layer plus one empty-layer entry, tagged unless `untagged`.
 */
export async function pushLayeredImage(
  client: RegistryClient,
  layers: TestLayer[],
  options: TestImageOptions & { config?: Record<string, unknown>; annotations?: Record<string, string> },
): Promise<TestImage> {
  const format = options.format ?? 'oci';
  const platform = options.platform ?? hostLinuxPlatform();
  const tag = options.untagged ? undefined : (options.tag ?? 'latest');
  const pushed = await Promise.all(layers.map((l) => pushLayer(client, options.repository, l, format)));
  const configJson: ImageConfig = {
    created: new Date(TEST_MTIME * 1000).toISOString(),
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'], Labels: { 'org.nydus-ts.test': options.repository }, ...options.config },
    rootfs: { type: 'layers', diff_ids: pushed.map((p) => p.diffId) },
    history: [
      { created: new Date(TEST_MTIME * 1000).toISOString(), created_by: 'ENV test=1', empty_layer: true },
      ...layers.map((l, i) => ({ created: new Date(TEST_MTIME * 1000).toISOString(), created_by: l.createdBy ?? `layer ${i}` })),
    ],
  };
  const configBytes = Buffer.from(JSON.stringify(configJson));
  const config: Descriptor = { mediaType: format === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig, digest: await pushSmallBlob(client, options.repository, configBytes), size: configBytes.length };
  const mediaType = format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest;
  const manifestJson = {
    schemaVersion: 2,
    mediaType,
    config,
    layers: pushed.map((p) => p.descriptor),
    ...(options.annotations && format === 'oci' ? { annotations: options.annotations } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(manifestJson, null, 2));
  const digest = await client.putManifest(options.repository, tag ?? sha256(bytes), bytes, mediaType);
  return {
    reference: `${client.registry}/${options.repository}${tag ? `:${tag}` : `@${digest}`}`,
    repository: options.repository,
    tag,
    manifest: { descriptor: { mediaType, digest, size: bytes.length }, bytes },
    config,
    configJson,
    layers: pushed.map((p) => p.descriptor),
    diffIds: pushed.map((p) => p.diffId),
    platform,
  };
}

/** Pushes an index over already pushed images (each with its platform). */
export async function pushTestIndex(client: RegistryClient, repository: string, tag: string, images: TestImage[], format: 'oci' | 'docker' = 'oci'): Promise<ManifestData> {
  const mediaType = format === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList;
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests: images.map((img) => ({ ...img.manifest.descriptor, platform: img.platform })) }, null, 2));
  const digest = await client.putManifest(repository, tag, bytes, mediaType);
  return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
}

/** Copies a pushed image (or index) into an OCI layout directory `dir` under `tag`. */
export async function writeOciLayout(client: RegistryClient, image: { repository: string; tag?: string | undefined; manifest: ManifestData }, dir: string, tag: string, options: { allPlatforms?: boolean } = {}): Promise<void> {
  const ref = `${client.registry}/${image.repository}${image.tag ? `:${image.tag}` : `@${image.manifest.descriptor.digest}`}`;
  await copyImage({ source: ref, target: `oci:${dir}:${tag}`, sourceRegistry: { insecure: true }, allPlatforms: options.allPlatforms ?? true });
}

// ------------------------------------------------------------------ images

const BUSYBOX = '/usr/bin/busybox';
const BUSYBOX_APPLETS = ['sh', 'ls', 'cat', 'echo', 'cp', 'mv', 'rm', 'mkdir', 'ln', 'grep', 'sed', 'tar', 'gzip', 'find', 'stat', 'true', 'false', 'env', 'id', 'ps', 'vi', 'wget', 'sleep', 'uname'];

function busyboxEntries(): LayerEntry[] {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} missing: install busybox-static (scripts/setup.sh)`);
  return [
    dir(''),
    dir('bin'),
    hostFile('bin/busybox', BUSYBOX, 0o755),
    ...BUSYBOX_APPLETS.map((a) => symlink(`bin/${a}`, 'busybox')),
    dir('dev'),
    dir('etc'),
    file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n'),
    file('etc/group', 'root:x:0:\nnogroup:x:65534:\n'),
    file('etc/hostname', 'busybox\n'),
    file('etc/shadow', 'root:*:19000:0:99999:7:::\n', 0o640, { gid: 42 }),
    dir('home'),
    dir('proc', 0o555),
    dir('root', 0o700),
    dir('sys', 0o555),
    dir('tmp', 0o1777),
    dir('usr'),
    dir('usr/sbin'),
    dir('var'),
    dir('var/spool'),
    dir('var/spool/mail', 0o2775, { gid: 8 }),
  ];
}

/** busybox-static with applet symlinks and /etc files (gzip layer) plus a small uncompressed layer. */
export function busyboxImage(client: RegistryClient, options: TestImageOptions): Promise<TestImage> {
  return pushLayeredImage(
    client,
    [
      { compression: 'gzip', entries: () => fromArray(busyboxEntries()), createdBy: 'ADD busybox rootfs' },
      { compression: 'none', entries: () => fromArray([dir('etc'), file('etc/motd', 'Welcome to the nydus-ts busybox test image\n'), dir('usr'), dir('usr/sbin'), symlink('usr/sbin/init', '../../bin/busybox')]), createdBy: 'ADD motd' },
    ],
    { ...options, config: { Cmd: ['/bin/sh'], WorkingDir: '/root' } },
  );
}

export const MINBASE_CACHE = process.env.NYDUS_TS_CACHE ?? '/var/cache/nydus-ts';

/**
 * The Debian bookworm minbase tree, its tar and tar.gz, made once with debootstrap and cached
 * under /var/cache/nydus-ts (the same cache as scripts/bench/_lib.mjs `ensureMinbase`). Made by
 * an asynchronous child process (debootstrap takes minutes: a synchronous one would starve this
 * worker's messages to vitest) under `flock`, so that test files in other workers wait for the
 * one that makes it instead of making it again in the same place.
 */
export async function ensureMinbase(): Promise<{ dir: string; tar: string; tgz: string }> {
  const d = path.join(MINBASE_CACHE, 'minbase');
  const tar = path.join(MINBASE_CACHE, 'minbase.tar');
  const tgz = path.join(MINBASE_CACHE, 'minbase.tar.gz');
  await mkdir(MINBASE_CACHE, { recursive: true });
  const script = [
    'set -e',
    `if [ ! -f ${d}/etc/debian_version ]; then`,
    `  rm -rf ${d}.tmp`,
    `  debootstrap --variant=minbase bookworm ${d}.tmp http://deb.debian.org/debian >&2`,
    `  rm -rf ${d}.tmp/var/cache/apt/archives/*.deb ${d}.tmp/var/lib/apt/lists/*_Packages`,
    `  rm -rf ${d} ${tar} ${tgz}`,
    `  mv ${d}.tmp ${d}`,
    'fi',
    `[ -f ${tar} ] || { tar --xattrs --numeric-owner -C ${d} -cf ${tar}.tmp . && mv ${tar}.tmp ${tar}; }`,
    `[ -f ${tgz} ] || { gzip -6 -c ${tar} > ${tgz}.tmp && mv ${tgz}.tmp ${tgz}; }`,
  ].join('\n');
  await new Promise<void>((resolve, reject) => {
    const child = spawn('flock', [path.join(MINBASE_CACHE, '.minbase.lock'), 'bash', '-c', script], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`making the minbase cache in ${MINBASE_CACHE} failed (exit ${code})`))));
  });
  return { dir: d, tar, tgz };
}

async function minbaseLayer(): Promise<TestLayer> {
  const mb = await ensureMinbase();
  return { compression: 'gzip', tarFile: mb.tar, compressedFile: mb.tgz, createdBy: 'debootstrap --variant=minbase bookworm' };
}

/** Debian bookworm minbase as one gzip layer (the cached minbase.tar.gz, pushed as it is). */
export async function minbaseImage(client: RegistryClient, options: TestImageOptions): Promise<TestImage> {
  return pushLayeredImage(client, [await minbaseLayer()], { ...options, config: { Cmd: ['/bin/bash'] } });
}

/** Where the local Node.js lives: its binary and, if present, its lib dir (npm etc.). */
export function nodeInstallation(): { exec: string; libDir: string | undefined } {
  const exec = process.execPath;
  const libDir = path.join(path.dirname(path.dirname(exec)), 'lib', 'node_modules');
  return { exec, libDir: existsSync(libDir) ? libDir : undefined };
}

function nodeLayerEntries(): () => AsyncIterable<LayerEntry> {
  const { exec, libDir } = nodeInstallation();
  return async function* () {
    yield dir('usr');
    yield dir('usr/local');
    yield dir('usr/local/bin');
    yield hostFile('usr/local/bin/node', exec, 0o755);
    if (libDir) {
      yield dir('usr/local/lib');
      yield* prefixed(readDirectoryEntries(libDir), 'usr/local/lib/node_modules');
    }
  };
}

/** minbase plus the local Node.js (binary and lib dir) as an upper layer (gzip by default). */
export async function nodeImage(client: RegistryClient, options: TestImageOptions & { nodeLayerCompression?: TestLayerCompression }): Promise<TestImage> {
  return pushLayeredImage(
    client,
    [await minbaseLayer(), { compression: options.nodeLayerCompression ?? 'gzip', entries: nodeLayerEntries(), createdBy: 'COPY node /usr/local' }],
    { ...options, config: { Cmd: ['node'], Env: ['PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'NODE_VERSION=' + process.version] } },
  );
}

/** security.capability v2 for cap_net_raw+ep (as `setcap cap_net_raw+ep` writes it). */
export const CAP_NET_RAW = Uint8Array.from([0x00, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);

/**
 * Three layers (gzip, zstd, uncompressed): whiteouts of files and directories, opaque dirs,
 * hardlink groups broken and re-made across layers, xattrs (user.*, security.capability, on
 * files and dirs), a fifo and a device, and `etc/config` changed in all three layers.
 * Expected final tree: see WHITEOUT_IMAGE_EXPECTED.
 */
export function whiteoutLayers(): TestLayer[] {
  const big = Buffer.alloc(3 * 1024 * 1024 + 123, 'nydus whiteout test data ');
  const xa = (o: Record<string, string | Uint8Array>): ReadonlyMap<string, Uint8Array> =>
    new Map(Object.entries(o).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v) : v]));
  return [
    {
      compression: 'gzip',
      createdBy: 'layer 1: base tree',
      entries: () =>
        fromArray([
          dir(''),
          dir('etc'),
          file('etc/config', 'version=1\n'),
          dir('keep', 0o750, { uid: 1000, gid: 1000, xattrs: xa({ 'user.dir': 'kept dir' }) }),
          file('keep/a', 'a\n', 0o600, { uid: 1000, gid: 1000 }),
          file('keep/deleted', 'gone in layer 2\n'),
          dir('gone'),
          dir('gone/sub'),
          file('gone/sub/x', 'x\n'),
          dir('opq', 0o755, { xattrs: xa({ 'user.opq': 'lower' }) }),
          file('opq/old1', 'old\n'),
          dir('opq/olddir'),
          file('opq/olddir/y', 'y\n'),
          dir('hl'),
          file('hl/one', 'shared by one and two\n'),
          hardlink('hl/two', 'hl/one'),
          file('hl/three', 'three and four\n', 0o640),
          hardlink('hl/four', 'hl/three'),
          dir('bin'),
          file('bin/ping', 'not really ping\n', 0o755, { xattrs: xa({ 'security.capability': CAP_NET_RAW, 'user.comment': 'has caps' }) }),
          file('bin/big', big, 0o644),
          symlink('bin/link', 'ping'),
          { ...base, path: 'bin/fifo', type: 'fifo', mode: 0o600 },
          { ...base, path: 'bin/null', type: 'char-device', mode: 0o666, devMajor: 1, devMinor: 3 },
        ]),
    },
    {
      compression: 'zstd',
      createdBy: 'layer 2: whiteouts, opaque dir, changes',
      entries: () =>
        fromArray([
          dir('etc'),
          file('etc/config', 'version=2\nmore=yes\n'),
          dir('keep', 0o750, { uid: 1000, gid: 1000, xattrs: xa({ 'user.dir': 'kept dir' }) }),
          whiteout('keep/deleted'),
          file('keep/new', 'new in layer 2\n'),
          whiteout('gone'),
          dir('opq', 0o711, { xattrs: xa({ 'user.opq': 'upper' }) }),
          opaque('opq'),
          file('opq/new1', 'new\n'),
          dir('hl'),
          // hl/two gets new content: the one/two group is broken (one keeps the old content)
          file('hl/two', 'two replaced in layer 2\n'),
          // a new group in this layer that includes a name of the layer-1 group
          file('hl/four', 'four re-made\n', 0o644),
          hardlink('hl/five', 'hl/four'),
          dir('bin'),
          file('bin/ping', 'ping v2\n', 0o4755, { xattrs: xa({ 'security.capability': CAP_NET_RAW }) }),
        ]),
    },
    {
      compression: 'none',
      createdBy: 'layer 3: more changes',
      entries: () =>
        fromArray([
          dir('etc'),
          file('etc/config', 'version=3\n', 0o600),
          dir('gone'),
          file('gone/again', 'recreated after whiteout\n'),
          whiteout('bin/link'),
          dir('bin'),
          symlink('bin/link2', '/bin/ping'),
          whiteout('opq/new1'),
          dir('opq', 0o711, { xattrs: xa({ 'user.opq': 'upper' }) }),
          dir('opq/emptied'),
        ]),
    },
  ];
}

/** The whiteout image (see {@link whiteoutLayers}). */
export function whiteoutImage(client: RegistryClient, options: TestImageOptions): Promise<TestImage> {
  return pushLayeredImage(client, whiteoutLayers(), options);
}

/** Reads the paths of a directory tree, relative, sorted (small helper for expectations). */
export async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const d of await readdir(path.join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${d.name}` : d.name;
      out.push(p);
      if (d.isDirectory()) await walk(p);
    }
  };
  await walk('');
  return out.sort();
}

/** Reads a JSON file (test convenience). */
export function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

const GZIP_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** Two gzip layers, the second corrupt in its deflate data (header and trailer intact). */
export function corruptGzipLayers(): Array<{ bytes: Uint8Array; mediaType: string }> {
  const corrupt = gzipSync(Buffer.concat([fileMember('a', 'hello'), END]));
  corrupt.fill(0x5a, 12, corrupt.length - 8);
  return [
    { bytes: gzipSync(Buffer.concat([fileMember('ok', 'fine'), END])), mediaType: GZIP_LAYER },
    { bytes: corrupt, mediaType: GZIP_LAYER },
  ];
}

/** One gzip layer holding a file whose path climbs out of the root (`etc/../../escape`). */
export function dotDotLayers(): Array<{ bytes: Uint8Array; mediaType: string }> {
  return [{ bytes: gzipSync(Buffer.concat([fileMember('etc/../../escape', 'x'), END])), mediaType: GZIP_LAYER }];
}

/**
 * Pushes an image whose layers are given as raw bytes (for malformed-input tests): the bytes are
 * uploaded as they are and listed with `mediaType`; diff_ids are the blobs' own digests.
 */
export async function pushRawImage(
  client: RegistryClient,
  repository: string,
  tag: string,
  layers: Array<{ bytes: Uint8Array; mediaType: string }>,
  options: { configMediaType?: string; platform?: Platform } = {},
): Promise<TestImage> {
  const platform = options.platform ?? hostLinuxPlatform();
  const descs: Descriptor[] = [];
  for (const l of layers) descs.push({ mediaType: l.mediaType, digest: await pushSmallBlob(client, repository, l.bytes), size: l.bytes.length });
  const configJson: ImageConfig = { architecture: platform.architecture, os: platform.os, config: {}, rootfs: { type: 'layers', diff_ids: descs.map((d) => d.digest) } };
  const configBytes = Buffer.from(JSON.stringify(configJson));
  const config: Descriptor = { mediaType: options.configMediaType ?? MediaType.OciConfig, digest: await pushSmallBlob(client, repository, configBytes), size: configBytes.length };
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: descs }));
  const digest = await client.putManifest(repository, tag, bytes, MediaType.OciManifest);
  return {
    reference: `${client.registry}/${repository}:${tag}`,
    repository,
    tag,
    manifest: { descriptor: { mediaType: MediaType.OciManifest, digest, size: bytes.length }, bytes },
    config,
    configJson,
    layers: descs,
    diffIds: descs.map((d) => d.digest),
    platform,
  };
}
