/**
 * Test images made with the project's own builder, the nydusify-ts binary: local builds
 * (`image create`) and registry images (`convert --source dir:`), and the bootstrap of a
 * registry image (its last layer: a gzip'd tar holding image/image.boot).
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import type { ImageManifest } from '@nydus-ts/core';
import { RegistryClient } from '@nydus-ts/registry';
import { appBin } from '@nydus-ts/testing';

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
  const client = new RegistryClient({ registry: registryHost, insecure: true, env: {} });
  try {
    const m = await client.getManifest(repo, tag);
    const manifest = JSON.parse(m.bytes.toString('utf8')) as ImageManifest;
    const layer = manifest.layers[manifest.layers.length - 1]!;
    const parts: Buffer[] = [];
    for await (const c of client.fetchBlob(repo, layer)) parts.push(c as Buffer);
    const tar = gunzipSync(Buffer.concat(parts));
    const boot = tarMember(tar, 'image/image.boot');
    if (!boot) throw new Error(`${repo}:${tag}: bootstrap layer has no image/image.boot`);
    await writeFile(file, boot);
    return { manifest, blobIds: manifest.layers.slice(0, -1).map((l) => l.digest.slice(7)) };
  } finally {
    await client.close();
  }
}

/** A member of an uncompressed tar (ustar names and GNU long names are enough here). */
function tarMember(tar: Buffer, name: string): Buffer | undefined {
  let off = 0;
  let longName: string | undefined;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) return undefined;
    const field = (at: number, len: number): string => header.toString('utf8', at, at + len).replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156]!);
    const prefix = field(345, 155);
    const memberName = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    const body = tar.subarray(off + 512, off + 512 + size);
    if (type === 'L') longName = body.toString('utf8').replace(/\0.*$/s, '');
    else if ((type === '0' || type === '\0') && memberName.replace(/^\.\//, '') === name) return Buffer.from(body);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return undefined;
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
