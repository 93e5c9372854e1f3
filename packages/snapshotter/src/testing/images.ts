/**
 * Test images built from directories on this machine and pushed to a registry: layers as
 * tar+gzip made with tar(1), config and OCI manifest written here. Used by the snapshotter's
 * containerd tests and the e2e suite.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, rename, stat, symlink, writeFile, copyFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { MediaType } from '@nydus-ts/core';
import type { Descriptor, Digest } from '@nydus-ts/core';
import { RegistryClient } from '@nydus-ts/registry';
import type { Credentials } from '@nydus-ts/registry';
import { run } from './exec.js';

/** A layer blob on disk. */
export interface LayerFile {
  /** The tar+gzip file. */
  file: string;
  digest: Digest;
  size: number;
  /** sha256 of the uncompressed tar. */
  diffId: Digest;
}

function hashing(h: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      cb(null, chunk);
    },
  });
}

/**
 * Makes `out` (tar+gzip) from the contents of `dir` (numeric owners, as root made them),
 * hashing both the tar and the gzip stream on the way; written under a temp name, then renamed.
 */
export async function buildLayer(dir: string, out: string, gzipLevel = 6): Promise<LayerFile> {
  const tar = spawn('tar', ['--numeric-owner', '--xattrs', '--sort=name', '-C', dir, '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  tar.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number>((resolve) => tar.on('close', (code) => resolve(code ?? 1)));
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  const tmp = `${out}.tmp-${process.pid}`;
  await pipeline(tar.stdout, hashing(diff), createGzip({ level: gzipLevel }), hashing(blob), createWriteStream(tmp));
  const code = await exited;
  if (code !== 0) throw new Error(`tar of ${dir} failed (${code}): ${stderr}`);
  await rename(tmp, out);
  return { file: out, digest: `sha256:${blob.digest('hex')}`, size: (await stat(out)).size, diffId: `sha256:${diff.digest('hex')}` };
}

/** Reads a LayerFile's digests back from an existing tar+gzip (for cached layers). */
export async function describeLayer(file: string): Promise<LayerFile> {
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  const gunzip = (await import('node:zlib')).createGunzip();
  const sink = new PassThrough();
  sink.resume();
  await pipeline(createReadStream(file), hashing(blob), gunzip, hashing(diff), sink);
  return { file, digest: `sha256:${blob.digest('hex')}`, size: (await stat(file)).size, diffId: `sha256:${diff.digest('hex')}` };
}

export interface ImageConfigOptions {
  cmd?: string[];
  entrypoint?: string[];
  env?: string[];
  workingDir?: string;
}

export interface PushImageOptions {
  /** `host:port` of the registry. */
  registry: string;
  repository: string;
  tag: string;
  layers: LayerFile[];
  config?: ImageConfigOptions;
  /** Plain HTTP (default true: test registries run on loopback). */
  insecure?: boolean;
  credentials?: Credentials;
}

export interface PushedImage {
  /** `host:port/repository:tag`. */
  ref: string;
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

function sha256(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Pushes layers, config and an OCI manifest; the tag last. */
export async function pushImage(options: PushImageOptions): Promise<PushedImage> {
  const client = new RegistryClient({ registry: options.registry, insecure: options.insecure ?? true, ...(options.credentials && { credentials: options.credentials }) });
  try {
    const layers: Descriptor[] = [];
    for (const l of options.layers) {
      await client.pushBlob(options.repository, { digest: l.digest, size: l.size }, createReadStream(l.file, { highWaterMark: 1 << 20 }));
      layers.push({ mediaType: MediaType.OciLayerGzip, digest: l.digest, size: l.size });
    }
    const c = options.config ?? {};
    const configBytes = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {
          Env: c.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
          ...(c.cmd ? { Cmd: c.cmd } : {}),
          ...(c.entrypoint ? { Entrypoint: c.entrypoint } : {}),
          ...(c.workingDir ? { WorkingDir: c.workingDir } : {}),
        },
        rootfs: { type: 'layers', diff_ids: options.layers.map((l) => l.diffId) },
        history: options.layers.map((_, i) => ({ created_by: `nydus-ts test layer ${i}` })),
      }),
    );
    const config: Descriptor = { mediaType: MediaType.OciConfig, digest: sha256(configBytes), size: configBytes.length };
    const upload = await client.createUpload(options.repository);
    upload.end(configBytes);
    await upload.commit({ digest: config.digest, size: config.size });
    const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers }));
    const digest = await client.putManifest(options.repository, options.tag, manifestBytes, MediaType.OciManifest);
    return {
      ref: `${options.registry}/${options.repository}:${options.tag}`,
      manifest: { mediaType: MediaType.OciManifest, digest, size: manifestBytes.length },
      config,
      layers,
    };
  } finally {
    await client.close();
  }
}

/**
 * A busybox-static root file system in `dir`: /bin/busybox with its applets as symlinks, /etc
 * basics, empty /proc, /sys, /dev, /tmp; plus `files` (path → content).
 */
export async function makeBusyboxRootfs(dir: string, files: Record<string, string | Buffer> = {}): Promise<void> {
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'var', 'usr/bin']) await mkdir(path.join(dir, d), { recursive: true });
  await chmod(path.join(dir, 'tmp'), 0o1777);
  await copyFile('/bin/busybox', path.join(dir, 'bin/busybox'));
  await chmod(path.join(dir, 'bin/busybox'), 0o755);
  const applets = (await run('/bin/busybox', ['--list'])).split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) await symlink('busybox', path.join(dir, 'bin', a)).catch(() => undefined);
  await writeFile(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  await writeFile(path.join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(path.join(dir, 'etc/hostname'), 'nydus-ts\n');
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, content);
  }
}

/** Deterministic incompressible bytes (a file whose sha256 the tests compare). */
export function pseudoRandomBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let h = createHash('sha512').update(seed).digest();
  for (let off = 0; off < size; off += h.length) {
    h.copy(out, off);
    h = createHash('sha512').update(h).digest();
  }
  return out;
}
