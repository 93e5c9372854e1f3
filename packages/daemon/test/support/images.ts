/**
 * Test images made with the project's own builder, the nydusify-ts binary: local builds
 * (`image create`) and registry images (`convert --source dir:`), and the bootstrap of a
 * registry image (its last layer: a gzip'd tar holding image/image.boot).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Digest, ImageManifest } from '@nydus-ts/core';
import { RegistryClient } from '@nydus-ts/registry';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { appBin, fetchNydusBootstrap } from '@nydus-ts/testing';

export interface BuildOptions {
  compressor?: 'none' | 'lz4_block' | 'zstd';
  chunkSize?: string;
  digester?: 'blake3' | 'sha256';
  prefetchPatterns?: string;
}

function flags(o: BuildOptions): string[] {
  const f: string[] = [];
  if (o.compressor) f.push('--compressor', o.compressor);
  if (o.chunkSize) f.push('--chunk-size', o.chunkSize);
  if (o.digester) f.push('--digester', o.digester);
  if (o.prefetchPatterns) f.push('--prefetch-patterns', o.prefetchPatterns);
  return f;
}

export function nydusify(args: string[], timeoutMs = 600_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [appBin('nydusify-ts'), ...args], { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, HTTP_PROXY: '', HTTPS_PROXY: '', http_proxy: '', https_proxy: '' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`nydusify-ts ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** `nydusify-ts image create --type dir-rafs SRC`: the bootstrap and the blob id. */
export async function buildLocalImage(src: string, bootstrap: string, blobDir: string, options: BuildOptions = {}): Promise<{ blobId: string | undefined }> {
  const out = await nydusify(['image', 'create', '--type', 'dir-rafs', src, '--bootstrap', bootstrap, '--blob-dir', blobDir, ...flags(options)]);
  const m = /^blob: ([0-9a-f]{64})/m.exec(out);
  return { blobId: m?.[1] };
}

/** `nydusify-ts convert --source dir:SRC --target HOST/REPO:TAG` into a loopback registry. */
export async function convertDirToRegistry(registryHost: string, src: string, repo: string, options: BuildOptions = {}): Promise<string> {
  const target = `${registryHost}/${repo}:v1`;
  await nydusify(['convert', '--source', `dir:${src}`, '--target', target, '--target-insecure', ...flags(options)]);
  return target;
}

/** Reads an image's manifest and writes its bootstrap (image/image.boot of the last layer) to `file`. */
export async function fetchBootstrap(registryHost: string, repo: string, tag: string, file: string): Promise<{ manifest: ImageManifest; blobIds: string[] }> {
  const client = new RegistryClient({ registry: registryHost, insecure: true });
  try {
    return await fetchNydusBootstrap(client, repo, tag, file);
  } finally {
    await client.close();
  }
}

/** A nydusd v1 config for a registry backend and a blobcache work dir. */
export function registryConfig(host: string, repo: string, workDir: string, extra: Record<string, unknown> = {}, backendExtra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    device: {
      backend: { type: 'registry', config: { scheme: 'http', host, repo, timeout: 5, connect_timeout: 5, retry_limit: 2, ...backendExtra } },
      cache: { type: 'blobcache', config: { work_dir: workDir } },
    },
    mode: 'direct',
    digest_validate: false,
    enable_xattr: true,
    ...extra,
  });
}

/** A nydusd v1 config for a localfs backend. */
export function localfsConfig(dir: string, workDir: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    device: { backend: { type: 'localfs', config: { dir } }, cache: { type: 'blobcache', config: { work_dir: workDir } } },
    mode: 'direct',
    enable_xattr: true,
    ...extra,
  });
}

const sha256 = (b: Uint8Array): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Pushes `tgz` as the one layer of an OCI image `repo:v1`. */
export async function pushOneLayerImage(client: RegistryClient, repo: string, tgz: Buffer): Promise<Digest> {
  const push = async (bytes: Buffer): Promise<Digest> => {
    const digest = sha256(bytes);
    const up = await client.createUpload(repo);
    up.end(bytes);
    await up.commit({ digest, size: bytes.length });
    return digest;
  };
  const layer = await push(tgz);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(gunzipSync(tgz))] }, history: [{ created_by: 'fixture' }] }));
  const configDigest = await push(config);
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer, size: tgz.length }],
  };
  await client.putManifest(repo, 'v1', Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
  return layer;
}

/** The registry storage's data file of a blob. */
export function blobData(registry: TestRegistry, digest: Digest): string {
  const hex = digest.slice(7);
  return path.join(registry.dir, 'storage/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}
